"""model's and features' own logic, in process, against the small fake broker: no RabbitMQ, no subprocess
(metric's: test_metric_unit.py)."""

from __future__ import annotations

import errno
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from features import Ledger, Row, Streamer
from features import Settings as FeaturesSettings
from model import SUSPECT_GATHER, Predictor
from pipeline.dataset import Dataset
from pipeline.disk import RETRY_DELAY
from pipeline.messages import encode
from pipeline.settings import Common
from pipeline.topology import FEATURES, Y_TRUE
from tests.fake_broker import FakeBroker
from tests.helpers.examples import Picky


def common(logs: Path) -> Common:
    return Common("amqp://guest:guest@127.0.0.1:1/%2F", str(logs), "quorum", "INFO", "")


# --- model ----------------------------------------------------------------------------------------


def start_model() -> tuple[Predictor, FakeBroker]:
    broker = FakeBroker()
    return Predictor(Picky(), "picky", broker), broker


def test_rows_the_estimator_refuses_are_rejected_alone(caplog: pytest.LogCaptureFixture) -> None:
    _predictor, broker = start_model()
    good = broker.deliver(FEATURES, encode("good", [1.0, 2.0, 3.0]))
    raises = broker.deliver(FEATURES, encode("raises", [1.0, 13.0, 3.0]))
    infinite = broker.deliver(FEATURES, encode("infinite", [7.0, 2.0, 3.0]))
    also_good = broker.deliver(FEATURES, encode("also-good", [0.5, 0.5, 0.5]))
    broker.fire_timers()
    assert broker.rejected_deliveries == [raises, infinite]
    assert [json.loads(message.body) for message in broker.published] == [
        {"id": "good", "body": 6.0},
        {"id": "also-good", "body": 1.5},
    ]
    broker.confirm_all()
    assert broker.acked == [good, also_good]
    assert "13 is unlucky" in caplog.text and "predicted inf" in caplog.text


def test_redelivered_rows_are_gathered_then_predicted_one_at_a_time() -> None:
    _predictor, broker = start_model()
    for index in range(3):
        broker.deliver(FEATURES, encode(f"s{index}", [1.0, 1.0, float(index)]), redelivered=True)
    assert broker.published == [], "the first suspect waits until the rows returned with it have come in"
    assert [timer.delay for timer in broker.timers] == [SUSPECT_GATHER]
    broker.fire_timers()
    assert len(broker.published) == 1, "the next suspect waits for the first one's confirm"
    broker.confirm_all()
    assert len(broker.acked) == 1
    broker.fire_timers()
    assert len(broker.published) == 1
    broker.confirm_all()
    broker.fire_timers()
    broker.confirm_all()
    assert len(broker.acked) == 3
    assert sorted(json.loads(delivery.body)["id"] for delivery in broker.acked) == ["s0", "s1", "s2"]


def test_the_first_suspect_is_drawn_at_random_from_those_gathered() -> None:
    first = set()
    for _ in range(40):
        _predictor, broker = start_model()
        for index in range(5):
            broker.deliver(FEATURES, encode(f"s{index}", [1.0, 1.0, float(index)]), redelivered=True)
        broker.fire_timers()
        first.add(json.loads(broker.published[0].body)["id"])
    assert len(first) > 1, "the row the broker returns first must not always go first"


# --- features -------------------------------------------------------------------------------------


def test_features_stops_after_its_limit_and_counts_confirmed_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = Dataset(np.arange(12.0).reshape(4, 3), np.arange(4.0), ["a", "b", "c"], "test")
    broker = FakeBroker()
    streamer = Streamer(FeaturesSettings(common(tmp_path), 0.0, 5, "", data), broker, None)
    broker.while_running = broker.hooks["on_ready"]  # connected: it streams
    assert streamer.run() == 0
    assert not broker.ready, "drained and stopped after 5 rows"
    queues = [message.queue for message in broker.published]
    assert queues.count(FEATURES) == 5 and queues.count(Y_TRUE) == 5
    broker.confirm_all()
    with caplog.at_level(logging.INFO, logger="features"):
        assert broker.fire_timers() == 1, "its heartbeat alone: no more ticks"
    assert re.search(r"heartbeat: 5 rows published \(.*\), 5 confirmed", caplog.text)


def test_no_row_goes_out_before_its_ledger_line_is_written_and_a_full_disk_is_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = Dataset(np.arange(12.0).reshape(4, 3), np.arange(4.0), ["a", "b", "c"], "test")
    broker = FakeBroker()
    ledger = Ledger(tmp_path / "ledger", broker)
    streamer = Streamer(FeaturesSettings(common(tmp_path), 1.0, 0, "", data), broker, ledger)
    streamer.resume()
    assert len(broker.published) == 2
    monkeypatch.setattr("pipeline.append_file.os.pwrite", full_disk)
    broker.confirm_all()  # its "confirmed" line cannot be written: it waits, kept
    for _ in range(3):
        broker.fire_timers()
    assert broker.published == [], "no row is published while its ledger line cannot be written"
    assert [timer.delay for timer in broker.timers] == [RETRY_DELAY] and "disk" in broker.problems
    monkeypatch.undo()
    broker.fire_timers()
    assert len(broker.published) == 2 and broker.problems == {}
    broker.confirm_all()
    ledger.close()
    lines = (tmp_path / "ledger").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["published", "confirmed", "published", "confirmed"]
    assert len({line.split()[1] for line in lines}) == 2, "each row noted once of each kind"


def full_disk(*_: object) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_the_ledger_waits_for_room_at_exit_and_at_its_first_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = FakeBroker()
    ledger = Ledger(tmp_path / "ledger", broker)
    monkeypatch.setattr("pipeline.append_file.os.open", lambda *_: full_disk())
    row = Row("first", 1.0, 0)
    assert not ledger.published(row), "a ledger that cannot even be opened holds the row back"
    monkeypatch.undo()
    assert ledger.published(row)
    monkeypatch.setattr("pipeline.append_file.os.pwrite", full_disk)
    ledger.confirmed("first")
    tries = []

    def room_after_three_tries(_seconds: float) -> None:
        tries.append(_seconds)
        if len(tries) == 2:
            monkeypatch.undo()

    monkeypatch.setattr("features.time.sleep", room_after_three_tries)
    monkeypatch.setattr("features.signal.signal", lambda *_: None)  # not pytest's own handlers
    ledger.close()
    assert tries == [RETRY_DELAY] * 2, "three tries failed, the fourth wrote"
    assert (tmp_path / "ledger").read_text().split() == ["published", "first", "1.000000", "confirmed", "first"]
