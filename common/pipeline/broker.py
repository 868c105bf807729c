"""One reliable AMQP connection: reconnect, topology, streaming confirms, acks after the effect, shutdown.

A service gives the queues it touches, a handler per queue it consumes and, if it needs them, hooks for
"ready", "connection lost" and "stopping". Everything that makes the pipeline lose nothing lives here:

- publishes are confirmed as a stream: a window of unconfirmed messages, acks and nacks handled as they come;
  nacked messages are published again, and so are a producer's unconfirmed messages after a reconnect;
- deliveries are acked only when the service says their effect is safe, with ``multiple=True`` only over a run
  of settled tags; bad messages are rejected (no requeue) into the queue's dead-letter queue;
- the broker may be down at start or vanish at any time: the service reconnects with capped backoff;
- SIGTERM and SIGINT stop consuming, let in-flight work finish for a few seconds, close and return 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
from pika.adapters.select_connection import IOLoop
from pika.spec import Basic

from pipeline.health import HEALTH_INTERVAL
from pipeline.messages import CONTENT_TYPE, BadMessage
from pipeline.settings import Common
from pipeline.topology import dead_letter_queue, declarations

LOGGER = logging.getLogger(__name__)

RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 5.0
CONFIRM_WINDOW = 2000
STOP_TIMEOUT = 5.0
PRECONDITION_FAILED = 406
PERSISTENT = pika.BasicProperties(delivery_mode=2, content_type=CONTENT_TYPE)


@dataclass(slots=True)
class Delivery:
    """A message received from ``queue``; ``generation`` tells which channel its tag belongs to."""

    queue: str
    body: bytes
    tag: int
    generation: int
    redelivered: bool = False


@dataclass(slots=True)
class Outgoing:
    """A message to publish. ``resend``: publish again after a reconnect (False when a redelivery recreates it)."""

    queue: str
    body: bytes
    on_confirmed: Callable[[], None] | None
    resend: bool


Handler = Callable[[Delivery], None]
Hook = Callable[[], None]


def _nothing() -> None:
    return None


class Broker:
    """Connection, channel and the bookkeeping of confirms and acks for one service."""

    def __init__(
        self,
        settings: Common,
        queues: list[str],
        *,
        prefetch: int = 0,
        on_ready: Hook = _nothing,
        on_lost: Hook = _nothing,
        on_stopping: Hook = _nothing,
        on_window_open: Hook = _nothing,
    ) -> None:
        self.ioloop = IOLoop()
        self._settings = settings
        self._parameters = pika.URLParameters(settings.amqp_url)
        self._declarations = declarations(queues, settings.queue_type)
        self._prefetch = prefetch
        self._handlers: dict[str, Handler] = {}
        self._paused: set[str] = set()
        self._consumer_tags: dict[str, str] = {}
        self._on_ready, self._on_lost = on_ready, on_lost
        self._on_stopping, self._on_window_open = on_stopping, on_window_open

        self._connection: pika.SelectConnection | None = None
        self._channel: Any = None
        self._generation = 0
        self._ready = False
        self._stopping = False
        self._drain_forever = False
        self._exit_code = 0
        self._reconnect_delay = RECONNECT_FIRST_DELAY
        self._reconnect_timer: Any = None
        self._signals: deque[int] = deque()

        self._publish_seq = 0
        self._unconfirmed: dict[int, Outgoing] = {}
        self._unsent: deque[Outgoing] = deque()
        self._unsettled: dict[int, bool] = {}
        self._ack_scheduled = False

    # --- what services call -------------------------------------------------------------------

    def consume(self, queue: str, handler: Handler) -> None:
        """Call ``handler`` for each message of ``queue``; it must end in ``ack`` or ``reject``."""
        self._handlers[queue] = handler

    def pause(self, queue: str) -> None:
        """Stop taking messages from ``queue`` (those already sent to us but not handled go back to it)."""
        self._paused.add(queue)
        consumer_tag = self._consumer_tags.pop(queue, None)
        if consumer_tag is not None and self._channel is not None and self._channel.is_open:
            self._channel.basic_cancel(consumer_tag)

    def resume(self, queue: str) -> None:
        """Take messages from ``queue`` again after ``pause``."""
        self._paused.discard(queue)
        if self._ready and not self._stopping and queue not in self._consumer_tags:
            self._consume(queue)

    def is_paused(self, queue: str) -> bool:
        return queue in self._paused

    def run(self, *, handle_signals: bool = True) -> int:
        """Connect and serve until stopped; return the process exit code."""
        if handle_signals:
            self._listen_for_signals()
        self.ioloop.add_callback(self._connect)
        self.ioloop.call_later(HEALTH_INTERVAL, self._touch_health)
        self.ioloop.start()
        return self._exit_code

    @property
    def is_ready(self) -> bool:
        return self._ready

    def can_publish(self) -> bool:
        """True while connected and the window of unconfirmed messages has room."""
        return self._ready and not self._stopping and len(self._unconfirmed) + len(self._unsent) < CONFIRM_WINDOW

    def publish(self, queue: str, body: bytes, on_confirmed: Hook | None = None, *, resend: bool = True) -> None:
        """Publish persistently; ``on_confirmed`` runs once the broker has confirmed the message."""
        message = Outgoing(queue, body, on_confirmed, resend)
        if self._ready and self._channel.is_open:
            self._send(message)
        elif resend:
            self._unsent.append(message)

    def ack(self, delivery: Delivery) -> None:
        """Mark a delivery done; acks go out at the end of this loop iteration."""
        if delivery.generation != self._generation:
            return  # its channel is gone and the broker will deliver it again
        self._unsettled[delivery.tag] = True
        if not self._ack_scheduled:
            self._ack_scheduled = True
            self.ioloop.add_callback(self._flush_acks)

    def reject(self, delivery: Delivery) -> None:
        """Send a delivery to its dead-letter queue."""
        if delivery.generation != self._generation:
            return
        del self._unsettled[delivery.tag]
        self._channel.basic_reject(delivery.tag, requeue=False)

    def stop(self, *, drain_forever: bool = False) -> None:
        """Stop consuming and close once in-flight work is confirmed: within STOP_TIMEOUT, or, draining, whenever.

        A plain stop (a signal) during a drain ends the drain after STOP_TIMEOUT.
        """
        if self._stopping and (drain_forever or not self._drain_forever):
            return
        if not self._stopping:
            LOGGER.info("stopping")
            self._stopping = True
            self._cancel_consumers()
            self._on_stopping()
        self._drain_forever = drain_forever
        if not drain_forever:
            self.ioloop.call_later(STOP_TIMEOUT, self._close)
        self._close_when_idle()

    # --- connection ---------------------------------------------------------------------------

    def _listen_for_signals(self) -> None:
        """SIGTERM and SIGINT wake the loop through a socket pair of our own.

        A signal handler runs between two bytecodes of the loop's own thread, possibly while that thread holds the
        lock of ``add_callback_threadsafe``; calling it from the handler would then wait on that lock forever.
        """
        self._signal_receiver, self._signal_sender = socket.socketpair()
        for end in (self._signal_receiver, self._signal_sender):
            end.setblocking(False)
        self.ioloop.add_handler(self._signal_receiver.fileno(), self._on_signal_wakeup, IOLoop.READ)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        """Only note the signal and wake the loop: no lock, no logging here."""
        self._signals.append(signum)
        with contextlib.suppress(BlockingIOError):  # full of wake-ups already
            self._signal_sender.send(b"\0")

    def _on_signal_wakeup(self, _fd: int, _events: int) -> None:
        with contextlib.suppress(BlockingIOError):
            self._signal_receiver.recv(4096)
        while self._signals:
            LOGGER.info("received %s", signal.Signals(self._signals.popleft()).name)
        self.stop()

    def _connect(self) -> None:
        self._reconnect_timer = None
        LOGGER.info("connecting to %s:%s", self._parameters.host, self._parameters.port)
        self._connection = pika.SelectConnection(
            self._parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self.ioloop,
        )

    def _on_connection_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, _connection: pika.SelectConnection, error: BaseException) -> None:
        LOGGER.warning(
            "broker unreachable (%s); retrying in %.1f s", str(error) or type(error).__name__, self._reconnect_delay
        )
        self._connection = None
        self._schedule_reconnect()

    def _on_connection_closed(self, _connection: pika.SelectConnection, reason: BaseException) -> None:
        self._connection = None
        self._forget_channel()
        if self._stopping and not self._must_drain():
            LOGGER.info("connection closed")
            self.ioloop.stop()
            return
        LOGGER.warning("connection lost (%s); reconnecting in %.1f s", reason, self._reconnect_delay)
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if self._stopping and not self._must_drain():
            self.ioloop.stop()
            return
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
            if not self._stopping and queue not in self._paused:
                self._consume(queue)
        self._ready = True
        self._reconnect_delay = RECONNECT_FIRST_DELAY
        LOGGER.info("ready: queues declared, consuming %s", ", ".join(self._handlers) or "nothing")
        self._touch_health(reschedule=False)
        while self._unsent and self._ready:
            self._send(self._unsent.popleft())
        self._on_ready()

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        if getattr(reason, "reply_code", None) == PRECONDITION_FAILED and not self._ready:
            LOGGER.error(
                "a queue exists with other arguments than QUEUE_TYPE=%s gives (%s); delete it or change QUEUE_TYPE",
                self._settings.queue_type,
                getattr(reason, "reply_text", reason),
            )
            self._exit_code = 2
            self._stopping = True
        elif not self._stopping:
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
        self._consumer_tags.clear()
        self._generation += 1
        self._publish_seq = 0
        self._unsettled.clear()
        resent = [message for message in self._unconfirmed.values() if message.resend]
        self._unsent.extendleft(reversed(resent))
        self._unconfirmed.clear()
        self._on_lost()

    # --- consuming and acking -----------------------------------------------------------------

    def _consume(self, queue: str) -> None:
        on_message = self._on_message_for(queue, self._handlers[queue], self._generation)
        self._consumer_tags[queue] = self._channel.basic_consume(queue, on_message)

    def _on_message_for(self, queue: str, handler: Handler, generation: int) -> Callable[..., None]:
        def on_message(_channel: Any, method: Basic.Deliver, _properties: Any, body: bytes) -> None:
            delivery = Delivery(queue, body, method.delivery_tag, generation, method.redelivered)
            self._unsettled[delivery.tag] = False
            try:
                handler(delivery)
            except BadMessage as error:
                LOGGER.warning("rejected a message of %s into %s: %s", queue, dead_letter_queue(queue), error)
                self.reject(delivery)

        return on_message

    def _flush_acks(self) -> None:
        """Ack the settled run at the front with one multiple ack, settled ones behind a pending tag singly."""
        self._ack_scheduled = False
        if self._channel is None or not self._channel.is_open:
            return
        last_in_run = None
        while self._unsettled:
            tag, settled = next(iter(self._unsettled.items()))
            if not settled:
                break
            del self._unsettled[tag]
            last_in_run = tag
        if last_in_run is not None:
            self._channel.basic_ack(last_in_run, multiple=True)
        for tag in [tag for tag, settled in self._unsettled.items() if settled]:
            del self._unsettled[tag]
            self._channel.basic_ack(tag)

    def _cancel_consumers(self) -> None:
        if self._channel is not None and self._channel.is_open:
            for consumer_tag in list(self._channel.consumer_tags):
                self._channel.basic_cancel(consumer_tag)

    # --- publishing and confirms --------------------------------------------------------------

    def _send(self, message: Outgoing) -> None:
        self._channel.basic_publish("", message.queue, message.body, PERSISTENT)
        self._publish_seq += 1
        self._unconfirmed[self._publish_seq] = message

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        confirmed = self._pop_confirmed(method.delivery_tag, method.multiple)
        if isinstance(method, Basic.Nack):
            LOGGER.warning("broker nacked %d message(s); publishing them again", len(confirmed))
            for message in confirmed:
                self.publish(message.queue, message.body, message.on_confirmed, resend=message.resend)
        else:
            for message in confirmed:
                if message.on_confirmed is not None:
                    message.on_confirmed()
        if self._stopping:
            self._close_when_idle()
        elif self.can_publish():
            self._on_window_open()

    def _pop_confirmed(self, tag: int, multiple: bool) -> list[Outgoing]:
        if not multiple:
            message = self._unconfirmed.pop(tag, None)
            return [] if message is None else [message]
        confirmed = []
        while self._unconfirmed:
            seq = next(iter(self._unconfirmed))
            if seq > tag:
                break
            confirmed.append(self._unconfirmed.pop(seq))
        return confirmed

    # --- shutdown and health ------------------------------------------------------------------

    def _must_drain(self) -> bool:
        """While stopping for good (a producer's limit reached), unconfirmed messages still hold the exit."""
        return self._drain_forever and bool(self._unconfirmed or self._unsent)

    def _close_when_idle(self) -> None:
        if not (self._unconfirmed or self._unsent) or (self._connection is None and not self._drain_forever):
            self._close()

    def _close(self) -> None:
        if self._reconnect_timer is not None:
            self.ioloop.remove_timeout(self._reconnect_timer)
            self._reconnect_timer = None
        if self._connection is None:
            self.ioloop.stop()
            return
        self._flush_acks()
        if not (self._connection.is_closing or self._connection.is_closed):
            self._connection.close()

    def _touch_health(self, reschedule: bool = True) -> None:
        if self._ready and self._settings.health_file:
            Path(self._settings.health_file).touch()
        if reschedule:
            self.ioloop.call_later(HEALTH_INTERVAL, self._touch_health)
