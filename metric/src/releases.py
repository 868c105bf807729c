"""Halves released to their dead-letter queues: orphans, and the partners of pairs that are no row.

A released half is on disk before it is published (the join spilled it), pairs with nothing from then on, and is
forgotten once the broker has confirmed it; that is committed within milliseconds (the next sync), so that a restart
never releases it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from prometheus_client import Counter
from report import Tally
from shared import Shared
from waiting import Half

from pipeline.messages import encode
from pipeline.topology import dead_letter_queue

LOGGER = logging.getLogger("metric")

ORPHANS_RELEASED = Counter("pipeline_metric_orphans_released", "Halves moved to a dead-letter queue as orphans")


class Releases:
    """Publishes halves to their dead-letter queues; ``on_confirmed`` asks for the sync that commits a confirm."""

    def __init__(self, shared: Shared, tally: Tally, on_confirmed: Callable[[], None]) -> None:
        self._shared = shared
        self._tally = tally
        self._on_confirmed = on_confirmed

    def orphans(self, orphans: list[Half]) -> None:
        timeout = self._shared.orphan_timeout
        self.release(orphans, orphaned_after=timeout)
        self._tally.orphans += len(orphans)
        ORPHANS_RELEASED.inc(len(orphans))
        LOGGER.warning(
            "released %d halves to the dead-letter queues: the other stream had passed them by more than %g s "
            "without their partner (%d in all)",
            len(orphans),
            timeout,
            self._tally.orphans,
        )

    def release(self, halves: list[Half], **reason: object) -> None:
        """Publish ``halves`` (on disk) to their dead-letter queues; each is forgotten once the broker confirms it."""
        for half in halves:
            self._shared.join.release(half)
            body = encode(half.row_id, half.value, created=half.created, **reason)
            self._shared.broker.publish(dead_letter_queue(half.side), body, partial(self._confirmed, half))

    def _confirmed(self, half: Half) -> None:
        self._shared.join.released(half)
        self._on_confirmed()  # on disk within milliseconds: after that a restart never releases it again
