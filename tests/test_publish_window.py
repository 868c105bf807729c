"""The publish window alone: sequence numbers, confirms single and multiple, and what a lost channel sends again."""

from __future__ import annotations

from pipeline.publish_window import Outgoing, PublishWindow


def message(body: str, *, resend: bool = True) -> Outgoing:
    return Outgoing("q", body.encode(), None, resend)


def sent(window: PublishWindow, *bodies: str, resend: bool = True) -> list[Outgoing]:
    messages = [message(body, resend=resend) for body in bodies]
    for each in messages:
        window.sent(each)
    return messages


def unsent(window: PublishWindow) -> list[Outgoing]:
    messages = []
    while (each := window.next_unsent()) is not None:
        messages.append(each)
    return messages


def test_each_sent_message_takes_the_next_sequence_number_from_1() -> None:
    window = PublishWindow(10)
    first, second, third = sent(window, "a", "b", "c")
    assert window.confirmed(2, multiple=False) == [second]
    assert window.confirmed(1, multiple=False) == [first]
    assert window.confirmed(3, multiple=False) == [third]
    assert len(window) == 0


def test_a_single_confirm_takes_its_message_alone_and_once() -> None:
    window = PublishWindow(10)
    first, second, _third = sent(window, "a", "b", "c")
    assert window.confirmed(2, multiple=False) == [second]
    assert window.confirmed(2, multiple=False) == [], "a tag confirmed already"
    assert len(window) == 2
    assert window.confirmed(1, multiple=False) == [first]


def test_a_multiple_confirm_takes_every_message_up_to_its_tag_in_order() -> None:
    window = PublishWindow(10)
    first, second, third, fourth = sent(window, "a", "b", "c", "d")
    assert window.confirmed(2, multiple=False) == [second]
    assert window.confirmed(3, multiple=True) == [first, third], "2 was confirmed already"
    assert window.confirmed(3, multiple=True) == []
    assert window.confirmed(4, multiple=True) == [fourth]
    assert len(window) == 0


def test_a_lost_channel_sends_the_unconfirmed_first_in_order_and_restarts_the_numbers() -> None:
    window = PublishWindow(10)
    first, second, third = sent(window, "a", "b", "c")
    waiting = message("waiting")
    window.wait(waiting)
    window.confirmed(2, multiple=False)
    window.channel_lost()
    assert unsent(window) == [first, third, waiting], "the unconfirmed ones before what waited"
    assert second not in unsent(window)
    [again] = sent(window, "again")
    assert window.confirmed(1, multiple=False) == [again], "the next channel numbers from 1"


def test_a_lost_channel_drops_the_unconfirmed_messages_that_are_not_sent_again() -> None:
    window = PublishWindow(10)
    [kept] = sent(window, "kept")
    sent(window, "dropped", resend=False)
    [last] = sent(window, "last")
    window.channel_lost()
    assert unsent(window) == [kept, last]
    assert len(window) == 0


def test_nacked_messages_wait_in_order_after_the_older_waiting_ones() -> None:
    window = PublishWindow(10)
    first, second = sent(window, "a", "b")
    older = message("older")
    window.wait(older)
    for nacked in window.confirmed(2, multiple=True):
        window.wait(nacked)
    assert unsent(window) == [older, first, second]


def test_the_window_has_room_while_fewer_than_its_size_are_unconfirmed_or_waiting() -> None:
    window = PublishWindow(3)
    sent(window, "a", "b")
    assert window.has_room()
    window.wait(message("c"))
    assert len(window) == 3 and not window.has_room()
    window.confirmed(1, multiple=False)
    assert len(window) == 2 and window.has_room()
    window.channel_lost()
    assert len(window) == 2 and window.has_room(), "b back to wait, beside c"
