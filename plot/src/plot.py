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

The drift alarm (``DriftMonitor``) compares the MAE of the last DRIFT_WINDOW rows with a reference MAE; each change
of state is one WARNING line, the over-time picture draws the reference and shades the alarm stretches. The inputs'
drift, judged from the counts the model replicas write before any label comes, is ``input_drift.py``'s. On WEB_PORT plot
serves a page of both pictures and the numbers (``page.py``); on METRICS_PORT, Prometheus metrics.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import page
from drift import DriftChange, DriftMonitor
from histogram import Histogram
from input_drift import InputDrift, InputDriftSettings, counts_folder, load_input_drift_settings, metric_families
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sums import ScaledSums
from timeline import Timeline

from pipeline import service
from pipeline.health import HEALTH_INTERVAL
from pipeline.metric_log import CsvTail
from pipeline.settings import (
    Common,
    SettingsError,
    env_float,
    env_int,
    env_port,
    load_common,
    report_bad_setting,
    writable_folder,
)
from pipeline.status import read_status

LOGGER = logging.getLogger("plot")

DISTRIBUTION_PNG = "error_distribution.png"
OVER_TIME_PNG = "error_over_time.png"
RATE_SECONDS = 60.0  # rows per second are counted over this last stretch of time
# upper bounds of the Prometheus histogram's buckets: fixed, so that scrapes compare; 1, 2.5, 5 per decade
ERROR_BUCKETS = np.array([factor * 10.0**power for power in range(-3, 5) for factor in (1, 2.5, 5)] + [1e5])


@dataclass(frozen=True)
class DriftSettings:
    window: int
    ratio: float
    reference_rows: int
    reference_mae: float | None

    def monitor(self) -> DriftMonitor:
        return DriftMonitor(
            window=self.window,
            ratio=self.ratio,
            reference_rows=self.reference_rows,
            reference_mae=self.reference_mae,
        )


DEFAULT_DRIFT = DriftSettings(window=500, ratio=1.5, reference_rows=1000, reference_mae=None)


class ErrorStats:
    """Everything the pictures, the page and the metrics show, updated from each batch of new rows.

    The sums are ``ScaledSums``: rows whose errors are each finite but add up past the largest float (two near
    1e308) leave MAE, RMSE and bias finite instead of stopping plot."""

    def __init__(self, drift: DriftSettings = DEFAULT_DRIFT) -> None:
        self.histogram = Histogram()
        self.timeline = Timeline()
        self.drift = drift.monitor()
        self.buckets = np.zeros(len(ERROR_BUCKETS) + 1, dtype=np.int64)  # the last one: above every bound
        self._errors = ScaledSums()
        self._differences = ScaledSums()

    @property
    def rows(self) -> int:
        return self.timeline.rows

    def add(self, errors: list[float], differences: list[float] | None = None) -> list[DriftChange]:
        """Add rows' absolute errors (and their ``y_pred - y_true``); return the drift alarm's changes among them."""
        values = np.asarray(errors, dtype=np.float64)
        self._errors.add(values)
        self._differences.add(differences or [])
        self.buckets += np.bincount(np.searchsorted(ERROR_BUCKETS, values), minlength=len(self.buckets))
        self.histogram.add(values)
        self.timeline.add(values)
        return self.drift.add(values)

    @property
    def sum(self) -> float:
        """The sum of the absolute errors: ``inf`` only once it is beyond the largest float."""
        return self._errors.total

    @property
    def mae(self) -> float:
        return self._errors.mean

    @property
    def rmse(self) -> float:
        return self._errors.root_mean_square

    @property
    def bias(self) -> float:
        """The mean of ``y_pred - y_true``: above 0, the model guesses too high on average."""
        return self._differences.mean


