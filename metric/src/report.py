"""What metric shows: the gauges of the waiting halves and of the streams, metric_status.json for plot's page (every
tick), and the heartbeat line with the rows written, their MAE, the halves waiting and the orphans released."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from prometheus_client import Gauge
from shared import SIDES, Shared

from pipeline import service
from pipeline.status import write_status
from pipeline.topology import Y_PRED, Y_TRUE

LOGGER = logging.getLogger("metric")

HALVES_WAITING = Gauge("pipeline_metric_halves_waiting", "Halves waiting for their partner", ["queue"])
OLDEST_WAITING = Gauge("pipeline_metric_oldest_waiting_seconds", "Age of the oldest waiting half (0: none waits)")
POSITION = Gauge(
    "pipeline_metric_stream_position_seconds", "Creation time (Unix seconds) each stream has reached", ["queue"]
)


@dataclass
class Tally:
    """What this run has done, for the heartbeat."""

    rows: int = 0
    error_sum: float = 0.0
    orphans: int = 0

    def row(self, absolute_error: float) -> None:
        self.rows += 1
        self.error_sum += absolute_error


class Report:
    """The gauges, the status file and the heartbeat."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self.tally = Tally()
        self._rate = service.Rate()
        self._oldest: int | None = None

    def start(self) -> None:
        """Start the heartbeat."""
        self._shared.broker.call_later(service.HEARTBEAT_INTERVAL, self._heartbeat)

    def count_waiting(self) -> None:
        """Let the gauge of waiting halves read the join just opened."""
        for side in SIDES:
            HALVES_WAITING.labels(side).set_function(partial(self._shared.join.waiting, side))

    def show(self, now: float) -> None:
        """Update the gauges and metric_status.json (for plot's page)."""
        join, streams, broker = self._shared.join, self._shared.streams, self._shared.broker
        self._oldest = join.oldest()
        OLDEST_WAITING.set(0 if self._oldest is None else max(0.0, now - self._oldest))
        positions: dict[str, Any] = {side: streams.position(side) for side in SIDES}
        for side, position in positions.items():
            if position is not None:
                POSITION.labels(side).set(position)
        status = {
            "waiting": {side: join.waiting(side) for side in SIDES},
            "oldest_created": self._oldest,
            "paused": [side for side in SIDES if broker.is_paused(side)],
            "positions": positions,
            "written_at": now,
        }
        try:
            write_status(self._shared.logs, status)
        except OSError as error:  # a display only: the next tick tries again
            LOGGER.debug("could not write the status file: %s", error)

    def _heartbeat(self) -> None:
        tally, join = self.tally, self._shared.join
        oldest = (
            ""
            if self._oldest is None
            else f", the oldest created {max(0.0, self._shared.clock() - self._oldest):.0f} s ago"
        )
        LOGGER.info(
            "heartbeat: %d rows written (%.1f rows/s), MAE %.4g, halves waiting: %d y_true, %d y_pred%s; "
            "%d orphans released",
            tally.rows,
            self._rate.per_second(tally.rows),
            tally.error_sum / tally.rows if tally.rows else 0.0,
            join.waiting(Y_TRUE),
            join.waiting(Y_PRED),
            oldest,
            tally.orphans,
        )
        self._shared.broker.call_later(service.HEARTBEAT_INTERVAL, self._heartbeat)
