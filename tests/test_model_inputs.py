"""model's side of the input drift (model/src/model_inputs.py): the profile train.py and make_profile.py save beside a
model, its checks at start, and the counts of every predicted row, in process against the fake broker."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
import train
from model_inputs import InputCounter, InputSettings, load_input_settings
from sklearn.linear_model import LinearRegression

from model import Predictor, load_settings
from pipeline import dataset, profile
from pipeline.input_counts import BLOCK_ROWS, CountsReader, CountsWriter, learned_path
from pipeline.messages import encode
from pipeline.profile import Profile
from pipeline.settings import SettingsError
from pipeline.topology import FEATURES
from tests.fake_broker import FakeBroker
from tests.helpers.examples import EXAMPLE, EXAMPLE_TARGET, Picky
from tests.helpers.services import UNREACHABLE, one_line, run_model_script
from tests.helpers.stream import Stream

SHA = "ab" * 32
NAMES = ["a", "b", "c"]


def random_rows(count: int, seed: int, centre: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(centre, 2.0, (count, 3))


def settings(folder: Path, reference: Profile | None, reference_rows: int = 1000) -> InputSettings:
    return InputSettings(
        folder, SHA, [f"feature {index}" for index in (1, 2, 3)], reference, folder / "p", reference_rows
    )


def start(counter: InputCounter) -> tuple[Predictor, FakeBroker]:
    broker = FakeBroker()
    return Predictor(Picky(), "picky", broker, counter), broker


def deliver(
    broker: FakeBroker, rows: np.ndarray, *, redelivered: bool = False, counter: InputCounter | None = None
) -> None:
    """Hand the rows to model as one read from the socket and predict them; then count them, with ``counter``, as
    its timer would."""
    for index, row in enumerate(rows):
        broker.deliver(FEATURES, encode(f"r{index}", row.tolist()), redelivered=redelivered)
    broker.fire_timers()
    if counter is not None:
        counter.flush()


def total_counts(folder: Path) -> tuple[np.ndarray, int, set[str]]:
    """The counts of every block written in ``folder``, added up; the rows; the references they were made with."""
    blocks = CountsReader(folder).read_new()
    return (
        np.sum([block.counts for block in blocks], axis=0),
        sum(block.rows for block in blocks),
        {b.ref for b in blocks},
    )


# --- counting -------------------------------------------------------------------------------------


def test_every_published_row_is_counted_against_the_profile_and_written_on_the_timer(tmp_path: Path) -> None:
    reference = profile.make(random_rows(500, 1), random_rows(500, 1).sum(axis=1), NAMES, "test", SHA)
    counter = InputCounter(settings(tmp_path, reference), replica="one")
    predictor, broker = start(counter)
    rows = random_rows(250, 2)
    refused = np.array([[1.0, 13.0, 3.0], [7.0, 2.0, 3.0]])  # Picky raises on one, predicts infinity for the other
    suspect, last = random_rows(1, 3), random_rows(1, 4)

    def serve() -> None:
        deliver(broker, np.concatenate([rows[:120], refused, rows[120:]]))
        deliver(broker, suspect, redelivered=True)  # the flush timer fires first, then the suspect is predicted alone
        written = CountsReader(tmp_path).read_new()
        assert [block.rows for block in written] == [BLOCK_ROWS, BLOCK_ROWS], "closed blocks go out on the timer"
        deliver(broker, last)  # predicted after the timer's last flush: counted as model stops

    broker.while_running = serve
    predictor.run()
    counted = np.concatenate([rows, suspect, last])
    counts, total, references = total_counts(tmp_path)
    assert total == 252 and references == {reference.id}
    assert counts.tolist() == reference.count(counted, counted.sum(axis=1)).tolist()


def test_without_a_profile_the_first_rows_are_the_reference_and_are_counted_too(tmp_path: Path) -> None:
    counter = InputCounter(settings(tmp_path, None, reference_rows=150), replica="one")
    _predictor, broker = start(counter)
    rows = random_rows(220, 4)
    deliver(broker, rows[:120], counter=counter)
    assert not learned_path(tmp_path, SHA).exists() and counter.reference is None
    deliver(broker, rows[120:], counter=counter)
    learned = profile.load(learned_path(tmp_path, SHA))
    names = ["feature 1", "feature 2", "feature 3"]
    expected = profile.make(rows[:150], rows[:150].sum(axis=1), names, "the first 150 rows of the stream", SHA)
    assert learned == expected == counter.reference
    counter.close()
    counts, total, references = total_counts(tmp_path)
    assert total == 220 and references == {learned.id}
    assert counts.tolist() == learned.count(rows, rows.sum(axis=1)).tolist()


def learning_replica(folder: Path, name: str) -> tuple[InputCounter, FakeBroker]:
    counter = InputCounter(settings(folder, None, reference_rows=100), replica=name)
    return counter, start(counter)[1]


@pytest.mark.parametrize(
    "together",
    [False, True],
    ids=["second-starts-after-the-first-learned", "second-learning-while-the-first-keeps-its-own"],
)
def test_two_replicas_sharing_a_folder_count_against_one_learned_reference(tmp_path: Path, together: bool) -> None:
    rows_a, rows_b = random_rows(100, 5), random_rows(150, 6, centre=50.0)  # the second's own reference would differ
    first, broker_a = learning_replica(tmp_path, "a")
    deliver(broker_a, rows_a[:99], counter=first)
    if together:
        second, broker_b = learning_replica(tmp_path, "b")
        deliver(broker_b, rows_b[:99], counter=second)
        deliver(broker_a, rows_a[99:], counter=first)  # the first keeps its reference while the second still learns
    else:
        deliver(broker_a, rows_a[99:], counter=first)
        second, broker_b = learning_replica(tmp_path, "b")
        assert second.reference == first.reference, "the reference learned before is found at start"
        deliver(broker_b, rows_b[:99], counter=second)
    deliver(broker_b, rows_b[99:], counter=second)
    first.close()
    second.close()
    reference = profile.load(learned_path(tmp_path, SHA))
    assert first.reference == second.reference == reference
    assert reference.source == "the first 100 rows of the stream" and reference.rows == 100
    counts, total, references = total_counts(tmp_path)
    every_row = np.concatenate([rows_a, rows_b])
    assert total == 250 and references == {reference.id}
    assert counts.tolist() == reference.count(every_row, every_row.sum(axis=1)).tolist()


def test_counting_that_fails_stops_counting_not_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reference = profile.make(random_rows(500, 1), random_rows(500, 1).sum(axis=1), NAMES, "test", SHA)
    counter = InputCounter(settings(tmp_path, reference), replica="one")
    _predictor, broker = start(counter)

    def broken(*_: object) -> None:
        raise RuntimeError("a bug in the counting")

    monkeypatch.setattr(CountsWriter, "add", broken)
    deliver(broker, random_rows(5, 7), counter=counter)
    deliver(broker, random_rows(5, 8), counter=counter)
    assert len(broker.published) == 10
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and "predictions go on" in errors[0].getMessage()


def test_input_drift_off_counts_nothing_and_writes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_path: Path
) -> None:
    logs = tmp_path / "logs"
    for name, value in {"MODEL_PATH": str(model_path), "LOGS_DIR": str(logs), "INPUT_DRIFT": "off"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODEL_PROFILE", str(tmp_path / "none.json"))  # not looked at when off
    config = load_settings()
    assert config.inputs is None
    broker = FakeBroker()
    predictor = Predictor(config.model, config.model_path, broker)
    broker.while_running = lambda: deliver(broker, np.random.default_rng(9).normal(0, 0.05, (300, 10)))
    predictor.run()
    assert len(broker.published) == 300 and not logs.exists()
    monkeypatch.delenv("MODEL_PROFILE")
    monkeypatch.setenv("INPUT_DRIFT", "on")
    inputs = load_input_settings(config.model, str(model_path), str(logs))
    assert inputs is not None and inputs.profile == profile.load(model_path.with_name("model.profile.json"))


# --- the profile beside the model -----------------------------------------------------------------


def test_train_saves_the_profile_of_its_data_beside_the_model(tmp_path: Path) -> None:
    data = dataset.load_csv(EXAMPLE, EXAMPLE_TARGET)
    estimator = train.train(tmp_path / "wine.skops", data)
    saved = profile.load(tmp_path / "wine.profile.json")
    assert saved.model_sha256 == profile.sha256_of(tmp_path / "wine.skops")
    assert [column.name for column in saved.features] == data.feature_names
    made = profile.make(data.rows, estimator.predict(data.rows), data.feature_names, str(EXAMPLE), saved.model_sha256)
    assert saved == made and (saved.rows, saved.source) == (178, str(EXAMPLE))


def run_make_profile(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What `make profile MODEL_PATH=… DATASET_PATH=… TARGET_COLUMN=…` runs."""
    return run_model_script("make_profile.py", environment)


