"""features: streams uniformly random rows of a dataset: the CSV at DATASET_PATH, or scikit-learn's diabetes data.

The column TARGET_COLUMN of the CSV is the true answer; the other columns, in file order, are the features. Each row
gets a fresh UUID (version 7: it sorts by time) and its creation time, which both of its messages carry in their AMQP
``timestamp``; its features go to queue ``features`` and its true answer to queue ``y_true``, both published
persistently and confirmed by the broker. With FEATURES_LABEL_DELAY seconds the true answer goes to
``y_true.delayed`` instead, with that time to live: the broker holds it and moves it into ``y_true`` when it expires.
FEATURES_INTERVAL seconds pass between rows (0: as fast as the
confirm window allows); after FEATURES_LIMIT rows (0: never) it waits for the last confirms and exits 0. With
FEATURES_LEDGER set, each row is noted in that file as ``published <id> <unix time>`` before its messages go out
and as ``confirmed <id>`` once the broker has confirmed both; while the ledger cannot be written (a full disk), no
row goes out, and the same line is tried again every second.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import dataset, service, settings
from pipeline.append_file import AppendFile
from pipeline.broker import Broker, persistent
from pipeline.broker_surface import BrokerSurface
from pipeline.disk import RETRY_DELAY, WriteTrouble
from pipeline.messages import encode, new_id
from pipeline.settings import SettingsError
from pipeline.stop_signals import STOP_SIGNALS
from pipeline.topology import FEATURES, Y_TRUE, Y_TRUE_DELAYED

LOGGER = logging.getLogger("features")

ROWS_PER_BURST = 200  # with FEATURES_INTERVAL=0, rows published before the loop serves I/O again
MAX_LABEL_DELAY = 30 * 86_400  # seconds: labels a month late at most, far inside the broker's limit on a TTL


@dataclass(frozen=True)
class Settings:
    common: settings.Common
    interval: float
    limit: int
    ledger_path: str
    dataset: dataset.Dataset
    label_delay: float = 0.0

    @property
    def queues(self) -> list[str]:
        return [FEATURES, Y_TRUE, Y_TRUE_DELAYED] if self.label_delay else [FEATURES, Y_TRUE]


def load_settings() -> Settings:
    common = settings.load_common()
    return Settings(
        common=common,
        interval=settings.env_float("FEATURES_INTERVAL", 1.0),
        limit=settings.env_int("FEATURES_LIMIT", 0),
        ledger_path=settings.env_str("FEATURES_LEDGER", ""),
        dataset=dataset.from_environment(),
        label_delay=load_label_delay(common.queue_type),
    )


def load_label_delay(queue_type: str) -> float:
    delay = settings.env_float("FEATURES_LABEL_DELAY", 0.0)
    if delay > MAX_LABEL_DELAY:
        raise SettingsError(f"FEATURES_LABEL_DELAY must be at most {MAX_LABEL_DELAY} s (30 days), got {delay:g}")
    if delay and queue_type != "quorum":
        raise SettingsError(
            "FEATURES_LABEL_DELAY needs QUEUE_TYPE=quorum: a classic queue dead-letters at most once, so a broker "
            "crash during the delay could lose labels"
        )
    return delay


@dataclass(frozen=True)
class Row:
    row_id: str
    created: float
    index: int


class Ledger:
    """FEATURES_LEDGER, opened at the first write. A ``published`` line is written before its row goes out, or the
    row is not made; a ``confirmed`` line that cannot be written (a full disk) goes with the next line written."""

    def __init__(self, path: Path, broker: BrokerSurface) -> None:
        self._file = AppendFile(path)
        self._opened = False
        self._trouble = WriteTrouble(f"FEATURES_LEDGER {path}", broker.set_problem)

    def published(self, row: Row) -> bool:
        """Note ``row`` as published, and say whether it could be written (if not, it is forgotten)."""
        self._file.append(f"published {row.row_id} {row.created:.6f}\n".encode())
        if self._write():
            return True
        self._file.discard_last()
        return False

    def confirmed(self, row_id: str) -> None:
        self._file.append(f"confirmed {row_id}\n".encode())
        self._write()

    def close(self) -> None:
        """Write what is left, waiting for room as long as it takes; a second stop signal drops it."""
        if self._file.unsynced and not self._write():
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)  # a second stop signal ends the wait
            while not self._write():
                time.sleep(RETRY_DELAY)  # the broker's loop is over: nothing else to do
        with contextlib.suppress(OSError):
            self._file.close()

    def _write(self) -> bool:
        try:
            if not self._opened:
                self._file.open()
                self._opened = True
            self._file.sync(durable=False)  # the ledger is for counting, not for surviving a crash of the machine
        except OSError as error:
            self._trouble.failed(error, holding="no row is published until the ledger can be written")
            return False
        self._trouble.succeeded()
        return True


class Streamer:
    """Publishes one row per tick while the broker can take it."""

    def __init__(self, config: Settings, broker: BrokerSurface, ledger: Ledger | None) -> None:
        self._broker = broker
        broker.add_hooks(on_ready=self.resume, on_window_open=self.resume)
        self._dataset = config.dataset
        self._interval, self._limit = config.interval, config.limit
        self._ledger = ledger
        self._label_queue = Y_TRUE_DELAYED if config.label_delay else Y_TRUE
        self._label_delay_ms = round(config.label_delay * 1000) if config.label_delay else None
        self._rng = np.random.default_rng()
        self._produced = self._confirmed = 0
        self._rate = service.Rate()
        self._blocked = True

    def run(self) -> int:
        LOGGER.info(
            "streaming random rows of %s (%d rows, %d features), every %g s, limit %s, labels %s",
            self._dataset.source,
            *self._dataset.rows.shape,
            self._interval,
            self._limit,
            f"{self._label_delay_ms / 1000:g} s late (held in {Y_TRUE_DELAYED})" if self._label_delay_ms else "at once",
        )
        self._broker.call_later(service.HEARTBEAT_INTERVAL, self._heartbeat)
        return self._broker.run()

    def resume(self) -> None:
        """Called when the broker is ready or the confirm window has room again."""
        if self._blocked:
            self._blocked = False
            self._tick()

    def _tick(self) -> None:
        for _ in range(1 if self._interval else ROWS_PER_BURST):
            if self._produced == self._limit > 0:
                LOGGER.info("published %d rows; waiting for the last confirms", self._produced)
                self._broker.stop(drain_forever=True)
                return
            if not self._broker.can_publish():
                self._blocked = True
                return
            if not self._publish_row():
                self._broker.call_later(RETRY_DELAY, self._tick)
                return
        self._broker.call_later(self._interval, self._tick)

    def _publish_row(self) -> bool:
        """Publish a new row once its ledger line is written; False if it cannot be (no row is made then)."""
        row = Row(new_id(), time.time(), int(self._rng.integers(len(self._dataset.rows))))
        if self._ledger is not None and not self._ledger.published(row):
            return False
        on_confirmed = self._on_row_confirmed(row.row_id)
        created = int(row.created)
        features, label = self._dataset.rows[row.index].tolist(), float(self._dataset.targets[row.index])
        self._broker.publish(FEATURES, encode(row.row_id, features), on_confirmed, properties=persistent(created))
        label_properties = persistent(created, self._label_delay_ms)
        self._broker.publish(self._label_queue, encode(row.row_id, label), on_confirmed, properties=label_properties)
        self._produced += 1
        return True

    def _on_row_confirmed(self, row_id: str) -> Callable[[], None]:
        """A confirm callback that counts the row, and notes it in the ledger, once both of its messages are in."""
        unconfirmed = [2]

        def on_confirmed() -> None:
            unconfirmed[0] -= 1
            if unconfirmed[0] == 0:
                self._confirmed += 1
                if self._ledger is not None:
                    self._ledger.confirmed(row_id)  # if it cannot be written now, it goes with the next line

        return on_confirmed

    def _heartbeat(self) -> None:
        LOGGER.info(
            "heartbeat: %d rows published (%.1f rows/s), %d confirmed",
            self._produced,
            self._rate.per_second(self._produced),
            self._confirmed,
        )
        self._broker.call_later(service.HEARTBEAT_INTERVAL, self._heartbeat)


def run(config: Settings) -> int:
    broker = Broker(config.common, config.queues)
    ledger = Ledger(Path(config.ledger_path), broker) if config.ledger_path else None
    try:
        return Streamer(config, broker, ledger).run()
    finally:
        if ledger is not None:
            ledger.close()


if __name__ == "__main__":
    sys.exit(service.main(load_settings, run))
