"""model: predicts each row of queue ``features`` with the estimator at MODEL_PATH and publishes it to ``y_pred``.

Rows that arrive together are predicted in one call; a prediction carries its row's AMQP ``timestamp`` (the row's
creation time), so that metric can tell how far each stream has come. A ``features`` message is acked only once the
broker has confirmed the ``y_pred`` it caused; a message that is not a valid row goes to ``features.dead``. A
redelivered message may be one that crashed a model before, so redelivered messages are gathered for a moment and
predicted one at a time, in random order, each acked before the next: a poison message then takes few others down
with it, and the delivery limit moves it to ``features.dead`` while the rows that shared its deliveries get through.
A row the estimator raises on, or predicts as NaN or infinity, goes to ``features.dead`` with the reason; the rest of
its batch is predicted as usual. Every row whose prediction is published is counted, with it, in the bins of the
inputs' reference (``model_inputs``), for plot's input drift; INPUT_DRIFT=off turns that off.
"""

from __future__ import annotations

import logging
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import joblib
import numpy as np
import skops.io
from default_model import DEFAULT_MODEL_PATH  # beside this file: the model the image trains at build time
from model_inputs import FLUSH_INTERVAL, InputCounter, InputSettings, load_input_settings

from pipeline import service
from pipeline.broker import Broker, persistent
from pipeline.broker_surface import BrokerSurface, Delivery
from pipeline.messages import decode_features, encode
from pipeline.settings import Common, SettingsError, env_prefetch, env_str, load_common
from pipeline.topology import FEATURES, Y_PRED, dead_letter_queue

LOGGER = logging.getLogger("model")
ACK_SEND_DELAY = 0.002  # seconds
# Seconds to gather redelivered rows before predicting the first. The broker returns a crashed model's rows in their
# old order, so the row that crashed it tends to come first: predicted on arrival, it would crash the next model
# before the rows behind it came in, and they would share its fate at the delivery limit (seen on RabbitMQ 4.0).
SUSPECT_GATHER = 0.05


@dataclass(frozen=True)
class Settings:
    common: Common
    prefetch: int
    model: Any
    model_path: str
    inputs: InputSettings | None  # None: INPUT_DRIFT=off


def load_settings() -> Settings:
    common = load_common()
    prefetch = env_prefetch()
    model_path = env_str("MODEL_PATH", "").strip() or DEFAULT_MODEL_PATH
    model = load_model(model_path, env_trusted_types())
    inputs = load_input_settings(model, model_path, common.logs_dir)
    return Settings(common, prefetch, model, model_path, inputs)


def env_trusted_types() -> list[str]:
    """MODEL_TRUSTED_TYPES: the types, comma-separated, a .skops model may use beyond those skops trusts."""
    return [name.strip() for name in env_str("MODEL_TRUSTED_TYPES", "").split(",") if name.strip()]


def load_model(path: str, trusted_types: list[str]) -> Any:
    """A fitted estimator from a skops file (``*.skops``) or, for any other name, a joblib pickle."""
    if not Path(path).is_file():
        raise SettingsError(f"MODEL_PATH: no model file at {path} (train one with `make train`)")
    try:
        model = load_skops(path, trusted_types) if path.endswith(".skops") else joblib.load(path)
    except SettingsError:
        raise
    except Exception as error:  # any unreadable file is the same user error
        raise SettingsError(f"MODEL_PATH: cannot load a model from {path}: {error}") from None
    if not (hasattr(model, "predict") and hasattr(model, "n_features_in_")):
        raise SettingsError(f"MODEL_PATH: {path} holds no fitted scikit-learn estimator but a {type(model).__name__}")
    return model


def load_skops(path: str, trusted_types: list[str]) -> Any:
    """Load only if every type the file needs is one skops trusts or one listed in MODEL_TRUSTED_TYPES."""
    needed = skops.io.get_untrusted_types(file=path)
    refused = [name for name in needed if name not in trusted_types]
    if refused:
        raise SettingsError(
            f"MODEL_PATH: {path} needs types skops does not trust by default: {', '.join(refused)}; "
            "if you trust the file, list them in MODEL_TRUSTED_TYPES"
        )
    return skops.io.load(path, trusted=needed or None)


class Row(NamedTuple):
    delivery: Delivery
    row_id: str
    features: list[float]


