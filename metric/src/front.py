"""The front: the halves that wait in memory, by id and in the order they came (the inbox's order).

Most halves find their partner within seconds, so they wait here first; one that waited FRONT_SECONDS, or the oldest
past FRONT_HALVES, is due to move to disk, so memory stays flat however many wait.
"""

from __future__ import annotations

from collections import deque

from waiting import Half

from pipeline.topology import Y_PRED, Y_TRUE

FRONT_HALVES = 50_000  # halves waiting in memory at most; older ones move to disk
FRONT_SECONDS = 60.0  # seconds a half waits in memory before it moves to disk (and the inbox can be cut)


class Front:
    """At most one side of an id waits here: the two would have paired."""

    def __init__(self) -> None:
        self._by_id: dict[str, Half] = {}
        self._arrivals: deque[Half] = deque()  # the front in inbox order, with halves that left it since
        self._count = {Y_TRUE: 0, Y_PRED: 0}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, row_id: str) -> bool:
        return row_id in self._by_id

    def get(self, row_id: str) -> Half | None:
        return self._by_id.get(row_id)

    def holds(self, half: Half) -> bool:
        """Whether ``half`` itself waits here (not a copy of it, and it has not left)."""
        return self._by_id.get(half.row_id) is half

    def waiting(self, side: str) -> int:
        return self._count[side]

    def created_times(self) -> list[int]:
        return [half.created for half in self._by_id.values()]

    def enter(self, half: Half) -> None:
        self._by_id[half.row_id] = half
        self._arrivals.append(half)
        self._count[half.side] += 1

    def leave(self, half: Half) -> None:
        del self._by_id[half.row_id]
        self._count[half.side] -= 1

    def take_due(self, now: float) -> list[Half]:
        """Take out, oldest first, the halves that waited FRONT_SECONDS and the oldest past FRONT_HALVES."""
        due = []
        self._drop_departed()
        while self._arrivals and (len(self._by_id) > FRONT_HALVES or now - self._arrivals[0].arrived > FRONT_SECONDS):
            half = self._arrivals.popleft()
            self.leave(half)
            due.append(half)
            self._drop_departed()
        if len(self._arrivals) > 2 * FRONT_HALVES:  # a half waits at the head while thousands pair behind it
            self._arrivals = deque(half for half in self._arrivals if self.holds(half))
        return due

    def created_before(self, created_before: dict[str, int | None]) -> list[Half]:
        """The halves created before ``created_before[side]`` (None: none of that side)."""
        return [
            half
            for half in self._by_id.values()
            if (before := created_before[half.side]) is not None and half.created < before
        ]

    def first_seq(self) -> int | None:
        """The inbox seq of the oldest half still here: the inbox before it is no longer needed."""
        self._drop_departed()
        return self._arrivals[0].seq if self._arrivals else None

    def _drop_departed(self) -> None:
        """Drop the oldest arrivals that left the front (paired, or moved to disk)."""
        while self._arrivals and not self.holds(self._arrivals[0]):
            self._arrivals.popleft()
