"""The numbers of one refresh, which the page's and the metrics' threads read: never the live statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from error_stats import ErrorStats


@dataclass(frozen=True)
class Snapshot:
    """The numbers of one refresh, read by the page's and the metrics' threads (never the live statistics)."""

    rows: int
    mae: float
    rmse: float
    median: float
    p90: float
    p99: float
    bias: float
    error_sum: float
    buckets: tuple[int, ...]
    rows_per_second: float
    last_row_at: float | None  # when the CSV was last written, if it has rows (seconds since the epoch)
    drift: dict[str, Any]
    pictures: dict[str, int]
    waiting: dict[str, Any] | None  # metric_status.json as metric last wrote it, if it has
    inputs: dict[str, Any] | None  # InputDrift.summary(): None before a reference

    @classmethod
    def of(
        cls,
        stats: ErrorStats,
        *,
        rows_per_second: float,
        last_row_at: float | None,
        pictures: dict[str, int],
        waiting: dict[str, Any] | None,
        inputs: dict[str, Any] | None,
    ) -> Snapshot:
        drift = stats.drift
        return cls(
            rows=stats.rows,
            mae=stats.mae,
            rmse=stats.rmse,
            median=stats.histogram.quantile(0.5),
            p90=stats.histogram.quantile(0.9),
            p99=stats.histogram.quantile(0.99),
            bias=stats.bias,
            error_sum=stats.sum,
            buckets=tuple(int(count) for count in stats.buckets),
            rows_per_second=rows_per_second,
            last_row_at=last_row_at,
            drift={
                "alarm": drift.alarm,
                "reference_mae": drift.reference_mae,
                "window_mae": drift.window_mae,
                "threshold": drift.threshold,
                "ratio": drift.ratio,
                "clear_ratio": drift.clear_ratio,
                "window": drift.window,
                "reference_rows": drift.reference_rows,
                "alarms": drift.alarms,
                "alarm_since_row": drift.stretches[-1].start if drift.alarm else None,
            },
            pictures=dict(pictures),
            waiting=waiting,
            inputs=inputs,
        )


class HasSnapshot(Protocol):
    """What the page and the metrics read from: the latest snapshot, replaced whole after each refresh."""

    @property
    def snapshot(self) -> Snapshot: ...
