"""model: predicts each row of queue ``features`` with the estimator at MODEL_PATH and publishes it to ``y_pred``.

Rows that arrive together are predicted in one call. A ``features`` message is acked only once the broker has
confirmed the ``y_pred`` it caused; a message that is not a valid row goes to ``features.dead``.
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from pipeline.broker import Broker, Delivery
from pipeline.messages import decode_features, encode
from pipeline.settings import Common, SettingsError, env_int, env_str, load_common, report_bad_setting, setup_logging
from pipeline.topology import FEATURES, Y_PRED

LOGGER = logging.getLogger("model")
DEFAULT_MODEL_PATH = str(Path(__file__).resolve().parents[1] / "model.joblib")


def load_model(path: str) -> Any:
    if not Path(path).is_file():
        raise SettingsError(
            f"MODEL_PATH: no model file at {path} (train one with `make install` or model/src/train.py)"
        )
    try:
        model = joblib.load(path)
    except Exception as error:  # any unreadable file is the same user error
        raise SettingsError(f"MODEL_PATH: cannot load a model from {path}: {error}") from None
    if not (hasattr(model, "predict") and hasattr(model, "n_features_in_")):
        raise SettingsError(f"MODEL_PATH: {path} holds no fitted scikit-learn estimator but a {type(model).__name__}")
    return model


class Predictor:
    """Collects the rows of one read from the socket into a batch and predicts them together."""

    def __init__(self, common: Common, model: Any, prefetch: int) -> None:
        self._model = model
        self._n_features = int(model.n_features_in_)
        self._batch: list[tuple[Delivery, str, list[float]]] = []
        self._broker = Broker(
            common, [FEATURES, Y_PRED], prefetch=prefetch, on_lost=self._batch.clear, on_stopping=self._predict_batch
        )
        self._broker.consume(FEATURES, self._on_features)

    def run(self) -> int:
        LOGGER.info("serving %s expecting %d features", type(self._model).__name__, self._n_features)
        return self._broker.run()

    def _on_features(self, delivery: Delivery) -> None:
        row_id, row = decode_features(delivery.body, self._n_features)
        self._batch.append((delivery, row_id, row))
        if len(self._batch) == 1:
            self._broker.ioloop.add_callback(self._predict_batch)

    def _predict_batch(self) -> None:
        batch = self._batch.copy()
        self._batch.clear()
        if not batch:
            return
        predictions = self._model.predict(np.array([row for _delivery, _row_id, row in batch]))
        for (delivery, row_id, _row), prediction in zip(batch, predictions, strict=True):
            acknowledge = partial(self._broker.ack, delivery)
            self._broker.publish(Y_PRED, encode(row_id, float(prediction)), acknowledge, resend=False)


def main() -> int:
    try:
        common = load_common()
        prefetch = env_int("PREFETCH", 500, minimum=1)
        model = load_model(env_str("MODEL_PATH", DEFAULT_MODEL_PATH))
    except SettingsError as error:
        return report_bad_setting(error)
    setup_logging(common.log_level)
    return Predictor(common, model, prefetch).run()


if __name__ == "__main__":
    sys.exit(main())
