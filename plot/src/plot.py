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


def render(histogram: Histogram, path: Path) -> None:
    """Draw the histogram and atomically replace ``path`` with it."""
    figure = Figure(figsize=(8, 5), dpi=100, layout="tight")
    axes = figure.subplots()
    if histogram.total:
        axes.stairs(histogram.counts, histogram.edges, fill=True, color="tab:blue")
    else:
        axes.text(0.5, 0.5, "no rows yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_title(f"Distribution of absolute errors ({histogram.total:,} rows)")
    axes.set_xlabel("absolute error |y_true - y_pred|")
    axes.set_ylabel("rows")
    temporary = path.with_name(f".{path.name}.tmp")
    figure.savefig(temporary, format="png")
    os.replace(temporary, path)


class Plotter:
    """One refresh per interval; a redraw only when rows were added (or the CSV was replaced)."""

    def __init__(self, logs_dir: Path) -> None:
        self._tail = CsvTail(logs_dir / "metric_log.csv")
        self._picture = logs_dir / "error_distribution.png"
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
        self._picture.parent.mkdir(parents=True, exist_ok=True)
        render(self._histogram, self._picture)
        self._drawn = True
        LOGGER.debug("redrew %s with %d rows", self._picture, self._histogram.total)
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
