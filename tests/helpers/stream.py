"""A whole run, features, model and metric on one broker, and the checks that end it: every row exactly once."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.csv_log import csv_rows, row_count
from tests.helpers.ledger import ledger_ids
from tests.helpers.queues import drained
from tests.helpers.services import Services, stop_gracefully
from tests.helpers.waiting import wait_until


class Stream:
    """features (with a ledger of confirmed ids), model and metric on one broker, and the checks that end a test."""

    def __init__(self, services: Services, url: str, logs_dir: Path) -> None:
        self.services, self.url = services, url
        self.csv = logs_dir / "metric_log.csv"
        self.ledger = logs_dir.parent / "ledger"

    def start(self, *consumers: str, **features_environment: str) -> None:
        """Start ``consumers`` (metric and model by default; ``model-2`` is a replica of model), then features."""
        for name in consumers or ("metric", "model"):
            self.services.start(name, service=name.split("-", maxsplit=1)[0])
        self.services.start("features", FEATURES_LEDGER=str(self.ledger), **features_environment)

    def rows(self) -> int:
        return row_count(self.csv)

    def wait_for_rows(self, rows: int, timeout: float = 60) -> None:
        wait_until(lambda: self.rows() >= rows, timeout, f"{rows} rows")

    def finish(self, expected: int | None = None, also: frozenset[str] = frozenset()) -> list[list[str]]:
        """Let features end (if limited), metric and model drain the queues and stop; check every row.

        ``also``: ids of rows the test published itself, beside features' rows.
        """
        if expected is not None:
            assert self.services.wait("features", timeout=120) == 0
        produced = expected if expected is not None else len(ledger_ids(self.ledger))
        self.wait_for_rows(produced + len(also), timeout=90)
        draining = [name for name in self.services.processes if name.startswith(("metric", "model"))]
        ready = lambda: all(self.services.is_ready(name) for name in draining)  # noqa: E731
        wait_until(ready, 60, "metric and model to be ready")
        wait_until(lambda: drained(self.url), 30, "the queues to drain")
        stop_gracefully(self.services, *draining)
        assert drained(self.url)
        return self.assert_exactly_once(produced, also)

    def assert_exactly_once(self, produced: int, also: frozenset[str] = frozenset()) -> list[list[str]]:
        """One row per confirmed id: none lost, none duplicated, none of an id never published."""
        rows = csv_rows(self.csv)
        ids = [row[0] for row in rows]
        confirmed = ledger_ids(self.ledger)
        assert len(set(ids)) == len(ids), f"{len(ids) - len(set(ids))} duplicated rows"
        assert len(confirmed) == produced
        assert set(confirmed) <= set(ids), f"{len(set(confirmed) - set(ids))} confirmed ids have no row"
        unexpected = set(ids) - set(ledger_ids(self.ledger, "published")) - also
        assert not unexpected, f"{len(unexpected)} rows of ids never published"
        return rows
