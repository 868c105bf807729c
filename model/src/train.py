"""Train the default estimator on a dataset and save it to MODEL_PATH, where model.py loads it.

The dataset is the one features streams: DATASET_PATH and TARGET_COLUMN, or scikit-learn's diabetes data when
DATASET_PATH is empty. A MODEL_PATH ending in `.skops` is written with skops (loading it runs no code); any other
name gets a joblib pickle. A LinearRegression has no randomness: the same data and scikit-learn version give the same
model every time.

Beside the model goes its profile (``model.profile.json`` for ``model.skops``): the bins and shares of each feature of
the training data and of the model's predictions on it, the reference against which model counts the rows it serves.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import skops.io
from default_model import DEFAULT_MODEL_PATH, profile_path  # beside this file
from sklearn.linear_model import LinearRegression

from pipeline import dataset, profile
from pipeline.settings import SettingsError, env_str, report_bad_setting, setup_logging

LOGGER = logging.getLogger("train")


def train(model_path: Path, data: dataset.Dataset | None = None) -> LinearRegression:
    data = data or dataset.bundled()
    estimator = LinearRegression().fit(data.rows, data.targets)
    save(estimator, model_path)
    save_profile(estimator, data, model_path)
    return estimator


def save(estimator: object, model_path: Path) -> None:
    """Write beside the target and rename, so that a model service never loads half a file."""
    model_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = model_path.with_name(f".{model_path.name}.tmp")
    if model_path.suffix == ".skops":
        skops.io.dump(estimator, temporary)
    else:
        joblib.dump(estimator, temporary)
    temporary.replace(model_path)


def save_profile(estimator: Any, data: dataset.Dataset, model_path: Path) -> Path:
    """Save the profile of ``data`` and the estimator's predictions on it beside the model file; return where."""
    path = profile_path(model_path)
    made = profile.make(
        data.rows, estimator.predict(data.rows), data.feature_names, data.source, profile.sha256_of(model_path)
    )
    made.save(path)
    return path


def main() -> int:
    try:
        model_path = Path(env_str("MODEL_PATH", "").strip() or DEFAULT_MODEL_PATH)
        data = dataset.from_environment()
    except SettingsError as error:
        return report_bad_setting(error)
    setup_logging("INFO")
    estimator = train(model_path, data)
    mae = float(np.mean(np.abs(estimator.predict(data.rows) - data.targets)))
    LOGGER.info(
        "trained %s on %d rows of %s (%d features: %s); mean absolute error on them %.4g; saved to %s, its profile "
        "to %s",
        type(estimator).__name__,
        len(data.rows),
        data.source,
        estimator.n_features_in_,
        ", ".join(data.feature_names),
        mae,
        model_path,
        profile_path(model_path),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
