"""A full disk on a real broker: LOGS_DIR (and the features ledger) on a 3 MiB tmpfs that the stream fills, held
full, then grown. Every row once, no torn line, nothing dead-lettered, no process exits, and the stream goes on by
itself once there is room."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.messages import encode
from pipeline.topology import FEATURES, Y_PRED, Y_TRUE, dead_letter_queue
from tests.helpers.csv_log import row_count
from tests.helpers.queues import publish_raw, queue_depths
from tests.helpers.services import Services, stop_gracefully
from tests.helpers.stream import Stream
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.broker

HELD_FULL = 5.0  # seconds the disk stays full once every writer waits: the scenario, not a wait for a condition
WAITING = "waiting for room"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs, mounted for the test (root only), unmounted after it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_waited_out_and_loses_nothing(
    make_services: Callable[..., Services], broker_url: str, small_disk: Path
) -> None:
    logs = small_disk / "logs"
    stream = Stream(make_services(broker_url, LOGS_DIR=str(logs)), broker_url, logs)  # the ledger beside it
    stream.start(FEATURES_INTERVAL="0")
    services = stream.services
    services.start("plot")  # its pictures go to the same disk
    wait_until(lambda: WAITING in services.log("metric"), 120, "metric to find the disk full")
    wait_until(lambda: WAITING in services.log("features"), 60, "features to find its ledger's disk full")

    rows_when_full = stream.rows()
    time.sleep(HELD_FULL)
    assert_all_running(services)
    assert stream.rows() == rows_when_full, "nothing is written around a full disk"
    assert_whole_lines(stream.csv.read_bytes())
    assert_nothing_dead_lettered(broker_url)

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    grown = time.monotonic()
    wait_until(lambda: stream.rows() > rows_when_full + 1000, 60, "the stream to go on")
    print(f"\nfull at {rows_when_full} rows; 1,000 more rows {time.monotonic() - grown:.1f} s after the disk grew")
    for name in ("metric", "features"):
        wait_until(lambda name=name: "can be written again" in services.log(name), 30, f"{name} to write again")

    if "cannot save" in services.log("plot"):  # if it had rows to draw while the disk was full
        wait_until(lambda: "saved again" in services.log("plot"), 30, "plot to save its pictures again")
    stop_gracefully(services, "features")
    rows = stream.finish()
    assert services.processes["plot"].poll() is None, "plot kept running"
    assert_whole_lines(stream.csv.read_bytes())
    assert all(len(row) == 4 for row in rows)
    assert_nothing_dead_lettered(broker_url)
    assert sorted(path.name for path in logs.iterdir() if path.name.startswith(".")) == [], "no temporary file left"


def assert_all_running(services: Services) -> None:
    exited = {name: process.returncode for name, process in services.processes.items() if process.poll() is not None}
    assert not exited, f"exited: {exited}"


def assert_whole_lines(data: bytes) -> None:
    """Every line of the CSV is a whole row: four fields, numbers where numbers go, ending in a newline."""
    assert data.endswith(b"\n")
    for line in data.splitlines()[1:]:
        _id, *numbers = line.rsplit(b",", 3)
        assert len(numbers) == 3, line
        y_true, y_pred, error = map(float, numbers)
        assert error == abs(y_true - y_pred), line


def assert_nothing_dead_lettered(url: str) -> None:
    depths = queue_depths(url)
    assert all(depths[dead_letter_queue(queue)] == 0 for queue in (FEATURES, Y_TRUE, Y_PRED)), depths


def test_metric_started_on_a_full_disk_waits_stops_on_sigterm_and_starts_once_there_is_room(
    make_services: Callable[..., Services], broker_url: str, small_disk: Path, tmp_path: Path
) -> None:
    logs = small_disk / "logs"
    logs.mkdir()
    filler = fill(small_disk / "filler")
    health = tmp_path / "health"
    services = make_services(broker_url, LOGS_DIR=str(logs), HEALTH_FILE=str(health))

    services.start("metric")
    wait_until(lambda: WAITING in services.log("metric"), 60, "metric to find the disk full")
    stop_gracefully(services, "metric")  # a stop during the wait is a clean stop

    started = time.time()
    services.start("metric")
    wait_until(lambda: services.log("metric").count(WAITING) == 2, 60, "metric to find the disk full again")
    wait_until(lambda: services.is_ready("metric"), 60, "metric to connect meanwhile")
    assert touched_since(health, started) is False, "not healthy while it cannot open its files"
    filler.unlink()
    wait_until(lambda: "can be written again" in services.log("metric"), 30, "metric to open its files")
    publish_raw(broker_url, [(Y_TRUE, encode("a", 1.0)), (Y_PRED, encode("a", 3.0))], int(time.time()))
    wait_until(lambda: row_count(logs / "metric_log.csv") == 1, 30, "the row")
    wait_until(lambda: touched_since(health, started), 30, "metric to be healthy")
    stop_gracefully(services, "metric")


def touched_since(path: Path, moment: float) -> bool:
    """Whether HEALTH_FILE was touched after ``moment`` (the service makes it at start with a date of 1970)."""
    return path.exists() and path.stat().st_mtime >= moment


def fill(path: Path) -> Path:
    """Write zeros to ``path`` until the disk is full."""
    with path.open("wb") as file:
        try:
            while True:
                file.write(bytes(1 << 16))
                file.flush()
        except OSError:
            pass
    return path
