"""Absolute errors over time: MAE and p90 per block of consecutive rows, in bounded memory however many rows come.

Rows are cut into blocks of ``block_size``; a closed block keeps its row count, its mean and its percentiles (0 to
100). When ``most`` blocks are full, neighbours merge in pairs and the block size doubles: the mean of a merged
block is exact, its percentiles come from the two blocks' percentiles (exact up to interpolation between them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FIRST_BLOCK = 64
MOST_BLOCKS = 400
PERCENTILES = np.arange(101)


class Timeline:
    def __init__(self, block_size: int = FIRST_BLOCK, most: int = MOST_BLOCKS) -> None:
        if most < 2 or most % 2:
            raise ValueError("most must be an even number of blocks, at least 2")
        self.block_size, self._most = block_size, most
        self.ends: list[int] = []  # row number at the end of each closed block
        self.means: list[float] = []
        self._percentiles: list[np.ndarray] = []
        self._open = np.empty(0)
        self.rows = 0

    @property
    def p90(self) -> list[float]:
        return [float(block[90]) for block in self._percentiles]

    def add(self, values: Sequence[float] | np.ndarray) -> None:
        data = np.concatenate([self._open, np.asarray(values, dtype=np.float64)])
        self.rows += len(data) - len(self._open)
        start = self.rows - len(data)  # row number before data[0]
        while len(data) >= self.block_size:
            if len(self.ends) == self._most:
                self._merge_pairs()
                continue
            count = min(self._most - len(self.ends), len(data) // self.block_size)
            blocks = data[: count * self.block_size].reshape(count, self.block_size)
            start += count * self.block_size
            self.ends.extend(range(start - (count - 1) * self.block_size, start + 1, self.block_size))
            # each value divided first: a block of errors near the largest float has a finite mean, not inf
            self.means.extend((blocks / self.block_size).sum(axis=1).tolist())
            self._percentiles.extend(np.percentile(blocks, PERCENTILES, axis=1).T)
            data = data[count * self.block_size :]
        self._open = data.copy()  # not a view, which would keep the whole batch alive

    def _merge_pairs(self) -> None:
        self.ends = self.ends[1::2]
        self.means = [first / 2 + second / 2 for first, second in zip(self.means[0::2], self.means[1::2], strict=True)]
        pairs = zip(self._percentiles[0::2], self._percentiles[1::2], strict=True)
        self._percentiles = [merge_percentiles(first, second) for first, second in pairs]
        self.block_size *= 2


def merge_percentiles(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Percentiles of two equal-sized blocks together: the inverse of the mean of their (piecewise linear) CDFs."""
    values = np.union1d(first, second)
    shares = (np.interp(values, first, PERCENTILES) + np.interp(values, second, PERCENTILES)) / 2
    return np.interp(PERCENTILES, shares, values)
