"""The drift alarm's arithmetic: reference, rolling window, hysteresis, and the same answer however rows are batched."""

from __future__ import annotations

import math
import statistics
import tracemalloc

import numpy as np
import pytest
from drift import MOST_STRETCHES, REFERENCE_BLOCKS, DriftChange, DriftMonitor, window_means
from hypothesis import given, settings
from hypothesis import strategies as st


def per_row(errors: list[float], *, window: int, ratio: float, reference_rows: int) -> list[tuple[int, bool]]:
    """The alarm's definition, one row at a time and without numpy: what the vectorised monitor must agree with."""
    clear = 1 + (ratio - 1) / 2
    blocks = np.array_split(np.array(errors[:reference_rows]), min(REFERENCE_BLOCKS, reference_rows))
    reference = (
        statistics.median(sum(block) / len(block) for block in blocks) if len(errors) >= reference_rows else None
    )
    alarm, changes = False, []
    for row in range(max(window, reference_rows), len(errors) + 1):
        mean = sum(errors[row - window : row]) / window
        assert reference is not None
        if (not alarm and mean > ratio * reference) or (alarm and mean < clear * reference):
            alarm = not alarm
            changes.append((row, alarm))
    return changes


def feed(monitor: DriftMonitor, errors: list[float], cuts: list[int]) -> list[DriftChange]:
    changes, start = [], 0
    for cut in [*sorted(cuts), len(errors)]:
        changes += monitor.add(errors[start:cut])
        start = max(start, cut)
    return changes


@settings(max_examples=200, deadline=None)
@given(
    errors=st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 4.0]), min_size=0, max_size=120),
    cuts=st.lists(st.integers(0, 120), max_size=6),
    window=st.integers(1, 12),
    reference_rows=st.integers(1, 20),
)
def test_batches_of_any_size_give_the_changes_of_the_row_by_row_definition(
    errors: list[float], cuts: list[int], window: int, reference_rows: int
) -> None:
    monitor = DriftMonitor(window=window, ratio=1.5, reference_rows=reference_rows)
    changes = feed(monitor, errors, [min(cut, len(errors)) for cut in cuts])
    assert [(change.row, change.alarm) for change in changes] == per_row(
        errors, window=window, ratio=1.5, reference_rows=reference_rows
    )
    assert monitor.rows == len(errors)


def test_a_doubled_error_raises_the_alarm_within_one_window_and_once() -> None:
    generator = np.random.default_rng(7)
    before, after = np.abs(generator.normal(0, 1, 5000)), np.abs(generator.normal(0, 2, 2000))
    monitor = DriftMonitor(window=500, ratio=1.5, reference_rows=1000)
    assert monitor.add(before) == []
    changes = monitor.add(after)
    assert len(changes) == 1 and changes[0].alarm
    assert 5000 < changes[0].row <= 5000 + 500, "within one window of the change"
    assert monitor.alarm and monitor.alarms == 1 and monitor.stretches[-1].start == changes[0].row


def test_hysteresis_keeps_the_alarm_between_the_two_levels_and_clears_below_the_lower() -> None:
    monitor = DriftMonitor(window=10, ratio=1.5, reference_rows=10)
    monitor.add([1.0] * 10)
    assert [c.alarm for c in monitor.add([2.0] * 10)] == [True]
    assert monitor.add([1.3] * 30) == [], "1.3 is above the clearing level 1.25: the alarm stays"
    cleared = monitor.add([1.0] * 10)
    assert [c.alarm for c in cleared] == [False]
    assert monitor.stretches[-1].end == cleared[0].row
    assert monitor.add([1.45] * 30) == [], "1.45 is below the raising level 1.5"


def test_a_given_reference_is_used_from_the_first_full_window() -> None:
    monitor = DriftMonitor(window=5, ratio=2.0, reference_rows=1000, reference_mae=1.0)
    changes = monitor.add([3.0] * 5)
    assert [(c.row, c.alarm, c.reference_mae) for c in changes] == [(5, True, 1.0)]
    assert monitor.threshold == 2.0 and monitor.clear_ratio == 1.5