class Picture:
    """One figure kept between refreshes; ``save`` writes it beside the PNG and renames it over the old one.

    Drawing is most of a refresh, so the figure keeps its Agg canvas (and renderer) and has few ticks and no legend:
    lines are labelled in the title or beside them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = 0  # pictures saved: the page asks for a picture again when this changes
        self.figure = Figure(figsize=(8, 5), dpi=100)
        FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.12, right=0.97, top=0.88, bottom=0.11)
        self.axes = self.figure.subplots()
        self.axes.xaxis.set_major_locator(MaxNLocator(7))
        self.axes.yaxis.set_major_locator(MaxNLocator(6))
        self.empty = self.axes.text(0.5, 0.5, "no rows yet", ha="center", va="center", transform=self.axes.transAxes)

    def save(self) -> None:
        """Write the PNG beside the old one and rename it over it; on an error (a full disk, say) the old one stays,
        no temporary file is left, and the OSError is raised."""
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # low compression: encoding is most of a redraw, and the picture is replaced every few seconds
            self.figure.savefig(temporary, format="png", pil_kwargs={"compress_level": 1})
            os.replace(temporary, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            raise
        self.version += 1


class DistributionPicture(Picture):
    """Bars over [0, the bucket of the 99.9th percentile] (``Histogram.bars``); the errors above are counted in a
    note, so that a few wild rows cannot squeeze the bulk into one bar."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._bars = self.axes.stairs([0.0], [0.0, 1.0], fill=True, color="tab:blue", alpha=0.8)
        # MAE and p90 as lines, labelled beside; not drawn when beyond the bars (the title gives them)
        self._mae = self.axes.axvline(0, color="tab:orange", linewidth=2)
        self._p90 = self.axes.axvline(0, color="tab:red", linewidth=2, linestyle="--")
        beside_line: dict[str, Any] = {"transform": self.axes.get_xaxis_transform(), "va": "top", "fontsize": 9}
        self._mae_label = self.axes.text(0, 0.98, " MAE", color="tab:orange", **beside_line)
        self._p90_label = self.axes.text(0, 0.92, " p90", color="tab:red", **beside_line)
        self.outside = self.axes.text(0.99, 0.86, "", ha="right", va="top", fontsize=9, transform=self.axes.transAxes)
        self.axes.yaxis.set_major_locator(MaxNLocator(6, integer=True))  # rows are whole
        self.axes.set_xlabel("absolute error |y_true - y_pred|")
        self.axes.set_ylabel("rows")
        self.axes.set_ylim(0, 1)  # an empty chart with a sensible axis; rows scale it again
        self.axes.set_autoscaley_on(True)

    def draw(self, stats: ErrorStats, updated: str) -> None:
        histogram = stats.histogram
        p90 = histogram.quantile(0.9)
        beyond: list[Any] = []  # a line far beyond the range would overflow Agg's coordinates: it is hidden
        if stats.rows:
            bars = histogram.bars()
            unit = axis_unit(bars.top)
            self._bars.set_data(bars.counts, bars.edges / unit)
            for line, label, value in (
                (self._mae, self._mae_label, stats.mae),
                (self._p90, self._p90_label, p90),
            ):
                line.set_xdata([value / unit])
                label.set_x(value / unit)
                beyond += [line, label] if value > bars.top else []
            self.axes.relim()
            self.axes.autoscale_view()
            self.axes.set_xlim(0, bars.top / unit)
            self.axes.set_xlabel(f"absolute error |y_true - y_pred|{f' (x {unit:g})' if unit != 1 else ''}")
            errors = "error" if bars.above == 1 else "errors"
            self.outside.set_text(f"{bars.above:,} {errors} above {bars.top:.4g} not shown" if bars.above else "")
        for artist in (self._bars, self._mae, self._p90, self._mae_label, self._p90_label, self.outside):
            artist.set_visible(stats.rows > 0 and artist not in beyond)
        self.empty.set_visible(stats.rows == 0)
        self.axes.set_title(
            f"Absolute errors: {stats.rows:,} rows, updated {updated}\n"
            f"MAE {stats.mae:.4g}   RMSE {stats.rmse:.4g}   median {histogram.quantile(0.5):.4g}   "
            f"p90 {p90:.4g}   p99 {histogram.quantile(0.99):.4g}",
            fontsize=10,
        )
        self.save()


def axis_unit(top: float) -> float:
    """1, or for a range near the largest float (whose ticks matplotlib cannot compute) the power of ten it is
    drawn in."""
    return 1.0 if top < 1e300 else 10.0 ** math.floor(math.log10(top))


