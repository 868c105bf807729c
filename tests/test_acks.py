"""The ack ledger alone: which acks one flush sends, never one that covers a delivery still pending."""

from __future__ import annotations

from pipeline.acks import AckLedger, Acks


def ledger_of(*tags: int) -> AckLedger:
    ledger = AckLedger()
    for tag in tags:
        ledger.received(tag)
    return ledger


def test_one_multiple_ack_covers_the_settled_run_at_the_front() -> None:
    ledger = ledger_of(1, 2, 3, 4)
    for tag in (3, 1, 2):  # settled in any order
        assert ledger.ack(tag)
    assert ledger.take_acks() == Acks(through=3, singles=[])
    assert len(ledger) == 1, "4 is still pending"


def test_settled_tags_behind_a_pending_one_are_acked_singly() -> None:
    ledger = ledger_of(1, 2, 3, 4, 5)
    for tag in (1, 3, 5):
        ledger.ack(tag)
    assert ledger.take_acks() == Acks(through=1, singles=[3, 5])
    assert ledger.take_acks() == Acks(), "each ack is sent once"
    ledger.ack(2)
    assert ledger.take_acks() == Acks(through=2, singles=[]), "2 alone: 3 was acked by the earlier flush"


def test_nothing_is_acked_while_the_first_delivery_is_pending() -> None:
    ledger = ledger_of(1, 2)
    assert ledger.take_acks() == Acks()
    ledger.ack(2)
    assert ledger.take_acks() == Acks(through=None, singles=[2])


def test_settling_twice_counts_once() -> None:
    ledger = ledger_of(1, 2, 3)
    assert ledger.ack(1) and not ledger.ack(1), "a second ack of the same tag"
    assert ledger.reject(2) and not ledger.reject(2), "a second reject"
    assert not ledger.ack(2), "ack after reject: the reject stands"
    assert ledger.ack(3) and not ledger.reject(3), "reject after ack: the ack stands"
    assert ledger.take_acks() == Acks(through=3, singles=[])
    assert not ledger.ack(1), "acked and flushed: unknown now"
    assert not ledger.ack(99), "a tag never received"


def test_a_rejected_tag_leaves_the_ledger_and_the_settled_ones_around_it_go_as_one_run() -> None:
    ledger = ledger_of(1, 2, 3)
    ledger.reject(2)  # the broker has it settled once basic.reject is sent
    ledger.ack(1)
    ledger.ack(3)
    assert ledger.take_acks() == Acks(through=3, singles=[])
    assert len(ledger) == 0
    ledger = ledger_of(1, 2, 3)
    ledger.reject(1)
    assert ledger.take_acks() == Acks(), "rejected, not acked; 2 and 3 still pending"
    assert len(ledger) == 2


def test_clear_forgets_every_tag_of_the_lost_channel() -> None:
    ledger = ledger_of(1, 2, 3)
    ledger.ack(1)
    ledger.clear()
    assert len(ledger) == 0
    assert ledger.take_acks() == Acks()
    assert not ledger.ack(2), "a tag of the lost channel"
