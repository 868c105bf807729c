"""plot's input drift (plot/src/input_drift.py): counts written by real CountsWriters into files, read and judged
against the reference; every score checked against PSI computed directly from the rows of the window."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from input_drift import InputChange, InputDrift, InputDriftSettings, Judge, load_input_drift_settings

from pipeline import input_counts
from pipeline.input_counts import BLOCK_ROWS, CountsWriter, reference_path
from pipeline.profile import Column, Profile, psi
from pipeline.settings import SettingsError
from tests.helpers.examples import direct_scores, example, inputs

SETTINGS = InputDriftSettings(window=500, raise_above=0.2, clear_below=0.1)


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block closes 10 ms after the one before, whichever replica writes it: the reader's order (by time) is
    the order the test writes them in, as it is for replicas writing seconds apart."""
    now = [time.time()]

    def tick() -> float:
        now[0] += 0.01
        return now[0]

    monkeypatch.setattr(input_counts, "time", SimpleNamespace(time=tick, monotonic=time.monotonic))


def write(writer: CountsWriter, data: np.ndarray, predictions: np.ndarray) -> None:
    writer.add(data, predictions)
    writer.flush()


def scores(drift: InputDrift) -> dict[str, float]:
    summary = drift.summary()
    assert summary is not None
    return {column["name"]: column["score"] for column in summary["columns"]}


@pytest.mark.parametrize("shift", [0.5, 12.0], ids=["moved a little", "moved past every edge: empty bins"])
def test_the_score_is_psi_computed_directly_from_every_row_of_the_window(tmp_path: Path, shift: float) -> None:
    reference = example()
    writer = CountsWriter(tmp_path, reference, replica="a")
    data, predictions = inputs(2537, seed=1, shift=shift)
    write(writer, data, predictions)
    writer.close()  # the last 37 rows: a block of their own
    drift = InputDrift(tmp_path, InputDriftSettings(window=1050))
    drift.refresh()
    # the newest blocks that hold at least 1,050 rows: the 37 and eleven blocks of 100 (ten would hold 1,037)
    window = slice(2537 - 37 - 11 * BLOCK_ROWS, 2537)
    summary = drift.summary()
    assert summary is not None and (summary["rows"], summary["window_rows"]) == (2537, 1137)
    expected = direct_scores(reference, data[window], predictions[window])
    assert scores(drift) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    shown = {column["name"]: column for column in summary["columns"]}
    values = np.column_stack([data[window], predictions[window]])
    for index, column in enumerate(reference.columns):
        shares = np.bincount(column.bin_of(values[:, index]), minlength=column.bins) / len(values)
        assert shown[column.name]["recent"] == pytest.approx(shares.tolist())
        assert shown[column.name]["reference"] == list(column.shares)
        assert shown[column.name]["edges"] == list(column.edges)


def test_the_blocks_of_every_replica_are_judged_together_in_the_order_they_closed(tmp_path: Path) -> None:
    reference = example()
    writers = [CountsWriter(tmp_path, reference, replica=name) for name in "abc"]
    drift = InputDrift(tmp_path, InputDriftSettings(window=1000))
    written: list[tuple[np.ndarray, np.ndarray]] = []
    for block in range(15):  # a, b, c, a, b, c, ...: each replica a block at a time, the later ones moved
        rows = inputs(BLOCK_ROWS, seed=block, shift=2.0 if block >= 9 else 0.0)
        write(writers[block % 3], *rows)
        written.append(rows)
        if block % 4 == 0:
            drift.refresh()
    drift.refresh()
    window = written[-10:]  # the newest ten blocks, whichever replica wrote them
    expected = direct_scores(reference, np.vstack([rows for rows, _ in window]), np.hstack([p for _, p in window]))
    assert scores(drift) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert drift.rows == 1500 and drift.judge is not None and drift.judge.blocks == 10


