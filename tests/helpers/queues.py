"""The pipeline's queues on a broker, seen and touched from outside: depths, consumers, raw messages in and out."""

from __future__ import annotations

import json

import pika
import pika.exceptions

from pipeline.topology import FEATURES, Y_PRED, Y_TRUE, Y_TRUE_DELAYED, dead_letter_queue

QUEUES = [FEATURES, Y_TRUE, Y_PRED]
ALL_QUEUES = [*QUEUES, *(dead_letter_queue(queue) for queue in QUEUES), Y_TRUE_DELAYED]


def delete_queues(url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for queue in ALL_QUEUES:
        channel.queue_delete(queue)
    connection.close()


def queue_depths(url: str) -> dict[str, int]:
    """Ready messages in each queue of the pipeline that exists."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    depths = {}
    for queue in ALL_QUEUES:
        channel = connection.channel()
        try:
            depths[queue] = channel.queue_declare(queue, passive=True).method.message_count
            channel.close()
        except pika.exceptions.ChannelClosedByBroker:
            continue
    connection.close()
    return depths


def consumer_count(url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    count = connection.channel().queue_declare(queue, passive=True).method.consumer_count
    connection.close()
    return count


def drained(url: str) -> bool:
    return pipeline_queues_empty(queue_depths(url))


def pipeline_queues_empty(depths: dict[str, int]) -> bool:
    return all(depths[queue] == 0 for queue in (FEATURES, Y_TRUE, Y_PRED))


def publish_raw(url: str, messages: list[tuple[str, bytes]], created: int | None = None) -> None:
    """Publish ``messages`` persistently, confirmed; ``created``: their AMQP timestamp (none if None)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    for queue, body in messages:
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, timestamp=created))
    connection.close()


def take_ids(url: str, queue: str) -> list[str]:
    """Take every message out of ``queue`` (a dead-letter queue, say) and return their ids."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    ids = []
    while True:
        method, _properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        ids.append(json.loads(body)["id"])
    connection.close()
    return ids
