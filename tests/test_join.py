from pipeline.join import Half, Join
from pipeline.topology import Y_PRED, Y_TRUE


def test_halves_pair_whichever_comes_first() -> None:
    join: Join[str] = Join()
    assert join.add(Half(Y_TRUE, "a", 1.0, "t1")) is None
    assert join.add(Half(Y_PRED, "b", 5.0, "p2")) is None
    assert len(join) == 2
    pair_a = join.add(Half(Y_PRED, "a", 3.0, "p1"))
    pair_b = join.add(Half(Y_TRUE, "b", 4.0, "t2"))
    assert pair_a is not None and pair_b is not None
    assert (pair_a.message_id, pair_a.y_true.value, pair_a.y_pred.value) == ("a", 1.0, 3.0)
    assert (pair_b.y_true.token, pair_b.y_pred.token) == ("t2", "p2")
    assert len(join) == 0


def test_a_waiting_half_is_known_by_side_and_id() -> None:
    join: Join[str] = Join()
    join.add(Half(Y_TRUE, "a", 1.0, "t1"))
    assert join.holds(Y_TRUE, "a")
    assert not join.holds(Y_PRED, "a")
    join.clear()
    assert not join.holds(Y_TRUE, "a") and len(join) == 0
