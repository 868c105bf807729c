"""The join: y_true and y_pred halves paired by id, whatever the order and however long apart they come.

A half that finds no partner waits: first in memory (the front, ``front.py``), appended to the store's inbox so that
its delivery can be acked; after FRONT_SECONDS, or past FRONT_HALVES, it moves to the store's waiting table on disk
(``file_side.py``), so memory stays flat however many wait. A pair and a released half are remembered, with their
values, in the store's done table, so a copy of either half is known as one. A copy whose value differs from the one
kept (the first that came) is dropped all the same, and noted for metric to report (``take_conflicts``). Nothing here
touches the disk but through ``FileSide``, and only ``commit`` writes.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from file_side import FileSide
from front import Front
from waiting import BOTH_SIDES, SIDE_BIT, Found, Half, WaitingStore

from pipeline.topology import Y_PRED, Y_TRUE

PARTNER_SIDE = {Y_TRUE: Y_PRED, Y_PRED: Y_TRUE}


class Outcome(enum.Enum):
    ROW = "row"  # the half completed a row
    NOT_FINITE = "not finite"  # it completed a pair whose absolute error is not a finite number: no row
    WAITING = "waiting"  # it waits for its partner
    ORPHAN = "orphan"  # it came after the other stream had passed it, and its partner is not waiting: release it
    COPY = "copy"  # a copy of a half that waits, was written or was released: nothing to do (but note a conflict)


@dataclass(slots=True)
class Pair:
    """Both halves of a row; ``partner`` is the half that was waiting."""

    row_id: str
    y_true: float
    y_pred: float
    partner: Half

    @property
    def absolute_error(self) -> float:
        return abs(self.y_true - self.y_pred)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A copy of a half with another value than the one kept: the copy was dropped."""

    row_id: str
    side: str
    kept: float
    dropped: float


