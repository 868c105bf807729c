"""How far each stream (y_true, y_pred) has come in event time, and so which waiting halves are orphans.

A half is an orphan once the other stream has moved past it: it has delivered rows created more than
METRIC_ORPHAN_TIMEOUT seconds after the half (the timeout allows for the reordering of model replicas and
redeliveries), and did so at least ORPHAN_GRACE seconds ago by metric's clock (rows that a batch of replicas sends
together may come in any order within it). A stream that delivers nothing does not move, so a model down for hours,
or labels that come a day late, orphan nothing.
"""

from __future__ import annotations

import heapq
from collections import deque

from pipeline.topology import Y_PRED, Y_TRUE

WATERMARK_RANK = 100  # the stream's position is the 100th newest creation time it delivered: one stray cannot move it
ORPHAN_GRACE = 10.0  # seconds between a stream passing a half and the half being released
PARTNER_SIDE = {Y_TRUE: Y_PRED, Y_PRED: Y_TRUE}


def event_time(timestamp: int | None, now: float) -> int:
    """A message's creation time: its AMQP timestamp, never later than ``now``; ``now`` if it has none."""
    return int(now) if timestamp is None else min(timestamp, int(now))


class Watermark:
    """The creation time one stream has reached: the WATERMARK_RANK-th newest it has delivered (None until then)."""

    def __init__(self, start: int | None = None) -> None:
        self._newest: list[int] = [] if start is None else [start] * WATERMARK_RANK  # a min-heap

    def see(self, created: int) -> None:
        if len(self._newest) < WATERMARK_RANK:
            heapq.heappush(self._newest, created)
        elif created > self._newest[0]:
            heapq.heapreplace(self._newest, created)

    @property
    def value(self) -> int | None:
        return self._newest[0] if len(self._newest) == WATERMARK_RANK else None


class Streams:
    """Both streams' watermarks, now and as they were ORPHAN_GRACE seconds ago (``sample`` keeps the history)."""

    def __init__(self, saved: dict[str, int], timeout: float) -> None:
        self._timeout = int(timeout)
        self._marks = {side: Watermark(saved.get(f"watermark_{side}")) for side in (Y_TRUE, Y_PRED)}
        self._history: deque[tuple[float, dict[str, int | None]]] = deque()
        self._passed: dict[str, int | None] = {Y_TRUE: None, Y_PRED: None}

    def see(self, side: str, created: int) -> None:
        self._marks[side].see(created)

    def position(self, side: str) -> int | None:
        return self._marks[side].value

    def sample(self, now: float) -> None:
        """Note the watermarks at ``now``; those noted ORPHAN_GRACE seconds ago or more decide orphans."""
        self._history.append((now, {side: mark.value for side, mark in self._marks.items()}))
        while self._history and now - self._history[0][0] >= ORPHAN_GRACE:
            _, self._passed = self._history.popleft()

    def orphans_before(self) -> dict[str, int | None]:
        """For each side, the creation time before which its waiting halves are orphans (None: none is)."""
        return {side: self._minus_timeout(self._passed[PARTNER_SIDE[side]]) for side in (Y_TRUE, Y_PRED)}

    def forget_before(self) -> int | None:
        """The creation time before which handled ids may be forgotten: both streams passed them long ago."""
        true_at, pred_at = self._passed[Y_TRUE], self._passed[Y_PRED]
        if true_at is None or pred_at is None:
            return None
        return self._minus_timeout(min(true_at, pred_at))

    def saved(self) -> dict[str, int]:
        return {f"watermark_{side}": value for side, mark in self._marks.items() if (value := mark.value) is not None}

    def _minus_timeout(self, position: int | None) -> int | None:
        return None if position is None else position - self._timeout
