"""A log line that may come in floods (a producer resending every id with new values): at most one per interval."""

from __future__ import annotations


class Throttle:
    """Lets a line through once per ``interval`` seconds of the caller's clock, and counts the lines held back."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: float | None = None  # when the last line went through
        self.held = 0  # lines held back since then

    def ready(self, now: float) -> bool:
        return self._last is None or now - self._last >= self._interval

    def hold(self) -> None:
        self.held += 1

    def let_through(self, now: float) -> int:
        """A line goes out ``now``: return how many were held back before it, and start counting again."""
        held, self.held, self._last = self.held, 0, now
        return held
