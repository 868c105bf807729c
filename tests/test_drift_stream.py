"""The drift alarm on a real stream: data/wine.csv and a model trained on it through the four services, first
100,000 stationary rows (no alarm may rise, neither the error's nor any input's), then a copy whose target is shifted
by 2 (alcohol + 2): the error alarm must rise within one window of the first shifted row, and no input alarm (the
inputs did not move). Default drift settings, as a user gets them."""

from __future__ import annotations

import csv
import json
import re
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.examples import EXAMPLE, EXAMPLE_TARGET, train_example
from tests.helpers.ports import free_port, port_open
from tests.helpers.stream import Stream
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.timeout(600)]

WINE, TARGET = EXAMPLE, EXAMPLE_TARGET
STATIONARY_ROWS = 100_000
SHIFTED_ROWS = 3_000
SHIFT = 2.0
WINDOW = 500  # plot's default DRIFT_WINDOW
RAISED = re.compile(r"drift alarm raised at row (\d+)")


def shifted_copy(path: Path) -> Path:
    with WINE.open(newline="") as source:
        rows = list(csv.DictReader(source))
    with path.open("w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(row | {TARGET: repr(float(row[TARGET]) + SHIFT)})
    return path


def summary(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/summary.json", timeout=10) as response:
        return json.loads(response.read())


def test_no_alarm_on_a_stationary_stream_and_one_within_a_window_of_a_shift(
    make_services, broker_url: str, logs_dir: Path, tmp_path: Path
) -> None:
    model = train_example(tmp_path / "wine.skops")
    port = free_port()
    services = make_services(broker_url, MODEL_PATH=str(model), TARGET_COLUMN=TARGET, PLOT_INTERVAL="0.5")
    stream = Stream(services, broker_url, logs_dir)
    services.start("plot", WEB_PORT=str(port))
    stream.start(DATASET_PATH=str(WINE), FEATURES_INTERVAL="0", FEATURES_LIMIT=str(STATIONARY_ROWS))
    assert services.wait("features", timeout=300) == 0
    stream.wait_for_rows(STATIONARY_ROWS, timeout=120)
    wait_until(lambda: port_open(port) and summary(port)["rows"] == STATIONARY_ROWS, 60, "plot to read every row")
    stationary = summary(port)["drift"]
    false_alarms = services.log("plot").count("drift alarm raised")
    print(
        f"\nstationary: {STATIONARY_ROWS:,} rows of {WINE.name}, reference MAE {stationary['reference_mae']:.4f}, "
        f"last window MAE {stationary['window_mae']:.4f}, false alarms {false_alarms}"
    )
    assert false_alarms == stationary["alarms"] == 0 and stationary["alarm"] is False
    wait_until(lambda: summary(port)["inputs"]["rows"] == STATIONARY_ROWS, 60, "plot to count every row's inputs")
    assert_inputs_quiet(summary(port)["inputs"], services.log("plot"), "stationary")

    shifted = shifted_copy(tmp_path / "wine-shifted.csv")
    services.start(
        "features",
        FEATURES_LEDGER=str(stream.ledger),
        DATASET_PATH=str(shifted),
        FEATURES_INTERVAL="0",
        FEATURES_LIMIT=str(SHIFTED_ROWS),
    )
    wait_until(lambda: summary(port)["drift"]["alarm"], 120, "the drift alarm")
    raised = [int(row) for row in RAISED.findall(services.log("plot"))]
    print("\n" + next(line for line in services.log("plot").splitlines() if "drift alarm raised" in line))
    delay = raised[0] - STATIONARY_ROWS
    drift = summary(port)["drift"]
    print(
        f"shifted ({TARGET} + {SHIFT:g}): alarm raised at row {raised[0]:,}, {delay} rows after the first shifted row "
        f"(window {WINDOW}); window MAE {drift['window_mae']:.4f} against reference {drift['reference_mae']:.4f}"
    )
    assert len(raised) == 1 and 0 < delay <= WINDOW
    stream.finish(expected=STATIONARY_ROWS + SHIFTED_ROWS)
    # the target moved, not the inputs: the error alarm speaks and the input alarms stay quiet
    assert_inputs_quiet(summary(port)["inputs"], services.log("plot"), f"{TARGET} + {SHIFT:g}")


def assert_inputs_quiet(inputs: dict, log: str, phase: str) -> None:
    """No input alarm rose for any feature or the prediction."""
    scores = ", ".join(f"{column['name']} {column['score']:.3f}" for column in inputs["columns"])
    print(f"{phase}: input scores over the last {inputs['window']:,} rows: {scores}")
    assert "input drift alarm raised" not in log
    assert not any(column["alarm"] for column in inputs["columns"])
