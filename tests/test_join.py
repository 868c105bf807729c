"""The join and its file, without metric around them: pairing, copies, memory to disk, and a restart."""

from __future__ import annotations

import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import front as front_module
import pytest
from join import Conflict, Join, Outcome
from waiting import Changes, FileInUse, Half, WaitingStore

from pipeline.topology import Y_PRED, Y_TRUE

NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WaitingStore]:
    store = WaitingStore(tmp_path / "waiting.sqlite")
    store.open()
    yield store
    store.close()


def half(side: str, row_id: str, value: float = 1.0, created: int = 1000) -> Half:
    return Half(side, row_id, value, created, arrived=NOW)


def outcomes(join: Join, *halves: Half) -> list[Outcome]:
    return [outcome for outcome, _pair in join.add(list(halves))]


def test_halves_pair_whichever_comes_first_and_copies_are_known(store: WaitingStore) -> None:
    join = Join(store)
    assert outcomes(join, half(Y_TRUE, "a", 1.0), half(Y_PRED, "b", 5.0)) == [Outcome.WAITING] * 2
    [(outcome_a, pair_a), (outcome_b, pair_b)] = join.add([half(Y_PRED, "a", 3.0), half(Y_TRUE, "b", 4.0)])
    assert outcome_a is outcome_b is Outcome.ROW and pair_a is not None and pair_b is not None
    assert (pair_a.y_true, pair_a.y_pred, pair_b.y_true, pair_b.y_pred) == (1.0, 3.0, 4.0, 5.0)
    assert len(join) == 0
    assert outcomes(join, half(Y_TRUE, "a"), half(Y_PRED, "b")) == [Outcome.COPY] * 2
    join.commit({})
    assert outcomes(join, half(Y_TRUE, "a"), half(Y_PRED, "b")) == [Outcome.COPY] * 2, "and once committed"


def test_a_copy_of_a_waiting_half_is_known_in_memory_and_on_disk(store: WaitingStore) -> None:
    join = Join(store)
    assert outcomes(join, half(Y_TRUE, "a"), half(Y_TRUE, "a")) == [Outcome.WAITING, Outcome.COPY]
    assert join.move_to_disk(NOW + 61)
    join.commit({})
    assert store.count(Y_TRUE) == 1 and join.waiting(Y_TRUE) == 1
    assert outcomes(join, half(Y_TRUE, "a")) == [Outcome.COPY]
    assert outcomes(join, half(Y_PRED, "a")) == [Outcome.ROW]
    join.commit({})
    assert store.count(Y_TRUE) == 0 and len(join) == 0


def test_a_restart_reads_a_long_inbox_in_chunks_and_keeps_memory_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(front_module, "FRONT_HALVES", 100)
    store = WaitingStore(tmp_path / "waiting.sqlite")
    store.open()
    join = Join(store)
    join.add([half(Y_TRUE, f"t{index:05d}") for index in range(25_000)])
    join.commit({})  # 25,000 in the inbox: FRONT_HALVES was not looked at before the commit
    store.close()

    store = WaitingStore(tmp_path / "waiting.sqlite")
    join = Join(store, store.open()["next_seq"])
    spilled_per_commit: list[int] = []
    commit = store.commit

    def counting_commit(changes: Changes) -> None:
        spilled_per_commit.append(len(changes.spilled))
        commit(changes)

    monkeypatch.setattr(store, "commit", counting_commit)
    join.restore(NOW)
    assert join.waiting(Y_TRUE) == 25_000
    assert spilled_per_commit == [10_000 - 100, 10_000, 5_000], "each chunk's halves past FRONT_HALVES on disk at once"
    join.commit({})
    assert store.count(Y_TRUE) == 25_000 - 100, "all but FRONT_HALVES moved to disk as the inbox was read"
    store.close()