def fitted_on_a_frame(path: Path) -> Path:
    """A model of the user's own, fitted elsewhere on the example with its column names; no profile."""
    frame = pd.read_csv(EXAMPLE)
    estimator = LinearRegression().fit(frame.drop(columns=[EXAMPLE_TARGET]), frame[EXAMPLE_TARGET])
    skops.io.dump(estimator, path)
    return path


def test_make_profile_saves_one_for_a_model_of_your_own_that_model_then_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_path = fitted_on_a_frame(tmp_path / "own.skops")
    environment = {"MODEL_PATH": str(model_path), "DATASET_PATH": str(EXAMPLE), "TARGET_COLUMN": EXAMPLE_TARGET}
    result = run_make_profile(environment)
    assert result.returncode == 0, result.stderr
    saved = profile.load(tmp_path / "own.profile.json")
    assert saved.model_sha256 == profile.sha256_of(model_path) and saved.rows == 178
    for name, value in (environment | {"LOGS_DIR": str(tmp_path / "logs")}).items():
        monkeypatch.setenv(name, value)
    inputs = load_settings().inputs
    assert inputs is not None and inputs.profile == saved


def test_make_profile_refuses_a_dataset_of_another_width_in_one_line(tmp_path: Path, model_path: Path) -> None:
    own = Path(shutil.copy(model_path, tmp_path / "model.skops"))  # of the diabetes data: 10 features
    result = run_make_profile({"MODEL_PATH": str(own), "DATASET_PATH": str(EXAMPLE), "TARGET_COLUMN": EXAMPLE_TARGET})
    assert result.returncode == 2
    line = one_line(result.stdout + result.stderr)
    assert "DATASET_PATH" in line and "12 feature columns but the model at MODEL_PATH expects 10" in line, line
    assert not (tmp_path / "model.profile.json").exists()


