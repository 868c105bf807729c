"""monitoring/prometheus.yml: valid for Prometheus's own checker, and pointing at the ports the stack uses."""

from __future__ import annotations

import re
import subprocess

from tests.helpers import REPO

CONFIG = REPO / "monitoring" / "prometheus.yml"


def test_promtool_accepts_the_scrape_configuration() -> None:
    result = subprocess.run(["promtool", "check", "config", str(CONFIG)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_scrapes_the_four_services_on_the_compose_metrics_port_and_rabbitmq_prometheus() -> None:
    text = CONFIG.read_text()
    assert "names: [features, model, metric, plot]" in text
    compose_port = re.search(r"METRICS_PORT: \$\{METRICS_PORT:-(\d+)\}", (REPO / "docker-compose.yml").read_text())
    assert compose_port is not None and f"port: {compose_port.group(1)}\n" in text
    assert 'targets: ["rabbitmq:15692"]' in text
