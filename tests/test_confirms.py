"""The confirm policy alone, on a clock of the test's own: when the nacks of one queue call for a new channel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from pika.spec import Basic

from pipeline import confirms
from pipeline.confirms import NACK_RECONNECT_AFTER, NACK_RETRY_DELAY, Confirms, NackedTooLong, NackStreaks
from pipeline.publish_window import Outgoing, PublishWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def at(clock: Clock, seconds: float) -> Clock:
    clock.now = 1000.0 + seconds
    return clock


def test_a_queue_nacked_alone_for_nack_reconnect_after_calls_for_a_reconnect(clock: Clock) -> None:
    streaks = NackStreaks(clock)
    assert streaks.reconnect_due(["q"], stopping=False) is None
    at(clock, NACK_RECONNECT_AFTER - 0.01)
    assert streaks.reconnect_due(["q"], stopping=False) is None, "not quite long enough"
    at(clock, NACK_RECONNECT_AFTER)
    assert streaks.reconnect_due(["q"], stopping=False) == NackedTooLong("q", NACK_RECONNECT_AFTER)


def test_each_queue_has_its_own_streak_and_the_longest_is_named(clock: Clock) -> None:
    streaks = NackStreaks(clock)
    streaks.reconnect_due(["first"], stopping=False)
    at(clock, 3)
    assert streaks.reconnect_due(["second"], stopping=False) is None
    at(clock, NACK_RECONNECT_AFTER)
    assert streaks.reconnect_due(["second"], stopping=False) == NackedTooLong("first", NACK_RECONNECT_AFTER)


def test_an_ack_for_a_queue_ends_its_streak(clock: Clock) -> None:
    streaks = NackStreaks(clock)
    streaks.reconnect_due(["q"], stopping=False)
    at(clock, 2)
    streaks.acked("q")
    at(clock, NACK_RECONNECT_AFTER)
    assert streaks.reconnect_due(["q"], stopping=False) is None, "its streak began again at this nack"
    at(clock, 2 * NACK_RECONNECT_AFTER)
    assert streaks.reconnect_due([], stopping=False) == NackedTooLong("q", NACK_RECONNECT_AFTER)


def test_acks_for_another_queue_do_not_end_a_streak(clock: Clock) -> None:
    """features publishes to two queues: the channel may go on confirming one while it nacks the other."""
    streaks = NackStreaks(clock)
    streaks.reconnect_due(["nacked"], stopping=False)
    for second in range(1, int(NACK_RECONNECT_AFTER)):
        at(clock, second)
        streaks.acked("accepted")
    at(clock, NACK_RECONNECT_AFTER)
    assert streaks.reconnect_due(["nacked"], stopping=False) == NackedTooLong("nacked", NACK_RECONNECT_AFTER)


def test_no_reconnect_while_stopping_and_the_streak_goes_on(clock: Clock) -> None:
    streaks = NackStreaks(clock)
    streaks.reconnect_due(["q"], stopping=False)
    at(clock, NACK_RECONNECT_AFTER + 1)
    assert streaks.reconnect_due(["q"], stopping=True) is None
    assert streaks.reconnect_due(["q"], stopping=False) == NackedTooLong("q", NACK_RECONNECT_AFTER + 1)


def test_streaks_start_again_once_a_reconnect_is_due(clock: Clock) -> None:
    streaks = NackStreaks(clock)
    streaks.reconnect_due(["q", "other"], stopping=False)
    at(clock, NACK_RECONNECT_AFTER)
    assert streaks.reconnect_due(["q"], stopping=False) is not None
    at(clock, NACK_RECONNECT_AFTER + 1)
    assert streaks.reconnect_due(["q"], stopping=False) is None, "one decision per streak"
    at(clock, 2 * NACK_RECONNECT_AFTER + 0.5)
    assert streaks.reconnect_due([], stopping=False) is None, "other's streak started again too"


def test_a_confirm_that_covers_nothing_decides_nothing(clock: Clock) -> None:
    assert NackStreaks(clock).reconnect_due([], stopping=False) is None


def test_the_threshold_is_read_when_deciding(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/test_broker.py shortens it on a real broker."""
    monkeypatch.setattr(confirms, "NACK_RECONNECT_AFTER", 1.0)
    streaks = NackStreaks(clock)
    streaks.reconnect_due(["q"], stopping=False)
    at(clock, 1.0)
    assert streaks.reconnect_due(["q"], stopping=False) == NackedTooLong("q", 1.0)


@dataclass
class Timer:
    delay: float
    callback: Callable[[], None]
    cancelled: bool = False


