"""plot's Prometheus metrics: the rows, MAE, the drift alarm, the histogram of the absolute errors and the inputs'
drift, read from the latest snapshot at each scrape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from error_stats import ERROR_BUCKETS
from input_drift import metric_families
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from snapshot import HasSnapshot


class PlotMetrics(Collector):
    """plot's Prometheus metrics, read from the latest snapshot at each scrape."""

    def __init__(self, source: HasSnapshot) -> None:
        self._source = source

    def collect(self) -> Iterator[Any]:
        snapshot = self._source.snapshot
        yield CounterMetricFamily("pipeline_rows", "Rows of metric_log.csv read by plot", value=snapshot.rows)
        yield GaugeMetricFamily("pipeline_absolute_error_mean", "MAE of every row so far", value=snapshot.mae)
        yield GaugeMetricFamily(
            "pipeline_drift_alarm", "1 while the drift alarm is up, else 0", value=int(snapshot.drift["alarm"])
        )
        for key, text in (("reference_mae", "Reference MAE of the drift alarm"), ("window_mae", "MAE of the window")):
            if snapshot.drift[key] is not None:
                yield GaugeMetricFamily(f"pipeline_drift_{key}", text, value=snapshot.drift[key])
        cumulative = np.cumsum(snapshot.buckets)
        buckets = [(f"{bound:g}", float(count)) for bound, count in zip(ERROR_BUCKETS, cumulative, strict=False)]
        yield HistogramMetricFamily(
            "pipeline_absolute_error",
            "Absolute errors of every row so far",
            buckets=[*buckets, ("+Inf", float(snapshot.rows))],
            sum_value=snapshot.error_sum,
        )
        yield from metric_families(snapshot.inputs)
