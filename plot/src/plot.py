"""plot: keeps two pictures of metric_log.csv up to date: the distribution of the absolute errors and their course.

error_distribution.png is a histogram of the absolute errors so far up to the 99.9th percentile (the errors above
are counted in a note), with the row count, MAE, RMSE, median, p90 and p99 (within 1 %), markers at MAE and p90, and
the time of the last update. error_over_time.png shows MAE and p90 per block of consecutive rows, so that drift
shows; it is redrawn when a block is complete. Every PLOT_INTERVAL seconds plot reads only the bytes appended to the
CSV since its last look (complete lines only) and adds them to running sums, a log-bucket histogram and the block
timeline, none of which grows with the number of rows. Then it redraws one picture that changed (both take turns),
into a temporary file in the same folder renamed over the old one, so a reader never sees a partial PNG. A line that
is no row of finite numbers is skipped and counted; a picture that cannot be drawn is logged and tried again at the
next refresh: whatever the CSV holds, plot neither stops nor hangs.

The drift alarm (``DriftMonitor``, ``drift.py``) compares the MAE of the last DRIFT_WINDOW rows with a reference
MAE; each change of state is one WARNING line, the over-time picture draws the reference and shades the alarm
stretches. The inputs' drift, judged from the counts the model replicas write before any label comes, is
``input_drift.py``'s. On WEB_PORT plot serves a page of both pictures and the numbers (``page.py``); on METRICS_PORT,
Prometheus metrics (``plot_metrics.py``). Both read only the ``Snapshot`` of the last refresh (``snapshot.py``). The
statistics are ``error_stats.py``'s, the figures ``pictures.py``'s, the settings ``plot_settings.py``'s; this module
is the loop.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

import page
from drift import DriftChange, DriftMonitor
from error_stats import DEFAULT_DRIFT, DriftSettings, ErrorStats
from input_drift import InputDrift, InputDriftSettings, counts_folder
from pictures import DISTRIBUTION_PNG, OVER_TIME_PNG, DistributionPicture, OverTimePicture, Picture
from plot_metrics import PlotMetrics
from plot_settings import Settings, load_settings
from prometheus_client.core import REGISTRY
from snapshot import Snapshot

from pipeline import service
from pipeline.health import HEALTH_INTERVAL
from pipeline.metric_log import CsvTail
from pipeline.settings import SettingsError, report_bad_setting
from pipeline.status import read_status
from pipeline.stop_signals import StopSignals

LOGGER = logging.getLogger("plot")

RATE_SECONDS = 60.0  # rows per second are counted over this last stretch of time


class Plotter:
    """One refresh per interval, drawing at most one picture: the distribution when rows were added, the course over
    time when a block is complete (or the drift alarm changed); if both are due they take turns, so a refresh costs
    one draw at most. After each refresh ``snapshot`` holds the numbers for the page and the metrics."""

    def __init__(
        self,
        logs_dir: Path,
        drift: DriftSettings = DEFAULT_DRIFT,
        health_file: Path | None = None,
        inputs: InputDriftSettings | None = None,
    ) -> None:
        self._logs_dir = logs_dir
        self._health_file = health_file
        self._tail = CsvTail(logs_dir / "metric_log.csv")
        self._distribution = DistributionPicture(logs_dir / DISTRIBUTION_PNG)
        self._over_time = OverTimePicture(logs_dir / OVER_TIME_PNG)
        self._drift_settings = drift
        self._stats = ErrorStats(drift)
        self._inputs = InputDrift(counts_folder(logs_dir), inputs)
        self._distribution_due = self._over_time_due = True
        self._over_time_waited = False
        # what error_over_time.png shows: the row ending its last block, and the rows its empty state counts
        self._over_time_shows = (0, 0)
        self._write_failing = False  # the last picture could not be saved (a full disk, say)
        self._rates: deque[tuple[float, int]] = deque()  # (monotonic time, rows) at each refresh of the last minute
        self.draws = 0
        self.snapshot = Snapshot.of(
            self._stats, rows_per_second=0.0, last_row_at=None, pictures=self.pictures, waiting=None, inputs=None
        )

    @property
    def distribution(self) -> DistributionPicture:
        return self._distribution

    @property
    def over_time(self) -> OverTimePicture:
        return self._over_time

    @property
    def skipped_lines(self) -> int:
        """Lines of the CSV that were no row plot could use (the header, garbage, a value that is no finite error)."""
        return self._tail.skipped

    @property
    def pictures(self) -> dict[str, int]:
        """Each picture's file name and how many times it was drawn: its version for the page."""
        return {picture.path.name: picture.version for picture in (self._distribution, self._over_time)}

    def refresh(self) -> bool:
        """Read new rows and redraw a picture that is due. Return whether one was redrawn."""
        self._read_new_rows()
        self._inputs.refresh(between=self.touch_health)
        drawn = self._draw_one()
        self.snapshot = Snapshot.of(
            self._stats,
            rows_per_second=self._rows_per_second(),
            last_row_at=self._tail.modified if self._stats.rows else None,
            pictures=self.pictures,
            waiting=read_status(self._logs_dir),
            inputs=self._inputs.summary(),
        )
        return drawn

    def _read_new_rows(self) -> None:
        while True:
            errors, differences, restarted = self._tail.read_new()
            if restarted:
                LOGGER.info("%s was replaced; counting from its start", self._tail.path)
                self._stats = ErrorStats(self._drift_settings)
                self._rates.clear()
                self._over_time_due = True
            for change in self._stats.add(errors, differences):
                log_drift(change, self._stats.drift)
                self._over_time_due = True
            self._distribution_due = self._distribution_due or restarted or bool(errors)
            if self._tail.caught_up:
                return
            self.touch_health()  # a first read of a large CSV takes longer than the healthcheck allows

    def touch_health(self) -> None:
        """Tell the healthcheck plot is alive (HEALTH_FILE); if the file cannot be touched, the check says so."""
        if self._health_file is not None:
            with contextlib.suppress(OSError):
                self._health_file.touch()

    def _draw_one(self) -> bool:
        timeline = self._stats.timeline
        # before the first block is complete the empty state counts the rows so far, so a new row changes it too
        shows = (timeline.ends[-1], 0) if timeline.ends else (0, self._stats.rows)
        self._over_time_due = self._over_time_due or shows != self._over_time_shows
        updated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        picture: Picture
        if self._over_time_due and (self._over_time_waited or not self._distribution_due):
            picture = self._over_time
            self._over_time_due = self._over_time_waited = False
            self._over_time_shows = shows
        elif self._distribution_due:
            picture = self._distribution
            self._distribution_due = False
            self._over_time_waited = self._over_time_due
        else:
            return False
        try:
            picture.draw(self._stats, updated)
        except OSError as error:  # a full or failing disk: the page keeps the last pictures
            self._saving_failed(picture, error)
            return False
        except Exception as error:  # no CSV may stop the other picture or the next refresh
            LOGGER.error(
                "could not draw %s (%s: %s); trying again when rows come",
                picture.path.name,
                type(error).__name__,
                error,
            )
            return False
        if self._write_failing:
            LOGGER.warning("pictures are saved again in %s", self._logs_dir)
            self._write_failing = False
        self.draws += 1
        LOGGER.debug("redrew %s with %d rows", picture.path.name, self._stats.rows)
        return True

    def _saving_failed(self, picture: Picture, error: OSError) -> None:
        """Keep the picture due, so that each refresh tries again; one WARNING when saving starts failing."""
        if picture is self._over_time:
            self._over_time_due = True
        else:
            self._distribution_due = True
        if not self._write_failing:
            LOGGER.warning(
                "cannot save %s in %s (%s); the page keeps the last pictures, and each refresh tries again",
                picture.path.name,
                self._logs_dir,
                error,
            )
            self._write_failing = True

    def _rows_per_second(self) -> float:
        """Rows per second over the last minute; rows found at the first look (a backlog) do not count."""
        now, rows = time.monotonic(), self._stats.rows
        self._rates.append((now, rows))
        while now - self._rates[0][0] > RATE_SECONDS:
            self._rates.popleft()
        since, rows_then = self._rates[0]
        return (rows - rows_then) / (now - since) if now - since >= 1.0 else 0.0

    def heartbeat(self) -> None:
        LOGGER.info(
            "heartbeat: %d rows read, %d lines skipped, %d pictures drawn, MAE %.4g, drift alarm %s",
            self._stats.rows,
            self._tail.skipped,
            self.draws,
            self._stats.mae,
            "up" if self._stats.drift.alarm else "down",
        )


