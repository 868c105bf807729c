"""Late partners on a real broker: labels that come late, a model down for a while, halves whose partner never comes,
and more halves waiting than metric keeps in memory. Every test ends with each confirmed row once in the CSV."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from pipeline.messages import encode
from pipeline.status import read_status
from pipeline.topology import Y_PRED, Y_TRUE, dead_letter_queue
from tests.helpers.queues import consumer_count, publish_raw, queue_depths, take_ids
from tests.helpers.stream import Stream
from tests.helpers.waiting import wait_until
from tests.late_labels import DEAD_LETTER_QUEUES, late_labels_survive_a_killed_features

pytestmark = pytest.mark.broker


def waiting(logs_dir: Path) -> dict:
    """What metric last wrote to metric_status.json (empty before it did)."""
    return read_status(logs_dir) or {}


def test_labels_that_come_late_wait_in_the_broker_and_a_killed_features_loses_none(stream: Stream) -> None:
    stream.services.environment["METRIC_ORPHAN_TIMEOUT"] = "5"
    late_labels_survive_a_killed_features(stream, delay=20.0)


def test_every_model_down_for_seven_orphan_timeouts_loses_nothing(stream: Stream) -> None:
    stream.services.environment["METRIC_ORPHAN_TIMEOUT"] = "2"
    stream.start("metric", FEATURES_INTERVAL="0.01", FEATURES_LIMIT="1400")  # 14 s of rows or more, no model
    assert stream.services.wait("features", timeout=120) == 0
    wait_until(lambda: waiting(stream.csv.parent).get("waiting", {}).get(Y_TRUE) == 1400, 60, "1,400 labels waiting")
    assert all(depth == 0 for queue, depth in queue_depths(stream.url).items() if queue in DEAD_LETTER_QUEUES)

    stream.services.start("model")
    stream.finish(expected=1400)
    assert all(depth == 0 for queue, depth in queue_depths(stream.url).items() if queue in DEAD_LETTER_QUEUES)


def test_halves_whose_partner_never_comes_go_once_the_other_stream_has_passed_them(stream: Stream) -> None:
    stream.services.environment["METRIC_ORPHAN_TIMEOUT"] = "2"
    stream.services.start("metric")
    wait_until(lambda: stream.services.is_ready("metric"), 60, "metric to be ready")
    created = int(time.time())
    publish_raw(
        stream.url, [(Y_PRED, encode("lonely-prediction", 1.0)), (Y_TRUE, encode("lonely-label", 2.0))], created
    )
    wait_until(lambda: waiting(stream.csv.parent).get("written_at", 0) > created + 3, 30, "metric to look 3 s later")
    assert waiting(stream.csv.parent)["waiting"] == {Y_TRUE: 1, Y_PRED: 1}, "no other stream has moved: both wait"
    assert queue_depths(stream.url)[dead_letter_queue(Y_PRED)] == 0

    stream.services.start("model")
    stream.services.start("features", FEATURES_INTERVAL="0.01", FEATURES_LEDGER=str(stream.ledger))
    for queue, orphan in ((Y_PRED, "lonely-prediction"), (Y_TRUE, "lonely-label")):
        dead = dead_letter_queue(queue)
        wait_until(lambda q=dead: queue_depths(stream.url)[q] == 1, 60, f"the orphan in {dead}")
        assert take_ids(stream.url, dead) == [orphan]
    stream.services.signal("features", signal.SIGTERM)
    stream.services.wait("features", timeout=30)
    stream.finish()
    assert "to the dead-letter queues: the other stream had passed them" in stream.services.log("metric")


@pytest.mark.timeout(900)  # 200,000 rows through features, then model and metric: minutes on a busy machine
def test_more_halves_than_memory_holds_wait_on_disk_and_a_restart_brings_no_phantom(stream: Stream) -> None:
    rows = 200_000  # four times what metric keeps in memory
    stream.start("metric", FEATURES_INTERVAL="0", FEATURES_LIMIT=str(rows))
    assert stream.services.wait("features", timeout=600) == 0
    wait_until(lambda: waiting(stream.csv.parent).get("waiting", {}).get(Y_TRUE) == rows, 300, f"{rows:,} waiting")
    memory = peak_resident_mb(stream.services.processes["metric"].pid)
    print(f"metric with {rows:,} halves waiting: {memory:.0f} MB at most")
    assert memory < 150, f"metric held {memory:.0f} MB with {rows:,} halves waiting"

    stream.services.start("model")
    stream.wait_for_rows(rows // 2, timeout=300)
    stream.services.kill("metric")  # in the middle of pairing them from disk
    stream.services.start("metric")
    stream.finish(expected=rows)
    stream.services.start("metric")  # once more on the finished files: nothing waits, nothing is released
    wait_until(lambda: stream.services.is_ready("metric"), 60, "metric to be ready")
    wait_until(lambda: consumer_count(stream.url, Y_TRUE) == 1, 30, "metric to consume")
    assert waiting(stream.csv.parent)["waiting"] == {Y_TRUE: 0, Y_PRED: 0}
    assert all(queue_depths(stream.url)[queue] == 0 for queue in DEAD_LETTER_QUEUES)


def peak_resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")
