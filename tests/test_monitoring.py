"""monitoring/prometheus.yml: valid for Prometheus's own checker and pointing at the ports the stack uses; its alert
rules, monitoring/alerts.yml, checked and unit-tested by promtool (monitoring/alerts_test.yml); and a real Prometheus
reading what a service serves."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from error_stats import ERROR_BUCKETS

from tests.helpers import REPO
from tests.helpers.plot_page import start_plot, write_rows
from tests.helpers.ports import free_port
from tests.helpers.waiting import wait_until

CONFIG = REPO / "monitoring" / "prometheus.yml"
RULES = REPO / "monitoring" / "alerts.yml"
RULE_TESTS = REPO / "monitoring" / "alerts_test.yml"


def promtool(*arguments: str | Path) -> str:
    """promtool's output; the test fails with it unless promtool exits 0."""
    result = subprocess.run(["promtool", *map(str, arguments)], capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_promtool_accepts_the_scrape_configuration_and_finds_the_alert_rules() -> None:
    assert "SUCCESS: 1 rule files found" in promtool("check", "config", CONFIG)


def test_promtool_accepts_the_alert_rules() -> None:
    promtool("check", "rules", RULES)


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    promtool("test", "rules", RULE_TESTS)


def test_every_alert_has_a_for_a_severity_what_to_look_at_and_a_firing_and_a_quiet_case() -> None:
    rules = RULES.read_text().split("      - alert: ")[1:]
    tests = RULE_TESTS.read_text()
    assert len(rules) >= 8
    for rule in rules:
        name = rule.split("\n", 1)[0]
        assert re.search(r"^        for: \d+m$", rule, re.M), name
        assert re.search(r"^          severity: (warning|critical)$", rule, re.M), name
        assert "summary: " in rule and "description: " in rule and "Look at" in rule, name
        assert f"alertname: {name}\n        exp_alerts: []\n" in tests, f"{name} has no case where it stays quiet"
        assert f"alertname: {name}\n        exp_alerts:\n          - exp_labels:" in tests, f"{name} never fires"


def test_it_scrapes_the_four_services_on_the_compose_metrics_port_and_rabbitmq_prometheus() -> None:
    text = CONFIG.read_text()
    assert "names: [features, model, metric, plot]" in text
    compose_port = re.search(r"METRICS_PORT: \$\{METRICS_PORT:-(\d+)\}", (REPO / "docker-compose.yml").read_text())
    assert compose_port is not None and f"port: {compose_port.group(1)}\n" in text
    assert 'targets: ["rabbitmq:15692"]' in text


def test_a_real_prometheus_scrapes_plot_and_reads_its_rows_and_histogram(tmp_path: Path, logs_dir: Path) -> None:
    """Debian's Prometheus scraping plot's /metrics every second (a loopback target: the shipped file's names resolve
    only inside Compose)."""
    write_rows(logs_dir / "metric_log.csv", 2000, seed=31)
    metrics_port, prometheus_port = free_port(), free_port()
    services, _web = start_plot(tmp_path, logs_dir, METRICS_PORT=str(metrics_port))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: pipeline, static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]}}]\n"
    )
    command = [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ]
    log = (tmp_path / "prometheus.log").open("wb")
    prometheus = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        rows = lambda: query(prometheus_port, "pipeline_rows_total")  # noqa: E731
        wait_until(lambda: rows() == [2000.0], 60, "Prometheus to hold plot's 2,000 rows", poll=0.5)
        [median] = query(prometheus_port, "histogram_quantile(0.5, pipeline_absolute_error_bucket)")
        true_median = float(np.median(np.loadtxt(logs_dir / "metric_log.csv", delimiter=",", skiprows=1, usecols=3)))
        upper = int(np.searchsorted(ERROR_BUCKETS, true_median))  # the bucket that holds it bounds Prometheus's answer
        assert ERROR_BUCKETS[upper - 1] <= median <= ERROR_BUCKETS[upper], (median, true_median)
        assert query(prometheus_port, "pipeline_drift_alarm") == [0.0]
    finally:
        prometheus.terminate()
        prometheus.wait(30)
        log.close()
        services.stop_all()


def query(port: int, expression: str) -> list[float]:
    """The values of an instant query on Prometheus's HTTP API."""
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(expression)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.loads(response.read())
    except OSError:
        return []
    return [float(result["value"][1]) for result in answer["data"]["result"]]
