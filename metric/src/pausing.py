"""How many halves may wait: a side with more than METRIC_MAX_WAITING waiting is paused until their partners have
come (it resumes at RESUME_SHARE of it), never both sides at once; while the disk fails, both are."""

from __future__ import annotations

import logging

from shared import SIDES, Shared

from pipeline.topology import Y_PRED, Y_TRUE

LOGGER = logging.getLogger("metric")

RESUME_SHARE = 0.9  # a paused side resumes once its waiting halves fall to this share of METRIC_MAX_WAITING


class WaitingLimit:
    """Pauses and resumes the consumption of each side."""

    def __init__(self, shared: Shared, max_waiting: int) -> None:
        self._shared = shared
        self._max_waiting = max_waiting

    def apply(self) -> None:
        """Pause a side with too many waiting halves; if both have too many, keep consuming the one that is behind
        in creation time, since its coming halves are the partners of the other side's, so it never deadlocks."""
        broker = self._shared.broker
        over = {side for side in SIDES if self._over_limit(side)}
        if len(over) == 2:
            over.discard(self._behind())
        for side in SIDES:
            waiting = self._shared.join.waiting(side)
            pause = side in over or self._shared.disk.failing  # a full disk: nothing new until the held work is saved
            if pause and not broker.is_paused(side):
                if side in over:
                    LOGGER.warning(
                        "%d halves of %s wait for their partner (METRIC_MAX_WAITING %d); pausing %s until they come",
                        waiting,
                        side,
                        self._max_waiting,
                        side,
                    )
                broker.pause(side)
            elif not pause and broker.is_paused(side):
                LOGGER.info("consuming %s again (%d of its halves wait)", side, waiting)
                broker.resume(side)

    def _over_limit(self, side: str) -> bool:
        limit = RESUME_SHARE * self._max_waiting if self._shared.broker.is_paused(side) else self._max_waiting
        return self._shared.join.waiting(side) > limit

    def _behind(self) -> str:
        true_at, pred_at = (self._shared.streams.position(side) for side in SIDES)
        return Y_PRED if true_at is not None and (pred_at is None or pred_at < true_at) else Y_TRUE
