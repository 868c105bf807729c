"""Sums of any finite floats that cannot overflow: the total, the mean and the root mean square of a stream.

Two finite values near 1e308 already overflow a float sum: ``math.fsum`` raises ``OverflowError``, numpy returns
``inf`` (and ``nan`` once an ``inf`` is subtracted). ``ScaledSums`` keeps the values divided by a power of two, 2**e
with every value below 2**e in magnitude, so every scaled value is below 1 and their sum below the row count. Dividing
by a power of two is exact (bar values 2**1022 times smaller than the largest, which the sum could not tell anyway),
so for everyday numbers the sums are exactly what ``math.fsum`` gives, and the mean and the root mean square, which
lie between the smallest and the largest value, are always finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ONE_BELOW = math.nextafter(1.0, 0.0)  # the largest float below 1: ldexp(ONE_BELOW, 1024) is the largest float
NO_EXPONENT = -1100  # below the exponent of any float (the smallest, 5e-324, is 2**-1074)


class ScaledSums:
    """The count, sum and sum of squares of the values added, each sum kept as ``scaled * 2**exponent``."""

    def __init__(self) -> None:
        self.count = 0
        self._exponent = NO_EXPONENT
        self._sum = 0.0  # sum of value / 2**exponent
        self._squares = 0.0  # sum of (value / 2**exponent)**2

    def add(self, values: Sequence[float] | np.ndarray) -> None:
        """Add finite values (an ``inf`` or ``nan`` would make every result meaningless: the caller refuses them)."""
        data = np.asarray(values, dtype=np.float64)
        if data.size == 0:
            return
        exponent = math.frexp(float(np.abs(data).max()))[1]  # the largest value is below 2**exponent
        if exponent > self._exponent:
            shift = self._exponent - exponent
            self._sum = math.ldexp(self._sum, shift)
            self._squares = math.ldexp(self._squares, 2 * shift)
            self._exponent = exponent
        scaled = np.ldexp(data, -self._exponent)
        self._sum = math.fsum([self._sum, *scaled.tolist()])
        self._squares = math.fsum([self._squares, *np.square(scaled).tolist()])
        self.count += int(data.size)

    @property
    def total(self) -> float:
        """The sum; ``inf`` (with its sign) only when the true sum is beyond the largest float."""
        try:
            return math.ldexp(self._sum, self._exponent)
        except OverflowError:
            return math.copysign(math.inf, self._sum)

    @property
    def mean(self) -> float:
        """The mean, 0 when empty; always finite."""
        return self._unscale(self._sum / self.count) if self.count else 0.0

    @property
    def root_mean_square(self) -> float:
        """The square root of the mean of the squares, 0 when empty; always finite."""
        return self._unscale(math.sqrt(self._squares / self.count)) if self.count else 0.0

    def _unscale(self, fraction: float) -> float:
        # the true fraction is below 1 in magnitude; rounding may reach 1, which 2**1024 would overflow
        return math.ldexp(max(-ONE_BELOW, min(ONE_BELOW, fraction)), self._exponent)
