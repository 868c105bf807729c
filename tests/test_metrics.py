"""Every service's /metrics on a real broker, read with prometheus_client's own parser and held against the CSV, the
queues and features' ledger."""

from __future__ import annotations

import math
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.topology import FEATURES, Y_PRED, Y_TRUE, dead_letter_queue
from tests.helpers.csv_log import csv_rows
from tests.helpers.ledger import ledger_ids
from tests.helpers.ports import free_port, port_open
from tests.helpers.queues import drained, publish_raw, queue_depths
from tests.helpers.stream import Stream
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.broker

ROWS = 1500
SERVICES = ("features", "model", "metric", "plot")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample at ``port``'s /metrics, keyed by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_metrics_of_every_service_agree_with_the_csv_and_the_queues(
    make_services, broker_url: str, logs_dir: Path
) -> None:
    start_of_run = int(time.time())
    ports = {name: free_port() for name in SERVICES}
    services = make_services(broker_url)
    stream = Stream(services, broker_url, logs_dir)
    for name in ("metric", "model", "plot"):
        services.start(name, METRICS_PORT=str(ports[name]))
    services.start(
        "features",
        METRICS_PORT=str(ports["features"]),
        FEATURES_LEDGER=str(stream.ledger),
        FEATURES_INTERVAL="0.002",
        FEATURES_LIMIT=str(ROWS),
    )
    wait_until(lambda: all(port_open(port) for port in ports.values()), 60, "every /metrics to listen")
    stream.wait_for_rows(200)
    confirmed_before = len(ledger_ids(stream.ledger))
    features = scrape(ports["features"])
    sent_after = len(ledger_ids(stream.ledger, "published"))
    for queue in (FEATURES, Y_TRUE):  # counted on the broker's confirm: between the rows confirmed and sent
        assert confirmed_before <= value(features, "pipeline_messages_published_total", queue=queue) <= sent_after

    publish_raw(broker_url, [(FEATURES, b"not json"), (Y_TRUE, b'{"id": "a-row", "body": "seven"}')])
    assert services.wait("features", timeout=120) == 0
    stream.wait_for_rows(ROWS, timeout=90)
    wait_until(lambda: drained(broker_url), 30, "the queues to drain")
    depths = queue_depths(broker_url)
    assert depths[dead_letter_queue(FEATURES)] == depths[dead_letter_queue(Y_TRUE)] == 1
    rows = csv_rows(stream.csv)
    errors = [float(row[3]) for row in rows]

    def settled() -> bool:  # plot reads the CSV every PLOT_INTERVAL; metric's gauges follow its look every second
        oldest = value(scrape(ports["metric"]), "pipeline_metric_oldest_waiting_seconds")
        return value(scrape(ports["plot"]), "pipeline_rows_total") == ROWS and oldest == 0

    wait_until(settled, 30, "plot to have read every row, and metric to see nothing waiting")
    model, metric, plot = (scrape(ports[name]) for name in ("model", "metric", "plot"))
    assert value(model, "pipeline_messages_consumed_total", queue=FEATURES) == ROWS
    assert value(model, "pipeline_messages_published_total", queue=Y_PRED) == ROWS
    assert value(model, "pipeline_messages_rejected_total", queue=FEATURES) == depths[dead_letter_queue(FEATURES)]
    assert value(metric, "pipeline_messages_consumed_total", queue=Y_TRUE) == ROWS
    assert value(metric, "pipeline_messages_consumed_total", queue=Y_PRED) == ROWS
    assert value(metric, "pipeline_messages_rejected_total", queue=Y_TRUE) == depths[dead_letter_queue(Y_TRUE)]
    assert value(metric, "pipeline_metric_rows_written_total") == len(rows) == ROWS
    for queue in (Y_TRUE, Y_PRED):
        assert value(metric, "pipeline_metric_halves_waiting", queue=queue) == 0
    assert value(metric, "pipeline_metric_oldest_waiting_seconds") == 0
    assert value(metric, "pipeline_metric_stream_position_seconds", queue=Y_TRUE) >= start_of_run
    assert value(metric, "pipeline_metric_orphans_released_total") == 0
    for samples, queue in ((model, FEATURES), (metric, Y_TRUE), (metric, Y_PRED)):  # at 0 too, for increase()
        assert ("pipeline_messages_rejected_total", (("queue", queue),)) in samples
    for samples in (model, metric):
        assert value(samples, "pipeline_reconnects_total") == 0
    assert value(plot, "pipeline_rows_total") == ROWS
    assert math.isclose(value(plot, "pipeline_absolute_error_mean"), sum(errors) / len(errors), rel_tol=1e-9)
    assert value(plot, "pipeline_drift_alarm") == 0
    assert value(plot, "pipeline_absolute_error_count") == ROWS
    assert math.isclose(value(plot, "pipeline_absolute_error_sum"), sum(errors), rel_tol=1e-9)
    for bound in ("1", "10", "50", "100"):
        below = sum(error <= float(bound) for error in errors)
        assert value(plot, "pipeline_absolute_error_bucket", le=bound) == below, bound
    assert value(plot, "pipeline_absolute_error_bucket", le="+Inf") == ROWS
    stream.finish(expected=ROWS, also=frozenset())


@pytest.mark.parametrize(("service", "variable"), [("metric", "METRICS_PORT"), ("plot", "WEB_PORT")])
def test_a_port_in_use_stops_the_service_at_start_naming_the_variable(
    make_services, service: str, variable: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        services = make_services("amqp://guest:guest@127.0.0.1:1/%2F", **{variable: str(taken.getsockname()[1])})
        services.start(service)
        assert services.wait(service, timeout=60) == 2
    output = services.log(service).strip().splitlines()
    assert len(output) == 1 and variable in output[0] and "in use" in output[0], output
