"""An estimator that dies like a crash in native code when it meets the poison row, and predicts normally otherwise."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

POISON_VALUE = 123456.0  # first feature of the poison row


class DiesOnPoison:
    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.n_features_in_ = estimator.n_features_in_

    def predict(self, rows: np.ndarray) -> np.ndarray:
        if (rows[:, 0] == POISON_VALUE).any():
            os._exit(134)  # no cleanup, no exception: as abrupt as a crash in native code
        return self.estimator.predict(rows)