def hysteresis(
    reference: Profile, data: np.ndarray, predictions: np.ndarray, settings: InputDriftSettings
) -> list[tuple[str, int, bool]]:
    """The changes of every column's alarm, from PSI computed directly over the window at the end of each block."""
    alarm = {column.name: False for column in reference.columns}
    changes = []
    for end in range(settings.window, len(data) + 1, BLOCK_ROWS):
        window = slice(end - settings.window, end)
        for name, score in direct_scores(reference, data[window], predictions[window]).items():
            crossed = score < settings.clear_below if alarm[name] else score > settings.raise_above
            if crossed:
                alarm[name] = not alarm[name]
                changes.append((name, end, alarm[name]))
    return changes


@pytest.mark.parametrize("refresh_every", [1, 7, 1000], ids=["each block", "every 7 blocks", "all at once"])
def test_alarms_rise_and_clear_at_the_rows_a_direct_computation_gives(tmp_path: Path, refresh_every: int) -> None:
    reference = example()
    parts = [inputs(1500, seed=1), inputs(900, seed=2, shift=1.5), inputs(1500, seed=3)]
    data, predictions = np.vstack([part[0] for part in parts]), np.hstack([part[1] for part in parts])
    writer = CountsWriter(tmp_path, reference, replica="a")
    drift = InputDrift(tmp_path, SETTINGS)
    changes: list[InputChange] = []
    for start in range(0, len(data), refresh_every * BLOCK_ROWS):
        end = start + refresh_every * BLOCK_ROWS
        write(writer, data[start:end], predictions[start:end])
        changes += drift.refresh()
    expected = hysteresis(reference, data, predictions, SETTINGS)
    assert [(change.column, change.row, change.alarm) for change in changes] == expected
    assert {("x", True), ("x", False), ("prediction", True), ("prediction", False)} <= {
        (name, alarm) for name, _row, alarm in expected
    }, "the moved rows raise the alarms of x and the predictions, and the rows after clear them"


def two_bins(name: str) -> Column:
    return Column(name, (0.0,), (0.5, 0.5), by_value=False)


def block_of(share_below: float) -> np.ndarray:
    """Counts of a block of 100 rows, ``share_below`` of them in the first bin, for both columns."""
    below = round(share_below * 100)
    return np.array([below, 100 - below] * 2)


def test_a_score_between_clear_and_raise_leaves_the_alarm_as_it_is() -> None:
    reference = Profile((two_bins("a"), two_bins("prediction")), rows=1000, source="halves", model_sha256="0" * 64)
    judge = Judge(reference, InputDriftSettings(window=100, raise_above=0.2, clear_below=0.1))
    # PSI of a block with these shares in the first bin: 0.5 -> 0, 0.6 -> 0.04, 0.68 -> 0.14, 0.75 -> 0.27
    shares = [0.5, 0.68, 0.75, 0.68, 0.68, 0.6, 0.68, 0.75]
    counts = np.stack([block_of(share) for share in shares])
    rows = np.full(len(shares), 100)
    changes = judge.add(counts, rows, ends=np.cumsum(rows))
    assert [(change.column, change.row, change.alarm) for change in changes] == [
        ("a", 300, True),
        ("prediction", 300, True),
        ("a", 600, False),
        ("prediction", 600, False),
        ("a", 800, True),
        ("prediction", 800, True),
    ]
    assert judge.scores is not None and judge.scores[0] == pytest.approx(psi((0.5, 0.5), np.array([75, 25])))
    assert judge.alarm_since == [800, 800]


def test_the_window_keeps_only_the_newest_blocks_that_hold_at_least_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(input_counts, "BLOCK_SECONDS", 0.0)  # flush closes a block of the rows added so far
    writer = CountsWriter(tmp_path, example(), replica="a")
    drift = InputDrift(tmp_path, InputDriftSettings(window=1000))
    for seed in range(200):  # 7,400 rows in blocks of 37
        write(writer, *inputs(37, seed=seed))
        if seed % 10 == 0:
            drift.refresh()
    drift.refresh()
    assert drift.judge is not None
    assert (drift.judge.blocks, drift.judge.window_rows) == (28, 28 * 37), "27 blocks would hold 999 rows"
    assert drift.rows == 200 * 37


