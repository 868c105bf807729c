"""Pairs y_true and y_pred halves by id; halves that wait are spilled to a journal so their deliveries can be acked."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.append_file import AppendFile, quote
from pipeline.topology import Y_PRED, Y_TRUE

LOGGER = logging.getLogger(__name__)

COMPACT_AFTER = 10_000  # lines of halves no longer waiting that make the journal worth rewriting


@dataclass(slots=True)
class Half:
    """One side of a row; ``arrived`` is wall-clock time, so that a journal keeps it across restarts."""

    side: str
    message_id: str
    value: float
    arrived: float


@dataclass(slots=True)
class Pair:
    """Both halves of a row; ``partner`` is the half that was waiting."""

    message_id: str
    y_true: float
    y_pred: float
    partner: Half

    @property
    def absolute_error(self) -> float:
        return abs(self.y_true - self.y_pred)


class Join:
    """Halves wait here until their partner arrives or they are released as orphans."""

    def __init__(self) -> None:
        self._waiting: dict[str, dict[str, Half]] = {Y_TRUE: {}, Y_PRED: {}}

    def __len__(self) -> int:
        return sum(len(halves) for halves in self._waiting.values())

    def count(self, side: str) -> int:
        return len(self._waiting[side])

    def holds(self, side: str, message_id: str) -> bool:
        return message_id in self._waiting[side]

    def add(self, half: Half) -> Pair | None:
        """Return the completed pair, or None while ``half`` waits for its partner."""
        other_side = Y_PRED if half.side == Y_TRUE else Y_TRUE
        partner = self._waiting[other_side].pop(half.message_id, None)
        if partner is None:
            self._waiting[half.side][half.message_id] = half
            return None
        y_true, y_pred = (half, partner) if half.side == Y_TRUE else (partner, half)
        return Pair(half.message_id, y_true.value, y_pred.value, partner)

    def waiting(self) -> list[Half]:
        return [half for halves in self._waiting.values() for half in halves.values()]

    def release_older_than(self, moment: float) -> list[Half]:
        """Remove and return the halves that arrived before ``moment``."""
        released = [half for half in self.waiting() if half.arrived < moment]
        for half in released:
            del self._waiting[half.side][half.message_id]
        return released


def format_half(half: Half) -> bytes:
    return f"{half.side},{quote(half.message_id)},{half.value!r},{half.arrived!r}\n".encode()


class HalfJournal:
    """The waiting halves on disk: appended as they start waiting, rewritten when mostly obsolete."""

    def __init__(self, path: Path) -> None:
        self._file = AppendFile(path)
        self._lines = 0

    def open(self) -> list[Half]:
        """Open, cut a torn last line, and return every half recorded (some may have been paired since)."""
        self._file.open()
        lines = self._file.all_lines()
        self._lines = len(lines)
        halves = []
        for fields in csv.reader(io.StringIO(b"\n".join(lines).decode())):
            try:
                side, message_id, value, arrived = fields
                halves.append(Half(side, message_id, float(value), float(arrived)))
            except ValueError:
                LOGGER.warning("skipping a journal line that is no half: %s", fields)
        return halves

    def record(self, half: Half) -> None:
        self._file.append(format_half(half))
        self._lines += 1

    def sync(self) -> None:
        self._file.sync()

    def compact(self, live: list[Half], force: bool = False) -> None:
        """Rewrite the journal with only the ``live`` halves (still waiting, or being released), once most lines are
        obsolete. Waiting for at least as many obsolete lines as live ones keeps the rewriting linear."""
        obsolete = self._lines - len(live)
        if force or obsolete >= max(COMPACT_AFTER, len(live)):
            self._file.replace_lines([format_half(half) for half in live])
            self._lines = len(live)

    def close(self) -> None:
        self._file.close()