class Predictor:
    """Collects the rows of one read from the socket into a batch and predicts them together."""

    def __init__(self, model: Any, model_path: str, broker: BrokerSurface, counter: InputCounter | None = None) -> None:
        self._model, self._model_path = model, model_path
        self._counter = counter
        self._n_features = int(model.n_features_in_)
        self._batch: list[Row] = []
        self._suspects: list[Row] = []
        self._suspect_in_flight = False
        self._suspect_timer: object | None = None
        self._random = random.Random()
        self._predicted = 0
        self._rate = service.Rate()
        self._broker = broker
        broker.add_hooks(on_lost=self._forget_rows, on_stopping=self._predict_batch)
        broker.consume(FEATURES, self._on_features)

    def run(self) -> int:
        LOGGER.info(
            "serving %s from %s; it expects %d features per row (others go to %s.dead)",
            type(self._model).__name__,
            self._model_path,
            self._n_features,
            FEATURES,
        )
        LOGGER.info("input drift: %s", self._counter.describe() if self._counter else "off (INPUT_DRIFT=off)")
        self._broker.call_later(service.HEARTBEAT_INTERVAL, self._heartbeat)
        if self._counter is not None:
            self._broker.call_later(FLUSH_INTERVAL, self._flush_counts)
        try:
            return self._broker.run()
        finally:  # after the loop, so that rows predicted while draining are counted too
            if self._counter is not None:
                self._counter.close()

    def _on_features(self, delivery: Delivery) -> None:
        row_id, features = decode_features(delivery.body, self._n_features)
        row = Row(delivery, row_id, features)
        if delivery.redelivered:
            self._suspects.append(row)
            if not self._suspect_in_flight and self._suspect_timer is None:
                self._suspect_timer = self._broker.call_later(SUSPECT_GATHER, self._predict_next_suspect)
            return
        self._batch.append(row)
        if len(self._batch) == 1:
            self._broker.call_soon(self._predict_batch)

    def _predict_next_suspect(self) -> None:
        self._suspect_timer = None
        while not self._suspect_in_flight and self._suspects:
            row = self._suspects.pop(self._random.randrange(len(self._suspects)))
            prediction = self._predict_one(row)
            if prediction is not None:
                self._suspect_in_flight = True
                self._publish(row, prediction, partial(self._suspect_done, row))
                self._count(np.array([row.features]), [prediction])

    def _suspect_done(self, row: Row) -> None:
        self._broker.ack(row.delivery)
        self._suspect_in_flight = False
        # a moment later, so that the loop sends the ack before the next suspect can crash the process
        self._suspect_timer = self._broker.call_later(ACK_SEND_DELAY, self._predict_next_suspect)

    def _forget_rows(self) -> None:
        """The lost channel's deliveries come back; drop what was waiting for them."""
        self._batch.clear()
        self._suspects.clear()
        self._suspect_in_flight = False

    def _predict_batch(self) -> None:
        batch = self._batch.copy()
        self._batch.clear()
        if not batch:
            return
        rows = np.array([row.features for row in batch])
        predictions: list[float | None]
        try:
            predictions = [float(value) for value in self._model.predict(rows)]
        except Exception:  # one row the estimator refuses must not cost the others: find it by predicting one by one
            predictions = [self._predict_one(row) for row in batch]
        published: list[int] = []
        for index, (row, prediction) in enumerate(zip(batch, predictions, strict=True)):
            if prediction is None:
                continue
            if math.isfinite(prediction):
                self._publish(row, prediction, partial(self._broker.ack, row.delivery))
                published.append(index)
            else:
                self._refuse(row, f"the model predicted {prediction!r} for it")
        if len(published) < len(batch):
            self._count(rows[published], [predictions[index] for index in published])
        else:
            self._count(rows, predictions)

    def _predict_one(self, row: Row) -> float | None:
        """The row's prediction, or None once a row the estimator raises on or predicts no number for is refused."""
        try:
            prediction = float(self._model.predict(np.array([row.features]))[0])
        except Exception as error:
            self._refuse(row, f"the model raised {type(error).__name__}: {error}")
            return None
        if not math.isfinite(prediction):
            self._refuse(row, f"the model predicted {prediction!r} for it")
            return None
        return prediction

    def _refuse(self, row: Row, reason: str) -> None:
        LOGGER.warning("rejected row %s into %s: %s", row.row_id, dead_letter_queue(FEATURES), reason)
        self._broker.reject(row.delivery)

    def _publish(self, row: Row, prediction: float, on_confirmed: Callable[[], None]) -> None:
        self._predicted += 1
        properties = persistent(row.delivery.created)  # the row's creation time goes on with its prediction
        self._broker.publish(Y_PRED, encode(row.row_id, prediction), on_confirmed, resend=False, properties=properties)

    def _count(self, rows: np.ndarray, predictions: list[float | None]) -> None:
        """Count published rows and their predictions for the input drift, if it is on."""
        if self._counter is not None:
            self._counter.add(rows, np.array(predictions, dtype=np.float64))

    def _flush_counts(self) -> None:
        assert self._counter is not None
        self._counter.flush()
        self._broker.call_later(FLUSH_INTERVAL, self._flush_counts)

    def _heartbeat(self) -> None:
        LOGGER.info(
            "heartbeat: %d rows predicted (%.1f rows/s), %d rejected into %s%s",
            self._predicted,
            self._rate.per_second(self._predicted),
            self._broker.rejected[FEATURES],
            dead_letter_queue(FEATURES),
            f"; {self._counter.status()}" if self._counter else "",
        )
        self._broker.call_later(service.HEARTBEAT_INTERVAL, self._heartbeat)


def run(config: Settings) -> int:
    broker = Broker(config.common, [FEATURES, Y_PRED], prefetch=config.prefetch)
    counter = InputCounter(config.inputs) if config.inputs else None
    return Predictor(config.model, config.model_path, broker, counter).run()


if __name__ == "__main__":
    sys.exit(service.main(load_settings, run))
