"""metric_waiting.sqlite: the halves that wait for their partner, and the ids already handled, on disk.

One SQLite file in WAL mode (the standard library's ``sqlite3``), written by one transaction per batch of deliveries
and fsynced before their acks go out. Four tables:

- ``inbox``: halves that began to wait, appended in arrival order (a rowid table, so an append touches its last
  page). They also wait in metric's memory, where most find their partner within seconds; the inbox is what brings
  them back after a crash. Its oldest entries are cut once nothing in memory needs them.
- ``waiting``: halves that waited longer, or past the memory's share, keyed by id and side.
- ``done``: ids whose row was written, or whose half was released to a dead-letter queue, with the sides handled and
  their values, so that a copy of either half is known however late it comes, and one with another value is told
  apart; forgotten once both streams have passed them. The values cost 12 bytes a row on disk (67 instead of 55) and
  0.3 µs of CPU (3.5 instead of 3.2), measured like the figures below; files from before had no values (``open`` adds
  the columns, and their ids' values are not known).
- ``meta``: how far metric_log.csv was written when the transaction committed, and how far each stream had come.

Why SQLite, and these keys (measured on this machine, 300,000 halves in batches of 250, one fsynced commit each):
with random ids an insert or delete cost 60 µs, because each touches its own page of the index; with ids that sort by
time (features makes UUIDs of version 7) 5.5 µs, and an append to the inbox about 1 µs. So halves that pair quickly
cost one inbox append, long waiters an insert and a delete in time order, and ids of any shape still work.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.append_file import fsync_directory
from pipeline.topology import Y_PRED, Y_TRUE

SIDE_NUMBER = {Y_TRUE: 0, Y_PRED: 1}
SIDE_OF_NUMBER = {number: side for side, number in SIDE_NUMBER.items()}
SIDE_BIT = {Y_TRUE: 1, Y_PRED: 2}  # done.sides: which halves of the id are handled
BOTH_SIDES = 3
CACHE_KIB = 16 * 1024  # SQLite's page cache: memory stays flat however many halves wait on disk
LOCK_TIMEOUT = 10.0  # seconds to wait for a file another process has open before giving up
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY, side INTEGER NOT NULL, id TEXT NOT NULL, value REAL NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS waiting (
    id TEXT NOT NULL, side INTEGER NOT NULL, value REAL NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (id, side)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS waiting_by_age ON waiting (side, created);
CREATE TABLE IF NOT EXISTS done (
    id TEXT PRIMARY KEY, created INTEGER NOT NULL, sides INTEGER NOT NULL, y_true REAL, y_pred REAL
) WITHOUT ROWID;
"""
DONE_VALUES = ("y_true", "y_pred")  # columns a file from before they were kept lacks: ``open`` adds them


@dataclass(slots=True)
class Half:
    """One side of a row. ``created``: its event time, Unix seconds. ``seq``, ``arrived`` (metric's clock) and
    ``handled`` (the sides of its id already released, as in ``done``) only mean something while it waits in memory."""

    side: str
    row_id: str
    value: float
    created: int
    seq: int = 0
    arrived: float = 0.0
    handled: int = 0


@dataclass(slots=True)
class Done:
    """An id whose row was written, or one of whose halves was released: its creation time, the sides handled (bits
    of SIDE_BIT) and their values (None: not known, for an id handled by a version that did not keep them)."""

    created: int
    sides: int
    y_true: float | None = None
    y_pred: float | None = None

    def value(self, side: str) -> float | None:
        return self.y_true if side == Y_TRUE else self.y_pred

    def add(self, created: int, sides: int, known: tuple[Half, ...]) -> None:
        """Handle ``sides`` too, with the values of the ``known`` halves; values known already stay (the first that
        came is the one kept)."""
        self.created, self.sides = max(self.created, created), self.sides | sides
        for half in known:
            if half.side == Y_TRUE and self.y_true is None:
                self.y_true = half.value
            elif half.side == Y_PRED and self.y_pred is None:
                self.y_pred = half.value


@dataclass
class Changes:
    """What one transaction writes, gathered between two commits."""

    inbox: list[Half] = field(default_factory=list)  # began to wait in memory
    spilled: list[Half] = field(default_factory=list)  # moved from memory to the waiting table
    gone: list[Half] = field(default_factory=list)  # left the waiting table: paired, or released and confirmed
    done: dict[str, Done] = field(default_factory=dict)
    inbox_from: int | None = None  # every inbox entry before this seq is no longer needed
    meta: dict[str, int] = field(default_factory=dict)

    def mark_done(self, row_id: str, created: int, sides: int, *known: Half) -> None:
        """``sides`` of ``row_id`` are handled; ``known``: those of its halves whose values are known."""
        self.done.setdefault(row_id, Done(created, 0)).add(created, sides, known)


@dataclass
class Found:
    """What the file knows of a batch's ids: halves waiting on disk (by id, then side) and those handled."""

    waiting: dict[str, dict[str, Half]]
    done: dict[str, Done]

    def sides(self, row_id: str) -> int:
        """The sides of ``row_id`` handled (bits of SIDE_BIT)."""
        done = self.done.get(row_id)
        return 0 if done is None else done.sides


class FileInUse(RuntimeError):
    """Another process holds the file: two metrics must never share one LOGS_DIR."""


