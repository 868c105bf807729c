"""The confirm policy: what the broker's acks and nacks of one channel's publishes decide.

An ack settles its messages (each one's ``on_confirmed`` runs). A nacked message waits NACK_RETRY_DELAY and is
published again. Nacks alone from one queue (no ack for that queue between them) for NACK_RECONNECT_AFTER seconds mean
that the channel will not take its publishes: a new connection (and channel) is due, to the next node if there are
several; not while stopping, which closes within STOP_TIMEOUT anyway, but while draining, which waits on those very
messages. Acks from other queues meanwhile change nothing. ``Confirms`` returns that decision; the link acts on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pika.adapters.select_connection import IOLoop
from pika.spec import Basic

from pipeline import metrics
from pipeline.publish_window import Outgoing, PublishWindow

LOGGER = logging.getLogger("pipeline.broker")  # the runtime's log lines keep the name they always had

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


class Confirms:
    """The confirms of one channel: acks settle their messages, nacks send theirs again or call for a new channel."""

    def __init__(
        self,
        window: PublishWindow,
        ioloop: IOLoop,
        send_waiting: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window
        self._ioloop = ioloop
        self._send_waiting = send_waiting
        self._nack_streaks = NackStreaks(clock)
        self._retry: object | None = None  # the timer that publishes nacked messages again

    def on_confirm(self, method: Any, *, stopping: bool) -> NackedTooLong | None:
        """Take the messages a ``basic.ack`` or ``basic.nack`` covers out of the window; a decision to reconnect, or
        None."""
        messages = self._window.confirmed(method.delivery_tag, method.multiple)
        if isinstance(method, Basic.Nack):
            return self._on_nacked(messages, stopping)
        self._on_acked(messages)
        return None

    def _on_acked(self, messages: list[Outgoing]) -> None:
        for message in messages:
            self._nack_streaks.acked(message.queue)
            metrics.of_queue(metrics.PUBLISHED, message.queue).inc()
            if message.on_confirmed is not None:
                message.on_confirmed()

    def _on_nacked(self, messages: list[Outgoing], stopping: bool) -> NackedTooLong | None:
        for message in messages:
            self._window.wait(message)
        too_long = self._nack_streaks.reconnect_due({message.queue for message in messages}, stopping=stopping)
        if too_long is not None:
            self._cancel_retry()  # what waits goes on the new channel
        elif self._retry is None:
            LOGGER.warning(
                "broker nacked %d message(s); publishing them again in %g s", len(messages), NACK_RETRY_DELAY
            )
            self._retry = self._ioloop.call_later(NACK_RETRY_DELAY, self._send_again)
        return too_long

    def _send_again(self) -> None:
        self._retry = None
        self._send_waiting()

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._ioloop.remove_timeout(self._retry)
            self._retry = None
