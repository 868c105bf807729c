"""What the tests feed the services and the drift code: the shipped example dataset and its model, a profile of
three columns and rows like its own, and an estimator that refuses some rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import profile
from pipeline.profile import Profile, psi
from tests.helpers import REPO
from tests.helpers.services import run_train

EXAMPLE = REPO / "data" / "wine.csv"
EXAMPLE_TARGET = "alcohol"


def train_example(model_path: Path) -> Path:
    """`make train` on data/wine.csv, its target alcohol; returns where the model went."""
    trained = run_train({"DATASET_PATH": str(EXAMPLE), "TARGET_COLUMN": EXAMPLE_TARGET, "MODEL_PATH": str(model_path)})
    assert trained.returncode == 0, trained.stderr
    assert "12 features" in trained.stderr + trained.stdout
    return model_path


def example(seed: int = 1, rows: int = 2000) -> Profile:
    """The reference of ``rows`` random rows of three columns (x, sex, y) and their predictions."""
    rng = np.random.default_rng(seed)
    data = np.column_stack([rng.normal(5, 2, rows), rng.integers(1, 3, rows), rng.exponential(1, rows)])
    return profile.make(data, data[:, 0] * 3 + data[:, 2], ["x", "sex", "y"], "test data", "ab" * 32)


def inputs(rows: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Rows like those of ``example()``'s reference (x, sex, y), x moved by ``shift``, and their predictions."""
    generator = np.random.default_rng(seed)
    data = np.column_stack(
        [generator.normal(5, 2, rows) + shift, generator.integers(1, 3, rows), generator.exponential(1, rows)]
    )
    return data, data[:, 0] * 3 + data[:, 2]


def direct_scores(reference: Profile, data: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """PSI of each column of these rows, from their own bin counts."""
    parts = reference.split(reference.count(data, predictions))
    return {column.name: psi(column.shares, part) for column, part in zip(reference.columns, parts, strict=True)}


class Picky:
    """An estimator of three features that raises on a 13 and predicts infinity for a 7."""

    n_features_in_ = 3

    def predict(self, rows: np.ndarray) -> np.ndarray:
        if (rows == 13).any():
            raise ValueError("13 is unlucky")
        return np.where((rows == 7).any(axis=1), np.inf, rows.sum(axis=1))
