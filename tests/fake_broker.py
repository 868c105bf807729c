"""A small in-process ``BrokerSurface``, what services call on ``Broker``, for fast unit tests of a service's own logic.

Nothing here talks to RabbitMQ: tests hand deliveries to the handlers, confirm publishes and fire timers themselves.
Integration tests use the real broker.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.broker_surface import BrokerSurface, Delivery, Handler, Hook

if TYPE_CHECKING:
    from pipeline.broker import Broker


@dataclass
class Published:
    queue: str
    body: bytes
    on_confirmed: Hook | None
    resend: bool
    properties: Any = None


@dataclass
class Timer:
    delay: float
    callback: Hook
    cancelled: bool = False


class FakeBroker:
    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.paused: set[str] = set()
        self.published: list[Published] = []
        self.acked: list[Delivery] = []
        self.rejected_deliveries: list[Delivery] = []
        self.rejected: Counter[str] = Counter()
        self.connections_lost = 0
        self.timers: list[Timer] = []
        self.hooks: dict[str, Hook] = {}
        self.ready = True
        self.problems: dict[str, str] = {}  # set_problem's conditions that last, by name
        self.while_running: Hook | None = None  # what happens between run()'s start and its return
        self._tag = 0

    # --- BrokerSurface ---
    def add_hooks(self, **hooks: Hook | None) -> None:
        self.hooks.update({name: hook for name, hook in hooks.items() if hook is not None})

    def consume(self, queue: str, handler: Handler) -> None:
        self.handlers[queue] = handler

    def pause(self, queue: str) -> None:
        self.paused.add(queue)

    def resume(self, queue: str) -> None:
        self.paused.discard(queue)

    def is_paused(self, queue: str) -> bool:
        return queue in self.paused

    def set_problem(self, name: str, reason: str | None) -> None:
        if reason is None:
            self.problems.pop(name, None)
        else:
            self.problems[name] = reason

    def run(self) -> int:
        if self.while_running is not None:
            self.while_running()
        return 0

    def call_later(self, delay: float, callback: Hook) -> Timer:
        timer = Timer(delay, callback)
        self.timers.append(timer)
        return timer

    def call_soon(self, callback: Hook) -> None:
        self.call_later(0.0, callback)

    def cancel_timer(self, timer: object) -> None:
        assert isinstance(timer, Timer), "a timer of call_later"
        timer.cancelled = True

    def can_publish(self) -> bool:
        return self.ready

    def publish(
        self, queue: str, body: bytes, on_confirmed: Hook | None = None, *, resend: bool = True, properties: Any = None
    ) -> None:
        self.published.append(Published(queue, body, on_confirmed, resend, properties))

    def ack(self, delivery: Delivery) -> None:
        self.acked.append(delivery)

    def reject(self, delivery: Delivery) -> None:
        self.rejected_deliveries.append(delivery)
        self.rejected[delivery.queue] += 1

    def stop(self, *, drain_forever: bool = False) -> None:
        self.ready = False

    # --- what tests do ---
    def deliver(self, queue: str, body: bytes, *, redelivered: bool = False, created: int | None = None) -> Delivery:
        """Hand a message (``created``: its AMQP timestamp) to the queue's handler, rejecting it on an exception as
        the real runtime does."""
        self._tag += 1
        delivery = Delivery(queue, body, self._tag, 0, redelivered, created)
        try:
            self.handlers[queue](delivery)
        except Exception:
            self.reject(delivery)
        return delivery

    def fire_timers(self, callback: Hook | None = None) -> int:
        """Run the due timers (all, or those of ``callback``); return how many ran."""
        due = [timer for timer in self.timers if not timer.cancelled and callback in (None, timer.callback)]
        self.timers = [timer for timer in self.timers if timer not in due]
        for timer in due:
            timer.callback()
        return len(due)

    def confirm_all(self) -> None:
        published, self.published = self.published, []
        for message in published:
            if message.on_confirmed is not None:
                message.on_confirmed()


def _both_are_surfaces(real: Broker, fake: FakeBroker) -> tuple[BrokerSurface, BrokerSurface]:
    """Never called: mypy checks here that the real broker and this fake both offer all a service calls."""
    return real, fake
