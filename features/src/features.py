"""features: streams uniformly random rows of the diabetes dataset bundled with scikit-learn.

Each row gets a fresh UUID; its features go to queue ``features`` and its true answer to queue ``y_true``, both
published persistently and confirmed by the broker. FEATURES_INTERVAL seconds pass between rows (0: as fast as the
confirm window allows); after FEATURES_LIMIT rows (0: never) it waits for the last confirms and exits 0.
"""

from __future__ import annotations

import logging
import sys

import numpy as np
from sklearn.datasets import load_diabetes

from pipeline.broker import Broker
from pipeline.messages import encode, new_id
from pipeline.settings import Common, SettingsError, env_float, env_int, load_common, report_bad_setting, setup_logging
from pipeline.topology import FEATURES, Y_TRUE

LOGGER = logging.getLogger("features")

ROWS_PER_BURST = 200  # with FEATURES_INTERVAL=0, rows published before the loop serves I/O again


class Streamer:
    """Publishes one row per tick while the broker can take it."""

    def __init__(self, common: Common, rows: np.ndarray, targets: np.ndarray, interval: float, limit: int) -> None:
        self._broker = Broker(common, [FEATURES, Y_TRUE], on_ready=self.resume, on_window_open=self.resume)
        self._rows, self._targets = rows, targets
        self._interval, self._limit = interval, limit
        self._rng = np.random.default_rng()
        self._produced = 0
        self._blocked = True

    def run(self) -> int:
        LOGGER.info(
            "streaming %d rows at random, every %g s, limit %s", len(self._rows), self._interval, self._limit or "none"
        )
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
            self._publish_row()
        self._broker.ioloop.call_later(self._interval, self._tick)

    def _publish_row(self) -> None:
        index = int(self._rng.integers(len(self._rows)))
        row_id = new_id()
        self._broker.publish(FEATURES, encode(row_id, self._rows[index].tolist()))
        self._broker.publish(Y_TRUE, encode(row_id, float(self._targets[index])))
        self._produced += 1


def main() -> int:
    try:
        common = load_common()
        interval = env_float("FEATURES_INTERVAL", 1.0)
        limit = env_int("FEATURES_LIMIT", 0)
    except SettingsError as error:
        return report_bad_setting(error)
    setup_logging(common.log_level)
    rows, targets = load_diabetes(return_X_y=True)
    return Streamer(common, rows, targets, interval, limit).run()


if __name__ == "__main__":
    sys.exit(main())
