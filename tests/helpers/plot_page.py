"""plot as a process serving its page, the CSV rows it draws, and a client of its page and /summary.json."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.metric_log import HEADER, format_row
from tests.helpers.ports import free_port, port_open
from tests.helpers.services import UNREACHABLE, Services
from tests.helpers.waiting import wait_until


def write_rows(csv: Path, rows: int, seed: int, shift: float = 0.0) -> None:
    generator = np.random.default_rng(seed)
    truth = generator.normal(100, 30, rows)
    predicted = truth + generator.normal(2.0 + shift, 10, rows)
    lines = b"".join(
        format_row(f"{seed}-{n}", float(t), float(p)) for n, (t, p) in enumerate(zip(truth, predicted, strict=True))
    )
    with csv.open("ab") as file:
        file.write((HEADER if csv.stat().st_size == 0 else b"") + lines)


def csv_numbers(csv: Path) -> dict[str, float]:
    data = np.loadtxt(csv, delimiter=",", skiprows=1, usecols=(1, 2, 3))
    errors = data[:, 2]
    return {
        "rows": len(data),
        "mae": float(errors.mean()),
        "rmse": float(np.sqrt(np.square(errors).mean())),
        "bias": float((data[:, 1] - data[:, 0]).mean()),
        "median": float(np.quantile(errors, 0.5, method="lower")),
        "p90": float(np.quantile(errors, 0.9, method="lower")),
        "p99": float(np.quantile(errors, 0.99, method="lower")),
        "max": float(errors.max()),
    }


class Page:
    def __init__(self, port: int) -> None:
        self.port = port

    def get(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def summary(self) -> dict[str, Any]:
        status, _headers, body = self.get("/summary.json")
        assert status == 200
        return json.loads(body)

    def rows_or_none(self) -> int | None:
        """The summary's rows, or None while the page does not answer (every slot taken, say)."""
        try:
            return self.summary()["rows"]
        except (ConnectionError, TimeoutError):
            return None


def start_plot(folder: Path, logs_dir: Path, **settings: str) -> tuple[Services, int]:
    """plot as a process serving its page on a free port, with an empty CSV; returns it and the port once listening."""
    (logs_dir / "metric_log.csv").touch()
    port = free_port()
    environment = {"AMQP_URL": UNREACHABLE, "LOGS_DIR": str(logs_dir), "PLOT_INTERVAL": "0.2", "WEB_PORT": str(port)}
    services = Services(folder, environment | settings)
    services.start("plot")
    wait_until(lambda: port_open(port), 30, "the page to listen")
    return services, port
