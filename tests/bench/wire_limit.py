"""The broker's ceiling for the drain's shape: a bare relay and a bare joiner, with nothing of the pipeline.

``measure`` fills three private queues with N (features, y_true) pairs, then starts two processes: a relay that moves
each ``features`` message to ``y_pred`` (no parsing, no model, auto-ack, no confirms, transient) and a joiner that only
counts ``y_true`` and ``y_pred`` deliveries. It returns rows/s from their start until both halves of every row were
delivered: the most a model and a metric written with pika could reach on this broker and machine.

Also runnable alone: python -m tests.bench.wire_limit --url amqp://guest:guest@127.0.0.1:5672/%2F -n 50000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from typing import Any

import pika

FEATURES, Y_TRUE, Y_PRED = "wire_limit.features", "wire_limit.y_true", "wire_limit.y_pred"
PREFETCH = 500
FEATURES_BODY = json.dumps({"id": "0" * 36, "body": [0.0123456789] * 10}).encode()
Y_TRUE_BODY = json.dumps({"id": "0" * 36, "body": 151.0}).encode()


def relay(url: str, rows: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    for moved, (_method, _properties, body) in enumerate(channel.consume(FEATURES, auto_ack=True), start=1):
        channel.basic_publish("", Y_PRED, body)
        if moved == rows:
            break
    connection.close()


def joiner(url: str, rows: int, finished: Any) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    seen = {Y_TRUE: 0, Y_PRED: 0}

    def on_message(_channel: Any, method: Any, _properties: Any, _body: bytes) -> None:
        seen[method.routing_key] += 1
        if min(seen.values()) >= rows:
            channel.stop_consuming()

    for queue in seen:
        channel.basic_consume(queue, on_message, auto_ack=True)
    channel.start_consuming()
    finished.put(time.perf_counter())
    connection.close()


def measure(url: str, rows: int) -> float:
    """Rows per second the bare relay and joiner reach on the broker at ``url``."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for queue in (FEATURES, Y_TRUE, Y_PRED):
        channel.queue_delete(queue)
        channel.queue_declare(queue)
    for _ in range(rows):
        channel.basic_publish("", FEATURES, FEATURES_BODY)
        channel.basic_publish("", Y_TRUE, Y_TRUE_BODY)
    while channel.queue_declare(Y_TRUE, passive=True).method.message_count < rows:
        connection.sleep(0.01)
    context = multiprocessing.get_context("spawn")
    finished = context.Queue()
    processes = [
        context.Process(target=relay, args=(url, rows)),
        context.Process(target=joiner, args=(url, rows, finished)),
    ]
    started = time.perf_counter()
    for process in processes:
        process.start()
    ended = finished.get(timeout=900)
    for process in processes:
        process.join(60)
    for queue in (FEATURES, Y_TRUE, Y_PRED):
        channel.queue_delete(queue)
    connection.close()
    return rows / (ended - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F", help="AMQP URL of the broker")
    parser.add_argument("-n", type=int, default=50_000, help="rows to drain (default 50,000)")
    arguments = parser.parse_args()
    print(f"wire limit: {measure(arguments.url, arguments.n):,.0f} rows/s over {arguments.n:,} rows")


if __name__ == "__main__":
    main()
