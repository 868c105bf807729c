"""Configuration from environment variables; a bad value names its variable."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pika

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
QUEUE_TYPES = ("quorum", "classic")
NumberT = TypeVar("NumberT", int, float)
AMQP_SHORT_MAX = 65535  # AMQP's 16-bit fields: a prefetch_count, a heartbeat in seconds


class SettingsError(ValueError):
    """A configuration variable holds a value the service cannot use."""


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_number(name: str, parse: Callable[[str], NumberT], what: str) -> NumberT | None:
    """The variable ``name`` read with ``parse`` (a ``what``), or None when it is unset or blank."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return parse(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {what}, got {raw!r}") from None


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    value = _env_number(name, float, "a number")
    if value is None:
        return default
    if not minimum <= value < float("inf"):
        raise SettingsError(f"{name} must be a finite number >= {minimum:g}, got {os.environ[name]!r}")
    return value


def env_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    value = _env_number(name, int, "a whole number")
    if value is None:
        return default
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {os.environ[name]!r}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be from {minimum} to {maximum}, got {os.environ[name]!r}")
    return value


def env_prefetch(default: int = 500) -> int:
    """PREFETCH: unacked deliveries a consumer may hold per queue; AMQP's prefetch_count is 16 bits."""
    return env_int("PREFETCH", default, minimum=1, maximum=AMQP_SHORT_MAX)


def env_port(name: str, default: int) -> int:
    """A TCP port to listen on; 0 means the server is off."""
    port = env_int(name, default)
    if port > 65535:
        raise SettingsError(f"{name} must be a port from 1 to 65535, or 0 for off, got {port}")
    return port


def writable_folder(name: str, path: str) -> str:
    """``path`` (from variable ``name``) as a folder this process can write, created if missing."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise SettingsError(f"{name}: cannot create the folder {path}: {error.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SettingsError(f"{name}: the folder {path} is not writable by this process (UID {os.getuid()})")
    return path


def writable_health_file(name: str, path: str) -> str:
    """``path`` (from variable ``name``) created if missing and checked writable; empty: no health file.

    Its time is set far in the past (if this process owns it): the service reads as unhealthy until it touches
    the file once ready.
    """
    if not path:
        return path
    try:
        Path(path).open("a").close()
    except OSError as error:
        raise SettingsError(f"{name}: cannot write the file {path}: {error.strerror or error}") from None
    with contextlib.suppress(OSError):  # only the file's owner may set its time; writing it is what matters
        os.utime(path, (0, 0))
    return path


def env_choice(name: str, default: str, choices: Iterable[str]) -> str:
    allowed = tuple(choices)
    value = os.environ.get(name, "").strip() or default
    for choice in allowed:
        if value.lower() == choice.lower():
            return choice
    raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def env_amqp_url(name: str, default: str) -> str:
    """One AMQP URL, or several separated by commas (the nodes of a cluster); each must be an amqp(s) URL."""
    value = os.environ.get(name, "").strip() or default
    urls = split_urls(value)
    for index, url in enumerate(urls, start=1):
        where = f" (URL {index} of {len(urls)})" if len(urls) > 1 else ""
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise SettingsError(f"{name} must look like amqp://user:password@host:5672/%2F{where}, got {url!r}")
        problem = amqp_url_problem(url)
        if problem:
            raise SettingsError(f"{name}{where}: {problem}")
    return value


def amqp_url_problem(url: str) -> str | None:
    """What pika would refuse in an amqp(s) URL, or would fail on once connecting; None if nothing."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        host_and_port = parts.netloc.rpartition("@")[2]  # not the credentials
        return f"the port must be from 1 to 65535, got {host_and_port!r}"
    try:  # pika's own parser checks the options (?heartbeat=, ?frame_max=, ...), so none fails at connect time
        parameters = pika.URLParameters(url)
    except Exception as error:  # ValueError, TypeError, SyntaxError of ssl_options, OSError of a CA file, ...
        return f"pika refuses it: {type(error).__name__}: {error}"
    heartbeat = parameters.heartbeat
    if isinstance(heartbeat, int) and heartbeat > AMQP_SHORT_MAX:
        return f"heartbeat must be at most {AMQP_SHORT_MAX} s (a 16-bit field of AMQP), got {heartbeat}"
    return None


def split_urls(value: str) -> list[str]:
    return [url.strip() for url in value.split(",") if url.strip()] or [value]


@dataclass(frozen=True)
class Common:
    """Settings every service reads."""

    amqp_url: str
    logs_dir: str
    queue_type: str
    log_level: str
    health_file: str
    metrics_port: int = 0
    listen_address: str = "127.0.0.1"

    @property
    def amqp_urls(self) -> list[str]:
        """The broker's URLs: one, or one per node of a cluster."""
        return split_urls(self.amqp_url)


def load_common() -> Common:
    return Common(
        amqp_url=env_amqp_url("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"),
        logs_dir=env_str("LOGS_DIR", "logs"),
        queue_type=env_choice("QUEUE_TYPE", "quorum", QUEUE_TYPES),
        log_level=env_choice("LOG_LEVEL", "INFO", LOG_LEVELS),
        health_file=writable_health_file("HEALTH_FILE", env_str("HEALTH_FILE", "").strip()),
        metrics_port=env_port("METRICS_PORT", 0),
        listen_address=env_str("LISTEN_ADDRESS", "127.0.0.1").strip() or "127.0.0.1",
    )


def setup_logging(level: str) -> None:
    """One line per event on stderr; pika's own chatter only when debugging."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("pika").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)


def report_bad_setting(error: SettingsError) -> int:
    """Log why the service cannot start, in one line, and return the exit code for it."""
    setup_logging("INFO")
    logging.getLogger("settings").error("%s", error)
    return 2
