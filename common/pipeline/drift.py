"""The drift alarm: the MAE of the last rows against a reference MAE, with hysteresis, evaluated at every row.

The reference is the MAE of the first ``reference_rows`` rows, or a given value. Once it is known and ``window`` rows
have come, every row gives a rolling MAE over the last ``window`` rows. The alarm rises when that MAE exceeds
``ratio`` times the reference and clears when it falls below ``clear_ratio`` times the reference (by default halfway
between 1 and ``ratio``): between the two levels the state stays as it is, so noise around one level cannot flap it.
Memory is the window and at most ``MOST_STRETCHES`` alarm stretches, however many rows come.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MOST_STRETCHES = 100  # alarm stretches remembered for the picture; older ones are forgotten


@dataclass(frozen=True)
class DriftChange:
    """The alarm rose (``alarm``) or cleared at row ``row`` (1-based), when the window's MAE was ``window_mae``."""

    row: int
    alarm: bool
    window_mae: float
    reference_mae: float


@dataclass
class Stretch:
    """Rows ``start`` to ``end`` (``None``: still in alarm) during which the alarm was up."""

    start: int
    end: int | None = None


class DriftMonitor:
    def __init__(
        self,
        *,
        window: int,
        ratio: float,
        reference_rows: int,
        reference_mae: float | None = None,
        clear_ratio: float | None = None,
    ) -> None:
        if window < 1 or reference_rows < 1 or ratio <= 1:
            raise ValueError("window and reference_rows must be >= 1 and ratio > 1")
        self.window, self.ratio, self.reference_rows = window, ratio, reference_rows
        self.clear_ratio = clear_ratio if clear_ratio is not None else 1 + (ratio - 1) / 2
        self.reference_mae = reference_mae
        self._judged_from = 1 if reference_mae is not None else reference_rows  # the first row the alarm judges
        self.window_mae: float | None = None
        self.alarm = False
        self.alarms = 0  # times the alarm rose
        self.stretches: list[Stretch] = []
        self.rows = 0
        self._reference_sum = 0.0
        self._recent = np.empty(0)  # the last ``window`` errors at most

    @property
    def threshold(self) -> float | None:
        return None if self.reference_mae is None else self.ratio * self.reference_mae

    def add(self, errors: Sequence[float] | np.ndarray) -> list[DriftChange]:
        """Take the next rows' absolute errors; return the changes of state among them, in order."""
        new = np.asarray(errors, dtype=np.float64)
        if new.size == 0:
            return []
        first_row = self.rows  # rows before new[0]
        self._learn_reference(new)
        values = np.concatenate([self._recent, new])
        sums = np.concatenate([[0.0], np.cumsum(values)])
        ends = np.arange(len(self._recent), len(values))  # index in values of each new row
        self.rows += len(new)
        self._recent = values[-self.window :].copy()
        full = ends + 1 >= self.window
        if self.reference_mae is None or not full.any():
            return []
        judged = full & (first_row + np.arange(1, len(new) + 1) >= self._judged_from)
        means = np.full(len(new), np.nan)
        windows = ends[full] + 1
        means[full] = (sums[windows] - sums[windows - self.window]) / self.window
        self.window_mae = float(means[-1]) if full[-1] else self.window_mae
        return self._changes(means, judged, first_row)

    def _learn_reference(self, new: np.ndarray) -> None:
        if self.reference_mae is not None:
            return
        needed = self.reference_rows - self.rows
        self._reference_sum += float(new[:needed].sum())
        if len(new) >= needed:
            self.reference_mae = self._reference_sum / self.reference_rows

    def _changes(self, means: np.ndarray, judged: np.ndarray, first_row: int) -> list[DriftChange]:
        reference = float(self.reference_mae or 0.0)
        above = np.flatnonzero(judged & (means > self.ratio * reference))
        below = np.flatnonzero(judged & (means < self.clear_ratio * reference))
        changes: list[DriftChange] = []
        start = 0
        while True:
            candidates = below if self.alarm else above
            next_index = int(np.searchsorted(candidates, start))
            if next_index == len(candidates):
                return changes
            index = int(candidates[next_index])
            row = first_row + index + 1
            self.alarm = not self.alarm
            self._mark(row)
            changes.append(DriftChange(row, self.alarm, float(means[index]), reference))
            start = index + 1

    def _mark(self, row: int) -> None:
        if self.alarm:
            self.alarms += 1
            self.stretches.append(Stretch(row))
            del self.stretches[:-MOST_STRETCHES]
        else:
            self.stretches[-1].end = row
