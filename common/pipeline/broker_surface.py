"""What a service calls on its broker, ``BrokerSurface``, and the types that go through it.

``pipeline.broker.Broker`` implements it over RabbitMQ; ``tests/fake_broker.py``'s ``FakeBroker`` implements it in
process for the services' unit tests. Services take a ``BrokerSurface``, so mypy checks both against what they use.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pika


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


Handler = Callable[[Delivery], None]
Hook = Callable[[], None]


class BrokerSurface(Protocol):
    """The members of ``Broker`` that services call: nothing more, so that a fake needs nothing more."""

    @property
    def rejected(self) -> Counter[str]:
        """Messages rejected into dead-letter queues, by queue."""
        ...

    def add_hooks(
        self,
        *,
        on_ready: Hook | None = None,
        on_lost: Hook | None = None,
        on_stopping: Hook | None = None,
        on_window_open: Hook | None = None,
    ) -> None: ...

    def consume(self, queue: str, handler: Handler) -> None:
        """Call ``handler`` for each message of ``queue``; it must end in ``ack`` or ``reject``."""
        ...

    def pause(self, queue: str) -> None: ...

    def resume(self, queue: str) -> None: ...

    def is_paused(self, queue: str) -> bool: ...

    def run(self) -> int:
        """Serve until stopped; return the process exit code."""
        ...

    def call_later(self, delay: float, callback: Hook) -> object:
        """Run ``callback`` on the loop after ``delay`` seconds; returns a timer for ``cancel_timer``."""
        ...

    def call_soon(self, callback: Hook) -> None: ...

    def cancel_timer(self, timer: object) -> None: ...

    def can_publish(self) -> bool: ...

    def publish(
        self,
        queue: str,
        body: bytes,
        on_confirmed: Hook | None = None,
        *,
        resend: bool = True,
        properties: pika.BasicProperties | None = None,
    ) -> None:
        """Publish persistently; ``on_confirmed`` runs once the broker has confirmed the message."""
        ...

    def ack(self, delivery: Delivery) -> None:
        """The delivery's effect is safe: it may leave its queue."""
        ...

    def reject(self, delivery: Delivery) -> None:
        """Send the delivery to its dead-letter queue."""
        ...

    def set_problem(self, name: str, reason: str | None) -> None:
        """A condition that makes the service unhealthy while it lasts (``reason`` None: it is over)."""
        ...

    def stop(self, *, drain_forever: bool = False) -> None:
        """Stop consuming and close once in-flight work is confirmed (draining: however long that takes)."""
        ...
