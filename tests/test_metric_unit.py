"""metric's own logic in process, against the small fake broker and a clock the test moves: deliveries in; rows,
acks, publishes and files out. No RabbitMQ, no subprocess."""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
from pathlib import Path

import front as front_module
import pytest
from prometheus_client import REGISTRY
from streams import ORPHAN_GRACE, WATERMARK_RANK
from waiting import WaitingStore

from metric import Metric
from metric import Settings as MetricSettings
from pipeline import service
from pipeline.broker_surface import Delivery
from pipeline.messages import encode
from pipeline.metric_log import HEADER
from pipeline.settings import Common
from pipeline.status import read_status
from pipeline.topology import Y_PRED, Y_TRUE
from tests.fake_broker import FakeBroker

START = 1_800_000_000.0  # when the rows of a test were created
TIMEOUT = 60.0


class Clock:
    """metric's clock, which the test moves; it starts a day after START, so that the rows are in the past."""

    def __init__(self) -> None:
        self.now = START + 86_400

    def __call__(self) -> float:
        return self.now


class Run:
    """One start of metric on ``logs``: its fake broker, the shared clock, and what it wrote."""

    def __init__(self, logs: Path, clock: Clock, max_waiting: int = 1000) -> None:
        self.logs, self.clock = logs, clock
        self.broker = FakeBroker()
        common = Common("amqp://guest:guest@127.0.0.1:1/%2F", str(logs), "quorum", "INFO", "")
        self.metric = Metric(MetricSettings(common, 10, TIMEOUT, max_waiting), self.broker, clock)
        self.metric.start()

    def deliver(self, side: str, row_id: str, value: float, created: float | None = None) -> Delivery:
        stamp = None if created is None else int(created)
        return self.broker.deliver(side, encode(row_id, value), created=stamp)

    def row(self, row_id: str, created: float, y_true: float = 1.0, y_pred: float = 3.0) -> None:
        self.deliver(Y_TRUE, row_id, y_true, created)
        self.deliver(Y_PRED, row_id, y_pred, created)

    def step(self, seconds: float = 0.0) -> None:
        """Let ``seconds`` pass, then fire every timer due (a sync, a tick, a heartbeat) once."""
        self.clock.now += seconds
        self.broker.fire_timers()

    def settle(self) -> None:
        """Fire the timers twice: the deliveries joined and committed, then metric_status.json written."""
        self.step()
        self.step()

    def wait_out_the_grace(self) -> None:
        self.step()
        self.step(ORPHAN_GRACE + 1)

    def released(self) -> list[dict]:
        return [json.loads(message.body) | {"queue": message.queue} for message in self.broker.published]

    def csv_ids(self) -> list[str]:
        return [line.split(",")[0] for line in (self.logs / "metric_log.csv").read_text().splitlines()[1:]]

    def status(self) -> dict:
        status = read_status(self.logs)
        assert status is not None
        return status

    def stop(self) -> None:
        """Stop as a crash after the last sync does: nothing more reaches the files."""
        self.metric.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_row_is_written_once_and_its_deliveries_acked_after_the_sync(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock)
    truth, prediction = run.deliver(Y_TRUE, "a", 1.0, START), run.deliver(Y_PRED, "a", 4.0, START)
    assert run.broker.acked == [], "nothing is acked before its effect is on disk"
    run.step()
    assert run.csv_ids() == ["a"] and run.broker.acked == [truth, prediction]
    copy = run.deliver(Y_PRED, "a", 4.0, START)
    run.step()
    assert run.csv_ids() == ["a"] and copy in run.broker.acked
    run.stop()

    again = Run(tmp_path, clock)  # and after a restart, a copy of either half is known
    again.deliver(Y_TRUE, "a", 1.0, START)
    again.settle()
    assert again.csv_ids() == ["a"] and len(again.broker.acked) == 1 and again.status()["waiting"][Y_TRUE] == 0


