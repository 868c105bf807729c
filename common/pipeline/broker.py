"""One reliable AMQP connection: reconnect, topology, streaming confirms, acks after the effect, shutdown.

A service gives the queues it touches, a handler per queue it consumes and, if it needs them, hooks for
"ready", "connection lost" and "stopping". Everything that makes the pipeline lose nothing lives here:

- publishes are confirmed as a stream: a window of unconfirmed messages, acks and nacks handled as they come;
  nacked messages are published again, and so are a producer's unconfirmed messages after a reconnect; nacks alone
  from one queue for NACK_RECONNECT_AFTER seconds (whatever other queues confirm meanwhile) bring a new connection
  (and channel), to the next node if there are several;
- deliveries are acked only when the service says their effect is safe, with ``multiple=True`` only over a run
  of settled tags; bad messages are rejected (no requeue) into the queue's dead-letter queue; a delivery of a
  channel since lost is never acked or rejected on the next one (the broker delivers it again);
- the broker may be down at start or vanish at any time: the service reconnects with capped backoff;
- a broker short of memory or disk blocks the connection (``connection.blocked``): logged, shown by the gauge
  ``pipeline_connection_blocked`` and as a problem that stops the touches of HEALTH_FILE until it is unblocked;
  blocked for BLOCKED_CONNECTION_TIMEOUT, the connection is dropped and opened again;
- a handler that raises while handling one message costs that message alone: a ``BadMessage`` is rejected into the
  dead-letter queue with its reason, any other exception too, logged as a fault of ours; the connection stays;
- SIGTERM and SIGINT (``StopSignals``) stop consuming, let in-flight work finish for a few seconds, close (without
  waiting more than CLOSE_TIMEOUT for the broker's answer), return 0.

Here: ``Broker`` (what services call, and the lifecycle: ``Lifecycle``, the stop conditions; ``Health``, the problems
and HEALTH_FILE). Beside it: ``Link`` (link.py), one connection and its channel, made on connect and dropped on loss
with all that means something on that channel alone (``AckLedger``, settled runs; ``Confirms``, confirms.py, the
confirm policy); ``Connector`` (connector.py), one link after another over the nodes; ``PublishWindow``
(unconfirmed and unsent messages, which outlive a link).
"""

from __future__ import annotations

import enum
import functools
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pika
from pika.adapters.select_connection import IOLoop

from pipeline import metrics
from pipeline.broker_surface import Delivery, Handler, Hook
from pipeline.connector import Connector
from pipeline.health import HEALTH_INTERVAL
from pipeline.link import Link, on_message_for
from pipeline.messages import CONTENT_TYPE
from pipeline.publish_window import Outgoing, PublishWindow
from pipeline.settings import AMQP_SHORT_MAX, Common, SettingsError
from pipeline.stop_signals import StopSignals
from pipeline.topology import declarations

LOGGER = logging.getLogger(__name__)

CONFIRM_WINDOW = 2000
STOP_TIMEOUT = 5.0
# pika's blocked_connection_timeout: seconds a connection may stay blocked by a resource alarm before pika drops it
# and we connect again (to the next node if there are several). A blocked connection is not read by the broker and
# not watched by heartbeats, so a node that dies meanwhile would go unnoticed; but an alarm is cluster-wide and a new
# connection is blocked again at its first publish, each time sending back our unacked deliveries. Five minutes: a
# dead node is found in that time, and a long alarm costs a reconnect every five minutes, not a storm of them on a
# broker already short of memory or disk. A URL's own ?blocked_connection_timeout= wins.
BLOCKED_CONNECTION_TIMEOUT = 300.0
PRECONDITION_FAILED = 406


class State(enum.Enum):
    RUNNING = "running"
    STOPPING = "stopping"  # close once in-flight work is confirmed, or after STOP_TIMEOUT
    DRAINING = "draining"  # close once every message is confirmed, however long it takes


