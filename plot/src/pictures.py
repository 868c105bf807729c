"""plot's two pictures: the distribution of the absolute errors, and their MAE and p90 per block of rows over time.

Each is one figure kept between refreshes and saved into a temporary file beside its PNG, renamed over the old one,
so a reader never sees a partial picture. What a picture shows can be read back from it (``markers_shown``,
``block_ends``, ``reference_shown``, ``alarm_stretches``): these read the drawn artists, not the statistics.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from error_stats import ErrorStats
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DISTRIBUTION_PNG = "error_distribution.png"
OVER_TIME_PNG = "error_over_time.png"


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

    @property
    def markers_shown(self) -> tuple[str, ...]:
        """The vertical lines drawn, by their label: "MAE" and "p90", unless beyond the bars or no rows yet."""
        return tuple(name for name, line in (("MAE", self._mae), ("p90", self._p90)) if line.get_visible())

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

    @property
    def block_ends(self) -> list[float]:
        """The row ending each block the MAE line is drawn through."""
        return np.asarray(self._mae.get_xdata(), dtype=np.float64).tolist()

    @property
    def reference_shown(self) -> float | None:
        """The drift alarm's reference MAE the dotted line is drawn at; None when it is not drawn."""
        return float(np.asarray(self._reference.get_ydata())[0]) if self._reference.get_visible() else None

    @property
    def alarm_stretches(self) -> list[tuple[float, float]]:
        """The first and last row of each shaded stretch (the drift alarm up), in the order drawn."""
        return [(patch.get_x(), patch.get_x() + patch.get_width()) for patch in self._alarms]

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
