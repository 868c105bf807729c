"""The log-bucket histogram: quantiles within 1 % over any range, and bars over the bulk with the outliers counted."""

import numpy as np
import pytest
from histogram import RELATIVE_ACCURACY, Histogram

SHARES = (0.01, 0.1, 0.5, 0.9, 0.99, 0.999)


def filled(values: np.ndarray, chunks: int = 7) -> Histogram:
    histogram = Histogram()
    for chunk in np.array_split(values, chunks):
        histogram.add(chunk)
    return histogram


def assert_quantiles_within_the_accuracy(histogram: Histogram, values: np.ndarray) -> None:
    for share in SHARES:
        expected = float(np.quantile(values, share, method="lower"))  # the value at rank share * (n - 1)
        assert histogram.quantile(share) == pytest.approx(expected, rel=RELATIVE_ACCURACY, abs=0), share


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(1).exponential(30.0, 20_000),
        np.random.default_rng(2).uniform(0.0, 100.0, 20_000),
        np.abs(np.random.default_rng(3).normal(0.0, 1e-3, 20_000)),
        10.0 ** np.random.default_rng(4).uniform(-9.0, 300.0, 20_000),  # 1e-9 to 1e300
    ],
    ids=["exponential", "uniform", "tiny", "1e-9 to 1e300"],
)
def test_quantiles_are_within_the_relative_accuracy_over_any_range(values: np.ndarray) -> None:
    histogram = filled(values)
    assert histogram.total == len(values)
    assert_quantiles_within_the_accuracy(histogram, values)


def test_one_wild_error_moves_no_quantile_of_the_others() -> None:
    values = np.random.default_rng(5).exponential(50.0, 5000)
    histogram = filled(np.concatenate([values[:2500], [1e6], values[2500:]]))
    median = float(np.quantile(values, 0.5, method="lower"))
    assert histogram.quantile(0.5) == pytest.approx(median, rel=RELATIVE_ACCURACY)
    assert histogram.quantile(0.9) == pytest.approx(np.quantile(values, 0.9, method="lower"), rel=0.02)
    assert histogram.quantile(1.0) == pytest.approx(1e6, rel=RELATIVE_ACCURACY)


def test_zeros_and_the_largest_floats_are_counted() -> None:
    largest = 1.7976931348623157e308
    values = np.array([0.0] * 600 + [5e-324] * 100 + [1.0] * 299 + [largest])
    histogram = filled(values)
    assert histogram.total == 1000 and histogram.zeros == 700, "5e-324 cannot be told from 0"
    assert histogram.quantile(0.5) == 0.0
    assert histogram.quantile(0.8) == pytest.approx(1.0, rel=RELATIVE_ACCURACY)
    assert histogram.quantile(1.0) == pytest.approx(largest, rel=RELATIVE_ACCURACY)
    bars = histogram.bars()
    assert bars.above == 1 and bars.counts.sum() == 999 and bars.top < 1.1
    histogram.add([largest] * 10)
    assert histogram.bars().above == 0, "1 % of the rows are the bulk: shown"
    assert np.isfinite(histogram.bars().edges).all()


def test_bars_show_the_bulk_and_count_the_outliers_beside() -> None:
    values = np.random.default_rng(6).exponential(30.0, 5000)
    histogram = filled(np.concatenate([values, [1e6]]))
    bars = histogram.bars()
    assert len(bars.counts) == 40 and len(bars.edges) == 41 and bars.edges[0] == 0.0
    top = float(np.quantile(np.concatenate([values, [1e6]]), 0.999, method="lower"))
    assert top <= bars.top <= top * (1 + 3 * RELATIVE_ACCURACY), "the range ends at the 99.9th percentile's bucket"
    assert bars.above == int((values > bars.top).sum()) + 1, "the outlier and the last rows of the tail"
    assert bars.counts.sum() + bars.above == len(values) + 1
    exact, _edges = np.histogram(values, bins=bars.edges)
    assert np.abs(bars.counts - exact).max() <= 0.05 * exact.max(), "each bar close to the exact count"
    assert bars.counts.dtype.kind == "i", "whole rows"


def test_bars_of_mostly_zeros_and_of_nothing() -> None:
    histogram = Histogram()
    bars = histogram.bars()
    assert histogram.quantile(0.9) == 0.0 and bars.counts.sum() == 0 and bars.above == 0
    histogram.add([0.0] * 2000 + [3.0, 1e6])
    bars = histogram.bars()
    assert bars.counts[0] == 2000 and bars.counts.sum() == 2001, "zeros and the 3"
    assert 3.0 <= bars.top < 3.1 and bars.above == 1