@functools.lru_cache(maxsize=256)  # one object per second of creation, not one per message
def persistent(created: int | None = None, expires_in_ms: int | None = None) -> pika.BasicProperties:
    """Properties of a persistent JSON message; ``created`` goes in ``timestamp``, ``expires_in_ms`` in
    ``expiration`` (the message's time to live in its queue)."""
    expiration = None if expires_in_ms is None else str(expires_in_ms)
    return pika.BasicProperties(delivery_mode=2, content_type=CONTENT_TYPE, timestamp=created, expiration=expiration)


def connection_parameters(url: str) -> pika.URLParameters:
    """pika's parameters for ``url``, with BLOCKED_CONNECTION_TIMEOUT unless the URL sets its own."""
    parameters = pika.URLParameters(url)
    if parameters.blocked_connection_timeout is None:
        parameters.blocked_connection_timeout = BLOCKED_CONNECTION_TIMEOUT
    return parameters


def _nothing() -> None:
    return None


class Broker:
    """One service's way to the broker: what services call, and the lifecycle of one ``Link`` after another."""

    def __init__(self, settings: Common, queues: list[str], *, prefetch: int = 0) -> None:
        """``prefetch``: unacked deliveries per consumer (PREFETCH), 0 for no limit; beyond AMQP's 16 bits it is a
        ``SettingsError`` here rather than a failure inside basic_qos at every connect."""
        if not 0 <= prefetch <= AMQP_SHORT_MAX:
            raise SettingsError(f"PREFETCH must be from 1 to {AMQP_SHORT_MAX}, got {prefetch}")
        self.ioloop = IOLoop()
        self._settings = settings
        self._handlers: dict[str, Handler] = {}
        self._paused: set[str] = set()
        self._on_ready: Hook = _nothing
        self._on_lost: Hook = _nothing
        self._on_stopping: Hook = _nothing
        self._on_window_open: Hook = _nothing

        self._window = PublishWindow(CONFIRM_WINDOW)
        self._lifecycle = Lifecycle(self._window)
        self._health = Health(self.ioloop, settings.health_file, lambda: self.is_ready)
        self.rejected: Counter[str] = Counter()  # messages rejected into dead-letter queues, by queue
        self.connections_lost = 0
        topology = declarations(queues, settings.queue_type)
        new_link = functools.partial(
            Link, self, ioloop=self.ioloop, declarations=topology, prefetch=prefetch, window=self._window
        )
        nodes = [connection_parameters(url) for url in settings.amqp_urls]
        self._connector = Connector(
            self.ioloop, nodes, new_link, keeps_running=self._lifecycle.keeps_running, on_reconnect=self._count_loss
        )

    # --- what services call -------------------------------------------------------------------

    def add_hooks(
        self,
        *,
        on_ready: Hook | None = None,
        on_lost: Hook | None = None,
        on_stopping: Hook | None = None,
        on_window_open: Hook | None = None,
    ) -> None:
        """Set what to call when ready, when the channel is lost, when stopping, and when the window has room."""
        self._on_ready = on_ready or self._on_ready
        self._on_lost = on_lost or self._on_lost
        self._on_stopping = on_stopping or self._on_stopping
        self._on_window_open = on_window_open or self._on_window_open

    def consume(self, queue: str, handler: Handler) -> None:
        """Call ``handler`` for each message of ``queue``; it must end in ``ack`` or ``reject``."""
        self._handlers[queue] = handler
        metrics.of_queue(metrics.REJECTED, queue)  # served at 0 from the start: a rate sees the first rejection

    def pause(self, queue: str) -> None:
        """Stop taking messages from ``queue`` (those already sent to us but not handled go back to it)."""
        self._paused.add(queue)
        if (link := self._connector.link) is not None:
            link.cancel(queue)

    def resume(self, queue: str) -> None:
        """Take messages from ``queue`` again after ``pause``."""
        self._paused.discard(queue)
        link = self._connector.link
        if link is not None and link.is_ready and self._lifecycle.running:
            self._consume(link, queue)

    def is_paused(self, queue: str) -> bool:
        return queue in self._paused

    def run(self, *, handle_signals: bool = True) -> int:
        """Connect and serve until stopped; return the process exit code."""
        if handle_signals:
            self._stop_signals = StopSignals(self.ioloop, self.stop)
        self.ioloop.add_callback(self._connector.connect)
        self.ioloop.call_later(HEALTH_INTERVAL, self._health.touch)
        self.ioloop.start()
        return self._lifecycle.exit_code

    @property
    def is_ready(self) -> bool:
        link = self._connector.link  # read once: tests ask from another thread
        return link is not None and link.is_ready

    @property
    def node(self) -> str:
        """host:port of the node this service connects (or last tried to connect) to."""
        return self._connector.node

    def call_later(self, delay: float, callback: Hook) -> object:
        """Run ``callback`` on the loop after ``delay`` seconds; returns a timer for ``cancel_timer``."""
        return self.ioloop.call_later(delay, callback)

    def call_soon(self, callback: Hook) -> None:
        """Run ``callback`` on the loop once the current callbacks are done."""
        self.ioloop.add_callback(callback)

    def cancel_timer(self, timer: object) -> None:
        self.ioloop.remove_timeout(timer)

    def can_publish(self) -> bool:
        """True while connected and the window of unconfirmed messages has room."""
        return self.is_ready and self._lifecycle.running and self._window.has_room()

    def publish(
        self,
        queue: str,
        body: bytes,
        on_confirmed: Hook | None = None,
        *,
        resend: bool = True,
        properties: pika.BasicProperties | None = None,
    ) -> None:
        """Publish persistently (``properties``: ``persistent(...)``); ``on_confirmed`` runs once the broker has
        confirmed the message."""
        message = Outgoing(queue, body, on_confirmed, resend, properties or persistent())
        link = self._connector.link
        if link is not None and link.can_send():
            link.send(message)
        elif resend:
            self._window.wait(message)

    def ack(self, delivery: Delivery) -> None:
        """Mark a delivery done; acks go out at the end of this loop iteration. Settling twice changes nothing."""
        if self._connector.link is not None and self._connector.link.ack(delivery):
            metrics.of_queue(metrics.CONSUMED, delivery.queue).inc()

    def reject(self, delivery: Delivery) -> None:
        """Send a delivery to its dead-letter queue, unless it was settled already."""
        if self._connector.link is not None and self._connector.link.reject(delivery):
            self.rejected[delivery.queue] += 1
            metrics.of_queue(metrics.REJECTED, delivery.queue).inc()

    def set_problem(self, name: str, reason: str | None) -> None:
        """A condition that makes the service unhealthy while it lasts (``reason`` None: it is over)."""
        self._health.set_problem(name, reason)

    @property
    def problems(self) -> dict[str, str]:
        """The problems that last, by name: their reasons."""
        return dict(self._health.problems)

    def stop(self, *, drain_forever: bool = False) -> None:
        """Stop consuming and close once in-flight work is confirmed: within STOP_TIMEOUT, or, draining, whenever.

        A plain stop (a signal) during a drain ends the drain after STOP_TIMEOUT.
        """
        first = self._lifecycle.running
        if not self._lifecycle.stop(drain_forever=drain_forever):
            return
        if first:
            LOGGER.info("stopping")
            if self._connector.link is not None:
                self._connector.link.cancel_consumers()
            self._on_stopping()
        if not drain_forever:
            self.ioloop.call_later(STOP_TIMEOUT, self._connector.close)
        self._close_when_idle()

    # --- what its link and its connector tell it ----------------------------------------------

    def on_link_ready(self, link: Link) -> None:
        for queue in self._handlers:
            if self._lifecycle.running and queue not in self._paused:
                self._consume(link, queue)
        self._connector.connected()
        LOGGER.info(
            "ready: connected to %s, queues declared, consuming %s", self.node, ", ".join(self._handlers) or "nothing"
        )
        self._health.touch(reschedule=False)
        link.send_waiting()
        self._on_ready()

    def on_channel_closed(self, reason: BaseException, *, declared: bool) -> None:
        if getattr(reason, "reply_code", None) == PRECONDITION_FAILED and not declared:
            LOGGER.error(
                "a queue exists with other arguments than QUEUE_TYPE=%s gives (%s); delete it or change QUEUE_TYPE",
                self._settings.queue_type,
                getattr(reason, "reply_text", reason),
            )
            self._lifecycle.fail(exit_code=2)
        elif self._lifecycle.running:
            LOGGER.warning("channel closed (%s)", reason)

    def on_channel_lost(self) -> None:
        """Its deliveries come back; its producers' unconfirmed messages go again on the next channel."""
        self._window.channel_lost()
        self._on_lost()

    def on_confirms(self) -> None:
        """After each confirm: a stopping service closes once idle, a running one hears when the window has room."""
        if not self._lifecycle.running:
            self._close_when_idle()
        elif self.can_publish():
            self._on_window_open()

    def is_stopping(self) -> bool:
        return self._lifecycle.stopping

    def _count_loss(self) -> None:
        self.connections_lost += 1

    # --- consuming and closing ----------------------------------------------------------------

    def _consume(self, link: Link, queue: str) -> None:
        link.consume(queue, on_message_for(queue, self._handlers[queue], link, self.reject))

    def _close_when_idle(self) -> None:
        if self._lifecycle.may_close(connected=self._connector.link is not None):
            self._connector.close()