class WaitingStore:
    """The file, opened by ``open`` and written only by ``commit``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "open() first"
        return self._db

    def open(self) -> dict[str, int]:
        """Open (creating it if missing) and return what ``meta`` holds (nothing before the first commit)."""
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=LOCK_TIMEOUT)
        try:
            self.db.execute("PRAGMA locking_mode=EXCLUSIVE")  # one metric per file; and no -shm file to map
            self.db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            if "locked" in str(error):
                raise FileInUse(f"{self.path} is in use by another process (a second metric?)") from None
            raise
        self.db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the acks it allows
        self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self.db.executescript(SCHEMA)
        self._add_done_values()
        fsync_directory(self.path.parent)  # SQLite syncs the file, not the folder's entry for it
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def _add_done_values(self) -> None:
        """Add the value columns to the ``done`` table of a file from before they were kept (one statement each:
        a crash between the two leaves one to add at the next start)."""
        columns = {name for _, name, *_ in self.db.execute("PRAGMA table_info(done)")}
        for column in DONE_VALUES:
            if column not in columns:
                self.db.execute(f"ALTER TABLE done ADD COLUMN {column} REAL")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def has_waiting(self) -> bool:
        return self.db.execute("SELECT 1 FROM waiting LIMIT 1").fetchone() is not None

    def count(self, side: str) -> int:
        (count,) = self.db.execute("SELECT count(*) FROM waiting WHERE side = ?", (SIDE_NUMBER[side],)).fetchone()
        return int(count)

    def inbox(self, chunk: int = 10_000) -> Iterator[list[Half]]:
        """The inbox in order, ``chunk`` halves at a time (most of it may be halves that paired since)."""
        after = 0
        while True:
            rows = self.db.execute(
                "SELECT seq, side, id, value, created FROM inbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, chunk)
            ).fetchall()
            if not rows:
                return
            yield [Half(SIDE_OF_NUMBER[side], id_, value, created, seq) for seq, side, id_, value, created in rows]
            after = rows[-1][0]

    def find(self, ids: list[str], waiting: bool = True) -> Found:
        """The sides handled of ``ids`` and, unless ``waiting`` is False (none waits on disk), their halves waiting on
        disk: one indexed query each per 1,000 ids."""
        found = Found({}, {})
        for chunk in _chunks(list(dict.fromkeys(ids)), 1000):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT id, created, sides, y_true, y_pred FROM done WHERE id IN ({marks})"
            for id_, created, sides, y_true, y_pred in self.db.execute(query, chunk):
                found.done[id_] = Done(created, sides, y_true, y_pred)
            if not waiting:
                continue
            query = f"SELECT id, side, value, created FROM waiting WHERE id IN ({marks})"
            for id_, number, value, created in self.db.execute(query, chunk):
                side = SIDE_OF_NUMBER[number]
                found.waiting.setdefault(id_, {})[side] = Half(side, id_, value, created)
        return found

    def older_than(self, side: str, created: int, limit: int) -> list[Half]:
        """Up to ``limit`` halves of ``side`` waiting on disk that were created before ``created``, oldest first."""
        rows = self.db.execute(
            "SELECT id, value, created FROM waiting WHERE side = ? AND created < ? ORDER BY created LIMIT ?",
            (SIDE_NUMBER[side], created, limit),
        )
        return [Half(side, id_, value, created_) for id_, value, created_ in rows]

    def oldest(self, side: str) -> int | None:
        row = self.db.execute("SELECT min(created) FROM waiting WHERE side = ?", (SIDE_NUMBER[side],)).fetchone()
        return None if row[0] is None else int(row[0])

    def forget_done(self, before: int, after_id: str, limit: int) -> tuple[int, str]:
        """Look at the next ``limit`` handled ids after ``after_id`` and forget those created before ``before``.
        Return how many it forgot and the id to go on from ('' once it has gone round). A sweep costs less than an
        index by age, which every row would pay for (2 µs of the 10 a row costs the file, measured)."""
        span = "SELECT id FROM done WHERE id > ? ORDER BY id LIMIT ?"
        seen, last = self.db.execute(f"SELECT count(*), max(id) FROM ({span})", (after_id, limit)).fetchone()
        if not seen:
            return 0, ""
        deleted = self.db.execute(  # one statement: its own transaction
            "DELETE FROM done WHERE id > ? AND id <= ? AND created < ?", (after_id, last, before)
        ).rowcount
        return deleted, last if seen == limit else ""

    def commit(self, changes: Changes) -> None:
        """Write ``changes`` in one transaction, fsynced when this returns."""
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT INTO inbox VALUES (?, ?, ?, ?, ?)", _inbox_rows(changes.inbox))
            if changes.spilled:
                db.executemany("INSERT OR REPLACE INTO waiting VALUES (?, ?, ?, ?)", _waiting_rows(changes.spilled))
                db.executemany("DELETE FROM inbox WHERE seq = ?", [(half.seq,) for half in changes.spilled])
            if changes.inbox_from is not None:
                db.execute("DELETE FROM inbox WHERE seq < ?", (changes.inbox_from,))
            db.executemany(
                "DELETE FROM waiting WHERE id = ? AND side = ?",
                [(half.row_id, SIDE_NUMBER[half.side]) for half in changes.gone],
            )
            db.executemany(
                "INSERT INTO done VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET sides = sides | excluded.sides,"
                " y_true = coalesce(y_true, excluded.y_true), y_pred = coalesce(y_pred, excluded.y_pred)",
                [(id_, done.created, done.sides, done.y_true, done.y_pred) for id_, done in changes.done.items()],
            )
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", changes.meta.items())
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _inbox_rows(halves: list[Half]) -> Iterator[tuple[int, int, str, float, int]]:
    for half in halves:
        yield half.seq, SIDE_NUMBER[half.side], half.row_id, half.value, half.created


def _waiting_rows(halves: list[Half]) -> Iterator[tuple[str, int, float, int]]:
    for half in halves:
        yield half.row_id, SIDE_NUMBER[half.side], half.value, half.created


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    return (items[start : start + size] for start in range(0, len(items), size))
