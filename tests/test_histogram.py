import numpy as np

from pipeline.histogram import Histogram


def test_counts_match_numpy_over_the_same_edges() -> None:
    values = np.random.default_rng(1).exponential(30.0, 5000)
    histogram = Histogram(bins=40)
    for chunk in np.array_split(values, 7):
        histogram.add(chunk)
    expected, _ = np.histogram(values, bins=histogram.edges)
    assert histogram.total == 5000
    assert histogram.counts.tolist() == expected.tolist()
    assert histogram.edges[-1] > values.max()


def test_a_larger_value_merges_bins_instead_of_growing_them() -> None:
    histogram = Histogram(bins=4)
    histogram.add([0.1, 0.2, 0.3])
    width = histogram.width
    histogram.add([100.0])
    assert len(histogram.counts) == 4
    assert histogram.width > width
    assert histogram.total == 4
    assert histogram.counts[-1] == 1 and histogram.counts[0] == 3


def test_all_zero_errors_fit_the_first_bin() -> None:
    histogram = Histogram(bins=4)
    histogram.add([0.0, 0.0])
    histogram.add([])
    assert histogram.counts.tolist() == [2, 0, 0, 0]


def test_quantiles_are_within_a_bin_of_numpy() -> None:
    values = np.random.default_rng(2).exponential(30.0, 20_000)
    histogram = Histogram()
    histogram.add(values)
    for share in (0.5, 0.9, 0.99):
        assert abs(histogram.quantile(share) - np.quantile(values, share)) <= histogram.width


def test_bars_group_whole_bins_over_the_occupied_range() -> None:
    values = np.random.default_rng(3).uniform(0.0, 100.0, 5000)
    histogram = Histogram()
    histogram.add(values)
    counts, edges = histogram.bars(most=50)
    assert 25 <= len(counts) <= 50 and len(edges) == len(counts) + 1
    assert counts.sum() == 5000
    assert edges[-2] <= values.max() < edges[-1]
    assert counts.tolist() == np.histogram(values, bins=edges)[0].tolist()


def test_an_empty_histogram_has_zero_quantiles_and_one_empty_bar() -> None:
    histogram = Histogram()
    assert histogram.quantile(0.9) == 0.0
    counts, _edges = histogram.bars()
    assert counts.tolist() == [0]
