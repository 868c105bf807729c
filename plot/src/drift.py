"""The drift alarm: the MAE of the last rows against a reference MAE, with hysteresis, evaluated at every row.

The reference is given, or learned from the first ``reference_rows`` rows: they are cut into ``REFERENCE_BLOCKS``
blocks of consecutive rows (as equal as the count allows) and the reference is the median of the blocks' MAEs. One
wild row (an error of 1e6 among errors of 30) moves one block's MAE, not the median: a plain mean of the first rows
would become 1e3 and no model fifty times worse would ever raise the alarm. Once the reference is known and
``window`` rows have come, every row gives the MAE of the last ``window`` rows. The alarm rises when that MAE exceeds
``ratio`` times the reference and clears when it falls below ``clear_ratio`` times the reference (by default halfway
between 1 and ``ratio``): between the two levels the state stays as it is, so noise around one level cannot flap it.
A wild row after the reference does raise the alarm while it is in the window (the window's MAE is that high), and
it clears one window later. Memory is the window, the reference's block sums and at most ``MOST_STRETCHES`` alarm
stretches, however many rows come.

The window's MAE is recomputed from the window's errors at each batch, from sums of non-negative values only (no
running sum from which a large value is subtracted again, which would keep its rounding residue), scaled by a power of
two when they could overflow: one row of 1e308 weighs on exactly the windows that hold it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sums import ScaledSums

MOST_STRETCHES = 100  # alarm stretches remembered for the picture; older ones are forgotten
REFERENCE_BLOCKS = 10  # the reference is the median of the MAEs of this many blocks of the first rows


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
        blocks = min(REFERENCE_BLOCKS, reference_rows)
        self._block_ends = np.cumsum([len(block) for block in np.array_split(np.empty(reference_rows), blocks)])
        self._blocks = [ScaledSums() for _ in range(blocks)]
        self._recent = np.empty(0)  # the last ``window`` errors at most

    @property
    def threshold(self) -> float | None:
        """The window MAE above which the alarm rises (capped at the largest float, so that it stays a number)."""
        return None if self.reference_mae is None else min(self.ratio * self.reference_mae, sys.float_info.max)

    def add(self, errors: Sequence[float] | np.ndarray) -> list[DriftChange]:
        """Take the next rows' absolute errors; return the changes of state among them, in order."""
        new = np.asarray(errors, dtype=np.float64)
        if new.size == 0:
            return []
        first_row = self.rows  # rows before new[0]
        self._learn_reference(new)
        values = np.concatenate([self._recent, new])
        ends = np.arange(len(self._recent), len(values))  # index in values of each new row
        self.rows += len(new)
        self._recent = values[-self.window :].copy()
        full = ends + 1 >= self.window
        if self.reference_mae is None or not full.any():
            return []
        judged = full & (first_row + np.arange(1, len(new) + 1) >= self._judged_from)
        means = np.full(len(new), np.nan)
        means[full] = window_means(values, self.window)[ends[full] + 1 - self.window]
        self.window_mae = float(means[-1]) if full[-1] else self.window_mae
        return self._changes(means, judged, first_row)

    def _learn_reference(self, new: np.ndarray) -> None:
        if self.reference_mae is not None:
            return
        first, last = self.rows, min(self.rows + len(new), self.reference_rows)  # rows [first, last) of the reference
        starts = np.concatenate([[0], self._block_ends[:-1]])
        for block, start, end in zip(self._blocks, starts, self._block_ends, strict=True):
            if start < last and end > first:
                block.add(new[max(start, first) - first : min(end, last) - first])
        if last == self.reference_rows:
            self.reference_mae = median([block.mean for block in self._blocks])

    def _changes(self, means: np.ndarray, judged: np.ndarray, first_row: int) -> list[DriftChange]:
        reference = float(self.reference_mae or 0.0)
        # ratio * reference is inf for a reference near the largest float: then nothing is above it
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


def window_means(values: np.ndarray, window: int) -> np.ndarray:
    """The mean of every run of ``window`` consecutive non-negative ``values`` (``len(values) - window + 1`` means).

    Values are cut into chunks of ``window``: a run is the tail of one chunk plus the head of the next, each a
    cumulative sum within its chunk, so nothing is subtracted and the error of a mean stays within ``window`` roundings
    of its own values. Values whose sum could overflow are first divided by a power of two (exact)."""
    top = float(values.max(initial=0.0))
    shift = max(0, math.frexp(top)[1] + window.bit_length() - 1023)  # a run's sum stays below 2**1023
    scaled = np.ldexp(values, -shift)
    chunks = -(-len(values) // window)
    padded = np.pad(scaled, (0, chunks * window - len(values))).reshape(chunks, window)
    heads = np.cumsum(padded, axis=1).ravel()  # from the start of its chunk to each value
    tails = np.cumsum(padded[:, ::-1], axis=1)[:, ::-1].ravel()  # from each value to the end of its chunk
    starts = np.arange(len(values) - window + 1)
    sums = tails[starts] + np.where(starts % window == 0, 0.0, heads[np.minimum(starts + window - 1, len(heads) - 1)])
    with np.errstate(over="ignore"):
        return np.minimum(np.ldexp(sums / window, shift), sys.float_info.max)


def median(values: list[float]) -> float:
    """The median, halves added rather than the sum halved: two values near the largest float do not overflow."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else ordered[middle - 1] / 2 + ordered[middle] / 2