class Loop:
    """The two calls Confirms makes of the I/O loop; the test fires the timers."""

    def __init__(self) -> None:
        self.timers: list[Timer] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        self.timers.append(Timer(delay, callback))
        return self.timers[-1]

    def remove_timeout(self, timer: Timer) -> None:
        timer.cancelled = True

    def pending(self) -> list[Timer]:
        return [timer for timer in self.timers if not timer.cancelled]

    def fire(self, timer: Timer) -> None:
        self.timers.remove(timer)
        timer.callback()


class Channel:
    """A window, Confirms over it, and what it confirmed and sent again."""

    def __init__(self, clock: Clock) -> None:
        self.window = PublishWindow(10)
        self.loop = Loop()
        self.confirmed: list[bytes] = []
        self.sends_again = 0
        self.confirms = Confirms(self.window, self.loop, self._send_waiting, clock)

    def _send_waiting(self) -> None:
        self.sends_again += 1

    def publish(self, queue: str, body: bytes) -> None:
        self.window.sent(Outgoing(queue, body, lambda: self.confirmed.append(body), True))

    def unsent(self) -> list[bytes]:
        bodies = []
        while (message := self.window.next_unsent()) is not None:
            bodies.append(message.body)
        return bodies


def test_an_ack_runs_the_callbacks_of_the_messages_it_covers_in_order(clock: Clock) -> None:
    channel = Channel(clock)
    for body in (b"a", b"b", b"c"):
        channel.publish("q", body)
    assert channel.confirms.on_confirm(Basic.Ack(delivery_tag=2, multiple=True), stopping=False) is None
    assert channel.confirmed == [b"a", b"b"]
    assert len(channel.window) == 1 and channel.loop.timers == []


def test_nacked_messages_wait_in_order_and_go_again_once_after_nack_retry_delay(clock: Clock) -> None:
    channel = Channel(clock)
    for body in (b"a", b"b", b"c"):
        channel.publish("q", body)
    channel.confirms.on_confirm(Basic.Nack(delivery_tag=2, multiple=True), stopping=False)
    channel.confirms.on_confirm(Basic.Nack(delivery_tag=3, multiple=False), stopping=False)
    [retry] = channel.loop.pending()
    assert retry.delay == NACK_RETRY_DELAY and channel.sends_again == 0
    channel.loop.fire(retry)
    assert channel.sends_again == 1 and channel.confirmed == []
    assert channel.unsent() == [b"a", b"b", b"c"]
    channel.publish("q", b"d")
    channel.confirms.on_confirm(Basic.Nack(delivery_tag=4, multiple=False), stopping=False)
    assert len(channel.loop.pending()) == 1, "a new retry once the last one went"


def test_an_ack_for_the_queue_between_its_nacks_keeps_the_channel(clock: Clock) -> None:
    channel = Channel(clock)
    for body in (b"a", b"b", b"c"):
        channel.publish("q", body)
    channel.confirms.on_confirm(Basic.Nack(delivery_tag=1, multiple=False), stopping=False)
    at(clock, 1)
    channel.confirms.on_confirm(Basic.Ack(delivery_tag=2, multiple=False), stopping=False)
    at(clock, NACK_RECONNECT_AFTER)
    assert channel.confirms.on_confirm(Basic.Nack(delivery_tag=3, multiple=False), stopping=False) is None


def test_nacks_alone_for_nack_reconnect_after_call_for_a_new_channel_and_drop_the_retry(clock: Clock) -> None:
    channel = Channel(clock)
    for body in (b"a", b"b"):
        channel.publish("q", body)
    channel.confirms.on_confirm(Basic.Nack(delivery_tag=1, multiple=False), stopping=False)
    at(clock, NACK_RECONNECT_AFTER)
    decision = channel.confirms.on_confirm(Basic.Nack(delivery_tag=2, multiple=False), stopping=False)
    assert decision == NackedTooLong("q", NACK_RECONNECT_AFTER)
    assert channel.loop.pending() == [], "what waits goes on the new channel, not on this one"
    assert channel.unsent() == [b"a", b"b"]


def test_while_stopping_nacks_go_again_on_the_same_channel(clock: Clock) -> None:
    channel = Channel(clock)
    for body in (b"a", b"b"):
        channel.publish("q", body)
    channel.confirms.on_confirm(Basic.Nack(delivery_tag=1, multiple=False), stopping=True)
    at(clock, 2 * NACK_RECONNECT_AFTER)
    assert channel.confirms.on_confirm(Basic.Nack(delivery_tag=2, multiple=False), stopping=True) is None
    assert len(channel.loop.pending()) == 1
