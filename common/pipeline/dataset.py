"""The rows features streams and train fits: scikit-learn's diabetes data, or a CSV file of the user's.

A CSV needs a header, a target column (TARGET_COLUMN) and at least one other column; every other column is a feature,
in file order, and every cell must be a finite number. Anything else stops the service at start with one line that
names the variable and the problem. Only features and train import this module (it needs pandas and scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes

from pipeline.settings import SettingsError, env_str

DEFAULT_TARGET_COLUMN = "target"


@dataclass(frozen=True)
class Dataset:
    rows: np.ndarray  # one row of features per line, float64
    targets: np.ndarray
    feature_names: list[str]
    source: str


def from_environment() -> Dataset:
    """DATASET_PATH and TARGET_COLUMN, or the bundled diabetes data when DATASET_PATH is empty."""
    path = env_str("DATASET_PATH", "").strip()
    target_column = env_str("TARGET_COLUMN", "").strip() or DEFAULT_TARGET_COLUMN
    return load_csv(Path(path), target_column) if path else bundled()


def bundled() -> Dataset:
    data = load_diabetes()
    return Dataset(data.data, data.target, list(data.feature_names), "scikit-learn's diabetes dataset")


def load_csv(path: Path, target_column: str) -> Dataset:
    frame = _read(path)
    if target_column not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise SettingsError(f"TARGET_COLUMN: {path} has no column {target_column!r} (its columns: {columns})")
    if frame.empty:
        raise SettingsError(f"DATASET_PATH: {path} has a header but no rows")
    if len(frame.columns) < 2:
        raise SettingsError(f"DATASET_PATH: {path} has no feature column besides {target_column!r}")
    for column in frame.columns:
        _check_numeric(path, frame, column)
    features = frame.drop(columns=[target_column])
    return Dataset(
        features.to_numpy(dtype=np.float64),
        frame[target_column].to_numpy(dtype=np.float64),
        [str(name) for name in features.columns],
        str(path),
    )


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SettingsError(f"DATASET_PATH: no file at {path}")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise SettingsError(f"DATASET_PATH: {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[0]
        raise SettingsError(f"DATASET_PATH: {path} is not a readable CSV file: {reason}") from None
    return frame


def _check_numeric(path: Path, frame: pd.DataFrame, column: str) -> None:
    numbers = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
    bad = ~np.isfinite(numbers.to_numpy())
    if bad.any():
        index = int(np.argmax(bad))
        cell = frame[column].iloc[index]
        shown = "an empty cell" if pd.isna(cell) else repr(str(cell))
        raise SettingsError(
            f"DATASET_PATH: {path}, column {column!r}, data row {index + 1}: {shown} is not a finite number"
        )
