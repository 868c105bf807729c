"""Each service's own logic, in process, against the small fake broker: no RabbitMQ, no subprocess."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from features import Settings as FeaturesSettings
from features import Streamer
from metric import Metric
from metric import Settings as MetricSettings
from model import SUSPECT_GATHER, Predictor
from pipeline import service
from pipeline.dataset import Dataset
from pipeline.messages import encode
from pipeline.settings import Common
from pipeline.topology import FEATURES, Y_PRED, Y_TRUE
from tests.fake_broker import FakeBroker


def common(logs: Path) -> Common:
    return Common("amqp://guest:guest@127.0.0.1:1/%2F", str(logs), "quorum", "INFO", "")


# --- metric ---------------------------------------------------------------------------------------


def open_metric(logs: Path, orphan_timeout: float = 600.0, max_waiting: int = 100_000) -> tuple[Metric, FakeBroker]:
    """A metric with its files open and its journal read back, as ``run`` leaves it before serving."""
    broker = FakeBroker()
    metric = Metric(MetricSettings(common(logs), 10, orphan_timeout, max_waiting), broker)  # type: ignore[arg-type]
    metric._log.open()
    metric._restore_waiting_halves()
    return metric, broker


def close_metric(metric: Metric) -> None:
    metric._journal.close()
    metric._log.close()


def journal_ids(logs: Path) -> list[str]:
    return [line.split(",")[1] for line in (logs / "metric_waiting.journal").read_text().splitlines()]


def csv_ids(logs: Path) -> list[str]:
    return [line.split(",")[0] for line in (logs / "metric_log.csv").read_text().splitlines()[1:]]


def test_an_orphan_stays_in_the_journal_until_its_release_is_confirmed(tmp_path: Path, monkeypatch) -> None:
    metric, broker = open_metric(tmp_path, orphan_timeout=1.0)
    broker.deliver(Y_TRUE, encode("lonely", 5.0))
    metric._sync()
    assert journal_ids(tmp_path) == ["lonely"]
    monkeypatch.setattr("metric.time.time", lambda: 1e12)  # long after it arrived
    metric._release_orphans()
    [release] = broker.published
    assert release.queue == "y_true.dead" and json.loads(release.body)["orphaned_after"] == 1.0
    metric._sync()  # the broker has not confirmed: a sync, and a forced rewrite, keep the half
    metric._journal.compact(metric._live_halves(), force=True)
    assert journal_ids(tmp_path) == ["lonely"]
    close_metric(metric)  # a crash here: the next start has it again and releases it again

    metric, broker = open_metric(tmp_path, orphan_timeout=1.0)
    metric._release_orphans()
    broker.confirm_all()
    metric._journal.compact(metric._live_halves(), force=True)
    assert journal_ids(tmp_path) == []
    close_metric(metric)


def test_a_pair_whose_error_is_not_finite_goes_to_the_dead_letter_queues(tmp_path: Path) -> None:
    metric, broker = open_metric(tmp_path)
    broker.deliver(Y_TRUE, encode("huge", 1e308))
    metric._sync()
    y_pred = broker.deliver(Y_PRED, encode("huge", -1e308))
    assert broker.rejected_deliveries == [y_pred], "the half that completed the pair is rejected"
    [partner] = broker.published
    assert partner.queue == "y_true.dead" and json.loads(partner.body)["reason"].startswith("the absolute error")
    metric._sync()
    assert csv_ids(tmp_path) == []
    assert journal_ids(tmp_path) == ["huge"], "the journaled partner stays until its release is confirmed"
    broker.confirm_all()
    metric._journal.compact(metric._live_halves(), force=True)
    assert journal_ids(tmp_path) == []
    broker.deliver(Y_TRUE, encode("fine", 1.0))
    broker.deliver(Y_PRED, encode("fine", 3.0))
    metric._sync()
    assert csv_ids(tmp_path) == ["fine"]
    close_metric(metric)


def test_metric_pauses_a_side_past_the_limit_and_resumes_at_ninety_percent(tmp_path: Path) -> None:
    metric, broker = open_metric(tmp_path, max_waiting=10)
    for index in range(11):
        broker.deliver(Y_TRUE, encode(f"r{index}", 1.0))
    metric._sync()
    assert broker.is_paused(Y_TRUE) and not broker.is_paused(Y_PRED)
    broker.deliver(Y_PRED, encode("r0", 1.0))
    metric._sync()
    assert broker.is_paused(Y_TRUE), "10 waiting is over 90 % of 10"
    broker.deliver(Y_PRED, encode("r1", 1.0))
    metric._sync()
    assert not broker.is_paused(Y_TRUE), "9 waiting: consuming again"
    close_metric(metric)


def test_metric_never_pauses_a_side_while_the_other_is_over_the_limit_too(tmp_path: Path) -> None:
    metric, broker = open_metric(tmp_path, max_waiting=2)
    for index in range(3):
        broker.deliver(Y_TRUE, encode(f"t{index}", 1.0))
        broker.deliver(Y_PRED, encode(f"p{index}", 1.0))
    metric._sync()
    assert not broker.paused


def test_a_redelivered_half_is_acked_without_a_second_row(tmp_path: Path) -> None:
    metric, broker = open_metric(tmp_path)
    broker.deliver(Y_TRUE, encode("a", 1.0))
    broker.deliver(Y_PRED, encode("a", 2.0))
    again = broker.deliver(Y_PRED, encode("a", 2.0), redelivered=True)
    metric._sync()
    assert csv_ids(tmp_path) == ["a"] and again in broker.acked
    close_metric(metric)


def test_metric_logs_a_heartbeat(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    metric, broker = open_metric(tmp_path)
    broker.deliver(Y_TRUE, encode("a", 1.0))
    broker.deliver(Y_PRED, encode("a", 4.0))
    broker.deliver(Y_TRUE, encode("b", 1.0))
    metric._sync()
    with caplog.at_level(logging.INFO, logger="metric"):
        metric._heartbeat()
    assert "heartbeat: 1 rows written" in caplog.text and "MAE 3, 1 halves waiting" in caplog.text
    assert any(timer.delay == service.HEARTBEAT_INTERVAL for timer in broker.timers), "and the next one"
    close_metric(metric)


# --- model ----------------------------------------------------------------------------------------


class Picky:
    """An estimator of three features that raises on a 13 and predicts infinity for a 7."""

    n_features_in_ = 3

    def predict(self, rows: np.ndarray) -> np.ndarray:
        if (rows == 13).any():
            raise ValueError("13 is unlucky")
        return np.where((rows == 7).any(axis=1), np.inf, rows.sum(axis=1))


def start_model() -> tuple[Predictor, FakeBroker]:
    broker = FakeBroker()
    return Predictor(Picky(), "picky", broker), broker  # type: ignore[arg-type]


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


def test_features_stops_after_its_limit_and_counts_confirmed_rows(tmp_path: Path) -> None:
    data = Dataset(np.arange(12.0).reshape(4, 3), np.arange(4.0), ["a", "b", "c"], "test")
    broker = FakeBroker()
    streamer = Streamer(FeaturesSettings(common(tmp_path), 0.0, 5, "", data), broker, None)  # type: ignore[arg-type]
    streamer.resume()
    assert not broker.ready, "drained and stopped after 5 rows"
    queues = [message.queue for message in broker.published]
    assert queues.count(FEATURES) == 5 and queues.count(Y_TRUE) == 5
    broker.confirm_all()
    assert streamer._confirmed == 5