def test_nothing_is_judged_or_shown_before_the_reference_can_be_read(tmp_path: Path) -> None:
    drift = InputDrift(tmp_path / "inputs", SETTINGS)
    assert drift.refresh() == [] and drift.summary() is None, "no folder yet"
    reference = example()
    writer = CountsWriter(tmp_path / "inputs", reference, replica="a")
    write(writer, *inputs(300, seed=1))
    reference_path(tmp_path / "inputs", reference.id).unlink()
    drift.refresh()
    assert drift.summary() is None and drift.rows == 300, "the rows are counted, not judged"
    reference.save(reference_path(tmp_path / "inputs", reference.id))
    data, predictions = inputs(600, seed=2)
    write(writer, data, predictions)
    drift.refresh()
    summary = drift.summary()
    assert summary is not None and summary["reference"]["id"] == reference.id
    assert (summary["rows"], summary["window_rows"]) == (900, 500)
    assert scores(drift) == pytest.approx(direct_scores(reference, data[100:], predictions[100:]), rel=1e-12)


def test_a_replica_with_a_new_reference_starts_the_window_and_alarms_again(tmp_path: Path, caplog) -> None:
    old, new = example(seed=1), example(seed=2)
    first = CountsWriter(tmp_path, old, replica="a")
    drift = InputDrift(tmp_path, SETTINGS)
    write(first, *inputs(1000, seed=1, shift=3.0))
    drift.refresh()
    assert drift.judge is not None and drift.judge.alarm.any()
    second = CountsWriter(tmp_path, new, replica="b")
    with caplog.at_level(logging.INFO, logger="plot.inputs"):
        write(second, *inputs(300, seed=2))
        write(first, *inputs(700, seed=3, shift=3.0))  # replica a still runs the old model: read, not judged
        drift.refresh()
    summary = drift.summary()
    assert summary is not None and summary["reference"]["id"] == new.id
    assert (summary["alarm"], summary["rows"], summary["window_rows"]) == (False, 2000, 300)
    assert all(column["score"] is None for column in summary["columns"]), "waiting for the window to fill again"
    [line] = [record.getMessage() for record in caplog.records if record.levelno == logging.INFO]
    assert f"replica b counts with a new reference {new.id}" in line and "from row 1,001 of the inputs" in line
    data, predictions = inputs(200, seed=4)
    write(second, data, predictions)
    drift.refresh()
    assert drift.summary()["window_rows"] == 500  # type: ignore[index]
    later = CountsWriter(tmp_path, old, replica="c")  # a replica started with the old model again: a rollback
    rolled_back, rolled_back_predictions = inputs(500, seed=5)
    write(later, rolled_back, rolled_back_predictions)
    drift.refresh()
    assert drift.judge.reference.id == old.id
    assert scores(drift) == pytest.approx(direct_scores(old, rolled_back, rolled_back_predictions), rel=1e-12)


def test_counts_that_cannot_be_read_are_one_warning_and_read_once_they_can(tmp_path: Path, caplog) -> None:
    (tmp_path / "counts-broken.jsonl").mkdir()  # a folder where a replica's file should be: it cannot be read
    drift = InputDrift(tmp_path, SETTINGS)
    with caplog.at_level(logging.WARNING, logger="plot.inputs"):
        for _ in range(3):
            assert drift.refresh() == []
        (tmp_path / "counts-broken.jsonl").rmdir()
        write(CountsWriter(tmp_path, example(), replica="a"), *inputs(200, seed=1))
        drift.refresh()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 2 and "cannot read the input counts" in warnings[0] and "read again" in warnings[1]
    assert drift.rows == 200