class Join:
    """Pairs halves, in memory (the front) or with the file side; every change goes to the store in the next
    ``commit``."""

    def __init__(self, store: WaitingStore, next_seq: int = 1) -> None:
        self._front = Front()
        self._file = FileSide(store)
        self._next_seq = next_seq
        self._conflicts: list[Conflict] = []  # since the last take_conflicts (metric takes them after every add)

    def waiting(self, side: str) -> int:
        return self._front.waiting(side) + self._file.waiting(side)

    def __len__(self) -> int:
        return self.waiting(Y_TRUE) + self.waiting(Y_PRED)

    def oldest(self) -> int | None:
        """Creation time of the oldest waiting half."""
        return min(self._front.created_times() + self._file.created_times(), default=None)

    # --- pairing ----------------------------------------------------------------------------------

    def add(
        self, halves: list[Half], orphans_before: dict[str, int | None] | None = None
    ) -> list[tuple[Outcome, Pair | None]]:
        """Pair or keep each half, in order; a pair of the batch is its row (or its non-finite pair). A half of
        ``side`` created before ``orphans_before[side]`` that finds no partner waiting is an orphan at once: it goes
        to disk to be released, and pairs with nothing (not with a late copy of its partner either)."""
        found = self._file.find([half.row_id for half in halves if self._ask_file(half.row_id)])
        before = orphans_before or {}
        return [self._add(half, found, before.get(half.side)) for half in halves]

    def _ask_file(self, row_id: str) -> bool:
        """Whether the file may know more of ``row_id`` than memory: not when one side waits in memory, unless
        the other side was released (the value kept of that side is in the done table)."""
        in_front = self._front.get(row_id)
        return in_front is None or bool(in_front.handled)

    def take_conflicts(self) -> list[Conflict]:
        """The copies with another value than the one kept, since the last call."""
        conflicts, self._conflicts = self._conflicts, []
        return conflicts

    def _add(self, half: Half, found: Found, orphan_before: int | None) -> tuple[Outcome, Pair | None]:
        if self._is_copy(half, found):
            kept = self._kept_value(half, found)
            if kept is not None and kept != half.value:
                self._conflicts.append(Conflict(half.row_id, half.side, kept, half.value))
            return Outcome.COPY, None
        partner = self._take_partner(half, found)
        if partner is not None:
            return self._pair(half, partner)
        if orphan_before is not None and half.created < orphan_before:
            self._spill(half)
            self.release(half)
            return Outcome.ORPHAN, None
        half.handled = self._file.handled(half.row_id, found)
        self._wait(half)
        return Outcome.WAITING, None

    def _is_copy(self, half: Half, found: Found) -> bool:
        """Whether the same side of the id was written or released, or is being released, or waits."""
        bit = SIDE_BIT[half.side]
        if self._file.handled(half.row_id, found) & bit or self._file.unavailable(half):
            return True
        in_front = self._front.get(half.row_id)
        if in_front is not None:
            return in_front.side == half.side or bool(in_front.handled & bit)
        return half.side in found.waiting.get(half.row_id, {})

    def _kept_value(self, half: Half, found: Found) -> float | None:
        """The value kept of the side of which ``half`` is a copy: written, released, being released, or waiting in
        memory or on disk (None: not known, for an id handled before the values were kept)."""
        row_id = half.row_id
        done = (found.done.get(row_id), self._file.done_since_commit(row_id))
        held = (
            self._file.releasing(half),
            self._front.get(row_id),
            found.waiting.get(row_id, {}).get(half.side),
        )
        values = [entry.value(half.side) for entry in done if entry is not None]
        values += [kept.value for kept in held if kept is not None and kept.side == half.side]
        return next((value for value in values if value is not None), None)

    def _take_partner(self, half: Half, found: Found) -> Half | None:
        """The partner waiting in memory or on disk (not one being released or gone), no longer waiting."""
        in_front = self._front.get(half.row_id)
        if in_front is not None:
            self._front.leave(in_front)
            return in_front
        partner = found.waiting.get(half.row_id, {}).get(PARTNER_SIDE[half.side])
        if partner is None or self._file.unavailable(partner):
            return None
        self._file.leave(partner)
        return partner

    def _pair(self, half: Half, partner: Half) -> tuple[Outcome, Pair]:
        y_true, y_pred = (half, partner) if half.side == Y_TRUE else (partner, half)
        pair = Pair(half.row_id, y_true.value, y_pred.value, partner)
        if math.isfinite(pair.absolute_error):
            self._file.mark_done(half.row_id, max(half.created, partner.created), BOTH_SIDES, half, partner)
            return Outcome.ROW, pair
        # no row: the half that came is rejected, and the partner goes to its dead-letter queue, from disk
        if self._file.is_leaving(partner):
            self._file.stay(partner)
        else:
            self._spill(partner)
        self.release(partner)
        return Outcome.NOT_FINITE, pair

    def _wait(self, half: Half) -> None:
        half.seq, self._next_seq = self._next_seq, self._next_seq + 1
        self._front.enter(half)
        self._file.began_waiting(half)

    def _spill(self, half: Half) -> None:
        """Move ``half`` from memory to the waiting table (it may have left the front already)."""
        if self._front.holds(half):
            self._front.leave(half)
        self._file.spill(half)

    # --- restoring, and halves already written ----------------------------------------------------

    def restore(self, now: float) -> None:
        """Wait again, in memory, for the inbox's halves that are still waiting (the rest paired since); the halves
        past FRONT_HALVES go to disk, committed chunk by chunk."""
        for halves in self._file.inbox():
            found = self._file.find_committed([half.row_id for half in halves])
            for half in halves:
                handled = found.sides(half.row_id) & SIDE_BIT[half.side]
                on_disk = half.side in found.waiting.get(half.row_id, {})
                if not handled and not on_disk and half.row_id not in self._front:
                    half.arrived, half.handled = now, found.sides(half.row_id)
                    self._front.enter(half)
            self._next_seq = max(self._next_seq, halves[-1].seq + 1)
            if self.move_to_disk(now):  # past FRONT_HALVES: memory stays bounded however long the inbox
                self.commit({})

    def written(self, row_ids: list[str], now: int) -> None:
        """Rows metric_log.csv holds that the store did not know of (written just before a crash): forget their
        halves, keeping the value of the one that waited."""
        found = self._file.find(row_ids)
        for row_id in row_ids:
            created, known = now, []
            if (in_front := self._front.get(row_id)) is not None:
                self._front.leave(in_front)
                created = in_front.created
                known.append(in_front)
            for half in found.waiting.get(row_id, {}).values():
                self._file.leave(half)
                created = half.created
                known.append(half)
            self._file.mark_done(row_id, created, BOTH_SIDES, *known)

    # --- memory, orphans and the file -------------------------------------------------------------

    def move_to_disk(self, now: float) -> bool:
        """Move to disk the halves that waited in memory FRONT_SECONDS, and the oldest past FRONT_HALVES. Return
        whether any moved."""
        due = self._front.take_due(now)
        for half in due:
            self._spill(half)
        return bool(due)

    def move_orphans_to_disk(self, created_before: dict[str, int | None]) -> bool:
        """Move to disk the halves in memory created before ``created_before[side]``, to be released from there.
        Return whether there were any."""
        orphans = self._front.created_before(created_before)
        for half in orphans:
            self._spill(half)
        return bool(orphans)

    def take_orphans(self, created_before: dict[str, int | None], limit: int) -> list[Half]:
        """Halves on disk created before ``created_before[side]``, at most ``limit``, now being released: none of
        them pairs any more; ``released`` forgets each once the broker has it."""
        return self._file.take_orphans(created_before, limit)

    def release(self, half: Half) -> None:
        """``half`` (on disk, or moving there at the next commit) is being released: it pairs with nothing now."""
        self._file.release(half)

    def released(self, half: Half) -> None:
        """The broker confirmed ``half`` in its dead-letter queue."""
        if self._file.released(half) and (partner := self._front.get(half.row_id)) is not None:
            partner.handled |= SIDE_BIT[half.side]  # a copy of the released half must not pair with it

    @property
    def releasing(self) -> int:
        return self._file.releasing_count

    def commit(self, meta: dict[str, int]) -> None:
        """Write every change since the last commit, and ``meta``, in one fsynced transaction."""
        first_in_memory = self._front.first_seq()
        inbox_from = self._next_seq if first_in_memory is None else first_in_memory
        self._file.commit(self._front.holds, inbox_from, meta | {"next_seq": self._next_seq})

    def forget_done(self, created_before: int, limit: int) -> int:
        """Sweep on through the handled ids, forgetting those created before ``created_before``."""
        return self._file.forget_done(created_before, limit)
