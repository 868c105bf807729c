"""Train the default estimator on scikit-learn's bundled diabetes dataset and save it to MODEL_PATH.

A LinearRegression has no randomness: the same scikit-learn version gives the same model every time.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

from pipeline.settings import SettingsError, env_str, report_bad_setting, setup_logging

LOGGER = logging.getLogger("train")
DEFAULT_MODEL_PATH = str(Path(__file__).resolve().parents[1] / "model.joblib")


def train(model_path: Path) -> LinearRegression:
    rows, targets = load_diabetes(return_X_y=True)
    estimator = LinearRegression().fit(rows, targets)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = model_path.with_name(model_path.name + ".tmp")
    joblib.dump(estimator, temporary)
    temporary.replace(model_path)
    return estimator


def main() -> int:
    try:
        model_path = Path(env_str("MODEL_PATH", DEFAULT_MODEL_PATH))
    except SettingsError as error:
        return report_bad_setting(error)
    setup_logging("INFO")
    estimator = train(model_path)
    LOGGER.info(
        "trained %s on %d features; saved to %s", type(estimator).__name__, estimator.n_features_in_, model_path
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
