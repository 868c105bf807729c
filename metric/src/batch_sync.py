"""The sync of a batch of deliveries: the halves that came are joined, the rows appended to metric_log.csv and
fsynced, then the join is committed to metric_waiting.sqlite, and only then are the deliveries acked and the halves
to release published. A crash can only cause redeliveries, which the file turns into acks without a second row.

A sync runs SYNC_DELAY after a delivery (or at once after SYNC_DELIVERIES), when the connection is lost or the
service stops, and before every tick's upkeep. If the disk fails, everything joined waits for a save that succeeds,
and nothing is acked or released meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field

from conflicts import ConflictReport
from join import Outcome, Pair
from pausing import WaitingLimit
from prometheus_client import Counter
from releases import Releases
from report import Tally
from shared import Shared
from streams import event_time
from waiting import Half

from pipeline.broker_surface import Delivery
from pipeline.messages import decode_value
from pipeline.topology import dead_letter_queue

LOGGER = logging.getLogger("metric")

SYNC_DELAY = 0.005  # seconds a processed delivery may wait for others before the fsync
SYNC_DELIVERIES = 1000  # deliveries that force a sync at once
NOT_FINITE = "the absolute error of this pair is not a finite number"

ROWS_WRITTEN = Counter("pipeline_metric_rows_written", "Rows appended to metric_log.csv and fsynced")


@dataclass
class Unsaved:
    """What a sync joined and must not act on before a save succeeds: the acks, and the halves to release."""

    deliveries: list[Delivery] = field(default_factory=list)
    partners: list[Half] = field(default_factory=list)  # of pairs that are no row: released once saved
    orphans: list[Half] = field(default_factory=list)


class BatchSync:
    """Takes the deliveries of both sides, and at each sync joins, writes, commits and acks them."""

    def __init__(
        self, shared: Shared, releases: Releases, limit: WaitingLimit, tally: Tally, conflicts: ConflictReport
    ) -> None:
        self._shared = shared
        self._releases = releases
        self._limit = limit
        self._tally = tally
        self._conflicts = conflicts
        self._pending: list[tuple[Delivery, Half]] = []  # received, to be joined at the next sync
        self._unsaved = Unsaved()  # joined, and waiting for the save that makes them safe
        self._timer: object | None = None

    def on_half(self, delivery: Delivery) -> None:
        row_id, value = decode_value(delivery.body)
        now = self._shared.clock()
        created = event_time(delivery.created, now)
        self._shared.streams.see(delivery.queue, created)
        self._pending.append((delivery, Half(delivery.queue, row_id, value, created, arrived=now)))
        if len(self._pending) == SYNC_DELIVERIES:
            # on the loop, not in this handler: the runtime takes a handler's exception for a fault of one message
            self._shared.broker.call_soon(self.sync)
        else:
            self.soon()

    def soon(self) -> None:
        """Sync within SYNC_DELAY."""
        if self._timer is None:
            self._timer = self._shared.broker.call_later(SYNC_DELAY, self.sync)

    def sync(self) -> None:
        """Join what came, write and fsync the rows, commit the join, then ack."""
        shared = self._shared
        if self._timer is not None:
            shared.broker.cancel_timer(self._timer)
            self._timer = None
        if not shared.has_join:
            return  # not started: the files could not be opened, and nothing was consumed
        pending, self._pending = self._pending, []
        halves = [half for _, half in pending]
        try:  # the join reads the file first, and changes nothing if that fails
            outcomes = shared.join.add(halves, shared.streams.orphans_before()) if pending else []
        except (OSError, sqlite3.Error) as error:
            self._pending = pending + self._pending
            self._disk_failed(error)
            return
        self._conflicts.report(shared.join.take_conflicts())
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
        shared.join.move_to_disk(shared.clock())
        if not self.save():
            return  # all of it waits for a save that succeeds: a later sync, at the latest the next tick
        self._unsaved = Unsaved()
        for delivery in unsaved.deliveries:
            shared.broker.ack(delivery)
        self._releases.release(unsaved.partners, reason=NOT_FINITE)
        if unsaved.orphans:
            self._releases.orphans(unsaved.orphans)
        self._limit.apply()

    def save(self) -> bool:
        """Write and fsync the rows, then commit the join: the acks wait for both. Return whether it worked; if
        not (a full or failing disk), what was not written is kept for the next try, and no side is consumed."""
        try:
            ROWS_WRITTEN.inc(self._shared.log.sync())
            self._shared.commit()
        except (OSError, sqlite3.Error) as error:
            self._disk_failed(error)
            return False
        if self._shared.disk.failing:
            self._shared.disk.succeeded()
            self._limit.apply()
        return True

    def _write(self, pair: Pair) -> None:
        self._shared.log.append(pair.row_id, pair.y_true, pair.y_pred)
        self._tally.row(pair.absolute_error)

    def _refuse(self, delivery: Delivery, pair: Pair) -> None:
        LOGGER.warning(
            "rejected a message of %s into %s: %s (y_true %r, y_pred %r); its partner goes too",
            delivery.queue,
            dead_letter_queue(delivery.queue),
            NOT_FINITE,
            pair.y_true,
            pair.y_pred,
        )
        self._shared.broker.reject(delivery)

    def _disk_failed(self, error: Exception) -> None:
        unacked, unwritten = len(self._unsaved.deliveries), self._shared.log.unsynced
        held = f"{unacked} deliveries unacked, {unwritten} rows unwritten, none taken"
        self._shared.disk.failed(error, holding=held)
        self._limit.apply()
