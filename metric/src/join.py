"""The join: y_true and y_pred halves paired by id, whatever the order and however long apart they come.

A half that finds no partner waits: first in memory (the front), appended to the store's inbox so that its delivery
can be acked; after FRONT_SECONDS, or past FRONT_HALVES, it moves to the store's waiting table on disk, so memory
stays flat however many wait. A pair and a released half are remembered, with their values, in the store's done
table, so a copy of either half is known as one. A copy whose value differs from the one kept (the first that came) is
dropped all the same, and noted for metric to report (``take_conflicts``). Nothing here touches the disk but through
``WaitingStore``, and only ``commit`` writes.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

from waiting import BOTH_SIDES, SIDE_BIT, Changes, Found, Half, WaitingStore

from pipeline.topology import Y_PRED, Y_TRUE

FRONT_HALVES = 50_000  # halves waiting in memory at most; older ones move to disk
FRONT_SECONDS = 60.0  # seconds a half waits in memory before it moves to disk (and the inbox can be cut)
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
    """Pairs halves; every change goes to the store in the next ``commit``."""

    def __init__(self, store: WaitingStore, next_seq: int = 1) -> None:
        self._store = store
        self._front: dict[str, Half] = {}  # by id: one side waits in memory, or the two would have paired
        self._arrivals: deque[Half] = deque()  # the front in inbox order, with halves that left it since
        self._in_front = {Y_TRUE: 0, Y_PRED: 0}
        self._on_disk = {Y_TRUE: store.count(Y_TRUE), Y_PRED: store.count(Y_PRED)}
        self._releasing: dict[tuple[str, str], Half] = {}  # published to a dead-letter queue, not confirmed yet
        self._leaving: set[tuple[str, str]] = set()  # left the waiting table since the last commit
        self._changes = Changes()
        self._next_seq = next_seq
        self._swept_to = ""  # the sweep through handled ids goes on after this id
        self._conflicts: list[Conflict] = []  # since the last take_conflicts (metric takes them after every add)

    def waiting(self, side: str) -> int:
        return self._in_front[side] + self._on_disk[side]

    def __len__(self) -> int:
        return self.waiting(Y_TRUE) + self.waiting(Y_PRED)

    def oldest(self) -> int | None:
        """Creation time of the oldest waiting half."""
        times = [half.created for half in self._front.values()]
        times += [created for side in (Y_TRUE, Y_PRED) if (created := self._store.oldest(side)) is not None]
        return min(times, default=None)

    # --- pairing ----------------------------------------------------------------------------------

    def add(
        self, halves: list[Half], orphans_before: dict[str, int | None] | None = None
    ) -> list[tuple[Outcome, Pair | None]]:
        """Pair or keep each half, in order; a pair of the batch is its row (or its non-finite pair). A half of
        ``side`` created before ``orphans_before[side]`` that finds no partner waiting is an orphan at once: it goes
        to disk to be released, and pairs with nothing (not with a late copy of its partner either)."""
        found = self._find([half.row_id for half in halves if self._ask_file(half.row_id)])
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

    def _find(self, row_ids: list[str]) -> Found:
        """What the file knows of ``row_ids``, and the halves moved to disk since the last commit."""
        found = self._store.find(row_ids, waiting=self._store.has_waiting())
        for half in self._changes.spilled:
            found.waiting.setdefault(half.row_id, {})[half.side] = half
        return found

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
        half.handled = self._handled(half.row_id, found)
        self._wait(half)
        return Outcome.WAITING, None

    def _handled(self, row_id: str, found: Found) -> int:
        """The sides of ``row_id`` written or released (``done``), committed or not."""
        in_changes = self._changes.done.get(row_id)
        return found.sides(row_id) | (0 if in_changes is None else in_changes.sides)

    def _is_copy(self, half: Half, found: Found) -> bool:
        """Whether the same side of the id was written or released, or is being released, or waits."""
        bit = SIDE_BIT[half.side]
        if self._handled(half.row_id, found) & bit or self._unavailable(half):
            return True
        in_front = self._front.get(half.row_id)
        if in_front is not None:
            return in_front.side == half.side or bool(in_front.handled & bit)
        return half.side in found.waiting.get(half.row_id, {})

    def _kept_value(self, half: Half, found: Found) -> float | None:
        """The value kept of the side of which ``half`` is a copy: written, released, being released, or waiting in
        memory or on disk (None: not known, for an id handled before the values were kept)."""
        row_id = half.row_id
        done = (found.done.get(row_id), self._changes.done.get(row_id))
        held = (
            self._releasing.get((half.side, row_id)),
            self._front.get(row_id),
            found.waiting.get(row_id, {}).get(half.side),
        )
        values = [entry.value(half.side) for entry in done if entry is not None]
        values += [kept.value for kept in held if kept is not None and kept.side == half.side]
        return next((value for value in values if value is not None), None)

    def _unavailable(self, half: Half) -> bool:
        """Whether ``half`` is being released, or left the disk since the last commit (the table still has it)."""
        key = (half.side, half.row_id)
        return key in self._releasing or key in self._leaving

    def _take_partner(self, half: Half, found: Found) -> Half | None:
        """The partner waiting in memory or on disk (not one being released or gone), no longer waiting."""
        in_front = self._front.get(half.row_id)
        if in_front is not None:
            self._leave_front(in_front)
            return in_front
        partner = found.waiting.get(half.row_id, {}).get(PARTNER_SIDE[half.side])
        if partner is None or self._unavailable(partner):
            return None
        self._leave_disk(partner)
        return partner

    def _pair(self, half: Half, partner: Half) -> tuple[Outcome, Pair]:
        y_true, y_pred = (half, partner) if half.side == Y_TRUE else (partner, half)
        pair = Pair(half.row_id, y_true.value, y_pred.value, partner)
        if math.isfinite(pair.absolute_error):
            self._changes.mark_done(half.row_id, max(half.created, partner.created), BOTH_SIDES, half, partner)
            return Outcome.ROW, pair
        # no row: the half that came is rejected, and the partner goes to its dead-letter queue, from disk
        if (partner.side, partner.row_id) in self._leaving:
            self._back_on_disk(partner)
        else:
            self._spill(partner)
        self.release(partner)
        return Outcome.NOT_FINITE, pair

    def _wait(self, half: Half) -> None:
        half.seq, self._next_seq = self._next_seq, self._next_seq + 1
        self._enter_front(half)
        self._changes.inbox.append(half)

    def _enter_front(self, half: Half) -> None:
        self._front[half.row_id] = half
        self._arrivals.append(half)
        self._in_front[half.side] += 1

    def _leave_front(self, half: Half) -> None:
        del self._front[half.row_id]
        self._in_front[half.side] -= 1

    def _leave_disk(self, half: Half) -> None:
        self._changes.gone.append(half)
        self._leaving.add((half.side, half.row_id))
        self._on_disk[half.side] -= 1

    def _back_on_disk(self, half: Half) -> None:
        self._changes.gone.remove(half)
        self._leaving.discard((half.side, half.row_id))
        self._on_disk[half.side] += 1

    def _spill(self, half: Half) -> None:
        """Move ``half`` from memory to the waiting table (it may have left the front already)."""
        if self._front.get(half.row_id) is half:
            self._leave_front(half)
        self._changes.spilled.append(half)
        self._on_disk[half.side] += 1

    # --- restoring, and halves already written ----------------------------------------------------

    def restore(self, now: float) -> None:
        """Wait again, in memory, for the inbox's halves that are still waiting (the rest paired since); the halves
        past FRONT_HALVES go to disk, committed chunk by chunk."""
        for halves in self._store.inbox():
            found = self._store.find([half.row_id for half in halves])
            for half in halves:
                handled = found.sides(half.row_id) & SIDE_BIT[half.side]
                on_disk = half.side in found.waiting.get(half.row_id, {})
                if not handled and not on_disk and half.row_id not in self._front:
                    half.arrived, half.handled = now, found.sides(half.row_id)
                    self._enter_front(half)
            self._next_seq = max(self._next_seq, halves[-1].seq + 1)
            if self.move_to_disk(now):  # past FRONT_HALVES: memory stays bounded however long the inbox
                self.commit({})

    def written(self, row_ids: list[str], now: int) -> None:
        """Rows metric_log.csv holds that the store did not know of (written just before a crash): forget their
        halves, keeping the value of the one that waited."""
        found = self._find(row_ids)
        for row_id in row_ids:
            created, known = now, []
            if (in_front := self._front.get(row_id)) is not None:
                self._leave_front(in_front)
                created = in_front.created
                known.append(in_front)
            for half in found.waiting.get(row_id, {}).values():
                self._leave_disk(half)
                created = half.created
                known.append(half)
            self._changes.mark_done(row_id, created, BOTH_SIDES, *known)

    # --- memory, orphans and the file -------------------------------------------------------------

    def move_to_disk(self, now: float) -> bool:
        """Move to disk the halves that waited in memory FRONT_SECONDS, and the oldest past FRONT_HALVES. Return
        whether any moved."""
        moved = False
        self._drop_departed()
        while self._arrivals and (len(self._front) > FRONT_HALVES or now - self._arrivals[0].arrived > FRONT_SECONDS):
            self._spill(self._arrivals.popleft())
            self._drop_departed()
            moved = True
        if len(self._arrivals) > 2 * FRONT_HALVES:  # a half waits at the head while thousands pair behind it
            self._arrivals = deque(half for half in self._arrivals if self._front.get(half.row_id) is half)
        return moved

    def move_orphans_to_disk(self, created_before: dict[str, int | None]) -> bool:
        """Move to disk the halves in memory created before ``created_before[side]``, to be released from there.
        Return whether there were any."""
        orphans = [
            half
            for half in self._front.values()
            if (before := created_before[half.side]) is not None and half.created < before
        ]
        for half in orphans:
            self._spill(half)
        return bool(orphans)

    def _drop_departed(self) -> None:
        """Drop the oldest arrivals that left the front (paired, or moved to disk)."""
        while self._arrivals and self._front.get(self._arrivals[0].row_id) is not self._arrivals[0]:
            self._arrivals.popleft()

    def take_orphans(self, created_before: dict[str, int | None], limit: int) -> list[Half]:
        """Halves on disk created before ``created_before[side]``, at most ``limit``, now being released: none of
        them pairs any more; ``released`` forgets each once the broker has it."""
        taken: list[Half] = []
        for side, before in created_before.items():
            if before is None:
                continue
            for half in self._store.older_than(side, before, limit + len(self._releasing) + len(self._leaving)):
                if not self._unavailable(half) and len(taken) < limit:
                    self.release(half)
                    taken.append(half)
        return taken

    def release(self, half: Half) -> None:
        """``half`` (on disk, or moving there at the next commit) is being released: it pairs with nothing now."""
        self._releasing[(half.side, half.row_id)] = half

    def released(self, half: Half) -> None:
        """The broker confirmed ``half`` in its dead-letter queue."""
        if self._releasing.pop((half.side, half.row_id), None) is not None:
            self._leave_disk(half)
            self._changes.mark_done(half.row_id, half.created, SIDE_BIT[half.side], half)
            if (partner := self._front.get(half.row_id)) is not None:
                partner.handled |= SIDE_BIT[half.side]  # a copy of the released half must not pair with it

    @property
    def releasing(self) -> int:
        return len(self._releasing)

    def commit(self, meta: dict[str, int]) -> None:
        """Write every change since the last commit, and ``meta``, in one fsynced transaction."""
        self._drop_departed()
        changes = self._changes
        changes.inbox = [half for half in changes.inbox if self._front.get(half.row_id) is half]  # not paired
        changes.inbox_from = self._arrivals[0].seq if self._arrivals else self._next_seq
        changes.meta = meta | {"next_seq": self._next_seq}
        self._store.commit(changes)
        self._changes = Changes()
        self._leaving.clear()

    def forget_done(self, created_before: int, limit: int) -> int:
        """Sweep on through the handled ids, forgetting those created before ``created_before``."""
        forgotten, self._swept_to = self._store.forget_done(created_before, self._swept_to, limit)
        return forgotten
