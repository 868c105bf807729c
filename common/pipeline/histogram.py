"""An incremental histogram of non-negative values whose memory does not grow with their number."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BINS = 1024  # fine enough for quantiles within 1/1024 of the range; bars() draws fewer
SMALLEST_WIDTH = 2.0**-20


class Histogram:
    """``bins`` equal bins over [0, width * bins); when a larger value comes, adjacent bins merge and width doubles."""

    def __init__(self, bins: int = BINS) -> None:
        if bins % 2:
            raise ValueError("bins must be even so that pairs of bins can merge")
        self.counts = np.zeros(bins, dtype=np.int64)
        self.width = 0.0

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def edges(self) -> np.ndarray:
        return np.arange(len(self.counts) + 1) * self.width

    def add(self, values: Sequence[float] | np.ndarray) -> None:
        data = np.asarray(values, dtype=np.float64)
        if data.size == 0:
            return
        top = float(data.max())
        if self.width == 0.0:
            self.width = (
                max(SMALLEST_WIDTH, 2.0 ** math.ceil(math.log2(top / len(self.counts)))) if top > 0 else SMALLEST_WIDTH
            )
        while top >= self.width * len(self.counts):
            self._merge_pairs()
        index = np.minimum((data / self.width).astype(np.int64), len(self.counts) - 1)
        self.counts += np.bincount(index, minlength=len(self.counts))

    def _merge_pairs(self) -> None:
        merged = self.counts[0::2] + self.counts[1::2]
        self.counts = np.concatenate([merged, np.zeros(len(merged), dtype=np.int64)])
        self.width *= 2

    def quantile(self, share: float) -> float:
        """The value below which ``share`` of the values lie, interpolated inside its bin; 0 when empty."""
        total = self.total
        if total == 0:
            return 0.0
        cumulative = np.cumsum(self.counts)
        rank = share * total
        index = int(np.searchsorted(cumulative, rank, side="left"))
        index = min(index, len(self.counts) - 1)
        below = cumulative[index] - self.counts[index]
        inside = (rank - below) / self.counts[index] if self.counts[index] else 0.0
        return (index + min(max(inside, 0.0), 1.0)) * self.width

    def bars(self, most: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges) of at most ``most`` bars over the occupied range, each bar a run of whole bins."""
        occupied = int(np.flatnonzero(self.counts)[-1]) + 1 if self.total else 1
        group = 1
        while -(-occupied // group) > most:
            group *= 2
        bars = -(-occupied // group)
        counts = self.counts[: bars * group]
        counts = np.pad(counts, (0, bars * group - len(counts))).reshape(bars, group).sum(axis=1)
        return counts, np.arange(bars + 1) * self.width * group
