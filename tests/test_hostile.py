"""A hostile corpus on all three queues while good rows flow: each bad message is rejected once, alone.

No service may lose its connection over a message, every confirmed row must arrive exactly once, and plot must keep
redrawing. The corpus is ours: malformed bytes and JSON, numbers beyond a float, nesting past the recursion limit,
duplicate keys, reserved and unprintable ids, odd properties, and a pair of valid halves whose difference is infinite.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.messages import MAX_ID_LENGTH, MAX_MESSAGE_BYTES
from pipeline.topology import FEATURES, Y_PRED, Y_TRUE, dead_letter_queue
from tests.helpers.csv_log import csv_rows
from tests.helpers.ports import free_port, port_open
from tests.helpers.queues import publish_raw, queue_depths
from tests.helpers.stream import Stream
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.broker

TEN = [0.01] * 10
DEEP = b"[" * 50_000 + b"]" * 50_000


def hostile_bodies(good_body: bytes) -> list[bytes]:
    """Bodies that are bad on any queue; ``good_body`` is the JSON of a valid body for the queue."""
    return [
        b"",
        b"\x00\x01\x02",
        b"\xff\xfe{",
        b"not json",
        b"{",
        b"null",
        b"true",
        b"42",
        b'"a string"',
        b"[1, 2, 3]",
        b"{}",
        b'{"id": "no-body"}',
        b'{"body": ' + good_body + b"}",
        b'{"id": null, "body": ' + good_body + b"}",
        b'{"id": 7, "body": ' + good_body + b"}",
        b'{"id": ["x"], "body": ' + good_body + b"}",
        b'{"id": "", "body": ' + good_body + b"}",
        b'{"id": "id", "body": ' + good_body + b"}",
        b'{"id": "new\\nline", "body": ' + good_body + b"}",
        b'{"id": "nul\\u0000", "body": ' + good_body + b"}",
        b'{"id": "surrogate\\ud800", "body": ' + good_body + b"}",
        b'{"id": "' + b"x" * (MAX_ID_LENGTH + 1) + b'", "body": ' + good_body + b"}",
        b'{"id": "dup", "id": "dup2", "body": ' + good_body + b"}",
        b'{"id": "dup-body", "body": ' + good_body + b', "body": ' + good_body + b"}",
        b'{"id": "deep", "body": ' + good_body + b', "x": ' + DEEP + b"}",
        b'{"id": "deep-body", "body": ' + DEEP + b"}",
        b'{"id": "null-body", "body": null}',
        b'{"id": "bool-body", "body": true}',
        b'{"id": "string-body", "body": "1.0"}',
        b'{"id": "object-body", "body": {"a": 1}}',
        b'{"id": "nan-body", "body": NaN}',
        b'{"id": "inf-body", "body": Infinity}',
        b'{"id": "big-int-body", "body": 1' + b"0" * 400 + b"}",
        b'{"id": "huge-int-body", "body": 1' + b"0" * 5000 + b"}",
        b'{"id": "big-float-body", "body": 1e400}',
        b'{"id": "truncated", "body": ' + good_body[:-1],
        json.dumps({"id": "oversized", "body": json.loads(good_body), "pad": "x" * MAX_MESSAGE_BYTES}).encode(),
    ]


def feature_bodies() -> list[bytes]:
    return [
        b"[]",
        json.dumps(TEN[:9]).encode(),
        json.dumps([*TEN, 0.1]).encode(),
        b"[" + b"0.1, " * 9 + b'"0.1"]',
        b"[" + b"0.1, " * 9 + b"true]",
        b"[" + b"0.1, " * 9 + b"null]",
        b"[" + b"0.1, " * 9 + b"[0.1]]",
        b"[" + b"0.1, " * 9 + b"NaN]",
        b"[" + b"0.1, " * 9 + b"-Infinity]",
        b"[" + b"0.1, " * 9 + b"1" + b"0" * 400 + b"]",
        b"[" + b"1e308, " * 9 + b"1e308]",  # valid numbers the model predicts no finite value for
    ]


def corpus() -> list[tuple[str, bytes]]:
    messages = [(FEATURES, body) for body in hostile_bodies(json.dumps(TEN).encode())]
    messages += [
        (FEATURES, b'{"id": "f-%d", "body": %s}' % (index, body)) for index, body in enumerate(feature_bodies())
    ]
    for queue in (Y_TRUE, Y_PRED):
        messages += [(queue, body) for body in hostile_bodies(b"1.5")]
    messages += [
        (Y_TRUE, b'{"id": "infinite-pair", "body": 1e308}'),
        (Y_PRED, b'{"id": "infinite-pair", "body": -1e308}'),
    ]
    return messages


def publish_with(url: str, queue: str, body: bytes, properties: pika.BasicProperties) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("", queue, body, properties)
    connection.close()


def test_hostile_messages_are_rejected_once_each_while_every_good_row_arrives(stream: Stream) -> None:
    stream.start("metric", "model", "plot", FEATURES_INTERVAL="0.005", FEATURES_LIMIT="1500")
    stream.wait_for_rows(100)
    picture = stream.csv.parent / "error_distribution.png"
    wait_until(picture.exists, 30, "plot's first picture")  # plot may start drawing after metric's 100th row
    drawn_before = picture.stat().st_ino

    messages = corpus()
    half = len(messages) // 2
    publish_raw(stream.url, messages[:half])
    # a whole row whose messages carry other properties: they play no part, the row counts
    odd = pika.BasicProperties(content_type="text/plain", delivery_mode=1, headers={"x": 1})
    publish_with(stream.url, Y_TRUE, b'{"id": "odd-properties", "body": 10.0}', odd)
    publish_with(stream.url, FEATURES, json.dumps({"id": "odd-properties", "body": TEN}).encode(), odd)
    publish_raw(stream.url, messages[half:])

    sent = {queue: [q for q, _ in messages].count(queue) for queue in (FEATURES, Y_TRUE, Y_PRED)}
    # the infinite pair: one half completes it and is rejected, the other is released by metric; both dead
    expected = {dead_letter_queue(queue): count for queue, count in sent.items()}
    dead_letters = lambda: {queue: queue_depths(stream.url)[queue] for queue in expected}  # noqa: E731
    wait_until(lambda: dead_letters() == expected, 60, f"dead letters {expected}")

    rows = stream.finish(expected=1500, also=frozenset({"odd-properties"}))
    assert dead_letters() == expected, "no message was dead-lettered twice, no good one at all"
    assert next(row for row in rows if row[0] == "odd-properties")[1] == "10.0"
    assert len(rows) == 1500 + 1
    for name in ("features", "model", "metric"):
        assert stream.services.log(name).count("connection lost") == 0, f"{name} lost its connection"
    assert stream.services.log("model").count("rejected") >= sent[FEATURES]
    wait_until(lambda: picture.stat().st_ino != drawn_before, 30, "plot to redraw after the corpus")
    assert "Traceback" not in "".join(stream.services.log(name) for name in ("metric", "model", "plot"))


def conflicting_duplicates(port: int) -> dict[str, float]:
    """pipeline_metric_conflicting_duplicates_total by queue, read from metric's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.labels["queue"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "pipeline_metric_conflicting_duplicates_total"
    }