def test_a_stationary_stream_of_a_million_rows_raises_no_alarm() -> None:
    generator = np.random.default_rng(11)
    monitor = DriftMonitor(window=500, ratio=1.5, reference_rows=1000)
    for _ in range(100):  # exponential errors: a long tail, as a model's absolute errors often have
        assert monitor.add(generator.exponential(1.0, 10_000)) == []
    assert monitor.rows == 1_000_000 and monitor.alarms == 0


def test_memory_is_the_window_and_a_bounded_list_of_stretches() -> None:
    monitor = DriftMonitor(window=2, ratio=1.5, reference_rows=2, reference_mae=1.0)
    monitor.add([5.0, 5.0, 0.0, 0.0] * (MOST_STRETCHES + 50))
    assert monitor.alarms == MOST_STRETCHES + 50
    assert len(monitor.stretches) == MOST_STRETCHES
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100):
            monitor.add(np.zeros(10_000))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"a million rows more (8 MB of errors) took {grown} bytes"
    monitor.add([3.0])
    assert monitor.window_mae == 1.5, "the window is the last two rows"


@pytest.mark.parametrize(("window", "ratio", "rows"), [(0, 1.5, 10), (10, 1.0, 10), (10, 1.5, 0)])
def test_settings_that_mean_nothing_are_refused(window: int, ratio: float, rows: int) -> None:
    with pytest.raises(ValueError, match="window"):
        DriftMonitor(window=window, ratio=ratio, reference_rows=rows)


def test_one_wild_row_in_the_reference_leaves_the_alarm_for_a_model_fifty_times_worse() -> None:
    generator = np.random.default_rng(12)
    reference = generator.exponential(30.0, 1000)
    reference[400] = 1e6  # one valid row of a wild error: the mean of the first rows would be 1.0e3
    monitor = DriftMonitor(window=500, ratio=1.5, reference_rows=1000)
    assert monitor.add(reference) == []
    assert monitor.reference_mae == pytest.approx(30.0, rel=0.15), "the median of the blocks' MAEs"
    assert monitor.add(generator.exponential(30.0, 5000)) == [], "stationary: nothing"
    changes = monitor.add(generator.exponential(50 * 30.0, 1000))
    assert [change.alarm for change in changes] == [True]


def test_a_wild_row_after_the_reference_raises_the_alarm_for_one_window() -> None:
    monitor = DriftMonitor(window=100, ratio=1.5, reference_rows=100)
    monitor.add([1.0] * 300)
    changes = monitor.add([1e6] + [1.0] * 300)
    assert [(change.row, change.alarm) for change in changes] == [(301, True), (401, False)]


def test_rows_near_the_largest_float_weigh_on_the_windows_that_hold_them_only() -> None:
    monitor = DriftMonitor(window=4, ratio=1.5, reference_rows=4)
    monitor.add([1.0, 2.0, 1.0, 2.0])
    monitor.add([1.7e308, 1.7e308, 1e300, 0.1, 0.2, 0.3, 0.4, 0.5])  # one batch: one sum would pass inf then nan
    assert monitor.window_mae == (0.2 + 0.3 + 0.4 + 0.5) / 4, "exact once the wild rows left the window"
    monitor.add([1.7e308] * 4)
    assert monitor.window_mae is not None and math.isfinite(monitor.window_mae)
    assert monitor.window_mae == pytest.approx(1.7e308)


def test_window_means_are_exact_sums_of_their_own_values() -> None:
    values = np.array([1e300, 1.0, 2.0, 3.0, 1.7e308, 1.7e308, 4.0, 5.0, 6.0, 7.0])
    means = window_means(values, 3)
    expected = [math.fsum(values[start : start + 3] / 3) for start in range(len(values) - 2)]
    assert means.tolist() == pytest.approx(expected, rel=1e-15)
    assert means[1] == 2.0 and means[-1] == 6.0 and np.isfinite(means).all()


def test_a_reference_near_the_largest_float_keeps_a_finite_threshold() -> None:
    monitor = DriftMonitor(window=2, ratio=1.5, reference_rows=2)
    assert monitor.add([1.7e308, 1.7e308, 1.7e308]) == []
    assert monitor.reference_mae == 1.7e308
    assert monitor.threshold is not None and math.isfinite(monitor.threshold)
