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

import logging
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batch_sync import BatchSync
from conflicts import ConflictReport
from pausing import WaitingLimit
from recovery import take_up
from releases import Releases
from report import Report
from shared import SIDES, Shared
from upkeep import Upkeep
from waiting import FileInUse

from pipeline import service, settings
from pipeline.broker import Broker
from pipeline.broker_surface import BrokerSurface
from pipeline.disk import RETRY_DELAY
from pipeline.topology import Y_PRED, Y_TRUE

LOGGER = logging.getLogger("metric")


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
    """Joins halves, writes rows, and acks each delivery once the fsyncs that made it safe are done: the batch sync
    (``batch_sync.py``), the tick's upkeep (``upkeep.py``), the releases to the dead-letter queues
    (``releases.py``), the limit on waiting halves (``pausing.py``) and what metric shows (``report.py``),
    over the files and the join they share (``shared.py``)."""

    def __init__(self, config: Settings, broker: BrokerSurface, clock: Callable[[], float] = time.time) -> None:
        self._shared = Shared(Path(config.common.logs_dir), broker, clock, config.orphan_timeout)
        self._report = Report(self._shared)
        self._limit = WaitingLimit(self._shared, config.max_waiting)
        releases = Releases(self._shared, self._report.tally, on_confirmed=self._sync_soon)
        conflicts = ConflictReport(clock)
        self._batch_sync = BatchSync(self._shared, releases, self._limit, self._report.tally, conflicts)
        self._upkeep = Upkeep(self._shared, self._batch_sync, releases, self._report)
        broker.add_hooks(on_lost=self._batch_sync.sync, on_stopping=self._batch_sync.sync)
        broker.consume(Y_TRUE, self._batch_sync.on_half)
        broker.consume(Y_PRED, self._batch_sync.on_half)

    def open(self) -> None:
        """Open the CSV and the waiting halves' file, and take up where the last run stopped."""
        take_up(self._shared)
        join = self._shared.join
        self._report.count_waiting()
        LOGGER.info("%d halves of y_true and %d of y_pred wait for their partner", *map(join.waiting, SIDES))
        self._limit.apply()
        self._report.show(self._shared.clock())

    def close(self) -> None:
        self._shared.close()

    def start(self) -> None:
        """Open the files and start the timers: the look for orphans every TICK, the heartbeat."""
        self.open()
        self._upkeep.start()
        self._report.start()

    def run(self) -> int:
        try:
            self._start_when_writable()
            return self._shared.broker.run()
        except FileInUse as error:
            message = f"LOGS_DIR: {error}; run one metric per LOGS_DIR"
            return settings.report_bad_setting(settings.SettingsError(message))
        finally:
            self.close()

    def _start_when_writable(self) -> None:
        """Start; if the files cannot be written (a full disk), consume nothing and try again every RETRY_DELAY,
        on the broker's loop (which serves signals and the health meanwhile)."""
        shared = self._shared
        try:
            self.start()
        except (OSError, sqlite3.Error) as error:
            self.close()
            shared.drop_join()
            for side in SIDES:
                shared.broker.pause(side)
            shared.disk.failed(error, holding="nothing is consumed until metric's files can be opened")
            shared.broker.call_later(RETRY_DELAY, self._start_when_writable)
            return
        if shared.disk.failing:
            shared.disk.succeeded()
            self._limit.apply()

    def _sync_soon(self) -> None:
        """A release was confirmed: commit that within milliseconds."""
        self._batch_sync.soon()


def run(config: Settings) -> int:
    broker = Broker(config.common, [Y_TRUE, Y_PRED], prefetch=config.prefetch)
    return Metric(config, broker).run()


if __name__ == "__main__":
    sys.exit(service.main(load_settings, run))
