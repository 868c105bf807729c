"""Input drift on real streams through the services: data/wine.csv and its model (with the profile `make train` saves).

One input moved from row 20,000 with labels a minute late: its alarm rises within 1,000 rows and before the first moved
row's label comes, the other inputs stay quiet. Three model replicas: the page's scores are those of every row.
"""

from __future__ import annotations

import csv
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io

from pipeline import profile
from pipeline.messages import encode, new_id
from pipeline.topology import FEATURES
from tests.helpers.csv_log import csv_rows
from tests.helpers.examples import EXAMPLE, EXAMPLE_TARGET, train_example
from tests.helpers.ledger import ledger_published_at
from tests.helpers.ports import free_port, port_open
from tests.helpers.queues import publish_raw
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.timeout(600)]

MOVED, FACTOR = "color_intensity", 1.5
BEFORE, MOVED_ROWS = 20_000, 3_000
LABEL_DELAY = 60.0
WITHIN_ROWS = 1_000


def summary(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/summary.json", timeout=10) as response:
        return json.loads(response.read())


def inputs(port: int) -> dict[str, Any] | None:
    return summary(port)["inputs"] if port_open(port) else None


def columns(port: int) -> dict[str, dict[str, Any]]:
    shown = inputs(port)
    return {column["name"]: column for column in shown["columns"]} if shown else {}


def moved_copy(path: Path, change: dict[str, float]) -> Path:
    """data/wine.csv with each column in ``change`` multiplied by its factor."""
    frame = pd.read_csv(EXAMPLE)
    for name, factor in change.items():
        frame[name] = frame[name] * factor
    frame.to_csv(path, index=False)
    return path


def first_line_with(lines: list[str], text: str) -> int | None:
    """The index of the first of ``lines`` holding ``text``, if one does."""
    return next((index for index, line in enumerate(lines) if text in line), None)


def test_a_moved_input_raises_its_alarm_within_1000_rows_and_before_its_labels_come(
    make_services, broker_url: str, logs_dir: Path, tmp_path: Path
) -> None:
    model = train_example(tmp_path / "wine.skops")
    port = free_port()
    services = make_services(broker_url, MODEL_PATH=str(model), TARGET_COLUMN=EXAMPLE_TARGET, PLOT_INTERVAL="0.5")
    services.start("plot", WEB_PORT=str(port))
    services.start("metric")
    services.start("model")
    late = {"FEATURES_INTERVAL": "0", "FEATURES_LABEL_DELAY": str(LABEL_DELAY)}
    before = services.start("features", DATASET_PATH=str(EXAMPLE), FEATURES_LIMIT=str(BEFORE), **late)
    assert before.wait(timeout=300) == 0
    wait_until(lambda: (inputs(port) or {}).get("rows", 0) >= BEFORE, 120, f"plot to count {BEFORE:,} rows")
    assert not any(column["alarm"] for column in columns(port).values()), columns(port)

    ledger = tmp_path / "moved.ledger"
    moved = moved_copy(tmp_path / "wine-moved.csv", {MOVED: FACTOR})
    services.start(
        "features", DATASET_PATH=str(moved), FEATURES_LIMIT=str(MOVED_ROWS), FEATURES_LEDGER=str(ledger), **late
    )
    wait_until(lambda: columns(port).get(MOVED, {}).get("alarm"), 120, f"the input drift alarm of {MOVED}")
    seen_at = time.time()
    written = {row[0] for row in csv_rows(logs_dir / "metric_log.csv")}
    first_moved_id, first_moved_at = next(iter(ledger_published_at(ledger).items()))
    shown = columns(port)
    moved_column = shown[MOVED]
    delay = moved_column["alarm_since_row"] - BEFORE
    print(
        f"\n{MOVED} x {FACTOR:g} from row {BEFORE + 1:,}, labels {LABEL_DELAY:g} s late: alarm at row "
        f"{moved_column['alarm_since_row']:,}, {delay} rows after the first moved row, seen "
        f"{seen_at - first_moved_at:.1f} s after it was published; PSI {moved_column['score']:.3f}"
    )
    assert 0 < delay <= WITHIN_ROWS
    assert first_moved_id not in written, "the first moved row's label came before the alarm"
    assert summary(port)["drift"]["alarm"] is False  # the error alarm cannot know yet: no moved row has its label

    assert services.wait("features", timeout=120) == 0
    total = BEFORE + MOVED_ROWS
    wait_until(lambda: (inputs(port) or {}).get("rows", 0) >= total, 60, f"plot to count {total:,} rows")
    shown = columns(port)
    log = services.log("plot")
    quiet = [name for name in shown if name not in (MOVED, "prediction")]
    raised_elsewhere = [name for name in quiet if f"raised for {name}" in log or shown[name]["alarm"]]
    print("scores: " + ", ".join(f"{name} {column['score']:.3f}" for name, column in shown.items()))
    assert not raised_elsewhere, f"alarms on inputs that did not move: {raised_elsewhere}"
    prediction = shown["prediction"]
    if prediction["score"] > summary(port)["inputs"]["raise"]:  # the predictions moved too: their alarm says so
        assert prediction["alarm"] and prediction["alarm_since_row"] > BEFORE

    wait_until(lambda: len(csv_rows(logs_dir / "metric_log.csv")) >= total, 60 + 2 * LABEL_DELAY, "every label")
    lines = services.log("plot").splitlines()
    error_alarm = first_line_with(lines, "drift alarm raised at row")
    input_alarm = first_line_with(lines, f"raised for {MOVED}")
    assert input_alarm is not None
    print(f"error alarm: {'none' if error_alarm is None else lines[error_alarm]}")
    assert error_alarm is None or error_alarm > input_alarm  # plot logs in the order it decides


def test_with_three_model_replicas_the_scores_cover_every_row(
    make_services, broker_url: str, logs_dir: Path, tmp_path: Path
) -> None:
    """The test publishes the rows itself and logs their features to a CSV; the page's scores must be those computed
    from that CSV and the model's predictions, not one replica's share."""
    rows_count = 3_000
    model_path = train_example(tmp_path / "wine.skops")
    port = free_port()
    services = make_services(
        broker_url, MODEL_PATH=str(model_path), PLOT_INTERVAL="0.5", INPUT_DRIFT_WINDOW=str(rows_count)
    )
    services.start("plot", WEB_PORT=str(port))
    replicas = [f"model-{index}" for index in range(3)]
    for name in replicas:
        services.start(name, service="model")
    wait_until(lambda: all(services.is_ready(name) for name in replicas), 60, "three replicas")

    frame = pd.read_csv(EXAMPLE).drop(columns=[EXAMPLE_TARGET])
    rng = np.random.default_rng(11)
    data = frame.to_numpy()[rng.integers(0, len(frame), rows_count)]
    data[rows_count // 2 :, list(frame.columns).index(MOVED)] *= FACTOR  # half moved: scores well above noise
    logged = tmp_path / "features.csv"
    with logged.open("w", newline="") as file:
        csv.writer(file).writerows([list(frame.columns), *data.tolist()])
    publish_raw(broker_url, [(FEATURES, encode(new_id(), [float(value) for value in row])) for row in data])

    wait_until(lambda: (inputs(port) or {}).get("rows") == rows_count, 120, f"plot to count {rows_count:,} rows")
    counted = [path for path in (logs_dir / "inputs").glob("counts-*.jsonl") if path.stat().st_size]
    assert len(counted) == 3, "each replica counted a share"

    reference = profile.load(model_path.with_name("wine.profile.json"))
    estimator = skops.io.load(model_path, trusted=skops.io.get_untrusted_types(file=model_path) or None)
    features = pd.read_csv(logged).to_numpy()
    counts = reference.split(reference.count(features, estimator.predict(features)))
    pairs = zip(reference.columns, counts, strict=True)
    expected = {column.name: profile.psi(column.shares, part) for column, part in pairs}
    shown = {name: column["score"] for name, column in columns(port).items()}
    print("\nscores of every row: " + ", ".join(f"{name} {score:.4f}" for name, score in expected.items()))
    assert shown == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert expected[MOVED] > 0.1 and shown[MOVED] == max(shown.values())  # far above the others (about 0.003)
