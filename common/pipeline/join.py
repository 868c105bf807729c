"""Pairs y_true and y_pred halves by id."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pipeline.topology import Y_PRED, Y_TRUE

Token = TypeVar("Token")


@dataclass(slots=True)
class Half(Generic[Token]):
    """One side of a row; ``token`` is what settles it (the delivery)."""

    side: str
    message_id: str
    value: float
    token: Token
    arrived: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class Pair(Generic[Token]):
    y_true: Half[Token]
    y_pred: Half[Token]

    @property
    def message_id(self) -> str:
        return self.y_true.message_id


class Join(Generic[Token]):
    """Halves wait here until their partner arrives; how many can wait is bounded by the consumers' prefetch."""

    def __init__(self) -> None:
        self._waiting: dict[str, dict[str, Half[Token]]] = {Y_TRUE: {}, Y_PRED: {}}

    def __len__(self) -> int:
        return sum(len(halves) for halves in self._waiting.values())

    def holds(self, side: str, message_id: str) -> bool:
        return message_id in self._waiting[side]

    def add(self, half: Half[Token]) -> Pair[Token] | None:
        """Return the completed pair, or None while ``half`` waits for its partner."""
        other_side = Y_PRED if half.side == Y_TRUE else Y_TRUE
        partner = self._waiting[other_side].pop(half.message_id, None)
        if partner is None:
            self._waiting[half.side][half.message_id] = half
            return None
        return Pair(half, partner) if half.side == Y_TRUE else Pair(partner, half)

    def clear(self) -> None:
        for halves in self._waiting.values():
            halves.clear()
