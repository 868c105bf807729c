"""An incremental histogram of non-negative values whose memory does not grow with their number."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BINS = 40
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
