"""The shipped stack, built and run with Docker Compose, as a user runs it with `docker compose up --build`.

The files under test are the repository's own, copied to a temporary folder (so a developer's logs/ stays untouched)
and run with one override that only keeps every byte on loopback: host networking, `rabbitmq` resolving to
127.0.0.1, no published ports, and the broker moved to free ports. The steps run in order on one stack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.compose import Stack, assert_csv_sound, assert_memory_limited, is_png, shipped_files
from tests.helpers import REPO
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.compose, pytest.mark.timeout(900), pytest.mark.usefixtures("stack_logs_on_failure")]

COMPOSE_V1 = "/usr/bin/docker-compose"  # Debian's docker-compose 1.29
QUORUM_SETTLE = 15  # seconds a new quorum queue needs before a broker SIGKILL is survived (RabbitMQ 3.10 and 4.0)
LOGS_OWNER = 4321  # who owns ./logs, as the person who cloned the repository would: model, metric and plot run as them


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("stack")
    shipped_files(folder)
    stack = Stack(folder)
    yield stack
    stack.compose("down", "--volumes", "--remove-orphans", timeout=180)


def test_1_the_compose_file_is_valid_for_both_compose_versions_and_the_images_build(stack: Stack) -> None:
    command = [COMPOSE_V1, "-f", "docker-compose.yml", "config", "--quiet"]
    result = subprocess.run(command, cwd=stack.folder, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    stack.compose("config", "--quiet")
    stack.compose("build", timeout=1800)


def process_uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def test_2_every_container_turns_healthy_and_rows_and_pictures_arrive(stack: Stack) -> None:
    os.chown(stack.folder / "logs", LOGS_OWNER, LOGS_OWNER)
    stack.compose("up", "--detach")
    stack.started_at = time.monotonic()
    wait_until(stack.healthy, 120, "every container to be healthy", poll=1)
    stack.wait_for_more_rows(50)
    assert_memory_limited(stack, stack.container_ids_of_project(), brokers=("rabbitmq",))
    wait_until(lambda: is_png(stack.picture), 30, "a valid picture")
    first_picture = stack.picture.stat().st_ino
    stack.wait_for_more_rows(25)
    wait_until(lambda: stack.picture.stat().st_ino != first_picture, 30, "the picture to be replaced", poll=0.2)
    assert is_png(stack.picture)
    assert_csv_sound(stack)


def get(port: int, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, "", b""


def test_3_the_page_its_summary_and_every_metrics_endpoint_answer(stack: Stack) -> None:
    web = stack.http_ports["web"]
    status, content_type, page = get(web, "/")
    assert (status, content_type) == (200, "text/html; charset=utf-8") and b"/summary.json" in page
    rows = stack.rows()
    summary = lambda: json.loads(get(web, "/summary.json")[2])  # noqa: E731
    wait_until(lambda: summary()["rows"] >= rows, 30, f"the summary to count {rows} rows", poll=0.5)
    numbers = summary()
    assert set(numbers) >= {"rows", "mae", "rmse", "median", "p90", "p99", "bias", "rows_per_second"}
    assert numbers["rows"] <= stack.rows() and numbers["mae"] > 0 and numbers["stalled"] is False
    assert set(numbers["drift"]) >= {"alarm", "reference_mae", "window_mae"}
    assert set(numbers["waiting"]) >= {"y_true", "y_pred", "oldest_seconds"}, "metric's status, through plot"
    for name in ("error_distribution", "error_over_time"):
        status, content_type, picture = get(web, numbers["pictures"][name])
        assert (status, content_type, picture[:4]) == (200, "image/png", b"\x89PNG")
    assert get(web, "/metric_log.csv")[0] == 404
    counted = {
        "features": "pipeline_messages_published",
        "metric": "pipeline_metric_rows_written",
        "plot": "pipeline_rows",
    }
    for service, counter in counted.items():
        _status, _type, text = get(stack.http_ports[f"{service}_metrics"], "/metrics")
        totals = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text.decode())
            for sample in family.samples
            if family.name == counter
        }
        assert sum(totals.values()) > 0, f"{service}: no {counter} counted"


def test_4_the_services_writing_logs_run_as_its_owner_and_no_service_as_root(stack: Stack) -> None:
    for service in ("model", "metric", "plot"):
        assert process_uid(stack.main_process(service)) == LOGS_OWNER, f"{service} does not run as the owner of logs/"
    assert process_uid(stack.main_process("features")) == 10001
    for name in ("metric_log.csv", "metric_waiting.sqlite", "metric_status.json", "error_distribution.png", "inputs"):
        assert (stack.folder / "logs" / name).stat().st_uid == LOGS_OWNER, f"{name} is not the owner's"
    counts = list((stack.folder / "logs" / "inputs").glob("counts-*.jsonl"))
    assert counts and all(path.stat().st_uid == LOGS_OWNER for path in counts), "model counts no inputs as the owner"


def test_5_a_crashed_service_is_restarted_by_its_policy_and_loses_nothing(stack: Stack) -> None:
    """A crash as it really happens: the container's main process dies of SIGKILL, sent from the host.

    (`docker kill`, whatever the signal, counts as a manual stop, which the restart policy leaves stopped.)
    """
    for service in ("metric", "model", "plot"):
        restarts = stack.restarts(service)
        os.kill(stack.main_process(service), signal.SIGKILL)
        wait_until(lambda s=service, r=restarts: stack.restarts(s) > r, 60, f"{service} to be restarted", poll=0.5)
    wait_until(stack.healthy, 120, "every container to be healthy again", poll=1)
    stack.wait_for_more_rows(50)
    stack.compose("stop", "features")  # SIGTERM: it waits for its last confirms
    confirmed = stack.ledger_ids("confirmed")
    assert len(confirmed) >= 200
    csv_ids = lambda: {row[0] for row in assert_csv_sound(stack)}  # noqa: E731
    wait_until(lambda: confirmed <= csv_ids(), 120, "every confirmed row in the CSV", poll=0.5)
    assert csv_ids() <= stack.ledger_ids("published"), "a row of an id features never published"
    stack.compose("start", "features")
    wait_until(stack.healthy, 120, "features to be healthy again", poll=1)


def test_6_the_stream_resumes_after_restarts_and_a_killed_broker(stack: Stack) -> None:
    stack.compose("restart", "metric", "model")
    stack.wait_for_more_rows(50)
    wait_until(lambda: time.monotonic() - stack.started_at >= QUORUM_SETTLE, QUORUM_SETTLE, "the queues to settle")
    stack.compose("kill", "-s", "KILL", "rabbitmq")
    stack.compose("start", "rabbitmq")
    wait_until(stack.healthy, 120, "every container to be healthy again", poll=1)
    stack.wait_for_more_rows(50)
    assert_csv_sound(stack)


def test_7_three_model_replicas_keep_rows_coming(stack: Stack) -> None:
    stack.compose("up", "--detach", "--scale", "model=3")
    wait_until(lambda: stack.healthy("model", count=3), 120, "three healthy model containers", poll=1)
    stack.wait_for_more_rows(100)
    assert_csv_sound(stack)


def test_8_down_and_up_append_to_the_csv_and_keep_queued_messages(stack: Stack) -> None:
    stack.compose("stop", "model")
    wait_until(lambda: stack.queue_depth("features") >= 20, 60, "20 rows queued for the stopped model", poll=0.2)
    stack.compose("down")
    before = stack.csv.read_bytes()
    stack.compose("up", "--detach", "rabbitmq")
    wait_until(lambda: stack.healthy("rabbitmq"), 120, "the broker to be healthy", poll=1)
    queued = stack.queue_depth("features")
    assert queued >= 20, f"only {queued} queued messages survived down and up"

    stack.compose("up", "--detach")
    wait_until(stack.healthy, 120, "every container to be healthy", poll=1)
    wait_until(lambda: stack.queue_depth("features") < queued, 60, "the queued rows to be consumed", poll=0.2)
    stack.wait_for_more_rows(50)
    assert stack.csv.read_bytes().startswith(before), "the CSV was rewritten, not appended to"
    assert_csv_sound(stack)


def test_9_the_example_dataset_and_its_model_swap_in_through_the_env_file(stack: Stack) -> None:
    data = stack.folder / "data"
    environment = {"DATASET_PATH": "data/wine.csv", "TARGET_COLUMN": "alcohol", "MODEL_PATH": "data/wine.skops"}
    trained = subprocess.run(  # what `make train DATASET_PATH=data/wine.csv ...` runs, from the project folder
        [sys.executable, str(REPO / "model" / "src" / "train.py")],
        cwd=stack.folder,
        env=os.environ | environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert trained.returncode == 0, trained.stderr
    (stack.folder / ".env").write_text("".join(f"{name}={value}\n" for name, value in environment.items()))
    stack.compose("up", "--detach")  # features and model are recreated with the new settings
    wait_until(stack.healthy, 120, "every container to be healthy", poll=1)

    alcohol = {float(line.split(",", 1)[0]) for line in (data / "wine.csv").read_text().splitlines()[1:]}
    wine_rows = lambda: [row for row in assert_csv_sound(stack) if float(row[1]) in alcohol]  # noqa: E731
    wait_until(lambda: len(wine_rows()) >= 50, 120, "50 rows of the example dataset", poll=0.5)
    for _row_id, _y_true, y_pred, _error in wine_rows():
        assert 8.0 < float(y_pred) < 18.0, f"{y_pred} is no prediction of an alcohol content"
    assert is_png(stack.picture)
    assert is_png(stack.folder / "logs" / "error_over_time.png")
