"""One Link alone, on a small stand-in for pika's connection and channel: what it does between the broker's word and
the channel's close (real-broker behaviour is tests/test_broker.py's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pika
import pytest
from pika.adapters.select_connection import IOLoop

from pipeline import link as link_module
from pipeline.link import Link
from pipeline.publish_window import Outgoing, PublishWindow

QUEUES = ["in", "out"]


class Channel:
    """A channel that answers every step at once and, asked to close, stays closing until the test says."""

    def __init__(self) -> None:
        self.is_open = True
        self.consumer_tags: list[str] = []
        self.published: list[bytes] = []
        self.on_close: Callable[[Any, BaseException], None] | None = None
        self.on_cancel: Callable[[Any], None] | None = None

    def add_on_close_callback(self, callback: Callable[[Any, BaseException], None]) -> None:
        self.on_close = callback

    def add_on_cancel_callback(self, callback: Callable[[Any], None]) -> None:
        self.on_cancel = callback

    def confirm_delivery(self, _on_confirm: Any, callback: Callable[[Any], None]) -> None:
        callback(None)

    def queue_declare(self, _name: str, *, durable: bool, arguments: Any, callback: Callable[[Any], None]) -> None:
        callback(None)

    def basic_qos(self, *, prefetch_count: int, callback: Callable[[Any], None]) -> None:
        callback(None)

    def basic_consume(self, queue: str, _on_message: Any) -> str:
        assert self.is_open, "basic_consume on a closing channel: pika raises ChannelWrongStateError"
        self.consumer_tags.append(f"ctag.{queue}")
        return self.consumer_tags[-1]

    def basic_publish(self, _exchange: str, _queue: str, body: bytes, _properties: Any) -> None:
        assert self.is_open, "basic_publish on a closing channel: pika raises ChannelWrongStateError"
        self.published.append(body)

    def close(self) -> None:
        self.is_open = False  # closing: the broker's CloseOk comes later

    def closed_by_broker(self, reply_code: int) -> None:
        self.is_open = False
        assert self.on_close is not None
        self.on_close(self, pika.exceptions.ChannelClosedByBroker(reply_code, "the broker says"))


class Connection:
    def __init__(self, _parameters: Any, *, on_open_callback: Callable[[Any], None], **_callbacks: Any) -> None:
        self.is_open = True
        self.channel_made = Channel()
        self._on_open = on_open_callback

    def add_on_connection_blocked_callback(self, _callback: Any) -> None: ...
    def add_on_connection_unblocked_callback(self, _callback: Any) -> None: ...

    def channel(self, on_open_callback: Callable[[Any], None]) -> None:
        on_open_callback(self.channel_made)

    def close(self) -> None:
        self.is_open = False


class Owner:
    """The broker's side: what the link tells it."""

    def __init__(self) -> None:
        self.ready: list[Link] = []
        self.closed: list[tuple[int | None, bool]] = []

    def on_link_ready(self, link: Link) -> None:
        self.ready.append(link)
        for queue in QUEUES:
            link.consume(queue, lambda *_: None)

    def on_channel_closed(self, reason: BaseException, *, declared: bool) -> None:
        self.closed.append((getattr(reason, "reply_code", None), declared))

    def on_channel_lost(self) -> None: ...
    def on_confirms(self) -> None: ...
    def is_stopping(self) -> bool:
        return False

    def set_problem(self, name: str, reason: str | None) -> None: ...


class Transport:
    def on_link_open(self, link: Link) -> None:
        link.open_channel()

    def on_link_failed(self, error: BaseException) -> None: ...
    def on_link_closed(self, reason: BaseException) -> None: ...


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Link, Channel, Owner, PublishWindow]]:
    """A link made, connected, its channel open, queues declared and consumed: ready."""
    connections: list[Connection] = []

    def connect(*args: Any, **kwargs: Any) -> Connection:
        connections.append(Connection(*args, **kwargs))
        return connections[-1]

    monkeypatch.setattr(link_module.pika, "SelectConnection", connect)
    owner, window, ioloop = Owner(), PublishWindow(10), IOLoop()
    declarations: list[tuple[str, dict[str, Any]]] = [(queue, {}) for queue in QUEUES]
    parameters = pika.URLParameters("amqp://127.0.0.1:5672/")
    link = Link(owner, Transport(), parameters, 1, ioloop=ioloop, declarations=declarations, prefetch=10, window=window)
    [connection] = connections
    connection._on_open(connection)  # pika calls it once the handshake is done
    assert link.is_ready and owner.ready == [link]
    yield link, connection.channel_made, owner, window
    ioloop.close()


def test_a_consumer_the_broker_cancels_makes_the_link_unready_while_its_channel_closes(
    opened: tuple[Link, Channel, Owner, PublishWindow],
) -> None:
    """Between the channel's close and the broker's CloseOk, a resume would consume and a nack retry would publish on
    a closing channel, which pika answers by raising out of the loop: the service would die, not reconnect."""
    link, channel, _owner, window = opened
    assert channel.on_cancel is not None
    channel.on_cancel(SimpleNamespace(method=SimpleNamespace(consumer_tag="ctag.in")))
    assert not channel.is_open, "the link closes the channel to reconnect"
    assert not link.is_ready and not link.can_send()
    window.wait(Outgoing("out", b"nacked before, due again", None, True))
    link.send_waiting()
    assert channel.published == [] and len(window) == 1, "kept for the next channel"


def test_a_channel_closed_after_its_declarations_is_no_declaration_failure_even_once_unready(
    opened: tuple[Link, Channel, Owner, PublishWindow],
) -> None:
    """A 406 at declaration stops the service with exit 2 (QUEUE_TYPE); one after it, with the link unready (closing
    after a cancel, or retired for its nacks), is a channel lost, and the service reconnects."""
    link, channel, owner, _window = opened
    assert channel.on_cancel is not None
    channel.on_cancel(SimpleNamespace(method=SimpleNamespace(consumer_tag="ctag.in")))
    assert not link.is_ready
    channel.closed_by_broker(406)
    assert owner.closed == [(406, True)]
