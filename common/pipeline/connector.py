"""One link after another: to the nodes in turn with a capped backoff between two attempts, and the last one closed.

Like pika's ReconnectingExampleConsumer, the connector makes a new ``Link`` for each attempt and keeps nothing of
the old one. The link tells it how its connection went; the broker, whether the service keeps running.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable

import pika
from pika.adapters.select_connection import IOLoop

from pipeline import metrics
from pipeline.link import Link

LOGGER = logging.getLogger("pipeline.broker")  # the runtime's log lines keep the name they always had

RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 5.0
CLOSE_TIMEOUT = 5.0  # seconds to wait for the broker's answer to closing the connection


class Connector:
    """The current link, if any, and where and when the next one goes."""

    def __init__(
        self,
        ioloop: IOLoop,
        nodes: list[pika.URLParameters],
        new_link: Callable[[Connector, pika.URLParameters, int], Link],
        *,
        keeps_running: Callable[[], bool],
        on_reconnect: Callable[[], None],
    ) -> None:
        """``new_link(connector, parameters, generation)`` opens a link to a node; ``keeps_running()`` says whether
        to connect again after a loss; ``on_reconnect`` hears of each connection lost and opened again."""
        self.link: Link | None = None  # the connection open or opening, None between two
        self._ioloop = ioloop
        self._nodes = nodes
        self._node = random.randrange(len(nodes))  # services spread over a cluster's nodes
        self._new_link = new_link
        self._keeps_running = keeps_running
        self._on_reconnect = on_reconnect
        self._generations = itertools.count()
        self._delay = RECONNECT_FIRST_DELAY
        self._timer: object | None = None

    @property
    def node(self) -> str:
        """host:port of the node connected (or last tried)."""
        parameters = self._nodes[self._node]
        return f"{parameters.host}:{parameters.port}"

    def connect(self) -> None:
        self._timer = None
        LOGGER.info("connecting to %s", self.node)
        self.link = self._new_link(self, self._nodes[self._node], next(self._generations))

    def connected(self) -> None:
        """The link is ready: the next loss waits RECONNECT_FIRST_DELAY again."""
        self._delay = RECONNECT_FIRST_DELAY

    def on_link_open(self, link: Link) -> None:
        if self._keeps_running():
            link.open_channel()
        else:
            self.close()  # stopped while it was opening: close it now that it can be

    def on_link_failed(self, error: BaseException) -> None:
        self.link = None
        self._reconnect_or_end(f"broker unreachable at {self.node} ({str(error) or type(error).__name__})")

    def on_link_closed(self, reason: BaseException) -> None:
        self.link = None
        if self._keeps_running():
            self._on_reconnect()
            metrics.RECONNECTS.inc()
        else:
            LOGGER.info("connection closed")
        self._reconnect_or_end(f"connection lost to {self.node} ({reason})")

    def _reconnect_or_end(self, why: str) -> None:
        """Connect again after the backoff, to the next node if there are several; or, stopped, end the loop."""
        if not self._keeps_running():
            self._ioloop.stop()
            return
        self._node = (self._node + 1) % len(self._nodes)
        LOGGER.warning("%s; reconnecting to %s in %.1f s", why, self.node, self._delay)
        self._timer = self._ioloop.call_later(self._delay, self.connect)
        self._delay = min(self._delay * 2, RECONNECT_MAX_DELAY)

    def close(self) -> None:
        """Connect no more, close the link; the loop stops once it is closed (or at once without one)."""
        if self._timer is not None:
            self._ioloop.remove_timeout(self._timer)
            self._timer = None
        if self.link is None:
            self._ioloop.stop()
            return
        self.link.close()
        # still opening: pika 1.4 cannot abort its handshake (it reports the class AMQPConnectionWorkflowAborted
        # where an instance is expected, and raises), so it closes once open, or fails, or the timer stops the loop
        self._ioloop.call_later(CLOSE_TIMEOUT, self._stop_without_close_ok)

    def _stop_without_close_ok(self) -> None:
        """A broker busy electing leaders may not answer the close for long: what was acked or confirmed is safe,
        the rest comes back, so stop waiting."""
        LOGGER.warning("the broker did not answer the close within %g s; stopping without it", CLOSE_TIMEOUT)
        self._ioloop.stop()
