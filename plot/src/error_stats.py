"""plot's statistics of the absolute errors: running sums, the histogram, the block timeline and the drift alarm,
updated from each batch of new rows; and the drift alarm's settings."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from drift import DriftChange, DriftMonitor
from histogram import Histogram
from sums import ScaledSums
from timeline import Timeline

from pipeline.settings import SettingsError, env_float, env_int

# upper bounds of the Prometheus histogram's buckets: fixed, so that scrapes compare; 1, 2.5, 5 per decade
ERROR_BUCKETS = np.array([factor * 10.0**power for power in range(-3, 5) for factor in (1, 2.5, 5)] + [1e5])


@dataclass(frozen=True)
class DriftSettings:
    window: int
    ratio: float
    reference_rows: int
    reference_mae: float | None

    def monitor(self) -> DriftMonitor:
        return DriftMonitor(
            window=self.window,
            ratio=self.ratio,
            reference_rows=self.reference_rows,
            reference_mae=self.reference_mae,
        )


DEFAULT_DRIFT = DriftSettings(window=500, ratio=1.5, reference_rows=1000, reference_mae=None)


def load_drift_settings() -> DriftSettings:
    ratio = env_float("DRIFT_RATIO", DEFAULT_DRIFT.ratio, minimum=1.0)
    if ratio <= 1.0:
        raise SettingsError(f"DRIFT_RATIO must be above 1 (the alarm compares with ratio x reference), got {ratio:g}")
    reference_mae = None
    if os.environ.get("DRIFT_REFERENCE_MAE", "").strip():
        reference_mae = env_float("DRIFT_REFERENCE_MAE", 0.0)
        if reference_mae <= 0:
            raise SettingsError("DRIFT_REFERENCE_MAE must be above 0, or unset to learn it from the first rows")
    return DriftSettings(
        window=env_int("DRIFT_WINDOW", DEFAULT_DRIFT.window, minimum=1),
        ratio=ratio,
        # at least 3: the median of 3 blocks is one of them, so one wild row cannot move it; of 2 it is their mean
        reference_rows=env_int("DRIFT_REFERENCE_ROWS", DEFAULT_DRIFT.reference_rows, minimum=3),
        reference_mae=reference_mae,
    )


class ErrorStats:
    """Everything the pictures, the page and the metrics show, updated from each batch of new rows.

    The sums are ``ScaledSums``: rows whose errors are each finite but add up past the largest float (two near
    1e308) leave MAE, RMSE and bias finite instead of stopping plot."""

    def __init__(self, drift: DriftSettings = DEFAULT_DRIFT) -> None:
        self.histogram = Histogram()
        self.timeline = Timeline()
        self.drift = drift.monitor()
        self.buckets = np.zeros(len(ERROR_BUCKETS) + 1, dtype=np.int64)  # the last one: above every bound
        self._errors = ScaledSums()
        self._differences = ScaledSums()

    @property
    def rows(self) -> int:
        return self.timeline.rows

    def add(self, errors: list[float], differences: list[float] | None = None) -> list[DriftChange]:
        """Add rows' absolute errors (and their ``y_pred - y_true``); return the drift alarm's changes among them."""
        values = np.asarray(errors, dtype=np.float64)
        self._errors.add(values)
        self._differences.add(differences or [])
        self.buckets += np.bincount(np.searchsorted(ERROR_BUCKETS, values), minlength=len(self.buckets))
        self.histogram.add(values)
        self.timeline.add(values)
        return self.drift.add(values)

    @property
    def sum(self) -> float:
        """The sum of the absolute errors: ``inf`` only once it is beyond the largest float."""
        return self._errors.total

    @property
    def mae(self) -> float:
        return self._errors.mean

    @property
    def rmse(self) -> float:
        return self._errors.root_mean_square

    @property
    def bias(self) -> float:
        """The mean of ``y_pred - y_true``: above 0, the model guesses too high on average."""
        return self._differences.mean
