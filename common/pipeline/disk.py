"""Waiting out a full or failing disk: writes that fail are tried again, never written around.

A service whose files cannot be written (no space left, a quota, an I/O error) keeps what it has not written, stops
taking new work, and tries again every RETRY_DELAY seconds until a write succeeds. ``WriteTrouble`` is the state of
that wait: one WARNING when it begins and one when it is over, a gauge on ``/metrics``, and the service's health
(through ``Broker.set_problem``) while it lasts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import Gauge

LOGGER = logging.getLogger(__name__)

RETRY_DELAY = 1.0  # seconds between tries while writes fail
PROBLEM = "disk"

WAITING_FOR_DISK = Gauge(
    "pipeline_waiting_for_disk", "1 while the service cannot write its files and waits for room (0: writing works)"
)


class WriteTrouble:
    """Whether writing ``what`` fails now, since when, and what was said about it."""

    def __init__(self, what: str, set_problem: Callable[[str, str | None], None]) -> None:
        self._what = what
        self._set_problem = set_problem
        self._since: float | None = None
        self.failures = 0  # failed tries since the wait began

    @property
    def failing(self) -> bool:
        return self._since is not None

    def failed(self, error: Exception, holding: str) -> None:
        """A write failed; ``holding``: what the service holds back meanwhile, for the log line."""
        self.failures += 1
        if self._since is not None:
            return
        self._since = time.monotonic()
        reason = f"cannot write {self._what} ({describe(error)})"
        LOGGER.warning("%s; waiting for room, trying again every %g s: %s", reason, RETRY_DELAY, holding)
        WAITING_FOR_DISK.set(1)
        self._set_problem(PROBLEM, reason)

    def succeeded(self) -> None:
        """A write succeeded: if a wait was on, it is over."""
        if self._since is None:
            return
        LOGGER.warning(
            "%s can be written again after %.0f s (%d failed tries); carrying on",
            self._what,
            time.monotonic() - self._since,
            self.failures,
        )
        self._since, self.failures = None, 0
        WAITING_FOR_DISK.set(0)
        self._set_problem(PROBLEM, None)


def describe(error: Exception) -> str:
    """An OSError's reason without its errno noise (``No space left on device``), or the error as it prints."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
