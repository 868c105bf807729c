from pathlib import Path

from pipeline.join import COMPACT_AFTER, Half, HalfJournal, Join
from pipeline.topology import Y_PRED, Y_TRUE


def test_halves_pair_whichever_comes_first() -> None:
    join = Join()
    assert join.add(Half(Y_TRUE, "a", 1.0, 0.0)) is None
    assert join.add(Half(Y_PRED, "b", 5.0, 0.0)) is None
    assert len(join) == 2
    pair_a = join.add(Half(Y_PRED, "a", 3.0, 0.0))
    pair_b = join.add(Half(Y_TRUE, "b", 4.0, 0.0))
    assert pair_a is not None and pair_b is not None
    assert (pair_a.message_id, pair_a.y_true, pair_a.y_pred) == ("a", 1.0, 3.0)
    assert (pair_b.message_id, pair_b.y_true, pair_b.y_pred) == ("b", 4.0, 5.0)
    assert len(join) == 0


def test_a_waiting_half_is_known_by_side_and_id() -> None:
    join = Join()
    join.add(Half(Y_TRUE, "a", 1.0, 0.0))
    assert join.holds(Y_TRUE, "a")
    assert not join.holds(Y_PRED, "a")


def test_halves_older_than_a_moment_are_released() -> None:
    join = Join()
    join.add(Half(Y_TRUE, "old", 1.0, 10.0))
    join.add(Half(Y_PRED, "new", 1.0, 20.0))
    assert [half.message_id for half in join.release_older_than(15.0)] == ["old"]
    assert not join.holds(Y_TRUE, "old") and join.holds(Y_PRED, "new")
    assert join.add(Half(Y_PRED, "old", 2.0, 30.0)) is None, "a released half no longer pairs"


def test_the_journal_gives_back_recorded_halves_after_a_torn_write(tmp_path: Path) -> None:
    path = tmp_path / "waiting.journal"
    journal = HalfJournal(path)
    assert journal.open() == []
    journal.record(Half(Y_TRUE, "a,1", 151.0, 1000.5))
    journal.record(Half(Y_PRED, "b", 97.25, 1001.0))
    journal.sync()
    journal.close()
    with path.open("ab") as file:
        file.write(b"y_true,c,1")
    restored = HalfJournal(path).open()
    assert restored == [Half(Y_TRUE, "a,1", 151.0, 1000.5), Half(Y_PRED, "b", 97.25, 1001.0)]


def test_the_journal_is_rewritten_with_the_waiting_halves_once_mostly_obsolete(tmp_path: Path) -> None:
    path = tmp_path / "waiting.journal"
    journal, join = HalfJournal(path), Join()
    journal.open()
    for index in range(COMPACT_AFTER + 1):
        half = Half(Y_TRUE, f"id{index}", 1.0, 0.0)
        join.add(half)
        journal.record(half)
        if index:
            join.add(Half(Y_PRED, f"id{index}", 2.0, 0.0))
    journal.sync()
    size = path.stat().st_size
    journal.compact(join.waiting())
    assert path.stat().st_size < size
    journal.close()
    assert HalfJournal(path).open() == [Half(Y_TRUE, "id0", 1.0, 0.0)]
