"""Prometheus metrics every service shares, and the HTTP endpoint that serves them on ``METRICS_PORT``.

The broker counts what crosses the wire: messages published (confirmed by the broker), consumed (acked after their
work was done) and rejected into a dead-letter queue, each by queue, and reconnects; and shows whether the broker
blocks the connection (a resource alarm). A service adds its own metrics
to the same default registry; ``serve`` exposes them all at ``/metrics`` with ``prometheus_client``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from prometheus_client import Counter, Gauge, start_http_server

LOGGER = logging.getLogger(__name__)

PUBLISHED = Counter("pipeline_messages_published", "Messages published and confirmed by the broker", ["queue"])
CONSUMED = Counter("pipeline_messages_consumed", "Messages consumed and acked once their work was done", ["queue"])
REJECTED = Counter("pipeline_messages_rejected", "Messages rejected into the queue's dead-letter queue", ["queue"])
RECONNECTS = Counter(
    "pipeline_reconnects", "Connections to the broker lost, or closed after refused publishes, and opened again"
)
CONNECTION_BLOCKED = Gauge(
    "pipeline_connection_blocked", "1 while the broker blocks the connection (a memory or disk alarm), else 0"
)


@functools.cache
def of_queue(counter: Counter, queue: str) -> Any:
    """``counter``'s child for ``queue``, looked up once: ``labels()`` costs three times the increment, per message."""
    return counter.labels(queue)


def serve(address: str, port: int) -> None:
    """Serve ``/metrics`` on ``address:port`` in a background thread; port 0 means off."""
    if port:
        start_http_server(port, addr=address)
        LOGGER.info("serving Prometheus metrics at http://%s:%d/metrics", address, port)
