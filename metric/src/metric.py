"""metric: joins ``y_true`` and ``y_pred`` by id and appends ``id,y_true,y_pred,absolute_error`` to metric_log.csv.

A half whose partner has not come yet is written to a journal (metric_waiting.journal) and waits in memory, so no
delivery is held for long. Rows and journal lines are written in small batches and fsynced before the messages that
made them are acked: a crash can only cause a redelivery, and the ids of recent rows (read back from the CSV at
start) and of waiting halves (read back from the journal) turn a redelivery into an ack without a second row. A half
still waiting after METRIC_ORPHAN_TIMEOUT seconds is an orphan: it is logged and moved to its dead-letter queue.
When more than METRIC_MAX_WAITING halves of one side wait (a backlog of y_true while the model is down, say), metric
stops consuming that side until its partners have caught up, so memory stays bounded however long the backlog.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline import settings
from pipeline.broker import Broker, Delivery
from pipeline.join import Half, HalfJournal, Join
from pipeline.messages import decode_value, encode
from pipeline.metric_log import MetricLog
from pipeline.topology import Y_PRED, Y_TRUE, dead_letter_queue

LOGGER = logging.getLogger("metric")

SYNC_DELAY = 0.005  # seconds a processed delivery may wait for others before the fsync
SYNC_DELIVERIES = 1000  # processed deliveries that force an fsync at once
RESUME_SHARE = 0.9  # a paused side resumes once its waiting halves fall to this share of METRIC_MAX_WAITING
SIDES = {Y_TRUE: Y_PRED, Y_PRED: Y_TRUE}  # each side and the side its partners come from


@dataclass(frozen=True)
class Settings:
    common: settings.Common
    prefetch: int
    orphan_timeout: float
    max_waiting: int


def load_settings() -> Settings:
    return Settings(
        common=settings.load_common(),
        prefetch=settings.env_int("PREFETCH", 500, minimum=1),
        orphan_timeout=settings.env_float("METRIC_ORPHAN_TIMEOUT", 600.0, minimum=1.0),
        max_waiting=settings.env_int("METRIC_MAX_WAITING", 100_000, minimum=1),
    )


class Metric:
    """Joins halves, writes rows and waiting halves, and acks each delivery after the fsync that made it safe."""

    def __init__(self, config: Settings) -> None:
        logs = Path(config.common.logs_dir)
        self._log = MetricLog(logs / "metric_log.csv")
        self._journal = HalfJournal(logs / "metric_waiting.journal")
        self._join = Join()
        self._orphan_timeout = config.orphan_timeout
        self._max_waiting = config.max_waiting
        self._orphans = 0
        self._unsafe: list[Delivery] = []  # processed, to be acked after the next sync
        self._sync_timer: object | None = None
        self._broker = Broker(
            config.common, [Y_TRUE, Y_PRED], prefetch=config.prefetch, on_lost=self._sync, on_stopping=self._sync
        )
        self._broker.consume(Y_TRUE, self._on_half)
        self._broker.consume(Y_PRED, self._on_half)

    def run(self) -> int:
        self._log.open()
        self._restore_waiting_halves()
        self._broker.ioloop.call_later(self._orphan_timeout / 10, self._release_orphans)
        try:
            return self._broker.run()
        finally:
            self._journal.close()
            self._log.close()

    def _restore_waiting_halves(self) -> None:
        for half in self._journal.open():
            if half.message_id not in self._log and not self._join.holds(half.side, half.message_id):
                self._take(half)
        self._log.sync()
        self._journal.compact(self._join, force=True)
        LOGGER.info("%d halves waiting for their partner", len(self._join))
        self._limit_waiting()

    def _on_half(self, delivery: Delivery) -> None:
        row_id, value = decode_value(delivery.body)
        self._unsafe.append(delivery)
        if row_id in self._log or self._join.holds(delivery.queue, row_id):
            LOGGER.debug("%s of %s arrived again; already handled", delivery.queue, row_id)
        else:
            half = Half(delivery.queue, row_id, value, time.time())
            if not self._take(half):
                self._journal.record(half)
        if len(self._unsafe) >= SYNC_DELIVERIES:
            self._sync()
        elif self._sync_timer is None:
            self._sync_timer = self._broker.ioloop.call_later(SYNC_DELAY, self._sync)

    def _take(self, half: Half) -> bool:
        """Join ``half``; write its row and return True if that completed a pair."""
        pair = self._join.add(half)
        if pair is not None:
            self._log.append(pair.message_id, pair.y_true, pair.y_pred)
        return pair is not None

    def _sync(self) -> None:
        if self._sync_timer is not None:
            self._broker.ioloop.remove_timeout(self._sync_timer)
            self._sync_timer = None
        self._journal.sync()
        self._log.sync()
        for delivery in self._unsafe:
            self._broker.ack(delivery)
        self._unsafe.clear()
        self._journal.compact(self._join)
        self._limit_waiting()

    def _limit_waiting(self) -> None:
        """Pause a side with too many waiting halves, unless the other side has too many too: its partners are there."""
        for side, partner_side in SIDES.items():
            waiting, partners_waiting = self._join.count(side), self._join.count(partner_side)
            if self._broker.is_paused(side):
                if waiting <= RESUME_SHARE * self._max_waiting or partners_waiting > self._max_waiting:
                    LOGGER.info("%d halves of %s wait; consuming %s again", waiting, side, side)
                    self._broker.resume(side)
            elif waiting > self._max_waiting and partners_waiting <= self._max_waiting:
                LOGGER.warning(
                    "%d halves of %s wait for their partner (METRIC_MAX_WAITING %d); pausing %s until they come",
                    waiting,
                    side,
                    self._max_waiting,
                    side,
                )
                self._broker.pause(side)

    def _release_orphans(self) -> None:
        """Move halves that waited too long to their dead-letter queue; forget them once that is confirmed."""
        orphans = self._join.release_older_than(time.time() - self._orphan_timeout)
        unconfirmed = [len(orphans)]

        def on_confirmed() -> None:
            unconfirmed[0] -= 1
            if unconfirmed[0] == 0:
                self._sync()
                self._journal.compact(self._join, force=True)

        for half in orphans:
            body = encode(half.message_id, half.value, orphaned_after=self._orphan_timeout)
            self._broker.publish(dead_letter_queue(half.side), body, on_confirmed)
        if orphans:
            self._orphans += len(orphans)
            LOGGER.warning(
                "released %d halves whose partner did not come within %g s to the dead-letter queues (%d in all)",
                len(orphans),
                self._orphan_timeout,
                self._orphans,
            )
        self._broker.ioloop.call_later(self._orphan_timeout / 10, self._release_orphans)


def main() -> int:
    try:
        config = load_settings()
    except settings.SettingsError as error:
        return settings.report_bad_setting(error)
    settings.setup_logging(config.common.log_level)
    return Metric(config).run()


if __name__ == "__main__":
    sys.exit(main())