def log_drift(change: DriftChange, drift: DriftMonitor) -> None:
    """One WARNING line per change of the drift alarm's state."""
    raised = change.alarm
    LOGGER.warning(
        "drift alarm %s at row %d: MAE over the last %d rows %.4g %s %g x reference MAE %.4g",
        "raised" if raised else "cleared",
        change.row,
        drift.window,
        change.window_mae,
        ">" if raised else "<",
        drift.ratio if raised else drift.clear_ratio,
        change.reference_mae,
    )


def run(config: Settings) -> int:
    stop_signals = StopSignals(None)  # no pika loop here: the loop below sleeps in its wait
    health_file = Path(config.common.health_file) if config.common.health_file else None
    plotter = Plotter(Path(config.common.logs_dir), config.drift, health_file, config.inputs)
    REGISTRY.register(PlotMetrics(plotter))
    try:
        page.serve(config, plotter)
    except SettingsError as error:
        return report_bad_setting(error)
    pictures = f"{DISTRIBUTION_PNG} and {OVER_TIME_PNG}"
    LOGGER.info("ready: refreshing %s in %s every %g s", pictures, config.common.logs_dir, config.interval)
    due = heartbeat_due = time.monotonic()
    while not stop_signals.wait(0):  # a stop that came while plot started, or during a refresh, comes first
        now = time.monotonic()
        if now >= due:
            try:
                plotter.refresh()
            except OSError as error:  # the folder unreadable for a moment, say: the next refresh tries again
                LOGGER.error("could not read %s: %s", config.common.logs_dir, error)
            due = time.monotonic() + config.interval
        if now >= heartbeat_due + service.HEARTBEAT_INTERVAL:
            plotter.heartbeat()
            heartbeat_due = now
        plotter.touch_health()
        stop_signals.wait(min(config.interval, HEALTH_INTERVAL))
    LOGGER.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(service.main(load_settings, run))
