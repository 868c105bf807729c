"""What every service does around its own work: read its settings, set up logging, run, and report a bad setting.

A service module gives a loader of its settings (which raises ``SettingsError`` naming the variable) and a runner
that takes them and returns the exit code; ``main`` turns a bad setting into its one line and exit code 2.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from pipeline import metrics
from pipeline.settings import Common, SettingsError, report_bad_setting, setup_logging

HEARTBEAT_INTERVAL = 30.0  # seconds between a service's "still here, and this much done" lines


class HasCommon(Protocol):
    @property
    def common(self) -> Common: ...


SettingsT = TypeVar("SettingsT", bound=HasCommon)
ServerT = TypeVar("ServerT")


def main(load_settings: Callable[[], SettingsT], run: Callable[[SettingsT], int]) -> int:
    """Load the settings, set up logging, serve the metrics and run; a bad setting is one line and exit code 2,
    also one that only the runner finds (the broker's limit on PREFETCH, say) as it starts."""
    try:
        config = load_settings()
        setup_logging(config.common.log_level)
        listen("METRICS_PORT", config.common.listen_address, config.common.metrics_port, metrics.serve)
        return run(config)
    except SettingsError as error:
        return report_bad_setting(error)


def listen(name: str, address: str, port: int, serve: Callable[[str, int], ServerT]) -> ServerT:
    """Start a server on ``address:port`` (named by variable ``name``); a port taken or refused is a bad setting."""
    try:
        return serve(address, port)
    except OSError as error:
        reason = error.strerror or str(error)
        raise SettingsError(
            f"{name}: cannot listen on port {port} of LISTEN_ADDRESS {address} ({reason}); is the port in use?"
        ) from None


class Rate:
    """Counts since the last look, for a heartbeat's "per second"."""

    def __init__(self) -> None:
        self._count = 0
        self._since = time.monotonic()

    def per_second(self, total: int) -> float:
        now = time.monotonic()
        rate = (total - self._count) / max(now - self._since, 1e-9)
        self._count, self._since = total, now
        return rate
