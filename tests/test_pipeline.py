"""The four service files as processes against a real RabbitMQ node."""

from __future__ import annotations

import json
import math
import signal
import uuid
from pathlib import Path

import joblib
import matplotlib.image
import pika
import pytest
from sklearn.datasets import load_diabetes

from pipeline.messages import MAX_MESSAGE_BYTES
from pipeline.topology import FEATURES, Y_PRED, Y_TRUE, dead_letter_queue
from tests.helpers import (
    REPO,
    RabbitNode,
    Services,
    csv_rows,
    ledger_ids,
    queue_depths,
    row_count,
    wait_until,
)

pytestmark = pytest.mark.broker

CONSUMERS = ("metric", "model", "plot")


@pytest.fixture(scope="module")
def predictions_by_target(model_path: Path) -> dict[float, list[float]]:
    """For each y_true of the bundled dataset, the predictions of the rows that have it."""
    rows, targets = load_diabetes(return_X_y=True)
    predictions: dict[float, list[float]] = {}
    for y_true, y_pred in zip(targets, joblib.load(model_path).predict(rows), strict=True):
        predictions.setdefault(float(y_true), []).append(float(y_pred))
    return predictions


def is_a_dataset_pair(predictions_by_target: dict[float, list[float]], y_true: float, y_pred: float) -> bool:
    # a batch's size can change the last bits of a prediction, so compare with a tolerance
    return any(math.isclose(y_pred, known, rel_tol=1e-9) for known in predictions_by_target.get(y_true, []))


def assert_exactly_once(logs_dir: Path, ledger: Path, expected: int | None = None) -> list[list[str]]:
    """Every confirmed id has one row, no id has two, and no row has an id that was never produced."""
    rows = csv_rows(logs_dir / "metric_log.csv")
    ids = [row[0] for row in rows]
    produced = ledger_ids(ledger)
    assert len(set(ids)) == len(ids), f"{len(ids) - len(set(ids))} duplicated rows"
    assert set(produced) <= set(ids), f"{len(set(produced) - set(ids))} confirmed ids have no row"
    if expected is not None:
        assert len(produced) == expected
        assert set(ids) == set(produced), f"{len(set(ids) - set(produced))} rows of ids never produced"
    return rows


def drained(url: str) -> bool:
    depths = queue_depths(url)
    return all(depths[queue] == 0 for queue in (FEATURES, Y_TRUE, Y_PRED))


def stop_gracefully(services: Services, *names: str) -> None:
    for name in names:
        services.signal(name, signal.SIGTERM)
    for name in names:
        assert services.wait(name, timeout=15) == 0, f"{name} did not exit 0 on SIGTERM"


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_rows_arrive_once_each_with_the_right_error_and_a_picture(
    make_services, broker_url: str, logs_dir: Path, predictions_by_target: dict, queue_type: str
) -> None:
    ledger = logs_dir.parent / "ledger"
    services = make_services(broker_url, QUEUE_TYPE=queue_type)
    for name in CONSUMERS:
        services.start(name)
    services.start("features", FEATURES_INTERVAL="0", FEATURES_LIMIT="500", FEATURES_LEDGER=str(ledger))

    assert services.wait("features", timeout=60) == 0
    wait_until(lambda: row_count(logs_dir / "metric_log.csv") >= 500, 60, "500 rows")
    rows = assert_exactly_once(logs_dir, ledger, expected=500)
    for message_id, y_true, y_pred, absolute_error in rows:
        assert uuid.UUID(message_id)
        assert is_a_dataset_pair(predictions_by_target, float(y_true), float(y_pred)), "halves of two rows joined"
        assert float(absolute_error) == abs(float(y_true) - float(y_pred))
    picture = logs_dir / "error_distribution.png"
    wait_until(
        lambda: picture.exists() and picture.stat().st_mtime > (logs_dir / "metric_log.csv").stat().st_mtime,
        30,
        "the picture to catch up with the CSV",
    )
    assert matplotlib.image.imread(picture).shape[2] in (3, 4)
    stop_gracefully(services, *CONSUMERS)
    assert drained(broker_url)


def test_killed_metric_and_model_lose_and_duplicate_no_row(
    make_services, broker_url: str, logs_dir: Path, tmp_path: Path
) -> None:
    ledger, csv = tmp_path / "ledger", logs_dir / "metric_log.csv"
    services = make_services(broker_url)
    services.start("metric")
    services.start("model")
    services.start("features", FEATURES_INTERVAL="0.0005", FEATURES_LIMIT="4000", FEATURES_LEDGER=str(ledger))

    for rows_before_kill in (500, 1500, 2500):
        wait_until(lambda n=rows_before_kill: row_count(csv) >= n, 60, f"{rows_before_kill} rows")
        services.kill("metric")
        services.kill("model")
        services.start("metric")
        services.start("model")

    assert services.wait("features", timeout=60) == 0
    wait_until(lambda: row_count(csv) >= 4000, 90, "all 4000 rows")
    wait_until(lambda: services.is_ready("metric") and services.is_ready("model"), 60, "metric and model to be ready")
    wait_until(lambda: drained(broker_url), 30, "the queues to drain")
    stop_gracefully(services, "metric", "model")
    assert drained(broker_url)
    assert_exactly_once(logs_dir, ledger, expected=4000)
    assert "remembered" in services.log("metric")


