"""One reliable AMQP connection: reconnect, topology, streaming confirms, acks after the effect, shutdown.

A service gives the queues it touches, a handler per queue it consumes and, if it needs them, hooks for
"ready", "connection lost" and "stopping". Everything that makes the pipeline lose nothing lives here:

- publishes are confirmed as a stream: a window of unconfirmed messages, acks and nacks handled as they come;
  nacked messages are published again, and so are a producer's unconfirmed messages after a reconnect; nacks alone
  from one queue for NACK_RECONNECT_AFTER seconds (whatever other queues confirm meanwhile) bring a new connection
  (and channel), to the next node if there are several;
- deliveries are acked only when the service says their effect is safe, with ``multiple=True`` only over a run
  of settled tags; bad messages are rejected (no requeue) into the queue's dead-letter queue;
- the broker may be down at start or vanish at any time: the service reconnects with capped backoff;
- a broker short of memory or disk blocks the connection (``connection.blocked``): logged, shown by the gauge
  ``pipeline_connection_blocked`` and as a problem that stops the touches of HEALTH_FILE until it is unblocked;
  blocked for BLOCKED_CONNECTION_TIMEOUT, the connection is dropped and opened again;
- a handler that raises while handling one message costs that message alone: a ``BadMessage`` is rejected into the
  dead-letter queue with its reason, any other exception too, logged as a fault of ours; the connection stays;
- SIGTERM and SIGINT (``StopSignals``) stop consuming, let in-flight work finish for a few seconds, close (without
  waiting more than CLOSE_TIMEOUT for the broker's answer), return 0.

The bookkeeping lives beside it: ``PublishWindow`` (unconfirmed and unsent messages) and ``AckLedger`` (settled runs).
"""

from __future__ import annotations

import enum
import functools
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
from pika.adapters.select_connection import IOLoop
from pika.spec import Basic

from pipeline import metrics
from pipeline.acks import AckLedger
from pipeline.confirms import NACK_RETRY_DELAY, NackedTooLong, NackStreaks
from pipeline.health import HEALTH_INTERVAL
from pipeline.messages import CONTENT_TYPE, BadMessage
from pipeline.publish_window import Outgoing, PublishWindow
from pipeline.settings import AMQP_SHORT_MAX, Common, SettingsError
from pipeline.stop_signals import StopSignals
from pipeline.topology import dead_letter_queue, declarations

LOGGER = logging.getLogger(__name__)

RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 5.0
CONFIRM_WINDOW = 2000
STOP_TIMEOUT = 5.0
CLOSE_TIMEOUT = 5.0  # seconds to wait for the broker's answer to closing the connection
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


@dataclass(slots=True)
class Delivery:
    """A message received from ``queue``; ``generation`` tells which channel its tag belongs to; ``created`` is its
    AMQP ``timestamp`` property (Unix seconds), if it has one."""

    queue: str
    body: bytes
    tag: int
    generation: int
    redelivered: bool = False
    created: int | None = None


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


Handler = Callable[[Delivery], None]
Hook = Callable[[], None]


def _nothing() -> None:
    return None


