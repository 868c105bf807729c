"""Copies of a half dropped with another value than the one kept (the first that came): each is counted by queue, and
logged one line a second at most, the number held back said with the next line (or on its own, once the second is
over)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from join import Conflict
from prometheus_client import Counter
from shared import SIDES
from throttle import Throttle

from pipeline.metrics import of_queue

LOGGER = logging.getLogger("metric")

CONFLICT_LOG_INTERVAL = 1.0  # seconds between two lines about copies with another value (a flood is counted)

CONFLICTING_DUPLICATES = Counter(
    "pipeline_metric_conflicting_duplicates", "Copies of a half dropped with another value than the one kept", ["queue"]
)


class ConflictReport:
    """Counts and logs the conflicts the join noted."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lines = Throttle(CONFLICT_LOG_INTERVAL)
        for side in SIDES:
            of_queue(CONFLICTING_DUPLICATES, side)  # shown as 0 until the first

    def report(self, conflicts: list[Conflict]) -> None:
        now = self._clock()
        for conflict in conflicts:
            of_queue(CONFLICTING_DUPLICATES, conflict.side).inc()
            if not self._lines.ready(now):
                self._lines.hold()
                continue
            held = self._lines.let_through(now)
            LOGGER.warning(
                "dropped a copy of id %r on %s with another value: kept %r (the first that came), dropped %r%s",
                conflict.row_id,
                conflict.side,
                conflict.kept,
                conflict.dropped,
                f" ({held} more such copies since the last line)" if held else "",
            )
        if self._lines.held and self._lines.ready(now):
            LOGGER.warning(
                "dropped %d more copies with another value than the one kept since the last line "
                "(pipeline_metric_conflicting_duplicates_total counts them by queue)",
                self._lines.let_through(now),
            )
