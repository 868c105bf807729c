"""The join and its file, without metric around them: pairing, copies, memory to disk, and a restart."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import join as join_module
import pytest
from join import Join, Outcome
from waiting import Changes, FileInUse, Half, WaitingStore

from pipeline.topology import Y_PRED, Y_TRUE

NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WaitingStore]:
    store = WaitingStore(tmp_path / "waiting.sqlite")
    store.open()
    yield store
    store.close()


def half(side: str, message_id: str, value: float = 1.0, created: int = 1000) -> Half:
    return Half(side, message_id, value, created, arrived=NOW)


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
    monkeypatch.setattr(join_module, "FRONT_HALVES", 100)
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
    monkeypatch.setattr(join_module, "FRONT_HALVES", 10)
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
    monkeypatch.setattr(join_module, "FRONT_HALVES", 10)
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
    inbox = [entry.message_id for chunk in store.inbox() for entry in chunk]
    assert inbox == ["new"], "the inbox is cut once nothing needs its head"
    store.close()


def test_orphans_are_taken_oldest_first_and_pair_no_more(store: WaitingStore) -> None:
    join = Join(store)
    join.add([half(Y_TRUE, "old", created=100), half(Y_TRUE, "young", created=200), half(Y_PRED, "p", created=50)])
    assert join.move_orphans_to_disk({Y_TRUE: 150, Y_PRED: None})
    join.commit({})
    [orphan] = join.take_orphans({Y_TRUE: 150, Y_PRED: None}, limit=10)
    assert orphan.message_id == "old" and join.take_orphans({Y_TRUE: 150, Y_PRED: None}, limit=10) == []
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
    store.commit(join_module.Changes())
    with pytest.raises(FileInUse):
        WaitingStore(store.path).open()