class OverTimePicture(Picture):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        (self._mae,) = self.axes.plot([], [], color="tab:orange", linewidth=1.5)
        (self._p90,) = self.axes.plot([], [], color="tab:red", linewidth=1.0, linestyle="--")
        self._reference = self.axes.axhline(0, color="tab:green", linewidth=1.0, linestyle=":")
        self._reference_label = self.axes.text(
            0.01,
            0.98,
            "",
            color="tab:green",
            fontsize=8,
            va="top",
            transform=self.axes.transAxes,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
        )
        self._alarms: list[Any] = []  # shaded stretches of rows during which the drift alarm was up
        self.axes.set_xlabel("row of metric_log.csv (end of block)")
        self.axes.set_ylabel("absolute error: MAE (solid), p90 (dashed)")

    def draw(self, stats: ErrorStats, updated: str) -> None:
        timeline = stats.timeline
        self._mae.set_data(timeline.ends, timeline.means)
        self._p90.set_data(timeline.ends, timeline.p90)
        if timeline.ends:
            self.axes.set_xlim(0, timeline.ends[-1])  # set each time: the empty state's limits must not stay
            top = 1.1 * max(*timeline.p90, *timeline.means)
            self.axes.set_ylim(0, top if 0 < top < math.inf else 1.0)
            shown = f"rows 1 to {timeline.ends[-1]:,}"
        else:
            self.axes.set_xlim(0, timeline.block_size)
            self.axes.set_ylim(0, 1)
            shown = "no block complete yet"
        self._draw_drift(stats)
        self.empty.set_text(f"waiting for the first {timeline.block_size:,} rows: {stats.rows:,} so far")
        self.empty.set_visible(not timeline.ends)
        self.axes.set_title(
            f"Absolute error over time, per block of {timeline.block_size:,} rows\n{shown}, updated {updated}",
            fontsize=10,
        )
        self.save()

    def _draw_drift(self, stats: ErrorStats) -> None:
        """The reference MAE as a dotted line, and the rows during which the drift alarm was up shaded."""
        drift = stats.drift
        reference = drift.reference_mae
        self._reference.set_visible(reference is not None and bool(stats.timeline.ends))
        self._reference_label.set_visible(self._reference.get_visible())
        if reference is not None:
            self._reference.set_ydata([reference])
            self._reference_label.set_text(
                f"dotted: drift reference MAE {reference:.4g}; alarm above {drift.threshold:.4g} (shaded)"
            )
        for patch in self._alarms:
            patch.remove()
        self._alarms = [
            self.axes.axvspan(stretch.start, stretch.end or stats.rows, color="tab:red", alpha=0.15, linewidth=0)
            for stretch in drift.stretches
        ]


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


@dataclass(frozen=True)
class Snapshot:
    """The numbers of one refresh, read by the page's and the metrics' threads (never the live statistics)."""

    rows: int
    mae: float
    rmse: float
    median: float
    p90: float
    p99: float
    bias: float
    error_sum: float
    buckets: tuple[int, ...]
    rows_per_second: float
    last_row_at: float | None  # when the CSV was last written, if it has rows (seconds since the epoch)
    drift: dict[str, Any]
    pictures: dict[str, int]
    waiting: dict[str, Any] | None  # metric_status.json as metric last wrote it, if it has
    inputs: dict[str, Any] | None  # InputDrift.summary(): None before a reference

    @classmethod
    def of(
        cls,
        stats: ErrorStats,
        *,
        rows_per_second: float,
        last_row_at: float | None,
        pictures: dict[str, int],
        waiting: dict[str, Any] | None,
        inputs: dict[str, Any] | None,
    ) -> Snapshot:
        drift = stats.drift
        return cls(
            rows=stats.rows,
            mae=stats.mae,
            rmse=stats.rmse,
            median=stats.histogram.quantile(0.5),
            p90=stats.histogram.quantile(0.9),
            p99=stats.histogram.quantile(0.99),
            bias=stats.bias,
            error_sum=stats.sum,
            buckets=tuple(int(count) for count in stats.buckets),
            rows_per_second=rows_per_second,
            last_row_at=last_row_at,
            drift={
                "alarm": drift.alarm,
                "reference_mae": drift.reference_mae,
                "window_mae": drift.window_mae,
                "threshold": drift.threshold,
                "ratio": drift.ratio,
                "clear_ratio": drift.clear_ratio,
                "window": drift.window,
                "reference_rows": drift.reference_rows,
                "alarms": drift.alarms,
                "alarm_since_row": drift.stretches[-1].start if drift.alarm else None,
            },
            pictures=dict(pictures),
            waiting=waiting,
            inputs=inputs,
        )