def test_a_copy_with_another_value_is_dropped_counted_and_logged_and_a_redelivery_is_not(stream: Stream) -> None:
    port = free_port()
    stream.services.start("metric", METRICS_PORT=str(port))
    wait_until(lambda: stream.services.is_ready("metric") and port_open(port), 60, "metric to declare its queues")
    created = int(time.time())
    row = [(Y_TRUE, b'{"id": "twice", "body": 1.0}'), (Y_PRED, b'{"id": "twice", "body": 2.0}')]
    publish_raw(stream.url, row, created)
    wait_until(lambda: csv_rows(stream.csv) == [["twice", "1.0", "2.0", "1.0"]], 30, "the row")
    copies = [(Y_TRUE, b'{"id": "twice", "body": 1.0}'), (Y_PRED, b'{"id": "twice", "body": 2.5}')]
    publish_raw(stream.url, copies, created)
    wait_until(lambda: conflicting_duplicates(port) == {Y_TRUE: 0.0, Y_PRED: 1.0}, 30, "one conflicting copy counted")
    wait_until(lambda: queue_depths(stream.url)[Y_PRED] == 0, 30, "the copies acked")
    log = stream.services.log("metric")
    assert (
        "dropped a copy of id 'twice' on y_pred with another value: kept 2.0 (the first that came), dropped 2.5" in log
    )
    assert log.count("dropped a copy") == 1, "the copy with the same value is quiet"
    assert csv_rows(stream.csv) == [["twice", "1.0", "2.0", "1.0"]]
    assert queue_depths(stream.url)[dead_letter_queue(Y_PRED)] == 0
