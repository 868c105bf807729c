"""metric: joins ``y_true`` and ``y_pred`` by id and appends ``id,y_true,y_pred,absolute_error`` to metric_log.csv.

Rows are written in small batches and fsynced before the two messages of each row are acked, so a crash can only
cause a redelivery; the ids of recent rows (also read back from the CSV at start) turn a redelivery into an ack
without a second row. Halves wait for their partner in memory, at most PREFETCH per queue.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pipeline.broker import Broker, Delivery
from pipeline.join import Half, Join, Pair
from pipeline.messages import decode_value
from pipeline.metric_log import MetricLog
from pipeline.settings import Common, SettingsError, env_int, load_common, report_bad_setting, setup_logging
from pipeline.topology import Y_PRED, Y_TRUE

LOGGER = logging.getLogger("metric")

FLUSH_DELAY = 0.005  # seconds a written row may wait for others before the fsync
FLUSH_ROWS = 500  # rows that force an fsync at once


class Metric:
    """Joins halves, writes rows, and acks each row's deliveries after its fsync."""

    def __init__(self, common: Common, prefetch: int) -> None:
        self._log = MetricLog(Path(common.logs_dir) / "metric_log.csv")
        self._join: Join[Delivery] = Join()
        self._written: list[Delivery] = []
        self._flush_timer: object | None = None
        self._broker = Broker(
            common, [Y_TRUE, Y_PRED], prefetch=prefetch, on_lost=self._on_lost, on_stopping=self._flush
        )
        self._broker.consume(Y_TRUE, self._on_half)
        self._broker.consume(Y_PRED, self._on_half)

    def run(self) -> int:
        self._log.open()
        try:
            return self._broker.run()
        finally:
            self._log.close()

    def _on_half(self, delivery: Delivery) -> None:
        row_id, value = decode_value(delivery.body)
        if row_id in self._log or self._join.holds(delivery.queue, row_id):
            LOGGER.debug("%s of %s arrived again; already handled", delivery.queue, row_id)
            self._broker.ack(delivery)
            return
        pair = self._join.add(Half(delivery.queue, row_id, value, delivery))
        if pair is not None:
            self._write(pair)

    def _write(self, pair: Pair[Delivery]) -> None:
        self._log.append(pair.message_id, pair.y_true.value, pair.y_pred.value)
        self._written += (pair.y_true.token, pair.y_pred.token)
        if len(self._written) >= 2 * FLUSH_ROWS:
            self._flush()
        elif self._flush_timer is None:
            self._flush_timer = self._broker.ioloop.call_later(FLUSH_DELAY, self._flush)

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._broker.ioloop.remove_timeout(self._flush_timer)
            self._flush_timer = None
        self._log.sync()
        for delivery in self._written:
            self._broker.ack(delivery)
        self._written.clear()

    def _on_lost(self) -> None:
        """Deliveries of the lost channel come back; keep the rows already written, forget the waiting halves."""
        self._flush()
        self._join.clear()


def main() -> int:
    try:
        common = load_common()
        prefetch = env_int("PREFETCH", 500, minimum=1)
    except SettingsError as error:
        return report_bad_setting(error)
    setup_logging(common.log_level)
    return Metric(common, prefetch).run()


if __name__ == "__main__":
    sys.exit(main())