# --- a profile that does not fit stops model at start ---------------------------------------------


def mismatched(case: str, tmp_path: Path, model_path: Path) -> dict[str, str]:
    """The environment of a model with a profile that does not fit it, as ``case`` says."""
    tmp_path.mkdir()
    own = Path(shutil.copy(model_path, tmp_path / "model.skops"))
    beside = tmp_path / "model.profile.json"
    rows = random_rows(200, 1)
    if case == "not JSON":
        beside.write_bytes(b"\x00 not a profile")
    elif case == "not a profile":
        beside.write_text('{"format": 1, "columns": []}')
    elif case == "another width":
        profile.make(rows, rows[:, 0], NAMES, "test", profile.sha256_of(own)).save(beside)
    elif case == "another model file":
        reference = profile.load(model_path.with_name("model.profile.json"))
        profile.Profile(reference.columns, reference.rows, reference.source, "0" * 64).save(beside)
    elif case == "other names":
        own = fitted_on_a_frame(tmp_path / "own.skops")
        wine = dataset.load_csv(EXAMPLE, EXAMPLE_TARGET)
        names = [f"x{index}" for index in range(12)]
        profile.make(wine.rows, wine.targets, names, "test", profile.sha256_of(own)).save(tmp_path / "own.profile.json")
    elif case == "missing":
        return {"MODEL_PATH": str(own), "MODEL_PROFILE": str(tmp_path / "nowhere.json")}
    return {"MODEL_PATH": str(own)}


MISMATCHES = {
    "not JSON": "cannot read a profile from",
    "not a profile": "is no profile of this pipeline",
    "missing": "no profile at",
    "another width": "has 3 feature columns but the model at MODEL_PATH expects 10",
    "other names": "names the features x0, x1",
    "another model file": "was made for another model file; run `make train` or `make profile`, or remove it",
}


@pytest.mark.parametrize("case", MISMATCHES)
def test_a_profile_that_does_not_fit_the_model_stops_it_at_start_in_one_line(
    make_services, tmp_path: Path, model_path: Path, case: str
) -> None:
    services = make_services(UNREACHABLE, **mismatched(case, tmp_path / "model", model_path))
    services.start("model")
    assert services.wait("model", timeout=60) == 2
    line = one_line(services.log("model"))
    assert "MODEL_PROFILE" in line and MISMATCHES[case] in line, line


# --- the real process -----------------------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.parametrize("drift", ["on", "off"])
def test_model_counts_every_row_it_predicts_into_logs_inputs_unless_off(
    make_services, broker_url: str, logs_dir: Path, model_path: Path, drift: str
) -> None:
    stream = Stream(make_services(broker_url, INPUT_DRIFT=drift), broker_url, logs_dir)
    stream.start(FEATURES_INTERVAL="0", FEATURES_LIMIT="300")
    stream.finish(expected=300)  # model stopped by SIGTERM: its last rows are written as it stops
    if drift == "off":
        assert not (logs_dir / "inputs").exists()
        assert "input drift: off" in stream.services.log("model")
        return
    reference = profile.load(model_path.with_name("model.profile.json"))
    counts, total, references = total_counts(logs_dir / "inputs")
    assert total == 300 and references == {reference.id}
    assert [int(part.sum()) for part in reference.split(counts)] == [300] * len(reference.columns)
    assert f"counting each row against the profile {model_path.with_name('model.profile.json')}" in stream.services.log(
        "model"
    )


@pytest.mark.parametrize(("value", "says"), [("99", "must be >= 100"), ("100001", "must be from 100 to 100000")])
def test_a_reference_too_small_to_judge_or_too_large_to_hold_is_refused(
    monkeypatch: pytest.MonkeyPatch, model_path: Path, value: str, says: str
) -> None:
    """The rows of a learned reference wait in memory: 1,000,000 of them took 470 MB, past model's 384m limit."""
    monkeypatch.setenv("INPUT_REFERENCE_ROWS", value)
    with pytest.raises(SettingsError, match=f"INPUT_REFERENCE_ROWS {says}"):
        load_input_settings(object(), str(model_path), "/nowhere")
