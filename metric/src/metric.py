"""metric: joins ``y_true`` and ``y_pred`` by id and appends ``id,y_true,y_pred,absolute_error`` to metric_log.csv.

A half whose partner has not come yet is written to a journal (metric_waiting.journal) and waits in memory, so no
delivery is held for long. Rows and journal lines are written in small batches and fsynced before the messages that
made them are acked: a crash can only cause a redelivery, and the ids of recent rows (read back from the CSV at
start) and of waiting halves (read back from the journal) turn a redelivery into an ack without a second row. A half
still waiting after METRIC_ORPHAN_TIMEOUT seconds is an orphan: it is logged and moved to its dead-letter queue, and
it stays in the journal until the broker has confirmed that move. A pair whose absolute error is not a finite number
(1e308 and -1e308) is no row: both halves go to their dead-letter queues with the reason.
When more than METRIC_MAX_WAITING halves of one side wait (a backlog of y_true while the model is down, say), metric
stops consuming that side until its partners have caught up, so memory stays bounded however long the backlog.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from prometheus_client import Counter, Gauge

from pipeline import service, settings
from pipeline.broker import Broker, Delivery
from pipeline.join import Half, HalfJournal, Join, Pair
from pipeline.messages import BadMessage, decode_value, encode
from pipeline.metric_log import MetricLog
from pipeline.topology import Y_PRED, Y_TRUE, dead_letter_queue

LOGGER = logging.getLogger("metric")

SYNC_DELAY = 0.005  # seconds a processed delivery may wait for others before the fsync
SYNC_DELIVERIES = 1000  # processed deliveries that force an fsync at once
RESUME_SHARE = 0.9  # a paused side resumes once its waiting halves fall to this share of METRIC_MAX_WAITING
SIDES = {Y_TRUE: Y_PRED, Y_PRED: Y_TRUE}  # each side and the side its partners come from
NOT_FINITE = "the absolute error of this pair is not a finite number"

ROWS_WRITTEN = Counter("pipeline_metric_rows_written", "Rows appended to metric_log.csv and fsynced")
HALVES_WAITING = Gauge("pipeline_metric_halves_waiting", "Halves (y_true or y_pred) waiting for their partner")
ORPHANS_RELEASED = Counter("pipeline_metric_orphans_released", "Halves moved to a dead-letter queue after waiting")


@dataclass(frozen=True)
class Settings:
    common: settings.Common
    prefetch: int
    orphan_timeout: float
    max_waiting: int


def load_settings() -> Settings:
    common = settings.load_common()
    settings.writable_folder("LOGS_DIR", common.logs_dir)
    return Settings(
        common=common,
        prefetch=settings.env_int("PREFETCH", 500, minimum=1),
        orphan_timeout=settings.env_float("METRIC_ORPHAN_TIMEOUT", 600.0, minimum=1.0),
        max_waiting=settings.env_int("METRIC_MAX_WAITING", 100_000, minimum=1),
    )


class Metric:
    """Joins halves, writes rows and waiting halves, and acks each delivery after the fsync that made it safe."""

    def __init__(self, config: Settings, broker: Broker) -> None:
        logs = Path(config.common.logs_dir)
        self._log = MetricLog(logs / "metric_log.csv")
        self._journal = HalfJournal(logs / "metric_waiting.journal")
        self._join = Join()
        self._releasing: dict[tuple[str, str], Half] = {}  # published to a dead-letter queue, not confirmed yet
        self._orphan_timeout = config.orphan_timeout
        self._max_waiting = config.max_waiting
        self._orphans = 0
        self._rows, self._error_sum, self._rate = 0, 0.0, service.Rate()
        self._unsafe: list[Delivery] = []  # processed, to be acked after the next sync
        self._sync_timer: object | None = None
        self._broker = broker
        broker.add_hooks(on_lost=self._sync, on_stopping=self._sync)
        broker.consume(Y_TRUE, self._on_half)
        broker.consume(Y_PRED, self._on_half)

    def run(self) -> int:
        HALVES_WAITING.set_function(lambda: len(self._join))
        self._log.open()
        self._restore_waiting_halves()
        self._broker.call_later(self._orphan_timeout / 10, self._release_orphans)
        self._broker.call_later(service.HEARTBEAT_INTERVAL, self._heartbeat)
        try:
            return self._broker.run()
        finally:
            self._journal.close()
            self._log.close()

    def _restore_waiting_halves(self) -> None:
        for half in self._journal.open():
            if half.message_id not in self._log and not self._join.holds(half.side, half.message_id):
                pair = self._join.add(half)
                if pair is not None:
                    self._write_or_release(pair, half)
        self._log.sync()
        self._journal.compact(self._live_halves(), force=True)
        LOGGER.info("%d halves waiting for their partner", len(self._join))
        self._limit_waiting()

    def _on_half(self, delivery: Delivery) -> None:
        row_id, value = decode_value(delivery.body)
        if row_id in self._log or self._join.holds(delivery.queue, row_id):
            LOGGER.debug("%s of %s arrived again; already handled", delivery.queue, row_id)
        else:
            half = Half(delivery.queue, row_id, value, time.time())
            pair = self._join.add(half)
            if pair is None:
                self._journal.record(half)
            elif not self._write_or_release(pair):
                raise BadMessage(f"{NOT_FINITE} (y_true {pair.y_true!r}, y_pred {pair.y_pred!r}); its partner goes too")
        self._unsafe.append(delivery)
        if len(self._unsafe) >= SYNC_DELIVERIES:
            self._sync()
        elif self._sync_timer is None:
            self._sync_timer = self._broker.call_later(SYNC_DELAY, self._sync)

    def _write_or_release(self, pair: Pair, *journaled: Half) -> bool:
        """Write the pair's row, or, if its error is not finite, release its journaled halves and return False."""
        if not math.isfinite(pair.absolute_error):
            self._release([pair.partner, *journaled], reason=NOT_FINITE)
            return False
        self._log.append(pair.message_id, pair.y_true, pair.y_pred)
        self._rows += 1
        self._error_sum += pair.absolute_error
        return True

    def _sync(self) -> None:
        if self._sync_timer is not None:
            self._broker.cancel_timer(self._sync_timer)
            self._sync_timer = None
        self._journal.sync()
        ROWS_WRITTEN.inc(self._log.sync())
        for delivery in self._unsafe:
            self._broker.ack(delivery)
        self._unsafe.clear()
        self._journal.compact(self._live_halves())
        self._limit_waiting()

    def _live_halves(self) -> list[Half]:
        """What the journal must keep: halves waiting, and halves whose release the broker has not confirmed."""
        return [*self._join.waiting(), *self._releasing.values()]

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
        """Move halves that waited too long to their dead-letter queue."""
        orphans = self._join.release_older_than(time.time() - self._orphan_timeout)
        if orphans:
            self._release(orphans, orphaned_after=self._orphan_timeout)
            self._orphans += len(orphans)
            ORPHANS_RELEASED.inc(len(orphans))
            LOGGER.warning(
                "released %d halves whose partner did not come within %g s to the dead-letter queues (%d in all)",
                len(orphans),
                self._orphan_timeout,
                self._orphans,
            )
        self._broker.call_later(self._orphan_timeout / 10, self._release_orphans)

    def _release(self, halves: list[Half], **reason: object) -> None:
        """Publish ``halves`` to their dead-letter queues; the journal keeps them until the broker confirms."""
        for half in halves:
            key = (half.side, half.message_id)
            self._releasing[key] = half
            body = encode(half.message_id, half.value, **reason)
            self._broker.publish(dead_letter_queue(half.side), body, partial(self._released, key))

    def _released(self, key: tuple[str, str]) -> None:
        """The broker has the half in its dead-letter queue: the journal may forget it at its next rewrite."""
        self._releasing.pop(key, None)

    def _heartbeat(self) -> None:
        LOGGER.info(
            "heartbeat: %d rows written (%.1f rows/s), MAE %.4g, %d halves waiting, %d orphans released",
            self._rows,
            self._rate.per_second(self._rows),
            self._error_sum / self._rows if self._rows else 0.0,
            len(self._join),
            self._orphans,
        )
        self._broker.call_later(service.HEARTBEAT_INTERVAL, self._heartbeat)


def run(config: Settings) -> int:
    broker = Broker(config.common, [Y_TRUE, Y_PRED], prefetch=config.prefetch)
    return Metric(config, broker).run()


if __name__ == "__main__":
    sys.exit(service.main(load_settings, run))