class PlotMetrics(Collector):
    """plot's Prometheus metrics, read from the latest snapshot at each scrape."""

    def __init__(self, plotter: Plotter) -> None:
        self._plotter = plotter

    def collect(self) -> Iterator[Any]:
        snapshot = self._plotter.snapshot
        yield CounterMetricFamily("pipeline_rows", "Rows of metric_log.csv read by plot", value=snapshot.rows)
        yield GaugeMetricFamily("pipeline_absolute_error_mean", "MAE of every row so far", value=snapshot.mae)
        yield GaugeMetricFamily(
            "pipeline_drift_alarm", "1 while the drift alarm is up, else 0", value=int(snapshot.drift["alarm"])
        )
        for key, text in (("reference_mae", "Reference MAE of the drift alarm"), ("window_mae", "MAE of the window")):
            if snapshot.drift[key] is not None:
                yield GaugeMetricFamily(f"pipeline_drift_{key}", text, value=snapshot.drift[key])
        cumulative = np.cumsum(snapshot.buckets)
        buckets = [(f"{bound:g}", float(count)) for bound, count in zip(ERROR_BUCKETS, cumulative, strict=False)]
        yield HistogramMetricFamily(
            "pipeline_absolute_error",
            "Absolute errors of every row so far",
            buckets=[*buckets, ("+Inf", float(snapshot.rows))],
            sum_value=snapshot.error_sum,
        )
        yield from metric_families(snapshot.inputs)


@dataclass(frozen=True)
class Settings:
    common: Common
    interval: float
    web_port: int
    stalled_after: float
    drift: DriftSettings
    inputs: InputDriftSettings


def load_settings() -> Settings:
    common = load_common()
    writable_folder("LOGS_DIR", common.logs_dir)
    return Settings(
        common=common,
        interval=env_float("PLOT_INTERVAL", 2.0, minimum=0.05),
        web_port=env_port("WEB_PORT", 8000),
        stalled_after=env_float("STALLED_AFTER", 15.0, minimum=1.0),
        drift=load_drift_settings(),
        inputs=load_input_drift_settings(),
    )


def load_drift_settings() -> DriftSettings:
    ratio = env_float("DRIFT_RATIO", DEFAULT_DRIFT.ratio, minimum=1.0)
    if ratio <= 1.0:
        raise SettingsError(f"DRIFT_RATIO must be above 1 (the alarm compares with ratio x reference), got {ratio:g}")
    reference_mae = None
    if os.environ.get("DRIFT_REFERENCE_MAE", "").strip():
        reference_mae = env_float("DRIFT_REFERENCE_MAE", 0.0)
        if reference_mae <= 0:
            raise SettingsError("DRIFT_REFERENCE_MAE must be above 0, or unset to learn it from the first rows")
    return DriftSettings(
        window=env_int("DRIFT_WINDOW", DEFAULT_DRIFT.window, minimum=1),
        ratio=ratio,
        # at least 3: the median of 3 blocks is one of them, so one wild row cannot move it; of 2 it is their mean
        reference_rows=env_int("DRIFT_REFERENCE_ROWS", DEFAULT_DRIFT.reference_rows, minimum=3),
        reference_mae=reference_mae,
    )


def run(config: Settings) -> int:
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
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
    while not stopped.is_set():
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
        stopped.wait(min(config.interval, HEALTH_INTERVAL))
    LOGGER.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(service.main(load_settings, run))
