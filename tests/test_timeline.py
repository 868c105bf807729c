import numpy as np
import pytest
from timeline import PERCENTILES, Timeline, merge_percentiles


def test_blocks_hold_the_exact_mean_and_p90_until_they_merge() -> None:
    values = np.random.default_rng(1).exponential(10.0, 1000)
    timeline = Timeline(block_size=100, most=20)
    for chunk in np.array_split(values, 13):
        timeline.add(chunk)
    blocks = values.reshape(10, 100)
    assert timeline.ends == list(range(100, 1001, 100))
    assert timeline.means == pytest.approx(blocks.mean(axis=1).tolist())
    assert timeline.p90 == pytest.approx(np.percentile(blocks, 90, axis=1).tolist())


def test_a_full_timeline_merges_pairs_and_doubles_its_blocks() -> None:
    values = np.random.default_rng(2).exponential(10.0, 10_050)
    timeline = Timeline(block_size=10, most=8)
    timeline.add(values)
    assert len(timeline.ends) <= 8 and timeline.rows == 10_050
    size = timeline.block_size
    assert timeline.ends == list(range(size, size * len(timeline.ends) + 1, size))
    blocks = values[: size * len(timeline.ends)].reshape(-1, size)
    assert timeline.means == pytest.approx(blocks.mean(axis=1).tolist())
    assert timeline.p90 == pytest.approx(np.percentile(blocks, 90, axis=1).tolist(), rel=0.05)


def test_merged_percentiles_match_those_of_both_blocks_together() -> None:
    rng = np.random.default_rng(3)
    first, second = rng.exponential(10.0, 5000), rng.exponential(20.0, 5000)
    merged = merge_percentiles(np.percentile(first, PERCENTILES), np.percentile(second, PERCENTILES))
    together = np.percentile(np.concatenate([first, second]), PERCENTILES)
    assert merged[[10, 50, 90]] == pytest.approx(together[[10, 50, 90]], rel=0.02)


def test_blocks_of_errors_near_the_largest_float_have_finite_means() -> None:
    timeline = Timeline(block_size=4, most=2)
    timeline.add([1.7e308] * 8 + [1.0] * 8)
    assert timeline.means == [1.7e308, 1.0], "two blocks of 4 merged into blocks of 8"
