"""plot: keeps two pictures of metric_log.csv up to date: the distribution of the absolute errors and their course.

error_distribution.png is a histogram of every absolute error so far, with the row count, MAE, RMSE, median, p90 and
p99, markers at MAE and p90, and the time of the last update. error_over_time.png shows MAE and p90 per block of
consecutive rows, so that drift shows; it is redrawn when a block is complete. Every PLOT_INTERVAL seconds plot reads
only the bytes appended to the CSV since its last look (complete lines only) and adds them to running sums, a fine
histogram and the block timeline, none of which grows with the number of rows. Then it redraws one picture that
changed (both take turns), into a temporary file in the same folder renamed over the old one, so a reader never sees
a partial PNG. A line that is no row with a finite absolute error is skipped and counted; a picture that cannot be
drawn is logged and tried again at the next refresh: whatever the CSV holds, plot neither stops nor hangs.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pipeline import service
from pipeline.health import HEALTH_INTERVAL
from pipeline.histogram import Histogram
from pipeline.metric_log import CsvTail
from pipeline.settings import Common, env_float, load_common, writable_folder
from pipeline.timeline import Timeline

LOGGER = logging.getLogger("plot")

DISTRIBUTION_PNG = "error_distribution.png"
OVER_TIME_PNG = "error_over_time.png"


class ErrorStats:
    """Everything both pictures show, updated from each batch of new absolute errors."""

    def __init__(self) -> None:
        self.histogram = Histogram()
        self.timeline = Timeline()
        self._sum = self._sum_of_squares = 0.0

    @property
    def rows(self) -> int:
        return self.timeline.rows

    def add(self, errors: list[float]) -> None:
        values = np.asarray(errors, dtype=np.float64)
        self._sum += float(values.sum())
        self._sum_of_squares += float(np.square(values).sum())
        self.histogram.add(values)
        self.timeline.add(values)

    @property
    def mae(self) -> float:
        return self._sum / self.rows if self.rows else 0.0

    @property
    def rmse(self) -> float:
        return math.sqrt(self._sum_of_squares / self.rows) if self.rows else 0.0


class Picture:
    """One figure kept between refreshes; ``save`` writes it beside the PNG and renames it over the old one.

    Drawing is most of a refresh, so the figure keeps its Agg canvas (and renderer) and has few ticks and no legend:
    lines are labelled in the title or beside them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.figure = Figure(figsize=(8, 5), dpi=100)
        FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.12, right=0.97, top=0.88, bottom=0.11)
        self.axes = self.figure.subplots()
        self.axes.xaxis.set_major_locator(MaxNLocator(7))
        self.axes.yaxis.set_major_locator(MaxNLocator(6))
        self.empty = self.axes.text(0.5, 0.5, "no rows yet", ha="center", va="center", transform=self.axes.transAxes)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        # low compression: encoding is most of a redraw, and the picture is replaced every few seconds
        self.figure.savefig(temporary, format="png", pil_kwargs={"compress_level": 1})
        os.replace(temporary, self.path)


class DistributionPicture(Picture):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._bars = self.axes.stairs([0.0], [0.0, 1.0], fill=True, color="tab:blue", alpha=0.8)
        self._mae = self.axes.axvline(0, color="tab:orange", linewidth=2)
        self._p90 = self.axes.axvline(0, color="tab:red", linewidth=2, linestyle="--")
        beside_line: dict[str, Any] = {"transform": self.axes.get_xaxis_transform(), "va": "top", "fontsize": 9}
        self._mae_label = self.axes.text(0, 0.98, " MAE", color="tab:orange", **beside_line)
        self._p90_label = self.axes.text(0, 0.92, " p90", color="tab:red", **beside_line)
        self.axes.yaxis.set_major_locator(MaxNLocator(6, integer=True))  # rows are whole
        self.axes.set_xlabel("absolute error |y_true - y_pred|")
        self.axes.set_ylabel("rows")
        self.axes.set_ylim(0, 1)  # an empty chart with a sensible axis; rows scale it again
        self.axes.set_autoscaley_on(True)

    def draw(self, stats: ErrorStats, updated: str) -> None:
        histogram = stats.histogram
        p90 = histogram.quantile(0.9)
        if stats.rows:
            counts, edges = histogram.bars()
            self._bars.set_data(counts, edges)
            for line, label, value in (
                (self._mae, self._mae_label, stats.mae),
                (self._p90, self._p90_label, p90),
            ):
                line.set_xdata([value])
                label.set_x(value)
            self.axes.relim()
            self.axes.autoscale_view()
            if math.isfinite(edges[-1]):
                self.axes.set_xlim(0, edges[-1])
        for artist in (self._bars, self._mae, self._p90, self._mae_label, self._p90_label):
            artist.set_visible(stats.rows > 0)
        self.empty.set_visible(stats.rows == 0)
        self.axes.set_title(
            f"Absolute errors: {stats.rows:,} rows, updated {updated}\n"
            f"MAE {stats.mae:.4g}   RMSE {stats.rmse:.4g}   median {histogram.quantile(0.5):.4g}   "
            f"p90 {p90:.4g}   p99 {histogram.quantile(0.99):.4g}",
            fontsize=10,
        )
        self.save()


