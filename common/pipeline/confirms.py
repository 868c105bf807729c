"""The confirm policy: what the broker's nacks decide.

A nacked message waits NACK_RETRY_DELAY and is published again. Nacks alone from one queue (no ack for that queue
between them) for NACK_RECONNECT_AFTER seconds mean that the channel will not take its publishes: a new connection
(and channel) is due, to the next node if there are several; not while stopping, which closes within STOP_TIMEOUT
anyway, but while draining, which waits on those very messages. Acks from other queues meanwhile change nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

NACK_RETRY_DELAY = 0.5  # seconds before nacked messages go again: a cluster without a majority nacks them at once
# Nacks for one queue with no ack for it between them for this long: reconnect, to the next node if there are
# several. RabbitMQ before 3.13 asks a quorum queue's leader as its record names it on a channel's first publish, and
# if that node just died the channel nacks every publish to the queue until the node returns; a new channel asks
# again. Counted per queue: the channel goes on confirming publishes to the other queues (features publishes to two).
NACK_RECONNECT_AFTER = 5.0


@dataclass(frozen=True, slots=True)
class NackedTooLong:
    """The decision to reconnect: the channel has nacked every publish to ``queue`` for ``seconds``."""

    queue: str
    seconds: float


class NackStreaks:
    """For each queue of one channel, when its run of nacks began (no ack for the queue since)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: dict[str, float] = {}

    def acked(self, queue: str) -> None:
        """An ack for ``queue`` ends its streak."""
        self._since.pop(queue, None)

    def reconnect_due(self, nacked: Iterable[str], *, stopping: bool) -> NackedTooLong | None:
        """Note a nack for each queue in ``nacked``; the longest streak once it has lasted NACK_RECONNECT_AFTER
        (then every streak starts again), or None: too short yet, or ``stopping``."""
        now = self._clock()
        for queue in nacked:
            self._since.setdefault(queue, now)
        if not self._since:
            return None
        queue, since = min(self._since.items(), key=lambda item: item[1])
        if now - since < NACK_RECONNECT_AFTER or stopping:
            return None
        self._since.clear()
        return NackedTooLong(queue, now - since)
