"""The four service files as processes against a real RabbitMQ node."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import matplotlib.image
import pytest
import skops.io
from sklearn.datasets import load_diabetes

from pipeline.messages import MAX_MESSAGE_BYTES
from pipeline.topology import FEATURES, Y_PRED, Y_TRUE, dead_letter_queue
from tests.helpers import REPO
from tests.helpers.ledger import ledger_ids
from tests.helpers.queues import consumer_count, publish_raw, queue_depths
from tests.helpers.rabbit import RabbitNode
from tests.helpers.services import stop_gracefully
from tests.helpers.stream import Stream
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def predictions_by_target(model_path: Path) -> dict[float, list[float]]:
    """For each y_true of the bundled dataset, the predictions of the rows that have it."""
    rows, targets = load_diabetes(return_X_y=True)
    predictions: dict[float, list[float]] = {}
    for y_true, y_pred in zip(targets, skops.io.load(model_path).predict(rows), strict=True):
        predictions.setdefault(float(y_true), []).append(float(y_pred))
    return predictions


def is_a_dataset_pair(predictions_by_target: dict[float, list[float]], y_true: float, y_pred: float) -> bool:
    # a batch's size can change the last bits of a prediction, so compare with a tolerance
    return any(math.isclose(y_pred, known, rel_tol=1e-9) for known in predictions_by_target.get(y_true, []))


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_rows_arrive_once_each_with_the_right_error_and_a_picture(
    make_services, broker_url: str, logs_dir: Path, predictions_by_target: dict, queue_type: str
) -> None:
    stream = Stream(make_services(broker_url, QUEUE_TYPE=queue_type), broker_url, logs_dir)
    stream.start("metric", "model", "plot", FEATURES_INTERVAL="0", FEATURES_LIMIT="500")

    rows = stream.finish(expected=500)
    for row_id, y_true, y_pred, absolute_error in rows:
        assert uuid.UUID(row_id)
        assert is_a_dataset_pair(predictions_by_target, float(y_true), float(y_pred)), "halves of two rows joined"
        assert float(absolute_error) == abs(float(y_true) - float(y_pred))
    picture = logs_dir / "error_distribution.png"
    wait_until(
        lambda: picture.exists() and picture.stat().st_mtime >= stream.csv.stat().st_mtime,
        30,
        "the picture to catch up with the CSV",
    )
    assert matplotlib.image.imread(picture).shape[2] in (3, 4)
    stop_gracefully(stream.services, "plot")


def test_killed_metric_and_model_lose_and_duplicate_no_row(stream: Stream) -> None:
    stream.start(FEATURES_INTERVAL="0.0005", FEATURES_LIMIT="4000")
    for rows_before_kill in (500, 1500, 2500):
        stream.wait_for_rows(rows_before_kill)
        for name in ("metric", "model"):
            stream.services.kill(name)
            stream.services.start(name)
    stream.finish(expected=4000)
    assert stream.services.log("metric").count("wait for their partner") == 4, "metric took up its file 4 times"


def test_the_broker_down_at_start_and_restarted_mid_stream_loses_no_row(
    make_services, own_rabbit: RabbitNode, logs_dir: Path
) -> None:
    stream = Stream(make_services(own_rabbit.url), own_rabbit.url, logs_dir)
    stream.start(FEATURES_INTERVAL="0.001")  # no limit: a features done before the broker stops would have exited
    for name in ("metric", "model", "features"):
        wait_until(lambda n=name: "broker unreachable" in stream.services.log(n), 30, f"{name} to retry")
    own_rabbit.start()

    stream.wait_for_rows(800)
    own_rabbit.stop()
    assert all(process.poll() is None for process in stream.services.processes.values()), "a service exited"
    own_rabbit.start()

    stream.wait_for_rows(stream.rows() + 500)
    stop_gracefully(stream.services, "features")
    stream.finish()
    assert "connection lost" in stream.services.log("model")


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


def test_bad_input_goes_to_the_dead_letter_queues_while_good_rows_flow(stream: Stream) -> None:
    stream.start(FEATURES_INTERVAL="0.002")  # no limit: good rows still flow while the bad ones are rejected
    stream.wait_for_rows(100)
    publish_raw(stream.url, BAD_INPUT)

    expected = {
        dead_letter_queue(queue): [q for q, _ in BAD_INPUT].count(queue) for queue in (FEATURES, Y_TRUE, Y_PRED)
    }
    dead_letters = lambda: {queue: queue_depths(stream.url)[queue] for queue in expected}  # noqa: E731
    wait_until(lambda: dead_letters() == expected, 30, f"dead letters {expected}")
    assert stream.services.processes["metric"].poll() is None and stream.services.processes["model"].poll() is None
    stream.wait_for_rows(stream.rows() + 100)
    stop_gracefully(stream.services, "features")
    stream.finish()
    assert stream.services.log("model").count("rejected a message of features") == expected["features.dead"]


def test_sigterm_stops_every_service_with_0_and_loses_nothing(stream: Stream) -> None:
    stream.start("metric", "model", "plot", FEATURES_INTERVAL="0.001")
    stream.wait_for_rows(500)

    stop_gracefully(stream.services, "features", "metric", "model", "plot")
    assert ledger_ids(stream.ledger), "features confirmed no row"
    stream.services.start("metric")
    stream.services.start("model")
    stream.finish()


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
        ("metric", "LOGS_DIR", "/dev/null/logs"),
        ("plot", "LOGS_DIR", "/proc/pipeline-logs"),
        ("plot", "WEB_PORT", "70000"),
        ("plot", "STALLED_AFTER", "0"),
        ("plot", "DRIFT_RATIO", "1"),
        ("plot", "DRIFT_WINDOW", "0"),
        ("plot", "DRIFT_REFERENCE_ROWS", "many"),
        ("plot", "DRIFT_REFERENCE_ROWS", "2"),
        ("plot", "DRIFT_REFERENCE_MAE", "0"),
        ("metric", "METRICS_PORT", "http"),
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


def test_waiting_halves_are_acked_and_survive_a_metric_restart(stream: Stream) -> None:
    stream.services.start("metric")
    stream.services.start("features", FEATURES_INTERVAL="0", FEATURES_LIMIT="300", FEATURES_LEDGER=str(stream.ledger))
    assert stream.services.wait("features", timeout=60) == 0
    wait_until(lambda: queue_depths(stream.url)[Y_TRUE] == 0, 30, "metric to take every y_true")
    stop_gracefully(stream.services, "metric")
    assert queue_depths(stream.url)[Y_TRUE] == 0, "metric held y_true deliveries instead of journaling them"

    stream.services.start("metric")
    stream.services.start("model")
    stream.finish(expected=300)


def test_metric_pauses_a_side_with_too_many_waiting_halves(make_services, broker_url: str, logs_dir: Path) -> None:
    stream = Stream(make_services(broker_url, METRIC_MAX_WAITING="50", PREFETCH="20"), broker_url, logs_dir)
    stream.start("metric", FEATURES_INTERVAL="0", FEATURES_LIMIT="300")
    assert stream.services.wait("features", timeout=60) == 0
    wait_until(lambda: consumer_count(broker_url, Y_TRUE) == 0, 30, "metric to stop consuming y_true")
    assert "pausing y_true" in stream.services.log("metric")
    # at most one unsynced batch of a prefetch window past the limit
    assert queue_depths(broker_url)[Y_TRUE] >= 300 - 50 - 2 * 20

    stream.services.start("model")
    stream.finish(expected=300)
    assert "consuming y_true again" in stream.services.log("metric")