class OverTimePicture(Picture):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        (self._mae,) = self.axes.plot([], [], color="tab:orange", linewidth=1.5)
        (self._p90,) = self.axes.plot([], [], color="tab:red", linewidth=1.0, linestyle="--")
        self.axes.set_xlabel("row of metric_log.csv (end of block)")
        self.axes.set_ylabel("absolute error: MAE (solid), p90 (dashed)")

    def draw(self, stats: ErrorStats, updated: str) -> None:
        timeline = stats.timeline
        self._mae.set_data(timeline.ends, timeline.means)
        self._p90.set_data(timeline.ends, timeline.p90)
        if timeline.ends:
            self.axes.relim()
            self.axes.autoscale_view()
            top = 1.1 * max(*timeline.p90, *timeline.means)
            self.axes.set_ylim(0, top if 0 < top < math.inf else 1.0)
            shown = f"rows 1 to {timeline.ends[-1]:,}"
        else:
            self.axes.set_xlim(0, timeline.block_size)
            self.axes.set_ylim(0, 1)
            shown = "no block complete yet"
        self.empty.set_text(f"waiting for the first {timeline.block_size:,} rows: {stats.rows:,} so far")
        self.empty.set_visible(not timeline.ends)
        self.axes.set_title(
            f"Absolute error over time, per block of {timeline.block_size:,} rows\n{shown}, updated {updated}",
            fontsize=10,
        )
        self.save()


class Plotter:
    """One refresh per interval, drawing at most one picture: the distribution when rows were added, the course over
    time when a block is complete; if both are due they take turns, so a refresh costs one draw at most."""

    def __init__(self, logs_dir: Path) -> None:
        self._tail = CsvTail(logs_dir / "metric_log.csv")
        self._distribution = DistributionPicture(logs_dir / DISTRIBUTION_PNG)
        self._over_time = OverTimePicture(logs_dir / OVER_TIME_PNG)
        self._stats = ErrorStats()
        self._distribution_due = self._over_time_due = True
        self._over_time_waited = False
        self._blocks_drawn = 0  # the row that ends the last block error_over_time.png shows
        self.draws = 0

    def refresh(self) -> bool:
        """Read new rows and redraw a picture that is due. Return whether one was redrawn."""
        while True:
            errors, restarted = self._tail.read_new()
            if restarted:
                LOGGER.info("%s was replaced; counting from its start", self._tail.path)
                self._stats = ErrorStats()
                self._over_time_due = True
            self._stats.add(errors)
            self._distribution_due = self._distribution_due or restarted or bool(errors)
            if self._tail.caught_up:
                break
        blocks_end = self._stats.timeline.ends[-1] if self._stats.timeline.ends else 0
        self._over_time_due = self._over_time_due or blocks_end != self._blocks_drawn
        updated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        picture: Picture
        if self._over_time_due and (self._over_time_waited or not self._distribution_due):
            picture = self._over_time
            self._over_time_due = self._over_time_waited = False
            self._blocks_drawn = blocks_end
        elif self._distribution_due:
            picture = self._distribution
            self._distribution_due = False
            self._over_time_waited = self._over_time_due
        else:
            return False
        try:
            picture.draw(self._stats, updated)
        except Exception as error:  # no CSV may stop the other picture or the next refresh
            LOGGER.error("could not draw %s (%s: %s); trying again", picture.path.name, type(error).__name__, error)
            return False
        self.draws += 1
        LOGGER.debug("redrew %s with %d rows", picture.path.name, self._stats.rows)
        return True

    def heartbeat(self) -> None:
        LOGGER.info(
            "heartbeat: %d rows read, %d lines skipped, %d pictures drawn, MAE %.4g",
            self._stats.rows,
            self._tail.skipped,
            self.draws,
            self._stats.mae,
        )


@dataclass(frozen=True)
class Settings:
    common: Common
    interval: float


def load_settings() -> Settings:
    common = load_common()
    writable_folder("LOGS_DIR", common.logs_dir)
    return Settings(common=common, interval=env_float("PLOT_INTERVAL", 2.0, minimum=0.05))


def run(config: Settings) -> int:
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    plotter = Plotter(Path(config.common.logs_dir))
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
        if config.common.health_file:
            Path(config.common.health_file).touch()
        stopped.wait(min(config.interval, HEALTH_INTERVAL))
    LOGGER.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(service.main(load_settings, run))
