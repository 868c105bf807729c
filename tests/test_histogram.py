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