def test_the_broker_down_at_start_and_restarted_mid_stream_loses_no_row(
    make_services, own_rabbit: RabbitNode, logs_dir: Path, tmp_path: Path
) -> None:
    ledger, csv = tmp_path / "ledger", logs_dir / "metric_log.csv"
    services = make_services(own_rabbit.url)
    services.start("metric")
    services.start("model")
    services.start("features", FEATURES_INTERVAL="0.001", FEATURES_LIMIT="3000", FEATURES_LEDGER=str(ledger))
    for name in ("metric", "model", "features"):
        wait_until(lambda n=name: "broker unreachable" in services.log(n), 30, f"{name} to retry")
    own_rabbit.start()

    wait_until(lambda: row_count(csv) >= 800, 60, "800 rows")
    own_rabbit.stop()
    assert all(process.poll() is None for process in services.processes.values()), "a service exited"
    own_rabbit.start()

    assert services.wait("features", timeout=120) == 0
    wait_until(lambda: row_count(csv) >= 3000, 90, "all 3000 rows")
    wait_until(lambda: drained(own_rabbit.url), 30, "the queues to drain")
    stop_gracefully(services, "metric", "model")
    assert_exactly_once(logs_dir, ledger, expected=3000)
    assert "connection lost" in services.log("model")


def publish_raw(url: str, messages: list[tuple[str, bytes]]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    for queue, body in messages:
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    connection.close()


BAD_INPUT = [
    (FEATURES, b"not json"),
    (FEATURES, b"[1, 2, 3]"),
    (FEATURES, b'{"body": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]}'),
    (FEATURES, b'{"id": 42, "body": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]}'),
    (FEATURES, b'{"id": "no-body"}'),
    (FEATURES, b'{"id": "strings", "body": ["0.1", 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]}'),
    (FEATURES, b'{"id": "nine", "body": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]}'),
    (FEATURES, b'{"id": "nan", "body": [NaN, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]}'),
    (FEATURES, b'{"id": "inf", "body": [Infinity, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]}'),
    (FEATURES, json.dumps({"id": "huge", "body": [0.1] * 10, "pad": "x" * MAX_MESSAGE_BYTES}).encode()),
    (Y_TRUE, b"\xff\xfe"),
    (Y_TRUE, b'{"id": "text", "body": "151"}'),
    (Y_TRUE, b'{"id": "nan", "body": NaN}'),
    (Y_PRED, b'{"id": "list", "body": [1.0]}'),
    (Y_PRED, b'{"id": "", "body": 1.0}'),
    (Y_PRED, b'"just a string"'),
]


def test_bad_input_goes_to_the_dead_letter_queues_while_good_rows_flow(
    make_services, broker_url: str, logs_dir: Path, tmp_path: Path
) -> None:
    ledger, csv = tmp_path / "ledger", logs_dir / "metric_log.csv"
    services = make_services(broker_url)
    services.start("metric")
    services.start("model")
    services.start("features", FEATURES_INTERVAL="0.002", FEATURES_LIMIT="600", FEATURES_LEDGER=str(ledger))
    wait_until(lambda: row_count(csv) >= 100, 60, "the first 100 rows")
    publish_raw(broker_url, BAD_INPUT)

    expected = {
        dead_letter_queue(queue): sum(1 for q, _ in BAD_INPUT if q == queue) for queue in (FEATURES, Y_TRUE, Y_PRED)
    }
    wait_until(
        lambda: all(queue_depths(broker_url)[q] == n for q, n in expected.items()), 30, f"dead letters {expected}"
    )
    assert services.wait("features", timeout=60) == 0
    wait_until(lambda: row_count(csv) >= 600, 60, "all 600 rows")
    assert services.processes["metric"].poll() is None and services.processes["model"].poll() is None
    assert_exactly_once(logs_dir, ledger, expected=600)
    assert services.log("model").count("rejected a message of features") == expected["features.dead"]
    assert not math.isnan(sum(float(row[3]) for row in csv_rows(csv)))


def test_sigterm_stops_every_service_with_0_and_loses_nothing(
    make_services, broker_url: str, logs_dir: Path, tmp_path: Path
) -> None:
    ledger, csv = tmp_path / "ledger", logs_dir / "metric_log.csv"
    services = make_services(broker_url)
    for name in CONSUMERS:
        services.start(name)
    services.start("features", FEATURES_INTERVAL="0.001", FEATURES_LEDGER=str(ledger))
    wait_until(lambda: row_count(csv) >= 500, 60, "500 rows")

    stop_gracefully(services, "features", *CONSUMERS)
    produced = ledger_ids(ledger)
    assert produced, "features confirmed no row"
    services.start("metric")
    services.start("model")
    wait_until(lambda: services.is_ready("metric") and services.is_ready("model"), 60, "metric and model to be ready")
    wait_until(lambda: drained(broker_url) and row_count(csv) >= len(produced), 60, "the rest of the rows")
    stop_gracefully(services, "metric", "model")
    assert_exactly_once(logs_dir, ledger, expected=len(produced))


@pytest.mark.parametrize(
    ("service", "variable", "value"),
    [
        ("features", "FEATURES_INTERVAL", "often"),
        ("features", "FEATURES_LIMIT", "-5"),
        ("model", "MODEL_PATH", "/nonexistent/model.joblib"),
        ("model", "MODEL_PATH", str(REPO / "README.md")),
        ("model", "PREFETCH", "0"),
        ("metric", "QUEUE_TYPE", "stream"),
        ("metric", "AMQP_URL", "http://localhost"),
        ("plot", "PLOT_INTERVAL", "-1"),
        ("plot", "LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_setting_stops_the_service_at_start_naming_the_variable(
    make_services, service: str, variable: str, value: str
) -> None:
    services = make_services("amqp://guest:guest@127.0.0.1:1/%2F", **{variable: value})
    services.start(service)
    assert services.wait(service, timeout=60) == 2
    output = services.log(service).strip().splitlines()
    assert len(output) == 1 and variable in output[0], output