def test_each_change_is_one_warning_naming_the_column_its_score_the_threshold_and_the_window(
    tmp_path: Path, caplog
) -> None:
    reference = example()
    parts = [inputs(500, 1), inputs(1000, 2, shift=2.0), inputs(1000, 3)]
    writer = CountsWriter(tmp_path, reference, replica="a")
    drift = InputDrift(tmp_path, SETTINGS)
    changes: list[InputChange] = []
    with caplog.at_level(logging.WARNING, logger="plot.inputs"):
        for data, predictions in parts:
            write(writer, data, predictions)
            changes += drift.refresh()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == len(changes) >= 4
    for change, line in zip(changes, warnings, strict=True):
        if change.alarm:
            assert line == (
                f"input drift alarm raised for {change.column} at row {change.row:,} of the inputs: "
                f"PSI {change.score:.3g} > 0.2 over the last 500 rows"
            )
        else:
            assert line == (
                f"input drift alarm cleared for {change.column} at row {change.row:,} of the inputs: "
                f"PSI {change.score:.3g} < 0.1 over the last 500 rows"
            )
    data, predictions = np.vstack([part[0] for part in parts]), np.hstack([part[1] for part in parts])
    expected = hysteresis(reference, data, predictions, SETTINGS)
    assert [(change.column, change.row, change.alarm) for change in changes] == expected
    for change in changes:
        window = slice(change.row - 500, change.row)
        score = direct_scores(reference, data[window], predictions[window])[change.column]
        assert change.score == pytest.approx(score, rel=1e-12)


def test_the_summary_lists_the_worst_column_first_and_the_predictions_as_such(tmp_path: Path) -> None:
    writer = CountsWriter(tmp_path, example(), replica="a")
    drift = InputDrift(tmp_path, SETTINGS)
    write(writer, *inputs(300, seed=1, shift=2.0))
    drift.refresh()
    waiting = drift.summary()
    assert waiting is not None and [column["name"] for column in waiting["columns"]] == ["x", "sex", "y", "prediction"]
    assert all(column["score"] is None and column["recent"] is not None for column in waiting["columns"])
    write(writer, *inputs(200, seed=2, shift=2.0))
    drift.refresh()
    summary = drift.summary()
    assert summary is not None
    ordered = [column["score"] for column in summary["columns"]]
    assert ordered == sorted(ordered, reverse=True) and summary["columns"][0]["name"] in ("x", "prediction")
    kinds = {column["name"]: column["kind"] for column in summary["columns"]}
    assert kinds == {"x": "feature", "sex": "feature", "y": "feature", "prediction": "prediction"}
    assert summary["alarm"] is True and (summary["window"], summary["raise"], summary["clear"]) == (500, 0.2, 0.1)


def test_the_settings_default_and_refuse_bad_values_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INPUT_DRIFT_WINDOW", "INPUT_DRIFT_RAISE", "INPUT_DRIFT_CLEAR"):
        monkeypatch.delenv(name, raising=False)
    assert load_input_drift_settings() == InputDriftSettings(window=1000, raise_above=0.2, clear_below=0.1)
    monkeypatch.setenv("INPUT_DRIFT_WINDOW", "2500")
    monkeypatch.setenv("INPUT_DRIFT_RAISE", "0.3")
    assert load_input_drift_settings() == InputDriftSettings(window=2500, raise_above=0.3, clear_below=0.1)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("INPUT_DRIFT_WINDOW", "99", "INPUT_DRIFT_WINDOW must be >= 100"),
        ("INPUT_DRIFT_WINDOW", str(10**20), "INPUT_DRIFT_WINDOW must be from 100 to 1000000"),
        ("INPUT_DRIFT_WINDOW", "many", "INPUT_DRIFT_WINDOW must be a whole number"),
        ("INPUT_DRIFT_RAISE", "high", "INPUT_DRIFT_RAISE must be a number"),
        ("INPUT_DRIFT_RAISE", "0.05", r"INPUT_DRIFT_CLEAR \(0.1\) must be below INPUT_DRIFT_RAISE \(0.05\)"),
        ("INPUT_DRIFT_CLEAR", "0.2", r"INPUT_DRIFT_CLEAR \(0.2\) must be below INPUT_DRIFT_RAISE \(0.2\)"),
        ("INPUT_DRIFT_CLEAR", "0", "INPUT_DRIFT_CLEAR must be above 0"),
        ("INPUT_DRIFT_CLEAR", "-1", "INPUT_DRIFT_CLEAR must be a finite number >= 0"),
    ],
)
def test_a_bad_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=says):
        load_input_drift_settings()