class Lifecycle:
    """Where the service is in its life (its ``State``), and the stop conditions that follow, each written once."""

    def __init__(self, window: PublishWindow) -> None:
        self.state = State.RUNNING
        self.exit_code = 0
        self._window = window

    @property
    def running(self) -> bool:
        return self.state is State.RUNNING

    @property
    def stopping(self) -> bool:
        return self.state is State.STOPPING

    def stop(self, *, drain_forever: bool) -> bool:
        """Stop, or drain; False if that changes nothing (stopping already, or draining again). A plain stop during
        a drain turns it into a stop."""
        if not self.running and (drain_forever or self.stopping):
            return False
        self.state = State.DRAINING if drain_forever else State.STOPPING
        return True

    def fail(self, *, exit_code: int) -> None:
        """Stop with ``exit_code``: something no reconnect mends."""
        self.exit_code = exit_code
        self.state = State.STOPPING

    def keeps_running(self) -> bool:
        """Running, or draining while messages are unconfirmed: a connection lost is opened again."""
        return self.running or (self.state is State.DRAINING and len(self._window) > 0)

    def may_close(self, *, connected: bool) -> bool:
        """(Stopped) nothing is left to confirm, or nothing can be: not connected, and no drain waits for a
        connection."""
        return len(self._window) == 0 or (not connected and self.state is not State.DRAINING)


class Health:
    """The problems that make the service unhealthy while they last, and the touches of HEALTH_FILE while none does."""

    def __init__(self, ioloop: IOLoop, health_file: str, is_ready: Callable[[], bool]) -> None:
        self._ioloop = ioloop
        self._health_file = health_file
        self._is_ready = is_ready
        self.problems: dict[str, str] = {}  # by name: its reason

    def set_problem(self, name: str, reason: str | None) -> None:
        if reason is None:
            if self.problems.pop(name, None) is not None and not self.problems:
                self.touch(reschedule=False)  # healthy again now, not at the next touch
        else:
            self.problems[name] = reason

    def touch(self, reschedule: bool = True) -> None:
        """Touch HEALTH_FILE while ready and no problem lasts."""
        if self._is_ready() and not self.problems and self._health_file:
            try:
                Path(self._health_file).touch()
            except OSError as error:  # the file's disk full or gone: the healthcheck says so, the service goes on
                LOGGER.debug("could not touch HEALTH_FILE: %s", error)
        if reschedule:
            self._ioloop.call_later(HEALTH_INTERVAL, self.touch)
