"""plot: keeps error_distribution.png, a histogram of the absolute errors in metric_log.csv, up to date.

Every PLOT_INTERVAL seconds it reads only the bytes appended to the CSV since its last look (complete lines only),
adds them to an incremental histogram, and, if there were new rows, redraws the picture into a temporary file in
the same folder and renames it over the old one, so a reader never sees a partial PNG.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from matplotlib.figure import Figure

from pipeline.health import HEALTH_INTERVAL
from pipeline.histogram import Histogram
from pipeline.metric_log import CsvTail
from pipeline.settings import SettingsError, env_float, load_common, report_bad_setting, setup_logging

LOGGER = logging.getLogger("plot")


class Picture:
    """One figure, kept between refreshes: new bar heights and title, then saved beside the PNG and renamed over it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._figure = Figure(figsize=(8, 5), dpi=100)
        self._figure.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.11)
        self._axes = self._figure.subplots()
        self._bars = self._axes.stairs([0.0], [0.0, 1.0], fill=True, color="tab:blue")
        self._empty = self._axes.text(0.5, 0.5, "no rows yet", ha="center", va="center", transform=self._axes.transAxes)
        self._axes.set_xlabel("absolute error |y_true - y_pred|")
        self._axes.set_ylabel("rows")
        self._axes.set_ylim(0, 1)  # an empty chart with a sensible axis; rows scale it again
        self._axes.set_autoscaley_on(True)

    def draw(self, histogram: Histogram) -> None:
        if histogram.total:
            self._bars.set_data(histogram.counts, histogram.edges)
            self._axes.relim()
            self._axes.autoscale_view()
        self._bars.set_visible(histogram.total > 0)
        self._empty.set_visible(histogram.total == 0)
        self._axes.set_title(f"Distribution of absolute errors ({histogram.total:,} rows)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        # low compression: encoding is most of a redraw, and the picture is replaced every few seconds
        self._figure.savefig(temporary, format="png", pil_kwargs={"compress_level": 1})
        os.replace(temporary, self.path)


class Plotter:
    """One refresh per interval; a redraw only when rows were added (or the CSV was replaced)."""

    def __init__(self, logs_dir: Path) -> None:
        self._tail = CsvTail(logs_dir / "metric_log.csv")
        self._picture = Picture(logs_dir / "error_distribution.png")
        self._histogram = Histogram()
        self._drawn = False

    def refresh(self) -> bool:
        """Read new rows; redraw if anything changed. Return whether the picture was redrawn."""
        changed = False
        while True:
            errors, restarted = self._tail.read_new()
            if restarted:
                LOGGER.info("%s was replaced; counting from its start", self._tail.path)
                self._histogram = Histogram()
            self._histogram.add(errors)
            changed = changed or restarted or bool(errors)
            if self._tail.caught_up:
                break
        if self._drawn and not changed:
            return False
        self._picture.draw(self._histogram)
        self._drawn = True
        LOGGER.debug("redrew %s with %d rows", self._picture.path, self._histogram.total)
        return True


def main() -> int:
    try:
        common = load_common()
        interval = env_float("PLOT_INTERVAL", 2.0, minimum=0.05)
    except SettingsError as error:
        return report_bad_setting(error)
    setup_logging(common.log_level)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    plotter = Plotter(Path(common.logs_dir))
    LOGGER.info("ready: refreshing %s/error_distribution.png every %g s", common.logs_dir, interval)
    due = time.monotonic()
    while not stopped.is_set():
        if time.monotonic() >= due:
            plotter.refresh()
            due = time.monotonic() + interval
        if common.health_file:
            Path(common.health_file).touch()
        stopped.wait(min(interval, HEALTH_INTERVAL))
    LOGGER.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
