"""The ack ledger: which deliveries of the current channel are settled, and the acks that settle them.

Deliveries are acked only after their effect is safe, in any order the service finishes them. One
``basic.ack(multiple=True)`` covers the run of settled tags at the front; settled tags behind one still pending are
acked singly, so an ack never covers a delivery whose work is not done. Settling is idempotent: the first ``ack`` or
``reject`` of a tag counts, later ones are ignored (a second ack of a tag the broker has already seen would close the
channel with 406 and bring every in-flight delivery back).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PENDING, ACKED = False, True


@dataclass(slots=True)
class Acks:
    """What one flush sends: a multiple ack up to ``through`` (if any), then single acks of ``singles``."""

    through: int | None = None
    singles: list[int] = field(default_factory=list)


class AckLedger:
    """Delivery tags of one channel in arrival order, each pending until acked (or removed when rejected)."""

    def __init__(self) -> None:
        self._tags: dict[int, bool] = {}

    def __len__(self) -> int:
        return len(self._tags)

    def received(self, tag: int) -> None:
        self._tags[tag] = PENDING

    def ack(self, tag: int) -> bool:
        """Mark ``tag`` done; False if it was already settled (or is unknown)."""
        if self._tags.get(tag) is not PENDING:
            return False
        self._tags[tag] = ACKED
        return True

    def reject(self, tag: int) -> bool:
        """Forget ``tag`` so that no ack covers it; False if it was already settled (or is unknown)."""
        if self._tags.get(tag) is not PENDING:
            return False
        del self._tags[tag]
        return True

    def take_acks(self) -> Acks:
        """Remove the acked tags and say how to ack them."""
        acks = Acks()
        while self._tags:
            tag, state = next(iter(self._tags.items()))
            if state is PENDING:
                break
            del self._tags[tag]
            acks.through = tag
        acks.singles = [tag for tag, state in self._tags.items() if state is ACKED]
        for tag in acks.singles:
            del self._tags[tag]
        return acks

    def clear(self) -> None:
        """The channel is gone: its tags mean nothing now, and the broker delivers their messages again."""
        self._tags.clear()
