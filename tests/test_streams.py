"""How far each stream has come: a watermark a few strays cannot move, and orphans decided with a grace."""

from __future__ import annotations

import time
import uuid

from streams import ORPHAN_GRACE, WATERMARK_RANK, Streams, Watermark, event_time

from pipeline.messages import new_id
from pipeline.topology import Y_PRED, Y_TRUE


def test_the_watermark_is_the_rank_th_newest_creation_time() -> None:
    mark = Watermark()
    for created in range(WATERMARK_RANK - 1):
        mark.see(created)
    assert mark.value is None, "not before the stream delivered that many"
    mark.see(WATERMARK_RANK - 1)
    assert mark.value == 0
    for _ in range(WATERMARK_RANK - 1):
        mark.see(10**9)  # strays far ahead
    assert mark.value == WATERMARK_RANK - 1
    mark.see(10**9)
    assert mark.value == 10**9
    assert Watermark(start=42).value == 42, "restored after a restart"


def test_a_message_is_created_at_its_timestamp_never_in_the_future() -> None:
    assert event_time(100, 200.5) == 100
    assert event_time(300, 200.5) == 200
    assert event_time(None, 200.5) == 200


def test_orphans_are_decided_by_where_the_other_stream_was_a_grace_ago() -> None:
    streams = Streams({}, timeout=60)
    for _ in range(WATERMARK_RANK):
        streams.see(Y_TRUE, 1000)
    streams.sample(0.0)
    assert streams.orphans_before() == {Y_TRUE: None, Y_PRED: None}
    streams.sample(ORPHAN_GRACE)
    assert streams.orphans_before() == {Y_TRUE: None, Y_PRED: 940}, "y_pred halves created before 940"
    assert streams.forget_before() is None, "y_pred has not come that far"
    for _ in range(WATERMARK_RANK):
        streams.see(Y_PRED, 2000)
    streams.sample(ORPHAN_GRACE + 1)
    assert streams.orphans_before()[Y_TRUE] is None
    streams.sample(2 * ORPHAN_GRACE + 1)
    assert streams.orphans_before() == {Y_TRUE: 1940, Y_PRED: 940} and streams.forget_before() == 940
    assert Streams(streams.saved(), timeout=60).position(Y_PRED) == 2000


def test_ids_are_uuids_of_version_7_that_sort_by_creation() -> None:
    ids = [new_id() for _ in range(1000)]
    assert all(uuid.UUID(value).version == 7 for value in ids)
    assert len(set(ids)) == 1000
    first = new_id()
    time.sleep(0.002)
    assert new_id() > first