class Broker:
    """Connection, channel and the bookkeeping of confirms and acks for one service."""

    def __init__(self, settings: Common, queues: list[str], *, prefetch: int = 0) -> None:
        """``prefetch``: unacked deliveries per consumer (PREFETCH), 0 for no limit; beyond AMQP's 16 bits it is a
        ``SettingsError`` here rather than a failure inside basic_qos at every connect."""
        if not 0 <= prefetch <= AMQP_SHORT_MAX:
            raise SettingsError(f"PREFETCH must be from 1 to {AMQP_SHORT_MAX}, got {prefetch}")
        self.ioloop = IOLoop()
        self._settings = settings
        self._nodes = [connection_parameters(url) for url in settings.amqp_urls]
        self._node = random.randrange(len(self._nodes))  # services spread over a cluster's nodes
        self._declarations = declarations(queues, settings.queue_type)
        self._prefetch = prefetch
        self._handlers: dict[str, Handler] = {}
        self._paused: set[str] = set()
        self._consumer_tags: dict[str, str] = {}
        self._on_ready: Hook = _nothing
        self._on_lost: Hook = _nothing
        self._on_stopping: Hook = _nothing
        self._on_window_open: Hook = _nothing

        self._connection: pika.SelectConnection | None = None
        self._channel: Any = None
        self._generation = 0
        self._ready = False
        self._state = State.RUNNING
        self._exit_code = 0
        self._reconnect_delay = RECONNECT_FIRST_DELAY
        self._reconnect_timer: Any = None

        self._problems: dict[str, str] = {}  # what makes the service unhealthy while it lasts, by name
        self.rejected: Counter[str] = Counter()  # messages rejected into dead-letter queues, by queue
        self.connections_lost = 0
        self._window = PublishWindow(CONFIRM_WINDOW)
        self._acks = AckLedger()
        self._ack_scheduled = False
        self._nack_timer: Any = None
        self._nack_streaks = NackStreaks()

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
        consumer_tag = self._consumer_tags.pop(queue, None)
        if consumer_tag is not None and self._channel is not None and self._channel.is_open:
            self._channel.basic_cancel(consumer_tag)

    def resume(self, queue: str) -> None:
        """Take messages from ``queue`` again after ``pause``."""
        self._paused.discard(queue)
        if self._ready and self._state is State.RUNNING and queue not in self._consumer_tags:
            self._consume(queue)

    def is_paused(self, queue: str) -> bool:
        return queue in self._paused

    def run(self, *, handle_signals: bool = True) -> int:
        """Connect and serve until stopped; return the process exit code."""
        if handle_signals:
            self._stop_signals = StopSignals(self.ioloop, self.stop)
        self.ioloop.add_callback(self._connect)
        self.ioloop.call_later(HEALTH_INTERVAL, self._touch_health)
        self.ioloop.start()
        return self._exit_code

    @property
    def is_ready(self) -> bool:
        return self._ready

    @property
    def node(self) -> str:
        """host:port of the node this service connects (or last tried to connect) to."""
        parameters = self._nodes[self._node]
        return f"{parameters.host}:{parameters.port}"

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
        return self._ready and self._state is State.RUNNING and self._window.has_room()

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
        if self._ready and self._channel.is_open:
            self._send(message)
        elif resend:
            self._window.wait(message)

    def ack(self, delivery: Delivery) -> None:
        """Mark a delivery done; acks go out at the end of this loop iteration. Settling twice changes nothing."""
        if delivery.generation != self._generation:
            return  # its channel is gone and the broker will deliver it again
        if not self._acks.ack(delivery.tag):
            return
        metrics.of_queue(metrics.CONSUMED, delivery.queue).inc()
        if not self._ack_scheduled:
            self._ack_scheduled = True
            self.ioloop.add_callback(self._flush_acks)

    def reject(self, delivery: Delivery) -> None:
        """Send a delivery to its dead-letter queue, unless it was settled already."""
        if delivery.generation != self._generation or not self._channel.is_open:
            return  # its channel is gone or closing and the broker will deliver it again
        if self._acks.reject(delivery.tag):
            self._channel.basic_reject(delivery.tag, requeue=False)
            self.rejected[delivery.queue] += 1
            metrics.of_queue(metrics.REJECTED, delivery.queue).inc()

    def set_problem(self, name: str, reason: str | None) -> None:
        """A condition that makes the service unhealthy while it lasts (``reason`` None: it is over)."""
        if reason is None:
            if self._problems.pop(name, None) is not None and not self._problems:
                self._touch_health(reschedule=False)  # healthy again now, not at the next touch
        else:
            self._problems[name] = reason

    @property
    def problems(self) -> dict[str, str]:
        """The problems that last, by name: their reasons."""
        return dict(self._problems)

    def stop(self, *, drain_forever: bool = False) -> None:
        """Stop consuming and close once in-flight work is confirmed: within STOP_TIMEOUT, or, draining, whenever.

        A plain stop (a signal) during a drain ends the drain after STOP_TIMEOUT.
        """
        if self._state is not State.RUNNING and (drain_forever or self._state is State.STOPPING):
            return
        first = self._state is State.RUNNING
        self._state = State.DRAINING if drain_forever else State.STOPPING
        if first:
            LOGGER.info("stopping")
            self._cancel_consumers()
            self._on_stopping()
        if not drain_forever:
            self.ioloop.call_later(STOP_TIMEOUT, self._close)
        self._close_when_idle()

    # --- connection ---------------------------------------------------------------------------

    def _connect(self) -> None:
        self._reconnect_timer = None
        LOGGER.info("connecting to %s", self.node)
        self._connection = pika.SelectConnection(
            self._nodes[self._node],
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self.ioloop,
        )
        self._connection.add_on_connection_blocked_callback(self._on_blocked)
        self._connection.add_on_connection_unblocked_callback(self._on_unblocked)

    def _on_connection_open(self, connection: pika.SelectConnection) -> None:
        if self._state is State.STOPPING or (self._state is State.DRAINING and not self._must_drain()):
            self._close()  # stopped while it was opening: close it now that it can be
            return
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, _connection: pika.SelectConnection, error: BaseException) -> None:
        self._connection = None
        self._forget_blocked()
        self._schedule_reconnect(f"broker unreachable at {self.node} ({str(error) or type(error).__name__})")

    def _on_connection_closed(self, _connection: pika.SelectConnection, reason: BaseException) -> None:
        self._connection = None
        self._forget_channel()
        self._forget_blocked()
        if self._state is not State.RUNNING and not self._must_drain():
            LOGGER.info("connection closed")
            self.ioloop.stop()
            return
        self.connections_lost += 1
        metrics.RECONNECTS.inc()
        self._schedule_reconnect(f"connection lost to {self.node} ({reason})")

    def _on_blocked(self, _connection: Any, frame: Any) -> None:
        reason = getattr(frame.method, "reason", "") or "a resource alarm"
        LOGGER.warning(
            "broker %s blocked the connection (%s): nothing is published until it unblocks it", self.node, reason
        )
        metrics.CONNECTION_BLOCKED.set(1)
        self.set_problem("blocked", f"the broker blocked the connection ({reason})")

    def _on_unblocked(self, _connection: Any, _frame: Any) -> None:
        LOGGER.warning("broker %s unblocked the connection", self.node)
        self._forget_blocked()

    def _forget_blocked(self) -> None:
        """A connection unblocked or gone: a new one is blocked only if it publishes while the alarm lasts."""
        metrics.CONNECTION_BLOCKED.set(0)
        self.set_problem("blocked", None)

    def _schedule_reconnect(self, why: str) -> None:
        """Try again after the capped backoff, at the next node if there are several."""
        if self._state is not State.RUNNING and not self._must_drain():
            self.ioloop.stop()
            return
        self._node = (self._node + 1) % len(self._nodes)
        LOGGER.warning("%s; reconnecting to %s in %.1f s", why, self.node, self._reconnect_delay)
        self._reconnect_timer = self.ioloop.call_later(self._reconnect_delay, self._connect)
        self._reconnect_delay = min(self._reconnect_delay * 2, RECONNECT_MAX_DELAY)

    # --- channel and topology -----------------------------------------------------------------

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_consumer_cancelled)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._declare(0))

    def _declare(self, index: int) -> None:
        if index == len(self._declarations):
            self._channel.basic_qos(prefetch_count=self._prefetch, callback=lambda _frame: self._start_consuming())
            return
        name, arguments = self._declarations[index]
        self._channel.queue_declare(
            name, durable=True, arguments=arguments, callback=lambda _frame: self._declare(index + 1)
        )

    def _start_consuming(self) -> None:
        for queue in self._handlers:
            if self._state is State.RUNNING and queue not in self._paused:
                self._consume(queue)
        self._ready = True
        self._reconnect_delay = RECONNECT_FIRST_DELAY
        LOGGER.info(
            "ready: connected to %s, queues declared, consuming %s", self.node, ", ".join(self._handlers) or "nothing"
        )
        self._touch_health(reschedule=False)
        self._send_waiting()
        self._on_ready()

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        if getattr(reason, "reply_code", None) == PRECONDITION_FAILED and not self._ready:
            LOGGER.error(
                "a queue exists with other arguments than QUEUE_TYPE=%s gives (%s); delete it or change QUEUE_TYPE",
                self._settings.queue_type,
                getattr(reason, "reply_text", reason),
            )
            self._exit_code = 2
            self._state = State.STOPPING
        elif self._state is State.RUNNING:
            LOGGER.warning("channel closed (%s)", reason)
        self._forget_channel()
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _on_consumer_cancelled(self, frame: Any) -> None:
        LOGGER.warning("the broker cancelled consumer %s; reconnecting", frame.method.consumer_tag)
        if self._channel is not None and self._channel.is_open:
            self._channel.close()

    def _forget_channel(self) -> None:
        """Tags of the old channel mean nothing now: its deliveries come back, its producers' messages go again."""
        if self._channel is None:
            return
        self._channel = None
        self._ready = False
        self._nack_streaks = NackStreaks()
        self._consumer_tags.clear()
        self._generation += 1
        self._acks.clear()
        self._window.channel_lost()
        self._on_lost()

    # --- consuming and acking -----------------------------------------------------------------

    def _consume(self, queue: str) -> None:
        on_message = self._on_message_for(queue, self._handlers[queue], self._generation)
        self._consumer_tags[queue] = self._channel.basic_consume(queue, on_message)

    def _on_message_for(self, queue: str, handler: Handler, generation: int) -> Callable[..., None]:
        def on_message(_channel: Any, method: Basic.Deliver, properties: Any, body: bytes) -> None:
            created = properties.timestamp if isinstance(properties.timestamp, int) else None
            delivery = Delivery(queue, body, method.delivery_tag, generation, method.redelivered, created)
            self._acks.received(delivery.tag)
            try:
                handler(delivery)
            except BadMessage as error:
                LOGGER.warning("rejected a message of %s into %s: %s", queue, dead_letter_queue(queue), error)
                self.reject(delivery)
            except Exception as error:  # a fault of ours with this one message: it must not take others with it
                LOGGER.error(
                    "rejected a message of %s into %s after an unexpected %s: %s",
                    queue,
                    dead_letter_queue(queue),
                    type(error).__name__,
                    error,
                )
                LOGGER.debug("the unexpected error in full", exc_info=True)
                self.reject(delivery)

        return on_message

    def _flush_acks(self) -> None:
        """Ack the settled run at the front with one multiple ack, settled ones behind a pending tag singly."""
        self._ack_scheduled = False
        if self._channel is None or not self._channel.is_open:
            return
        acks = self._acks.take_acks()
        if acks.through is not None:
            self._channel.basic_ack(acks.through, multiple=True)
        for tag in acks.singles:
            self._channel.basic_ack(tag)

    def _cancel_consumers(self) -> None:
        if self._channel is not None and self._channel.is_open:
            for consumer_tag in list(self._channel.consumer_tags):
                self._channel.basic_cancel(consumer_tag)

    # --- publishing and confirms --------------------------------------------------------------

    def _send(self, message: Outgoing) -> None:
        self._channel.basic_publish("", message.queue, message.body, message.properties)
        self._window.sent(message)

    def _send_waiting(self) -> None:
        """Publish what waited for a channel, or was nacked, in its order."""
        self._nack_timer = None
        while self._ready and (message := self._window.next_unsent()) is not None:
            self._send(message)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        confirmed = self._window.confirmed(method.delivery_tag, method.multiple)
        if isinstance(method, Basic.Nack):
            for message in confirmed:
                self._window.wait(message)
            nacked = {message.queue for message in confirmed}
            too_long = self._nack_streaks.reconnect_due(nacked, stopping=self._state is State.STOPPING)
            if too_long is not None:
                self._reconnect_for_a_new_channel(too_long)
                return
            if self._nack_timer is None:
                LOGGER.warning(
                    "broker nacked %d message(s); publishing them again in %g s", len(confirmed), NACK_RETRY_DELAY
                )
                self._nack_timer = self.ioloop.call_later(NACK_RETRY_DELAY, self._send_waiting)
        else:
            for message in confirmed:
                self._nack_streaks.acked(message.queue)
                metrics.of_queue(metrics.PUBLISHED, message.queue).inc()
                if message.on_confirmed is not None:
                    message.on_confirmed()
        if self._state is not State.RUNNING:
            self._close_when_idle()
        elif self.can_publish():
            self._on_window_open()

    def _reconnect_for_a_new_channel(self, too_long: NackedTooLong) -> None:
        LOGGER.warning(
            "broker %s nacked every publish to %s for %.0f s; reconnecting for a new channel",
            self.node,
            too_long.queue,
            too_long.seconds,
        )
        self._ready = False  # what is published from now on waits for the new channel
        if self._nack_timer is not None:
            self.ioloop.remove_timeout(self._nack_timer)
            self._nack_timer = None
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    # --- shutdown and health ------------------------------------------------------------------

    def _must_drain(self) -> bool:
        """While stopping for good (a producer's limit reached), unconfirmed messages still hold the exit."""
        return self._state is State.DRAINING and len(self._window) > 0

    def _close_when_idle(self) -> None:
        if len(self._window) == 0 or (self._connection is None and self._state is not State.DRAINING):
            self._close()

    def _close(self) -> None:
        if self._reconnect_timer is not None:
            self.ioloop.remove_timeout(self._reconnect_timer)
            self._reconnect_timer = None
        if self._connection is None:
            self.ioloop.stop()
            return
        self._flush_acks()
        if self._connection.is_open:
            self._connection.close()
        # still opening: pika 1.4 cannot abort its handshake (it reports the class AMQPConnectionWorkflowAborted
        # where an instance is expected, and raises), so it closes once open, or fails, or the timer stops the loop
        self.ioloop.call_later(CLOSE_TIMEOUT, self._stop_without_close_ok)

    def _stop_without_close_ok(self) -> None:
        """A broker busy electing leaders may not answer the close for long: what was acked or confirmed is safe,
        the rest comes back, so stop waiting."""
        LOGGER.warning("the broker did not answer the close within %g s; stopping without it", CLOSE_TIMEOUT)
        self.ioloop.stop()

    def _touch_health(self, reschedule: bool = True) -> None:
        """Touch HEALTH_FILE while ready and no problem lasts."""
        if self._ready and not self._problems and self._settings.health_file:
            try:
                Path(self._settings.health_file).touch()
            except OSError as error:  # the file's disk full or gone: the healthcheck says so, the service goes on
                LOGGER.debug("could not touch HEALTH_FILE: %s", error)
        if reschedule:
            self.ioloop.call_later(HEALTH_INTERVAL, self._touch_health)
