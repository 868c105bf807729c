"""The file side of the join: what metric_waiting.sqlite holds as the join sees it, the committed file plus what changed
since the last commit (halves spilled to the waiting table or gone from it, ids done, halves being released).

A half on disk that is being released, or that left the waiting table since the last commit (the table still has it),
is unavailable: it pairs with nothing. Nothing here writes but ``commit``, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from waiting import SIDE_BIT, Changes, Done, Found, Half, WaitingStore

from pipeline.topology import Y_PRED, Y_TRUE


class FileSide:
    """The halves waiting on disk, counted by side, and the changes the next ``commit`` writes."""

    def __init__(self, store: WaitingStore) -> None:
        self._store = store
        self._count = {Y_TRUE: store.count(Y_TRUE), Y_PRED: store.count(Y_PRED)}
        self._releasing: dict[tuple[str, str], Half] = {}  # published to a dead-letter queue, not confirmed yet
        self._leaving: set[tuple[str, str]] = set()  # left the waiting table since the last commit
        self._changes = Changes()
        self._swept_to = ""  # the sweep through handled ids goes on after this id

    def waiting(self, side: str) -> int:
        return self._count[side]

    def created_times(self) -> list[int]:
        """The creation time of the oldest half waiting on disk, of each side that has one."""
        return [created for side in (Y_TRUE, Y_PRED) if (created := self._store.oldest(side)) is not None]

    # --- what the file knows ----------------------------------------------------------------------

    def find(self, row_ids: list[str]) -> Found:
        """What the file knows of ``row_ids``, and the halves moved to disk since the last commit."""
        found = self._store.find(row_ids, waiting=self._store.has_waiting())
        for half in self._changes.spilled:
            found.waiting.setdefault(half.row_id, {})[half.side] = half
        return found

    def inbox(self) -> Iterator[list[Half]]:
        """The inbox in order, chunk by chunk."""
        return self._store.inbox()

    def find_committed(self, row_ids: list[str]) -> Found:
        """What the committed file knows of ``row_ids``."""
        return self._store.find(row_ids)

    def handled(self, row_id: str, found: Found) -> int:
        """The sides of ``row_id`` written or released (``done``), committed or not."""
        in_changes = self._changes.done.get(row_id)
        return found.sides(row_id) | (0 if in_changes is None else in_changes.sides)

    def done_since_commit(self, row_id: str) -> Done | None:
        return self._changes.done.get(row_id)

    def releasing(self, half: Half) -> Half | None:
        """The half of ``half``'s side and id being released, if it is."""
        return self._releasing.get((half.side, half.row_id))

    def unavailable(self, half: Half) -> bool:
        """Whether ``half`` is being released, or left the disk since the last commit (the table still has it)."""
        key = (half.side, half.row_id)
        return key in self._releasing or key in self._leaving

    def is_leaving(self, half: Half) -> bool:
        return (half.side, half.row_id) in self._leaving

    # --- changes ----------------------------------------------------------------------------------

    def began_waiting(self, half: Half) -> None:
        """``half`` waits in memory: it goes to the inbox."""
        self._changes.inbox.append(half)

    def spill(self, half: Half) -> None:
        """``half`` moves from memory to the waiting table."""
        self._changes.spilled.append(half)
        self._count[half.side] += 1

    def leave(self, half: Half) -> None:
        """``half`` leaves the waiting table: paired, or released and confirmed."""
        self._changes.gone.append(half)
        self._leaving.add((half.side, half.row_id))
        self._count[half.side] -= 1

    def stay(self, half: Half) -> None:
        """``half``, which was leaving, stays in the waiting table."""
        self._changes.gone.remove(half)
        self._leaving.discard((half.side, half.row_id))
        self._count[half.side] += 1

    def mark_done(self, row_id: str, created: int, sides: int, *known: Half) -> None:
        self._changes.mark_done(row_id, created, sides, *known)

    # --- releasing --------------------------------------------------------------------------------

    def release(self, half: Half) -> None:
        """``half`` (on disk, or moving there at the next commit) is being released: it pairs with nothing now."""
        self._releasing[(half.side, half.row_id)] = half

    def released(self, half: Half) -> bool:
        """The broker confirmed ``half`` in its dead-letter queue: it is done. Return whether it was being released."""
        if self._releasing.pop((half.side, half.row_id), None) is None:
            return False
        self.leave(half)
        self.mark_done(half.row_id, half.created, SIDE_BIT[half.side], half)
        return True

    @property
    def releasing_count(self) -> int:
        return len(self._releasing)

    def take_orphans(self, created_before: dict[str, int | None], limit: int) -> list[Half]:
        """Halves on disk created before ``created_before[side]``, at most ``limit``, now being released."""
        taken: list[Half] = []
        for side, before in created_before.items():
            if before is None:
                continue
            for half in self._store.older_than(side, before, limit + len(self._releasing) + len(self._leaving)):
                if not self.unavailable(half) and len(taken) < limit:
                    self.release(half)
                    taken.append(half)
        return taken

    # --- writing ----------------------------------------------------------------------------------

    def commit(self, in_memory: Callable[[Half], bool], inbox_from: int, meta: dict[str, int]) -> None:
        """Write every change since the last commit, and ``meta``, in one fsynced transaction; of the inbox's new
        halves, those still ``in_memory`` (the rest paired already), and the inbox before ``inbox_from`` is cut."""
        changes = self._changes
        changes.inbox = [half for half in changes.inbox if in_memory(half)]
        changes.inbox_from = inbox_from
        changes.meta = meta
        self._store.commit(changes)
        self._changes = Changes()
        self._leaving.clear()

    def forget_done(self, created_before: int, limit: int) -> int:
        """Sweep on through the handled ids, forgetting those created before ``created_before``."""
        forgotten, self._swept_to = self._store.forget_done(created_before, self._swept_to, limit)
        return forgotten