def test_halves_wait_on_disk_across_restarts_and_pair_when_the_partner_comes(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock)
    for index in range(10):
        run.deliver(Y_PRED, f"late-{index}", 2.0, START)
    run.step()
    run.step(3600)  # an hour: they moved from memory to disk
    run.settle()
    assert run.status()["waiting"] == {Y_TRUE: 0, Y_PRED: 10}
    run.stop()

    run = Run(tmp_path, clock)
    for index in range(10):
        run.deliver(Y_TRUE, f"late-{index}", 1.0, START)
    run.settle()
    assert sorted(run.csv_ids()) == [f"late-{index}" for index in range(10)]
    assert run.status()["waiting"] == {Y_TRUE: 0, Y_PRED: 0} and run.released() == []


def test_a_stream_that_delivers_nothing_orphans_nothing_however_long(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock)
    for index in range(WATERMARK_RANK * 2):
        run.deliver(Y_PRED, f"p{index}", 2.0, START + index)  # the model runs; every label is late
    for _ in range(48):
        run.step(3600)  # two days
    assert run.released() == [] and run.status()["waiting"][Y_PRED] == WATERMARK_RANK * 2
    assert run.status()["oldest_created"] == START


def test_a_half_is_an_orphan_once_the_other_stream_has_passed_it(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock)
    run.deliver(Y_PRED, "lonely", 2.0, START)
    for index in range(WATERMARK_RANK):  # the y_true stream, not yet past it by the timeout
        run.row(f"r{index}", START + TIMEOUT - 1)
    run.wait_out_the_grace()
    assert run.released() == []
    for index in range(WATERMARK_RANK):
        run.row(f"s{index}", START + TIMEOUT + 1)
    run.step()
    assert run.released() == [], f"not before the stream has been past it for {ORPHAN_GRACE} s"
    run.wait_out_the_grace()
    [orphan] = run.released()
    assert orphan["queue"] == "y_pred.dead" and orphan["id"] == "lonely" and orphan["orphaned_after"] == TIMEOUT
    run.stop()  # a crash before the broker confirmed it: released again after the restart

    run = Run(tmp_path, clock)
    run.wait_out_the_grace()
    assert [orphan["id"] for orphan in run.released()] == ["lonely"]
    run.broker.confirm_all()
    run.settle()
    assert run.status()["waiting"][Y_PRED] == 0
    assert run.released() == [], "confirmed: not published again"
    run.stop()

    run = Run(tmp_path, clock)  # confirmed: never released again
    run.wait_out_the_grace()
    run.wait_out_the_grace()
    assert run.released() == []


def test_a_few_stray_messages_stamped_ahead_cannot_orphan_anything(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock)
    run.deliver(Y_PRED, "waits", 2.0, START)
    for index in range(WATERMARK_RANK):
        run.row(f"r{index}", START)
    for index in range(WATERMARK_RANK - 1):
        run.deliver(Y_TRUE, f"stray-{index}", 1.0, None)  # no timestamp: created when received, a day later
    run.wait_out_the_grace()
    assert "waits" not in [orphan["id"] for orphan in run.released()]
    run.deliver(Y_TRUE, "one-more", 1.0, None)
    run.wait_out_the_grace()
    assert "waits" in [orphan["id"] for orphan in run.released()], f"{WATERMARK_RANK} of them do"


def test_a_pair_whose_error_is_not_finite_goes_to_the_dead_letter_queues(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock)
    run.deliver(Y_TRUE, "huge", 1e308, START)
    run.step()
    completing = run.deliver(Y_PRED, "huge", -1e308, START)
    run.step()
    assert run.broker.rejected_deliveries == [completing], "the half that completed the pair is rejected"
    [partner] = run.released()
    assert partner["queue"] == "y_true.dead" and partner["reason"].startswith("the absolute error")
    assert run.csv_ids() == []
    run.broker.confirm_all()
    run.step()
    run.row("fine", START)
    run.settle()
    assert run.csv_ids() == ["fine"] and run.status()["waiting"] == {Y_TRUE: 0, Y_PRED: 0}


