"""Make the profile of a model that train.py did not make: your own, fitted elsewhere (`make profile`).

The model is loaded as model.py loads it (MODEL_PATH, MODEL_TRUSTED_TYPES), the dataset as features reads it
(DATASET_PATH, TARGET_COLUMN: best the data the model was fitted on), and the profile of its rows and the model's
predictions on them is saved beside the model file (``wine.profile.json`` for ``wine.skops``), where model finds it.
A bad setting is one line naming the variable, and exit code 2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from default_model import DEFAULT_MODEL_PATH, profile_path  # beside this file
from model_inputs import feature_names
from train import save_profile

from model import env_trusted_types, load_model
from pipeline import dataset
from pipeline.settings import SettingsError, env_str, report_bad_setting, setup_logging

LOGGER = logging.getLogger("make_profile")


def check_fit(model: Any, data: dataset.Dataset) -> None:
    """The dataset's feature columns must be the model's: as many, and the same names if the model knows them."""
    expected = int(model.n_features_in_)
    if len(data.feature_names) != expected:
        raise SettingsError(
            f"DATASET_PATH: {data.source} has {len(data.feature_names)} feature columns "
            f"but the model at MODEL_PATH expects {expected}"
        )
    if hasattr(model, "feature_names_in_") and feature_names(model) != data.feature_names:
        raise SettingsError(
            f"DATASET_PATH: the feature columns of {data.source} ({', '.join(data.feature_names)}) are not those the "
            f"model at MODEL_PATH was fitted on ({', '.join(feature_names(model))})"
        )


def make(model: Any, data: dataset.Dataset, model_path: str) -> Path:
    """Save the profile beside the model; what stops it (the model refusing the rows, a folder we cannot write) is a
    ``SettingsError`` naming MODEL_PATH."""
    try:
        return save_profile(model, data, Path(model_path))
    except OSError as error:
        raise SettingsError(f"MODEL_PATH: cannot write {profile_path(model_path)}: {error}") from None
    except Exception as error:  # the user's estimator may raise anything on rows it does not like
        raise SettingsError(
            f"MODEL_PATH: the model raised {type(error).__name__} predicting the rows of {data.source}: {error}"
        ) from None


def main() -> int:
    try:
        model_path = env_str("MODEL_PATH", "").strip() or DEFAULT_MODEL_PATH
        model = load_model(model_path, env_trusted_types())
        data = dataset.from_environment()
        check_fit(model, data)
        path = make(model, data, model_path)
    except SettingsError as error:
        return report_bad_setting(error)
    setup_logging("INFO")
    LOGGER.info(
        "made the profile of %s (%s) from %d rows of %s and its predictions on them; saved to %s",
        type(model).__name__,
        model_path,
        len(data.rows),
        data.source,
        path,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
