"""One connection to one node and its one channel, from connect to close: what a reconnect throws away.

The connector makes a ``Link`` for each connection it opens and drops it when that connection closes or fails to
open (as pika's ReconnectingExampleConsumer makes a consumer per connection). What means something on its channel
alone goes with it: the ack ledger, the consumer tags, the pending ack flush, its ``Confirms`` (the nack streaks and
the nack retry); so nothing is reset by hand. Its ``generation`` marks its deliveries: one of another generation is
never acked or rejected on its channel. Opening is one AMQP step per method: connection, channel, confirm mode, each
queue declared, qos. The connector hears how its connection goes; its owner, the broker, how its channel goes, and
keeps what outlives a link: the publish window, the handlers, whether the service runs or stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import pika
from pika.adapters.select_connection import IOLoop
from pika.spec import Basic

from pipeline import metrics
from pipeline.acks import AckLedger
from pipeline.broker_surface import Delivery, Handler
from pipeline.confirms import Confirms
from pipeline.messages import BadMessage
from pipeline.publish_window import Outgoing, PublishWindow
from pipeline.topology import dead_letter_queue

LOGGER = logging.getLogger("pipeline.broker")  # the runtime's log lines keep the name they always had


class Transport(Protocol):
    """What a link tells the connector that opened it: how its connection went."""

    def on_link_open(self, link: Link) -> None: ...
    def on_link_failed(self, error: BaseException) -> None: ...
    def on_link_closed(self, reason: BaseException) -> None: ...


class LinkOwner(Protocol):
    """What a link tells the broker, and asks it: how its channel goes."""

    def on_link_ready(self, link: Link) -> None: ...
    def on_channel_closed(self, reason: BaseException, *, declared: bool) -> None: ...
    def on_channel_lost(self) -> None: ...
    def on_confirms(self) -> None: ...
    def is_stopping(self) -> bool: ...
    def set_problem(self, name: str, reason: str | None) -> None: ...


class Link:
    """A connection and its channel, with the bookkeeping of the channel's tags."""

    def __init__(
        self,
        owner: LinkOwner,
        transport: Transport,
        parameters: pika.URLParameters,
        generation: int,
        *,
        ioloop: IOLoop,
        declarations: list[tuple[str, dict[str, Any]]],
        prefetch: int,
        window: PublishWindow,
    ) -> None:
        self.generation = generation
        self.node = f"{parameters.host}:{parameters.port}"
        self._owner, self._transport, self._ioloop, self._window = owner, transport, ioloop, window
        self._declarations, self._prefetch = declarations, prefetch
        self._channel: Any = None  # None until it opens, and again once it is lost
        self._ready = False  # declared and confirming; False again once lost, closing, or retired for its nacks
        self._declared = False  # its queues declared and its prefetch set: a close after that is no declaration's
        self._acks = AckLedger()
        self._ack_flush_due = False
        self._consumer_tags: dict[str, str] = {}
        self._confirms = Confirms(window, ioloop, self.send_waiting)
        self._connection = pika.SelectConnection(
            parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=ioloop,
        )
        self._connection.add_on_connection_blocked_callback(self._on_blocked)
        self._connection.add_on_connection_unblocked_callback(self._on_unblocked)

    @property
    def is_ready(self) -> bool:
        return self._ready

    def close(self) -> None:
        """Send the acks due and close; a connection still opening closes once it is open (or fails)."""
        self.flush_acks()
        if self._connection.is_open:
            self._connection.close()

    # --- opening, one AMQP step at a time -----------------------------------------------------

    def _on_connection_open(self, _connection: pika.SelectConnection) -> None:
        self._transport.on_link_open(self)

    def open_channel(self) -> None:
        self._connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_consumer_cancelled)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._declare(0))

    def _declare(self, index: int) -> None:
        """Declare the queues one after the other, then set the prefetch."""
        if index == len(self._declarations):
            self._channel.basic_qos(prefetch_count=self._prefetch, callback=self._on_qos_ok)
            return
        name, arguments = self._declarations[index]
        self._channel.queue_declare(
            name, durable=True, arguments=arguments, callback=lambda _frame: self._declare(index + 1)
        )

    def _on_qos_ok(self, _frame: Any) -> None:
        self._declared = self._ready = True
        self._owner.on_link_ready(self)

    # --- losing it ----------------------------------------------------------------------------

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        self._owner.on_channel_closed(reason, declared=self._declared)
        self._lose_channel()
        if self._connection.is_open:
            self._connection.close()

    def _on_consumer_cancelled(self, frame: Any) -> None:
        LOGGER.warning("the broker cancelled consumer %s; reconnecting", frame.method.consumer_tag)
        self._ready = False  # the channel closes: nothing may be consumed or published on it meanwhile
        if self._channel_is_open():
            self._channel.close()

    def _lose_channel(self) -> None:
        """Its tags mean nothing now: its deliveries come back, its producers' messages go again."""
        if self._channel is None:
            return
        self._channel = None
        self._ready = False
        self._owner.on_channel_lost()

    def _on_connection_open_error(self, _connection: pika.SelectConnection, error: BaseException) -> None:
        self._forget_blocked()
        self._transport.on_link_failed(error)

    def _on_connection_closed(self, _connection: pika.SelectConnection, reason: BaseException) -> None:
        self._lose_channel()
        self._forget_blocked()
        self._transport.on_link_closed(reason)

    def _on_blocked(self, _connection: Any, frame: Any) -> None:
        reason = getattr(frame.method, "reason", "") or "a resource alarm"
        LOGGER.warning(
            "broker %s blocked the connection (%s): nothing is published until it unblocks it", self.node, reason
        )
        metrics.CONNECTION_BLOCKED.set(1)
        self._owner.set_problem("blocked", f"the broker blocked the connection ({reason})")

    def _on_unblocked(self, _connection: Any, _frame: Any) -> None:
        LOGGER.warning("broker %s unblocked the connection", self.node)
        self._forget_blocked()

    def _forget_blocked(self) -> None:
        """Unblocked, or gone: a new connection is blocked only if it publishes while the alarm lasts."""
        metrics.CONNECTION_BLOCKED.set(0)
        self._owner.set_problem("blocked", None)

    # --- consuming and acking -----------------------------------------------------------------

    def consume(self, queue: str, on_message: Callable[..., None]) -> None:
        """Take messages from ``queue``, unless already taking them."""
        if queue not in self._consumer_tags:
            self._consumer_tags[queue] = self._channel.basic_consume(queue, on_message)

    def cancel(self, queue: str) -> None:
        """Stop taking messages from ``queue``; those sent to us and not settled go back to it."""
        consumer_tag = self._consumer_tags.pop(queue, None)
        if consumer_tag is not None and self._channel_is_open():
            self._channel.basic_cancel(consumer_tag)

    def cancel_consumers(self) -> None:
        if self._channel_is_open():
            for consumer_tag in list(self._channel.consumer_tags):
                self._channel.basic_cancel(consumer_tag)

    def received(self, tag: int) -> None:
        self._acks.received(tag)

    def ack(self, delivery: Delivery) -> bool:
        """Note ``delivery`` done, acked at the end of this loop iteration; False if it is another channel's, or
        settled already."""
        if not self._owns(delivery) or not self._acks.ack(delivery.tag):
            return False
        if not self._ack_flush_due:
            self._ack_flush_due = True
            self._ioloop.add_callback(self.flush_acks)
        return True

    def reject(self, delivery: Delivery) -> bool:
        """Reject ``delivery`` into its dead-letter queue; False if it is another channel's, the channel is closing
        (the broker delivers it again), or it was settled already."""
        if not self._owns(delivery) or not self._channel.is_open or not self._acks.reject(delivery.tag):
            return False
        self._channel.basic_reject(delivery.tag, requeue=False)
        return True

    def flush_acks(self) -> None:
        """Ack the settled run at the front with one multiple ack, settled ones behind a pending tag singly."""
        self._ack_flush_due = False
        if not self._channel_is_open():
            return
        acks = self._acks.take_acks()
        if acks.through is not None:
            self._channel.basic_ack(acks.through, multiple=True)
        for tag in acks.singles:
            self._channel.basic_ack(tag)

    def _owns(self, delivery: Delivery) -> bool:
        """A delivery of this link's channel, while it lasts."""
        return delivery.generation == self.generation and self._channel is not None

    def _channel_is_open(self) -> bool:
        return self._channel is not None and self._channel.is_open

    # --- publishing and confirms --------------------------------------------------------------

    def can_send(self) -> bool:
        return self._ready and self._channel.is_open

    def send(self, message: Outgoing) -> None:
        self._channel.basic_publish("", message.queue, message.body, message.properties)
        self._window.sent(message)

    def send_waiting(self) -> None:
        """Publish what waited for a channel, or was nacked, in its order."""
        while self._ready and (message := self._window.next_unsent()) is not None:
            self.send(message)

    def _on_confirm(self, frame: Any) -> None:
        too_long = self._confirms.on_confirm(frame.method, stopping=self._owner.is_stopping())
        if too_long is None:
            self._owner.on_confirms()
            return
        LOGGER.warning(
            "broker %s nacked every publish to %s for %.0f s; reconnecting for a new channel",
            self.node,
            too_long.queue,
            too_long.seconds,
        )
        self._ready = False  # what is published from now on waits for the new channel
        if self._connection.is_open:
            self._connection.close()


def on_message_for(queue: str, handler: Handler, link: Link, reject: Handler) -> Callable[..., None]:
    """pika's callback for the messages of ``queue`` on ``link``: each one a ``Delivery`` of the link's generation,
    noted in its ledger and handled; a handler that raises costs that message alone (rejected)."""

    def on_message(_channel: Any, method: Basic.Deliver, properties: Any, body: bytes) -> None:
        created = properties.timestamp if isinstance(properties.timestamp, int) else None
        delivery = Delivery(queue, body, method.delivery_tag, link.generation, method.redelivered, created)
        link.received(delivery.tag)
        try:
            handler(delivery)
        except BadMessage as error:
            LOGGER.warning("rejected a message of %s into %s: %s", queue, dead_letter_queue(queue), error)
            reject(delivery)
        except Exception as error:  # a fault of ours with this one message: it must not take others with it
            LOGGER.error(
                "rejected a message of %s into %s after an unexpected %s: %s",
                queue,
                dead_letter_queue(queue),
                type(error).__name__,
                error,
            )
            LOGGER.debug("the unexpected error in full", exc_info=True)
            reject(delivery)

    return on_message