def test_memory_holds_front_halves_even_while_one_half_waits_and_thousands_pair_behind_it(
    store: WaitingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(front_module, "FRONT_HALVES", 10)
    join = Join(store)
    join.add([half(Y_TRUE, "waits")])
    tracemalloc.start()
    for batch in range(100):  # 50,000 rows within FRONT_SECONDS, the second half of each in the next batch
        ids = [f"r{batch:03d}{index:03d}" for index in range(500)]
        join.add([half(Y_TRUE, row_id) for row_id in ids])
        join.add([half(Y_PRED, row_id) for row_id in ids])
        join.move_to_disk(NOW + batch * 0.5)
        join.commit({})
    held, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert join.waiting(Y_TRUE) == 1
    assert held < 2_000_000, f"{held / 1e6:.1f} MB held for one waiting half"


def test_a_not_finite_pair_with_a_half_moved_to_disk_but_not_committed_keeps_that_half(tmp_path: Path) -> None:
    store = WaitingStore(tmp_path / "waiting.sqlite")
    store.open()
    join = Join(store)
    join.add([half(Y_TRUE, "huge", 1e308)])
    assert join.move_to_disk(NOW + 61)  # moved to disk, not committed yet
    assert outcomes(join, half(Y_PRED, "huge", -1e308)) == [Outcome.NOT_FINITE]
    join.commit({})
    store.close()  # a crash before the broker confirms its release

    store = WaitingStore(tmp_path / "waiting.sqlite")
    store.open()
    assert store.count(Y_TRUE) == 1, "still on disk, to be released again"
    store.close()


def test_memory_holds_at_most_front_halves(store: WaitingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(front_module, "FRONT_HALVES", 10)
    join = Join(store)
    join.add([half(Y_PRED, f"p{index:03d}") for index in range(2500)])
    join.move_to_disk(NOW)
    join.commit({})
    assert store.count(Y_PRED) == 2490 and join.waiting(Y_PRED) == 2500
    rows = join.add([half(Y_TRUE, f"p{index:03d}") for index in range(2500)])  # 2,500 ids: three queries
    assert [outcome for outcome, _ in rows] == [Outcome.ROW] * 2500
    join.commit({})
    assert store.count(Y_PRED) == 0 and len(join) == 0


def test_after_a_restart_the_inbox_waits_again_and_what_paired_does_not(tmp_path: Path) -> None:
    store = WaitingStore(tmp_path / "waiting.sqlite")
    store.open()
    join = Join(store)
    join.add([half(Y_TRUE, "waits"), half(Y_TRUE, "pairs"), half(Y_PRED, "pairs")])
    join.commit({"csv_offset": 7})
    store.close()

    store = WaitingStore(tmp_path / "waiting.sqlite")
    saved = store.open()
    assert saved["csv_offset"] == 7
    join = Join(store, saved["next_seq"])
    join.restore(NOW)
    assert join.waiting(Y_TRUE) == 1 and join.waiting(Y_PRED) == 0
    assert outcomes(join, half(Y_PRED, "pairs"), half(Y_PRED, "waits")) == [Outcome.COPY, Outcome.ROW]
    join.add([half(Y_TRUE, "new")])
    join.commit({})
    inbox = [entry.row_id for chunk in store.inbox() for entry in chunk]
    assert inbox == ["new"], "the inbox is cut once nothing needs its head"
    store.close()


def test_orphans_are_taken_oldest_first_and_pair_no_more(store: WaitingStore) -> None:
    join = Join(store)
    join.add([half(Y_TRUE, "old", created=100), half(Y_TRUE, "young", created=200), half(Y_PRED, "p", created=50)])
    assert join.move_orphans_to_disk({Y_TRUE: 150, Y_PRED: None})
    join.commit({})
    [orphan] = join.take_orphans({Y_TRUE: 150, Y_PRED: None}, limit=10)
    assert orphan.row_id == "old" and join.take_orphans({Y_TRUE: 150, Y_PRED: None}, limit=10) == []
    assert outcomes(join, half(Y_PRED, "old", created=100)) == [Outcome.WAITING], "its partner is being released"
    join.released(orphan)
    join.commit({})
    assert store.count(Y_TRUE) == 0 and outcomes(join, half(Y_TRUE, "old", created=100)) == [Outcome.COPY]


def test_a_half_the_other_stream_passed_is_an_orphan_at_once_unless_its_partner_waits(store: WaitingStore) -> None:
    join = Join(store)
    join.add([half(Y_TRUE, "waited", created=100)])
    late = [half(Y_PRED, "waited", created=100), half(Y_PRED, "lonely", created=100), half(Y_TRUE, "lonely")]
    assert [outcome for outcome, _ in join.add(late, {Y_TRUE: 150, Y_PRED: 150})] == [
        Outcome.ROW,
        Outcome.ORPHAN,
        Outcome.WAITING,  # created at 1000: not passed; and its partner is being released
    ]


def test_a_second_process_cannot_open_the_file(store: WaitingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("waiting.LOCK_TIMEOUT", 0.1)
    store.commit(Changes())
    with pytest.raises(FileInUse):
        WaitingStore(store.path).open()


def test_a_copy_with_another_value_is_a_conflict_wherever_the_kept_half_is(tmp_path: Path) -> None:
    store = WaitingStore(tmp_path / "waiting.sqlite")
    store.open()
    join = Join(store)
    join.add([half(Y_TRUE, "front", 1.0), half(Y_TRUE, "disk", 2.0), half(Y_TRUE, "row", 3.0)])
    join.add([half(Y_PRED, "row", 4.0)])
    join.add([half(Y_TRUE, "front", 1.5), half(Y_PRED, "row", 4.5)])  # in memory; written, not committed
    assert join.take_conflicts() == [Conflict("front", Y_TRUE, 1.0, 1.5), Conflict("row", Y_PRED, 4.0, 4.5)]
    assert join.take_conflicts() == [], "taken"
    join.commit({})
    store.close()

    store = WaitingStore(tmp_path / "waiting.sqlite")  # after a restart: on disk, or in the done table
    join = Join(store, store.open()["next_seq"])
    join.restore(NOW)
    assert join.move_to_disk(NOW + 61)
    join.commit({})
    copies = [half(Y_TRUE, "disk", 2.5), half(Y_TRUE, "row", 3.5), half(Y_PRED, "row", 4.0), half(Y_TRUE, "front", 1.0)]
    assert outcomes(join, *copies) == [Outcome.COPY] * 4, "a conflicting copy is dropped as any copy"
    assert join.take_conflicts() == [Conflict("disk", Y_TRUE, 2.0, 2.5), Conflict("row", Y_TRUE, 3.0, 3.5)]
    store.close()


def test_a_copy_of_a_released_half_is_held_against_its_value(store: WaitingStore) -> None:
    join = Join(store)
    join.add([half(Y_TRUE, "old", 7.0, created=100)])
    join.move_orphans_to_disk({Y_TRUE: 150, Y_PRED: None})
    join.commit({})
    [orphan] = join.take_orphans({Y_TRUE: 150, Y_PRED: None}, limit=10)
    join.add([half(Y_PRED, "old", 1.0, created=100), half(Y_TRUE, "old", 7.5, created=100)])  # being released
    join.released(orphan)
    join.commit({})
    join.add([half(Y_TRUE, "old", 8.0, created=100), half(Y_TRUE, "old", 7.0, created=100)])  # released, committed
    assert join.take_conflicts() == [Conflict("old", Y_TRUE, 7.0, 7.5), Conflict("old", Y_TRUE, 7.0, 8.0)]


def test_a_file_from_before_the_values_were_kept_opens_and_its_ids_are_compared_against_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "waiting.sqlite"
    old = sqlite3.connect(path)  # the schema of the previous version, with one written row and one waiting half
    old.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE inbox (
            seq INTEGER PRIMARY KEY, side INTEGER NOT NULL, id TEXT NOT NULL, value REAL NOT NULL,
            created INTEGER NOT NULL);
        CREATE TABLE waiting (
            id TEXT NOT NULL, side INTEGER NOT NULL, value REAL NOT NULL, created INTEGER NOT NULL,
            PRIMARY KEY (id, side)) WITHOUT ROWID;
        CREATE INDEX waiting_by_age ON waiting (side, created);
        CREATE TABLE done (id TEXT PRIMARY KEY, created INTEGER NOT NULL, sides INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO meta VALUES ('next_seq', 1), ('csv_offset', 0);
        INSERT INTO waiting VALUES ('waits', 0, 2.0, 1000);
        INSERT INTO done VALUES ('written', 1000, 3);
        """
    )
    old.commit()
    old.close()

    store = WaitingStore(path)
    join = Join(store, store.open()["next_seq"])
    assert outcomes(join, half(Y_TRUE, "written", 9.0), half(Y_TRUE, "waits", 2.5)) == [Outcome.COPY] * 2
    assert join.take_conflicts() == [Conflict("waits", Y_TRUE, 2.0, 2.5)], "the written row's values are not known"
    assert outcomes(join, half(Y_PRED, "waits", 3.0)) == [Outcome.ROW]
    join.commit({})
    assert outcomes(join, half(Y_PRED, "waits", 3.5)) == [Outcome.COPY]
    assert join.take_conflicts() == [Conflict("waits", Y_PRED, 3.0, 3.5)], "rows written since keep their values"
    store.close()
    store.open()  # and it opens again, migrated
    store.close()