def test_a_row_written_just_before_a_crash_leaves_no_waiting_half(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock)
    run.deliver(Y_TRUE, "x", 1.0, START)
    run.step()
    run.stop()
    with (tmp_path / "metric_log.csv").open("a") as csv:  # the CSV was fsynced, the commit never came
        csv.write("x,1.0,2.0,1.0\n")

    run = Run(tmp_path, clock)
    assert run.status()["waiting"] == {Y_TRUE: 0, Y_PRED: 0}
    copy = run.deliver(Y_PRED, "x", 2.0, START)  # its delivery was never acked: it comes again
    run.step()
    assert run.csv_ids() == ["x"] and copy in run.broker.acked


def test_a_row_written_before_a_crash_is_done_even_if_its_half_moves_to_disk_as_the_inbox_is_read(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(front_module, "FRONT_HALVES", 10)
    (tmp_path / "metric_waiting.journal").write_text("".join(f"y_true,j{index:02d},1.0,0\n" for index in range(20)))
    run = Run(tmp_path, clock)  # 20 halves in the inbox, more than FRONT_HALVES
    run.deliver(Y_PRED, "j00", 3.0, START)
    with monkeypatch.context() as patch:  # the row fsynced, then a crash before the commit
        patch.setattr("waiting.WaitingStore.commit", failing_commit)
        run.step()
    run.stop()

    run = Run(tmp_path, clock)  # j00, the oldest, moves to disk as the inbox is read, and its row is in the CSV
    assert run.csv_ids() == ["j00"] and run.status()["waiting"] == {Y_TRUE: 19, Y_PRED: 0}
    run.stop()
    run = Run(tmp_path, clock)
    assert run.status()["waiting"] == {Y_TRUE: 19, Y_PRED: 0}, "and no phantom after the next start either"


def test_a_journal_and_a_csv_from_before_the_waiting_file_are_taken_over(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "metric_log.csv").write_text("id,y_true,y_pred,absolute_error\nold,1.0,2.0,1.0\n")
    (tmp_path / "metric_waiting.journal").write_text("y_true,waits,5.0,1799999000.5\ny_pred,tor")
    run = Run(tmp_path, clock)
    assert not (tmp_path / "metric_waiting.journal").exists()
    assert run.status()["waiting"] == {Y_TRUE: 1, Y_PRED: 0}
    run.deliver(Y_PRED, "old", 2.0, START)
    run.deliver(Y_PRED, "waits", 7.0, START)
    run.step()
    assert run.csv_ids() == ["old", "waits"]


def test_a_side_past_the_limit_pauses_and_resumes_at_ninety_percent(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock, max_waiting=10)
    for index in range(11):
        run.deliver(Y_TRUE, f"r{index}", 1.0, START)
    run.step()
    assert run.broker.is_paused(Y_TRUE) and not run.broker.is_paused(Y_PRED)
    run.deliver(Y_PRED, "r0", 1.0, START)
    run.step()
    assert run.broker.is_paused(Y_TRUE), "10 waiting is over 90 % of 10"
    run.deliver(Y_PRED, "r1", 1.0, START)
    run.step()
    assert not run.broker.is_paused(Y_TRUE), "9 waiting: consuming again"


def test_with_both_sides_past_the_limit_the_side_behind_is_still_consumed(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock, max_waiting=WATERMARK_RANK)
    for index in range(WATERMARK_RANK + 1):
        run.deliver(Y_TRUE, f"t{index}", 1.0, START)  # labels from an hour ago
        run.deliver(Y_PRED, f"p{index}", 1.0, START + 3600)  # predictions of now: their labels are still queued
    run.step()
    assert run.broker.paused == {Y_PRED}, "the labels carry the partners: they must keep coming"
    run.status()


def test_metric_shows_the_waiting_in_its_heartbeat(tmp_path: Path, clock: Clock, caplog) -> None:
    run = Run(tmp_path, clock)
    run.row("a", START, 1.0, 4.0)
    run.deliver(Y_PRED, "b", 1.0, clock.now - 30)
    with caplog.at_level(logging.INFO, logger="metric"):
        run.settle()
    assert "heartbeat: 1 rows written" in caplog.text and "MAE 3, halves waiting: 0 y_true, 1 y_pred" in caplog.text
    assert "1 y_pred, the oldest created 30 s ago; 0 orphans released" in caplog.text
    assert any(timer.delay == service.HEARTBEAT_INTERVAL for timer in run.broker.timers), "and the next one"
    assert run.status()["oldest_created"] == int(clock.now - 30)


def test_a_partner_pending_when_its_half_moves_to_disk_still_pairs(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock)
    run.deliver(Y_TRUE, "a", 1.0, START)
    run.step()
    clock.now += 3600  # the look for orphans is due: it moves "a" to disk
    run.deliver(Y_PRED, "a", 3.0, START)  # and "a"'s partner came in the moment before
    run.settle()
    assert run.csv_ids() == ["a"] and run.status()["waiting"] == {Y_TRUE: 0, Y_PRED: 0}
    assert run.released() == []


def test_a_released_half_pairs_with_nothing_even_before_its_confirm_is_committed(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock)
    run.deliver(Y_PRED, "lonely", 2.0, START)
    for index in range(WATERMARK_RANK):  # y_true passes it; y_pred stays where it is
        run.deliver(Y_TRUE, f"s{index}", 1.0, START + TIMEOUT + 1)
        run.deliver(Y_PRED, f"s{index}", 3.0, START)
    run.wait_out_the_grace()
    assert [orphan["id"] for orphan in run.released()] == ["lonely"]
    run.deliver(Y_PRED, "lonely", 2.0, START)  # a copy while it is being released
    run.broker.confirm_all()
    run.deliver(Y_TRUE, "lonely", 1.0, START)  # its partner: the release is confirmed but not committed yet
    run.settle()
    assert "lonely" not in run.csv_ids() and run.released() == []
    assert run.status()["waiting"] == {Y_TRUE: 1, Y_PRED: 0}, "the late partner waits, alone"
    run.stop()

    run = Run(tmp_path, clock)  # the release is on disk: copies of it are known, nothing goes again
    run.deliver(Y_PRED, "lonely", 2.0, START)
    run.deliver(Y_TRUE, "lonely", 1.0, START)
    run.settle()
    assert run.released() == [] and len(run.broker.acked) == 2 and "lonely" not in run.csv_ids()
    assert run.status()["waiting"] == {Y_TRUE: 1, Y_PRED: 0}


def test_handled_ids_are_forgotten_only_once_both_streams_passed_them(tmp_path: Path, clock: Clock) -> None:
    run = Run(tmp_path, clock)
    run.row("early", START)
    for index in range(WATERMARK_RANK):
        run.row(f"r{index}", START + TIMEOUT - 1)
    run.wait_out_the_grace()
    run.stop()

    run = Run(tmp_path, clock)
    run.deliver(Y_TRUE, "early", 1.0, START)  # not passed by the timeout yet: a known copy
    run.settle()
    assert run.csv_ids().count("early") == 1 and run.released() == []
    assert run.status()["waiting"] == {Y_TRUE: 0, Y_PRED: 0}, "known: it does not wait"
    for index in range(WATERMARK_RANK):
        run.row(f"s{index}", START + TIMEOUT + 1)
    run.wait_out_the_grace()
    run.wait_out_the_grace()
    for side in (Y_TRUE, Y_PRED):  # forgotten now: late copies of both halves are orphans, never a second row
        run.deliver(side, "early", 1.0, START)
    run.settle()
    assert run.csv_ids().count("early") == 1
    assert sorted(orphan["queue"] for orphan in run.released()) == ["y_pred.dead", "y_true.dead"]


def test_a_pair_whose_waiting_half_is_on_disk_and_not_finite_keeps_that_half_until_its_release(
    tmp_path: Path, clock: Clock
) -> None:
    run = Run(tmp_path, clock)
    run.deliver(Y_TRUE, "huge", 1e308, START)
    run.step()
    run.step(3600)  # on disk now
    run.deliver(Y_PRED, "huge", -1e308, START)
    run.deliver(Y_TRUE, "huge", 1e308, START)  # a copy of the partner in the same batch
    run.settle()
    assert [(orphan["queue"], orphan["id"]) for orphan in run.released()] == [("y_true.dead", "huge")]
    assert run.status()["waiting"] == {Y_TRUE: 1, Y_PRED: 0}
    run.stop()  # a crash before the broker's confirm: the partner is still on disk

    run = Run(tmp_path, clock)  # it waits again, and goes as an orphan once y_pred has passed it
    assert run.status()["waiting"] == {Y_TRUE: 1, Y_PRED: 0}
    for index in range(WATERMARK_RANK):
        run.row(f"s{index}", START + TIMEOUT + 1)
    run.wait_out_the_grace()
    run.wait_out_the_grace()
    assert [(orphan["queue"], orphan["id"]) for orphan in run.released()] == [("y_true.dead", "huge")]
    assert run.csv_ids().count("huge") == 0


def failing_commit(*_: object) -> None:
    raise sqlite3.OperationalError("database or disk is full")


def failing_pwrite(*_: object) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


FULL_DISKS = {
    "commit": ("waiting.WaitingStore.commit", failing_commit),
    "csv": ("pipeline.append_file.os.pwrite", failing_pwrite),
}


@pytest.mark.parametrize("failing", FULL_DISKS)
def test_a_full_disk_is_waited_out_with_nothing_acked_dead_lettered_or_lost(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failing: str
) -> None:
    target, failure = FULL_DISKS[failing]
    run = Run(tmp_path, clock)
    run.row("a", START)
    monkeypatch.setattr(target, failure)
    with caplog.at_level(logging.WARNING, logger="pipeline.disk"):
        for _ in range(3):
            run.step(1.0)
        run.row("b", START)  # in flight when the consumers were cancelled
        run.deliver(Y_TRUE, "c", 1.0, START)
        run.step(1.0)
        assert run.broker.acked == [] and run.broker.rejected_deliveries == [], "nothing acked or dead-lettered"
        assert run.broker.paused == {Y_TRUE, Y_PRED}, "nothing new is taken while the disk is full"
        assert "disk" in run.broker.problems, "the healthcheck fails while it lasts"
        assert REGISTRY.get_sample_value("pipeline_waiting_for_disk") == 1
        if failure is failing_pwrite:
            assert (tmp_path / "metric_log.csv").read_bytes() == HEADER, "nothing of the batch is on disk"
        monkeypatch.undo()
        run.step(1.0)
    waits = [record.getMessage() for record in caplog.records]
    assert len(waits) == 2 and "waiting for room" in waits[0] and "can be written again" in waits[1], waits
    assert run.csv_ids() == ["a", "b"] and len(run.broker.acked) == 5
    assert run.broker.paused == set() and run.broker.problems == {}
    assert REGISTRY.get_sample_value("pipeline_waiting_for_disk") == 0
    run.stop()

    again = Run(tmp_path, clock)  # and what was saved is what a restart finds
    assert again.status()["waiting"] == {Y_TRUE: 1, Y_PRED: 0}


def test_a_crash_while_the_disk_is_full_loses_nothing(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Run(tmp_path, clock)
    run.row("a", START)
    monkeypatch.setattr("waiting.WaitingStore.commit", failing_commit)
    run.step()
    assert run.broker.acked == [], "nothing acked that is not committed"
    run.stop()
    monkeypatch.undo()

    run = Run(tmp_path, clock)  # the deliveries come again: "a" was written, and stays once
    run.row("a", START)
    run.settle()
    assert run.csv_ids() == ["a"] and len(run.broker.acked) == 2


def test_an_interrupted_first_start_takes_the_old_journal_over_at_the_next(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "metric_waiting.journal").write_text("y_true,waits,5.0,1799999000.5\n")
    store = WaitingStore(tmp_path / "metric_waiting.sqlite")
    store.open()  # the file made, then a crash before its first commit
    store.close()
    run = Run(tmp_path, clock)
    assert run.status()["waiting"] == {Y_TRUE: 1, Y_PRED: 0}
    assert not (tmp_path / "metric_waiting.journal").exists()


def test_a_sweep_of_handled_ids_that_fails_holds_nothing_back(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run = Run(tmp_path, clock)
    monkeypatch.setattr("streams.Streams.forget_before", lambda _self: int(START))
    monkeypatch.setattr("waiting.WaitingStore.forget_done", failing_commit)
    with caplog.at_level(logging.INFO):
        for second in range(5):
            run.row(f"r{second}", START)
            run.step(1.0)
    assert run.csv_ids() == [f"r{second}" for second in range(5)] and len(run.broker.acked) == 10
    assert run.broker.paused == set() and "waiting for room" not in caplog.text


def test_a_read_that_fails_keeps_its_deliveries_for_the_next_try(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Run(tmp_path, clock)
    run.deliver(Y_TRUE, "a", 1.0, START)
    run.step()
    monkeypatch.setattr("waiting.WaitingStore.find", lambda *_, **__: failing_commit())
    run.deliver(Y_PRED, "a", 4.0, START)
    run.step(1.0)
    run.step(1.0)
    assert len(run.broker.acked) == 1 and run.broker.rejected_deliveries == []
    monkeypatch.undo()
    run.step(1.0)
    assert run.csv_ids() == ["a"] and len(run.broker.acked) == 2 and run.broker.paused == set()


def conflicting_duplicates(queue: str) -> float:
    return REGISTRY.get_sample_value("pipeline_metric_conflicting_duplicates_total", {"queue": queue}) or 0.0


def test_a_copy_with_another_value_is_counted_and_logged_and_a_flood_is_one_line_a_second(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    before = {side: conflicting_duplicates(side) for side in (Y_TRUE, Y_PRED)}
    run = Run(tmp_path, clock)
    run.row("a", START, 1.0, 4.0)
    run.step()
    with caplog.at_level(logging.WARNING, logger="metric"):
        run.deliver(Y_PRED, "a", 4.0, START)  # a redelivery: quiet
        run.step()
        assert caplog.text == "" and conflicting_duplicates(Y_PRED) == before[Y_PRED]
        run.deliver(Y_PRED, "a", 5.0, START)
        run.step()
        assert "dropped a copy of id 'a' on y_pred with another value: kept 4.0 (the first that came), dropped 5.0" in (
            caplog.text
        )
        assert conflicting_duplicates(Y_PRED) == before[Y_PRED] + 1 and run.csv_ids() == ["a"]
        caplog.clear()
        for index in range(50):  # a flood within the second
            run.deliver(Y_TRUE, "a", 10.0 + index, START)
        run.step()
        assert caplog.text == "", "within a second of the last line"
        run.step(1.0)
        [line] = caplog.messages
        assert line.startswith("dropped 50 more copies with another value than the one kept since the last line")
        caplog.clear()
        run.deliver(Y_TRUE, "a", 99.0, START)
        run.step(1.0)
        [line] = caplog.messages
        assert "kept 1.0 (the first that came), dropped 99.0" in line and "(" not in line.split("dropped 99.0")[1]
    assert conflicting_duplicates(Y_TRUE) == before[Y_TRUE] + 51, "every one counted"
    assert len(run.broker.acked) == 2 + 1 + 1 + 50 + 1, "and acked: nothing to retry"
