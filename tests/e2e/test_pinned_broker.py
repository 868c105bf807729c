"""The poison row on the RabbitMQ that docker-compose.yml pins, not only on the 3.10 the process tests run.

The broker is the pinned image (or, where no registry is reachable, its stand-in of the same minor version, built by
tests/e2e/prepare), run as one container on loopback. features, metric and two model replicas run as processes
against it; the models die like a native crash on the poison row and are started again, as a restart policy would.
The quorum queue's delivery limit must move the poison row alone to features.dead while every other row arrives once.
Labels that come late (FEATURES_LABEL_DELAY) wait in y_true.delayed, a quorum queue whose per-message time to live
dead-letters them into y_true at least once: on this broker too, a features SIGKILLed during the delay loses none.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import joblib
import pika
import pytest
import train

from pipeline.messages import encode, new_id
from pipeline.topology import FEATURES, dead_letter_queue
from tests.chaos.poison_model import POISON_VALUE, DiesOnPoison
from tests.helpers import REPO
from tests.helpers.ports import free_port
from tests.helpers.queues import delete_queues, publish_raw, queue_depths
from tests.helpers.services import Services
from tests.helpers.stream import Stream
from tests.helpers.waiting import wait_until
from tests.late_labels import late_labels_survive_a_killed_features

pytestmark = [pytest.mark.compose, pytest.mark.timeout(900)]

REPLICAS = ("model-1", "model-2")
DELIVERY_LIMIT = 20


def pinned_image() -> str:
    compose = (REPO / "docker-compose.yml").read_text()
    return re.search(r"image: (rabbitmq:\S+)", compose).group(1)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def pinned_broker() -> Iterator[str]:
    """The pinned image on free loopback ports; yields its AMQP URL."""
    amqp, name = free_port(), f"pipeline-pinned-{free_port()}"
    environment = {
        "RABBITMQ_NODE_PORT": str(amqp),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "ERL_EPMD_PORT": str(free_port()),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-rabbitmq_management tcp_config [{{port,{free_port()}}}]",
        "RABBITMQ_DEFAULT_USER": "pipeline",
        "RABBITMQ_DEFAULT_PASS": "pipeline",
    }
    options = [argument for key, value in environment.items() for argument in ("-e", f"{key}={value}")]
    subprocess.run(
        ["docker", "run", "--detach", "--rm", "--name", name, "--network", "host", *options, pinned_image()],
        check=True,
        capture_output=True,
    )
    url = f"amqp://pipeline:pipeline@127.0.0.1:{amqp}/%2F"
    try:
        wait_until(lambda: accepts(url), 120, "the pinned broker to accept connections", poll=0.5)
        yield url
    finally:
        subprocess.run(["docker", "rm", "--force", name], check=False, capture_output=True)


def accepts(url: str) -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPError:
        return False
    return True


def server_version(url: str) -> str:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    version = connection._impl.server_properties["version"]
    connection.close()
    return version.decode() if isinstance(version, bytes) else str(version)


def test_the_poison_row_alone_reaches_the_dead_letter_queue_on_the_pinned_broker(
    pinned_broker: str, tmp_path: Path, make_services: Callable[..., Services], logs_dir: Path
) -> None:
    minor = pinned_image().split(":")[1].split("-")[0]
    assert server_version(pinned_broker).startswith(minor + "."), "the broker is not the pinned minor version"
    model_path = tmp_path / "poison-model.joblib"
    joblib.dump(DiesOnPoison(train.train(tmp_path / "model.joblib")), model_path)
    services = make_services(pinned_broker, MODEL_PATH=str(model_path), PYTHONPATH=str(REPO))
    stream = Stream(services, pinned_broker, logs_dir)
    stream.start("metric", *REPLICAS, FEATURES_INTERVAL="0.002", FEATURES_LIMIT="3000")
    stream.wait_for_rows(200)
    publish_raw(pinned_broker, [(FEATURES, encode(new_id(), [POISON_VALUE] * 10))])
    crashes = 0

    def poison_settled() -> bool:
        nonlocal crashes
        # The depth first: the broker dead-letters the row only once the replica it crashed has exited, so the
        # restarts below always see that last crash too.
        settled = queue_depths(pinned_broker)[dead_letter_queue(FEATURES)] >= 1
        for name in REPLICAS:  # a restart policy's work: a crashed replica starts again
            if services.processes[name].poll() is not None:
                crashes += 1
                services.start(name, service="model")
        return settled

    wait_until(poison_settled, 300, "the poison row in features.dead", poll=0.1)
    # A replica started again just now must reach its stop handling before finish() sends it SIGTERM.
    wait_until(lambda: all(services.is_ready(name) for name in REPLICAS), 60, "the replicas ready")
    stream.finish(expected=3000)
    print(f"pinned broker {server_version(pinned_broker)}: the poison row crashed a model {crashes} times")
    assert queue_depths(pinned_broker)[dead_letter_queue(FEATURES)] == 1, "the poison row, and only it"
    assert 1 <= crashes <= DELIVERY_LIMIT + len(REPLICAS)


def test_labels_that_come_late_survive_a_killed_features_on_the_pinned_broker(
    pinned_broker: str, make_services: Callable[..., Services], logs_dir: Path
) -> None:
    delete_queues(pinned_broker)
    services = make_services(pinned_broker, METRIC_ORPHAN_TIMEOUT="5")
    late_labels_survive_a_killed_features(Stream(services, pinned_broker, logs_dir), delay=10.0, rows_before_kill=300)
