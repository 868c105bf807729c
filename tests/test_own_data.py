"""A user's own dataset and model: every start-up failure named in one line, and the shipped example swapped in end to
end (train, then features, model, metric and plot on data/wine.csv)."""

from __future__ import annotations

import builtins
import math
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from pipeline.topology import FEATURES, dead_letter_queue
from tests.helpers.csv_log import csv_rows
from tests.helpers.examples import EXAMPLE, EXAMPLE_TARGET, train_example
from tests.helpers.queues import queue_depths
from tests.helpers.services import UNREACHABLE, one_line, run_train, stop_gracefully
from tests.helpers.stream import Stream
from tests.helpers.waiting import wait_until

BAD_DATASETS = {
    "missing file": (None, "target", "DATASET_PATH: no file at"),
    "empty file": (b"", "target", "is empty"),
    "header only": (b"a,b,target\n", "target", "has a header but no rows"),
    "no target column": (b"a,b\n1,2\n", "target", "TARGET_COLUMN: "),
    "only the target": (b"target\n1\n", "target", "no feature column besides 'target'"),
    "a word": (b"a,b,target\n1,2,3\n4,five,6\n", "target", "column 'b', data row 2: 'five' is not a finite number"),
    "an empty cell": (b"a,b,target\n1,,3\n", "target", "column 'b', data row 1: an empty cell is not a finite"),
    "not text": (b"\xff\xfe\x00\x01a,b\n", "target", "is not a readable CSV file"),
}


def bad_dataset(tmp_path: Path, case: str) -> tuple[Path, str, str]:
    content, target, message = BAD_DATASETS[case]
    path = tmp_path / "dataset.csv"
    if content is not None:
        path.write_bytes(content)
    return path, target, message


@pytest.mark.parametrize("case", BAD_DATASETS)
def test_a_bad_dataset_stops_features_at_start_naming_the_problem(make_services, tmp_path: Path, case: str) -> None:
    path, target, message = bad_dataset(tmp_path, case)
    services = make_services(UNREACHABLE, DATASET_PATH=str(path), TARGET_COLUMN=target)
    services.start("features")
    assert services.wait("features", timeout=60) == 2
    line = one_line(services.log("features"))
    assert message in line and ("DATASET_PATH" in line or "TARGET_COLUMN" in line), line


@pytest.mark.parametrize("case", ["missing file", "no target column", "a word"])
def test_a_bad_dataset_stops_train_naming_the_problem(tmp_path: Path, case: str) -> None:
    path, target, message = bad_dataset(tmp_path, case)
    model = tmp_path / "model.skops"
    result = run_train({"DATASET_PATH": str(path), "TARGET_COLUMN": target, "MODEL_PATH": str(model)})
    assert result.returncode == 2
    assert message in one_line(result.stdout + result.stderr)
    assert not model.exists()


def test_a_skops_model_with_types_nobody_trusted_is_refused_until_listed(make_services, tmp_path: Path) -> None:
    rows, targets = pd.read_csv(EXAMPLE).drop(columns=[EXAMPLE_TARGET]), pd.read_csv(EXAMPLE)[EXAMPLE_TARGET]
    estimator = make_pipeline(FunctionTransformer(builtins.abs), LinearRegression()).fit(rows.to_numpy(), targets)
    path = tmp_path / "custom.skops"
    skops.io.dump(estimator, path)

    services = make_services(UNREACHABLE, MODEL_PATH=str(path))
    services.start("model")
    assert services.wait("model", timeout=60) == 2
    line = one_line(services.log("model"))
    assert "MODEL_PATH" in line and "builtins.abs" in line and "MODEL_TRUSTED_TYPES" in line, line

    trusted = make_services(UNREACHABLE, MODEL_PATH=str(path), MODEL_TRUSTED_TYPES="builtins.abs")
    trusted.start("model", "model")
    wait_until(lambda: "expects 12 features per row" in trusted.log("model"), 60, "the model to load")
    trusted.stop_all()


def test_rows_of_another_width_than_the_model_go_to_the_dead_letter_queue_naming_both(
    make_services, broker_url: str
) -> None:
    services = make_services(broker_url)  # the default model: 10 features of the diabetes data
    services.start("model")
    wait_until(lambda: services.is_ready("model"), 60, "model to be ready")
    services.start(
        "features", DATASET_PATH=str(EXAMPLE), TARGET_COLUMN=EXAMPLE_TARGET, FEATURES_INTERVAL="0", FEATURES_LIMIT="20"
    )
    assert services.wait("features", timeout=60) == 0
    wait_until(lambda: queue_depths(broker_url)[dead_letter_queue(FEATURES)] == 20, 60, "20 rows in features.dead")
    stop_gracefully(services, "model")
    assert "body has 12 features but the model at MODEL_PATH expects 10" in services.log("model")


def test_the_example_dataset_and_its_model_replace_the_bundled_ones_end_to_end(
    make_services, broker_url: str, tmp_path: Path, logs_dir: Path
) -> None:
    model_path = train_example(tmp_path / "wine.skops")

    environment = {"MODEL_PATH": str(model_path), "DATASET_PATH": str(EXAMPLE), "TARGET_COLUMN": EXAMPLE_TARGET}
    stream = Stream(make_services(broker_url, **environment), broker_url, logs_dir)
    stream.services.start("plot", LOG_LEVEL="DEBUG")
    stream.start(FEATURES_INTERVAL="0", FEATURES_LIMIT="500")
    rows = stream.finish(expected=500)

    example = pd.read_csv(EXAMPLE)
    estimator = skops.io.load(model_path)
    predictions = estimator.predict(example.drop(columns=[EXAMPLE_TARGET]).to_numpy())
    pairs = set(zip(example[EXAMPLE_TARGET].tolist(), predictions.tolist(), strict=True))
    for _row_id, y_true, y_pred, error in rows:
        assert any(
            float(y_true) == known_true and math.isclose(float(y_pred), known_pred, rel_tol=1e-9)
            for known_true, known_pred in pairs
        ), f"({y_true}, {y_pred}) is no row of {EXAMPLE.name} and its model"
        assert float(error) == abs(float(y_true) - float(y_pred))
    assert len(csv_rows(logs_dir / "metric_log.csv")) == 500

    drawn = lambda: "redrew error_distribution.png with 500 rows" in stream.services.log("plot")  # noqa: E731
    wait_until(drawn, 30, "a picture of 500 rows")
    stop_gracefully(stream.services, "plot")
    for picture in ("error_distribution.png", "error_over_time.png"):
        assert matplotlib.image.imread(logs_dir / picture).shape[0] > 0
