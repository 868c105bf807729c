"""The work of metric's timer, every TICK: what came is synced first; then the halves that waited long in memory move
to disk, orphans are released (from disk, RELEASE_BATCH at most, the next ones once the broker has confirmed these),
handled ids both streams passed long ago are forgotten, and the gauges and metric_status.json are updated. While the
disk fails, nothing moves and nothing is released; a read that fails is tried again at the next tick."""

from __future__ import annotations

import logging
import sqlite3

from batch_sync import BatchSync
from releases import Releases
from report import Report
from shared import Shared

LOGGER = logging.getLogger("metric")

TICK = 1.0  # seconds between looks for orphans, and updates of metric_status.json
RELEASE_BATCH = 5000  # orphans published at most per tick; the next ones once the broker has confirmed these
FORGET_BATCH = 20_000  # handled ids looked at per tick, to forget those both streams passed long ago


class Upkeep:
    """The tick."""

    def __init__(self, shared: Shared, batch_sync: BatchSync, releases: Releases, report: Report) -> None:
        self._shared = shared
        self._batch_sync = batch_sync
        self._releases = releases
        self._report = report
        self._failed = False  # the last tick could not read the file

    def start(self) -> None:
        self._shared.broker.call_later(TICK, self._tick)

    def _tick(self) -> None:
        shared = self._shared
        self._batch_sync.sync()  # what came is joined before anything moves to disk; while the disk fails, the next try
        now = shared.clock()
        shared.streams.sample(now)
        try:
            if not shared.disk.failing:
                self._move_and_release(now)
            self._report.show(now)
        except (OSError, sqlite3.Error) as error:  # a read of a failing disk: the next tick tries again
            if not self._failed:
                LOGGER.warning("cannot read %s (%s); trying again every %g s", shared.store.path, error, TICK)
            self._failed = True
        else:
            self._failed = False
        shared.broker.call_later(TICK, self._tick)

    def _move_and_release(self, now: float) -> None:
        join = self._shared.join
        before = self._shared.streams.orphans_before()
        if (join.move_to_disk(now) | join.move_orphans_to_disk(before)) and not self._batch_sync.save():
            return  # orphans are on disk before they are released
        if not join.releasing:
            orphans = join.take_orphans(before, RELEASE_BATCH)
            if orphans:
                self._releases.orphans(orphans)
        forget_before = self._shared.streams.forget_before()
        if forget_before is not None:
            try:
                join.forget_done(forget_before, FORGET_BATCH)
            except sqlite3.Error as error:  # housekeeping only: it holds nothing back, and goes on next tick
                LOGGER.debug("could not forget handled ids yet: %s", error)
