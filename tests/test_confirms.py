"""The confirm policy alone, on a clock of the test's own: when the nacks of one queue call for a new channel."""

from __future__ import annotations

import pytest

from pipeline import confirms
from pipeline.confirms import NACK_RECONNECT_AFTER, NackedTooLong, NackStreaks


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
