"""metric: joins ``y_true`` and ``y_pred`` by id and appends ``id,y_true,y_pred,absolute_error`` to metric_log.csv.

Deliveries are handled in small batches: each half is paired with its partner or kept waiting (``join.py``: in
memory at first, on disk in metric_waiting.sqlite once it waits long), the batch's rows are appended to the CSV and
fsynced, then the waiting halves and what was written are committed to the SQLite file, and only then are the
deliveries acked. A crash can only cause redeliveries, which the file turns into acks without a second row.

Labels may come hours after their prediction, and a model may be down for hours: halves wait on disk, by their
rows' creation time (the AMQP ``timestamp`` features stamps). A half is an orphan only once the other stream has
moved past it (``streams.py``): it is then logged and published to its dead-letter queue, and forgotten once the
broker has confirmed that. A pair whose absolute error is not a finite number is no row: the half that came is
rejected and its partner released, both to their dead-letter queues. A copy of a half is acked and dropped; one whose
value differs from the one kept is counted and logged (one line a second at most). When more than METRIC_MAX_WAITING
halves of one side wait, metric stops consuming that side until their partners have come, but never both sides at once.
Once a second, metric writes metric_status.json for plot: how many halves wait on each side, and since when.
A full or failing disk is waited out (``pipeline.disk``): nothing is acked or released until the rows and the join
are on disk, no side is consumed meanwhile, and every second the same write is tried again.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from join import Conflict, Join, Outcome, Pair
from prometheus_client import Counter, Gauge
from streams import Streams, event_time
from throttle import Throttle
from waiting import FileInUse, Half, WaitingStore

from pipeline import service, settings
from pipeline.broker import Broker
from pipeline.broker_surface import BrokerSurface, Delivery
from pipeline.disk import RETRY_DELAY, WriteTrouble
from pipeline.messages import decode_value, encode
from pipeline.metric_log import MetricLog
from pipeline.metrics import of_queue
from pipeline.status import write_status
from pipeline.topology import Y_PRED, Y_TRUE, dead_letter_queue

LOGGER = logging.getLogger("metric")

SYNC_DELAY = 0.005  # seconds a processed delivery may wait for others before the fsync
SYNC_DELIVERIES = 1000  # deliveries that force a sync at once
RESUME_SHARE = 0.9  # a paused side resumes once its waiting halves fall to this share of METRIC_MAX_WAITING
TICK = 1.0  # seconds between looks for orphans, and updates of metric_status.json
RELEASE_BATCH = 5000  # orphans published at most per tick; the next ones once the broker has confirmed these
FORGET_BATCH = 20_000  # handled ids looked at per tick, to forget those both streams passed long ago
UPGRADE_IDS = 100_000  # ids of the last rows of a CSV written before metric_waiting.sqlite existed
OLD_JOURNAL = "metric_waiting.journal"  # where waiting halves were kept before metric_waiting.sqlite
SIDES = (Y_TRUE, Y_PRED)
NOT_FINITE = "the absolute error of this pair is not a finite number"
CONFLICT_LOG_INTERVAL = 1.0  # seconds between two lines about copies with another value (a flood is counted)

ROWS_WRITTEN = Counter("pipeline_metric_rows_written", "Rows appended to metric_log.csv and fsynced")
HALVES_WAITING = Gauge("pipeline_metric_halves_waiting", "Halves waiting for their partner", ["queue"])
OLDEST_WAITING = Gauge("pipeline_metric_oldest_waiting_seconds", "Age of the oldest waiting half (0: none waits)")
POSITION = Gauge(
    "pipeline_metric_stream_position_seconds", "Creation time (Unix seconds) each stream has reached", ["queue"]
)
ORPHANS_RELEASED = Counter("pipeline_metric_orphans_released", "Halves moved to a dead-letter queue as orphans")
CONFLICTING_DUPLICATES = Counter(
    "pipeline_metric_conflicting_duplicates", "Copies of a half dropped with another value than the one kept", ["queue"]
)


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
        prefetch=settings.env_prefetch(),
        orphan_timeout=settings.env_float("METRIC_ORPHAN_TIMEOUT", 600.0, minimum=1.0),
        max_waiting=settings.env_int("METRIC_MAX_WAITING", 30_000_000, minimum=1),
    )


class Metric:
    """Joins halves, writes rows, and acks each delivery once the fsyncs that made it safe are done."""

    def __init__(self, config: Settings, broker: BrokerSurface, clock: Callable[[], float] = time.time) -> None:
        self._logs = Path(config.common.logs_dir)
        self._log = MetricLog(self._logs / "metric_log.csv")
        self._store = WaitingStore(self._logs / "metric_waiting.sqlite")
        self._timeout, self._max_waiting = config.orphan_timeout, config.max_waiting
        self._clock = clock
        self._join: Join | None = None
        self._streams = Streams({}, config.orphan_timeout)
        self._pending: list[tuple[Delivery, Half]] = []  # received, to be joined at the next sync
        self._unsaved = Unsaved()  # joined, and waiting for the save that makes them safe
        self._sync_timer: object | None = None
        self._rows, self._error_sum, self._orphans, self._rate = 0, 0.0, 0, service.Rate()
        self._oldest: int | None = None
        self._tick_failed = False
        self._conflict_lines = Throttle(CONFLICT_LOG_INTERVAL)
        for side in SIDES:
            of_queue(CONFLICTING_DUPLICATES, side)  # shown as 0 until the first
        self._broker = broker
        self._disk = WriteTrouble(f"{self._logs}/", broker.set_problem)
        broker.add_hooks(on_lost=self._sync, on_stopping=self._sync)
        broker.consume(Y_TRUE, self._on_half)
        broker.consume(Y_PRED, self._on_half)

    @property
    def join(self) -> Join:
        assert self._join is not None, "open() first"
        return self._join

    def open(self) -> None:
        """Open the CSV and the waiting halves' file, and take up where the last run stopped."""
        self._log.open()
        saved = self._store.open()
        self._streams = Streams(saved, self._timeout)
        self._join = Join(self._store, saved.get("next_seq", 1))
        written = self._recover(saved)
        self._commit()
        if written:
            LOGGER.info("%d rows were written just before metric stopped; their halves are done", written)
        for side in SIDES:
            HALVES_WAITING.labels(side).set_function(partial(self.join.waiting, side))
        LOGGER.info("%d halves of y_true and %d of y_pred wait for their partner", *map(self.join.waiting, SIDES))
        self._limit_waiting()
        self._show(self._clock())

    def close(self) -> None:
        self._store.close()
        with contextlib.suppress(OSError):  # after a failed write: the next start cuts what is torn
            self._log.close()

    def start(self) -> None:
        """Open the files and start the timers: the look for orphans every TICK, the heartbeat."""
        self.open()
        self._broker.call_later(TICK, self._tick)
        self._broker.call_later(service.HEARTBEAT_INTERVAL, self._heartbeat)

    def run(self) -> int:
        try:
            self._start_when_writable()
            return self._broker.run()
        except FileInUse as error:
            message = f"LOGS_DIR: {error}; run one metric per LOGS_DIR"
            return settings.report_bad_setting(settings.SettingsError(message))
        finally:
            self.close()

    def _start_when_writable(self) -> None:
        """Start; if the files cannot be written (a full disk), consume nothing and try again every RETRY_DELAY,
        on the broker's loop (which serves signals and the health meanwhile)."""
        try:
            self.start()
        except (OSError, sqlite3.Error) as error:
            self.close()
            self._join = None
            for side in SIDES:
                self._broker.pause(side)
            self._disk.failed(error, holding="nothing is consumed until metric's files can be opened")
            self._broker.call_later(RETRY_DELAY, self._start_when_writable)
            return
        if self._disk.failing:
            self._disk.succeeded()
            self._limit_waiting()

    # --- taking up where the last run stopped ---------------------------------------------------

    def _recover(self, saved: dict[str, int]) -> int:
        """Take up the waiting halves and the rows written after the last commit; return how many rows those were."""
        now = self._clock()
        self.join.restore(now)
        if "csv_offset" not in saved:  # never committed: a new file, or one made just before a crash
            self._upgrade(now)
            return 0
        offset = saved.get("csv_offset", 0)
        if offset > self._log.size:
            LOGGER.warning("%s is shorter than metric last wrote it: it was replaced; reading it all", self._log.path)
            offset = 0
        written = self._log.ids_after(offset)
        if written:
            self.join.written(written, int(now))
        return len(written)

    def _upgrade(self, now: float) -> None:
        """A CSV, and waiting halves, from before metric_waiting.sqlite: remember its last ids, adopt the halves."""
        self.join.written(self._log.last_ids(UPGRADE_IDS), int(now))
        journal = self._logs / OLD_JOURNAL
        if journal.exists():
            halves = _old_journal_halves(journal, now)
            self.join.add(halves)
            self._commit()
            journal.unlink()
            LOGGER.info("took %d waiting halves over from %s", len(halves), journal)

    # --- deliveries -----------------------------------------------------------------------------

    def _on_half(self, delivery: Delivery) -> None:
        row_id, value = decode_value(delivery.body)
        now = self._clock()
        created = event_time(delivery.created, now)
        self._streams.see(delivery.queue, created)
        self._pending.append((delivery, Half(delivery.queue, row_id, value, created, arrived=now)))
        if len(self._pending) == SYNC_DELIVERIES:
            # on the loop, not in this handler: the runtime takes a handler's exception for a fault of one message
            self._broker.call_soon(self._sync)
        else:
            self._sync_soon()

    def _sync(self) -> None:
        """Join what came, write and fsync the rows, commit the join, then ack."""
        if self._sync_timer is not None:
            self._broker.cancel_timer(self._sync_timer)
            self._sync_timer = None
        if self._join is None:
            return  # not started: the files could not be opened, and nothing was consumed
        pending, self._pending = self._pending, []
        try:  # the join reads the file first, and changes nothing if that fails
            outcomes = self.join.add([half for _, half in pending], self._streams.orphans_before()) if pending else []
        except (OSError, sqlite3.Error) as error:
            self._pending = pending + self._pending
            self._disk_failed(error)
            return
        self._report_conflicts(self.join.take_conflicts())
        unsaved = self._unsaved
        for (delivery, half), (outcome, pair) in zip(pending, outcomes, strict=True):
            if outcome is Outcome.ROW and pair is not None:
                self._write(pair)
            elif outcome is Outcome.NOT_FINITE and pair is not None:
                self._refuse(delivery, pair)
                unsaved.partners.append(pair.partner)
                continue
            elif outcome is Outcome.ORPHAN:
                unsaved.orphans.append(half)
            unsaved.deliveries.append(delivery)
        self.join.move_to_disk(self._clock())
        if not self._save():
            return  # all of it waits for a save that succeeds: a later sync, at the latest the next tick
        self._unsaved = Unsaved()
        for delivery in unsaved.deliveries:
            self._broker.ack(delivery)
        self._release(unsaved.partners, reason=NOT_FINITE)
        if unsaved.orphans:
            self._release_orphans(unsaved.orphans)
        self._limit_waiting()

    def _write(self, pair: Pair) -> None:
        self._log.append(pair.row_id, pair.y_true, pair.y_pred)
        self._rows += 1
        self._error_sum += pair.absolute_error

    def _report_conflicts(self, conflicts: list[Conflict]) -> None:
        """Count each copy dropped with another value than the one kept; log one line a second at most, and the
        number held back with the next (or on its own, once the second is over)."""
        now = self._clock()
        for conflict in conflicts:
            of_queue(CONFLICTING_DUPLICATES, conflict.side).inc()
            if not self._conflict_lines.ready(now):
                self._conflict_lines.hold()
                continue
            held = self._conflict_lines.let_through(now)
            LOGGER.warning(
                "dropped a copy of id %r on %s with another value: kept %r (the first that came), dropped %r%s",
                conflict.row_id,
                conflict.side,
                conflict.kept,
                conflict.dropped,
                f" ({held} more such copies since the last line)" if held else "",
            )
        if self._conflict_lines.held and self._conflict_lines.ready(now):
            LOGGER.warning(
                "dropped %d more copies with another value than the one kept since the last line "
                "(pipeline_metric_conflicting_duplicates_total counts them by queue)",
                self._conflict_lines.let_through(now),
            )

    def _refuse(self, delivery: Delivery, pair: Pair) -> None:
        LOGGER.warning(
            "rejected a message of %s into %s: %s (y_true %r, y_pred %r); its partner goes too",
            delivery.queue,
            dead_letter_queue(delivery.queue),
            NOT_FINITE,
            pair.y_true,
            pair.y_pred,
        )
        self._broker.reject(delivery)

    def _save(self) -> bool:
        """Write and fsync the rows, then commit the join: the acks wait for both. Return whether it worked; if
        not (a full or failing disk), what was not written is kept for the next try, and no side is consumed."""
        try:
            ROWS_WRITTEN.inc(self._log.sync())
            self._commit()
        except (OSError, sqlite3.Error) as error:
            self._disk_failed(error)
            return False
        if self._disk.failing:
            self._disk.succeeded()
            self._limit_waiting()
        return True

    def _disk_failed(self, error: Exception) -> None:
        held = f"{len(self._unsaved.deliveries)} deliveries unacked, {self._log.unsynced} rows unwritten, none taken"
        self._disk.failed(error, holding=held)
        self._limit_waiting()

    def _commit(self) -> None:
        self.join.commit({"csv_offset": self._log.size} | self._streams.saved())

    def _sync_soon(self) -> None:
        if self._sync_timer is None:
            self._sync_timer = self._broker.call_later(SYNC_DELAY, self._sync)

    # --- orphans, pausing, and what the user sees -------------------------------------------------

    def _tick(self) -> None:
        self._sync()  # what came is joined before anything moves to disk; while the disk fails, the next try
        now = self._clock()
        self._streams.sample(now)
        try:
            if not self._disk.failing:
                self._move_and_release(now)
            self._show(now)
        except (OSError, sqlite3.Error) as error:  # a read of a failing disk: the next tick tries again
            if not self._tick_failed:
                LOGGER.warning("cannot read %s (%s); trying again every %g s", self._store.path, error, TICK)
            self._tick_failed = True
        else:
            self._tick_failed = False
        self._broker.call_later(TICK, self._tick)

    def _move_and_release(self, now: float) -> None:
        before = self._streams.orphans_before()
        if (self.join.move_to_disk(now) | self.join.move_orphans_to_disk(before)) and not self._save():
            return  # orphans are on disk before they are released
        if not self.join.releasing:
            orphans = self.join.take_orphans(before, RELEASE_BATCH)
            if orphans:
                self._release_orphans(orphans)
        forget_before = self._streams.forget_before()
        if forget_before is not None:
            try:
                self.join.forget_done(forget_before, FORGET_BATCH)
            except sqlite3.Error as error:  # housekeeping only: it holds nothing back, and goes on next tick
                LOGGER.debug("could not forget handled ids yet: %s", error)

    def _release_orphans(self, orphans: list[Half]) -> None:
        self._release(orphans, orphaned_after=self._timeout)
        self._orphans += len(orphans)
        ORPHANS_RELEASED.inc(len(orphans))
        LOGGER.warning(
            "released %d halves to the dead-letter queues: the other stream had passed them by more than %g s "
            "without their partner (%d in all)",
            len(orphans),
            self._timeout,
            self._orphans,
        )

    def _release(self, halves: list[Half], **reason: object) -> None:
        """Publish ``halves`` (on disk) to their dead-letter queues; each is forgotten once the broker confirms it."""
        for half in halves:
            self.join.release(half)
            body = encode(half.row_id, half.value, created=half.created, **reason)
            self._broker.publish(dead_letter_queue(half.side), body, partial(self._released, half))

    def _released(self, half: Half) -> None:
        self.join.released(half)
        self._sync_soon()  # on disk within milliseconds: after that a restart never releases it again

    def _limit_waiting(self) -> None:
        """Pause a side with too many waiting halves; if both have too many, keep consuming the one that is behind
        in creation time, since its coming halves are the partners of the other side's, so it never deadlocks."""
        over = {side for side in SIDES if self._over_limit(side)}
        if len(over) == 2:
            over.discard(self._behind())
        for side in SIDES:
            waiting = self.join.waiting(side)
            pause = side in over or self._disk.failing  # a full disk: nothing new until the held work is saved
            if pause and not self._broker.is_paused(side):
                if side in over:
                    LOGGER.warning(
                        "%d halves of %s wait for their partner (METRIC_MAX_WAITING %d); pausing %s until they come",
                        waiting,
                        side,
                        self._max_waiting,
                        side,
                    )
                self._broker.pause(side)
            elif not pause and self._broker.is_paused(side):
                LOGGER.info("consuming %s again (%d of its halves wait)", side, waiting)
                self._broker.resume(side)

    def _over_limit(self, side: str) -> bool:
        limit = RESUME_SHARE * self._max_waiting if self._broker.is_paused(side) else self._max_waiting
        return self.join.waiting(side) > limit

    def _behind(self) -> str:
        true_at, pred_at = (self._streams.position(side) for side in SIDES)
        return Y_PRED if true_at is not None and (pred_at is None or pred_at < true_at) else Y_TRUE

    def _show(self, now: float) -> None:
        """Update the gauges and metric_status.json (for plot's page)."""
        self._oldest = self.join.oldest()
        OLDEST_WAITING.set(0 if self._oldest is None else max(0.0, now - self._oldest))
        positions: dict[str, Any] = {side: self._streams.position(side) for side in SIDES}
        for side, position in positions.items():
            if position is not None:
                POSITION.labels(side).set(position)
        status = {
            "waiting": {side: self.join.waiting(side) for side in SIDES},
            "oldest_created": self._oldest,
            "paused": [side for side in SIDES if self._broker.is_paused(side)],
            "positions": positions,
            "written_at": now,
        }
        try:
            write_status(self._logs, status)
        except OSError as error:  # a display only: the next tick tries again
            LOGGER.debug("could not write the status file: %s", error)

    def _heartbeat(self) -> None:
        oldest = (
            "" if self._oldest is None else f", the oldest created {max(0.0, self._clock() - self._oldest):.0f} s ago"
        )
        LOGGER.info(
            "heartbeat: %d rows written (%.1f rows/s), MAE %.4g, halves waiting: %d y_true, %d y_pred%s; "
            "%d orphans released",
            self._rows,
            self._rate.per_second(self._rows),
            self._error_sum / self._rows if self._rows else 0.0,
            self.join.waiting(Y_TRUE),
            self.join.waiting(Y_PRED),
            oldest,
            self._orphans,
        )
        self._broker.call_later(service.HEARTBEAT_INTERVAL, self._heartbeat)


@dataclass
class Unsaved:
    """What a sync joined and must not act on before a save succeeds: the acks, and the halves to release."""

    deliveries: list[Delivery] = field(default_factory=list)
    partners: list[Half] = field(default_factory=list)  # of pairs that are no row: released once saved
    orphans: list[Half] = field(default_factory=list)


def _old_journal_halves(path: Path, now: float) -> list[Half]:
    """The halves of a journal from before metric_waiting.sqlite (``side,id,value,arrived`` per line), as created
    ``now``: their partners may still be queued, and carry no creation time either."""
    halves = []
    with path.open(newline="") as file:
        for fields in csv.reader(file):
            try:
                side, row_id, value, _arrived = fields
                halves.append(Half(side, row_id, float(value), int(now), arrived=now))
            except ValueError:
                continue  # a torn last line
    return [half for half in halves if half.side in SIDES]


def run(config: Settings) -> int:
    broker = Broker(config.common, [Y_TRUE, Y_PRED], prefetch=config.prefetch)
    return Metric(config, broker).run()


if __name__ == "__main__":
    sys.exit(service.main(load_settings, run))
