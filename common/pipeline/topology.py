"""Queue names and the arguments every service declares them with."""

from __future__ import annotations

from typing import Any

FEATURES = "features"
Y_TRUE = "y_true"
Y_PRED = "y_pred"
# Labels that come late (FEATURES_LABEL_DELAY) wait here: each message expires after the delay and the queue
# dead-letters it into y_true, at least once, so the broker holds them and features' memory holds nothing.
Y_TRUE_DELAYED = "y_true.delayed"
DELIVERY_LIMIT = 20  # deliveries (crashes, restarts of a consumer holding it) before a message is dead-lettered


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dead"


def queue_arguments(queue: str, queue_type: str) -> dict[str, Any]:
    """Arguments of a work queue: its type, its dead-letter queue and, for quorum, a delivery limit."""
    arguments: dict[str, Any] = {
        "x-queue-type": queue_type,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(queue),
    }
    if queue_type == "quorum":
        arguments |= {
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    return arguments


def delay_queue_arguments() -> dict[str, Any]:
    """Arguments of y_true.delayed: always a quorum queue, the only kind that dead-letters at least once."""
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": Y_TRUE,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def declarations(queues: list[str], queue_type: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, arguments) of each queue and its dead-letter queue, dead-letter queue first; y_true.delayed alone."""
    result: list[tuple[str, dict[str, Any]]] = []
    for queue in queues:
        if queue == Y_TRUE_DELAYED:
            result.append((queue, delay_queue_arguments()))
            continue
        result.append((dead_letter_queue(queue), {"x-queue-type": queue_type}))
        result.append((queue, queue_arguments(queue, queue_type)))
    return result
