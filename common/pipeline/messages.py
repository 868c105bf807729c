"""The message contract: JSON objects {"id": "<string>", "body": ...}; extra keys are ignored.

Every way a message can fail to decode raises ``BadMessage`` and nothing else: the runtime rejects it, alone, into
its dead-letter queue. The rules are listed in docs/contract.md.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from typing import Any

MAX_MESSAGE_BYTES = 1_048_576
MAX_ID_LENGTH = 256
RESERVED_IDS = frozenset({"id"})  # the CSV's header starts with it: a row with that id would read like a header
CONTENT_TYPE = "application/json"


class BadMessage(ValueError):
    """A message that no retry can make valid; it belongs in the dead-letter queue."""


def new_id() -> str:
    """A UUID of version 7 (RFC 9562): 48 bits of Unix time in milliseconds, then random bits. Ids sort by the time
    they were made, so metric's on-disk indexes of waiting halves and written ids grow at one end instead of being
    written at random places (ten times cheaper, measured: see metric/src/waiting.py)."""
    milliseconds = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10))  # 80 bits, 74 of them kept
    value = (milliseconds & (1 << 48) - 1) << 80 | 0x7 << 76 | (random_bits >> 68) << 64 | 0b10 << 62
    return str(uuid.UUID(int=value | random_bits & (1 << 62) - 1))


def encode(row_id: str, body: float | list[float], **extra: Any) -> bytes:
    return json.dumps({"id": row_id, "body": body, **extra}, separators=(",", ":")).encode()


def decode_value(raw: bytes) -> tuple[str, float]:
    """Return (id, body) of a y_true or y_pred message."""
    message = _decode_object(raw)
    return _valid_id(message), _finite_number(message["body"], "body")


def decode_features(raw: bytes, n_features: int) -> tuple[str, list[float]]:
    """Return (id, body) of a features message carrying exactly n_features numbers."""
    message = _decode_object(raw)
    body = message["body"]
    if not isinstance(body, list):
        raise BadMessage(f"body must be a list of numbers, got {type(body).__name__}")
    if len(body) != n_features:
        raise BadMessage(
            f"body has {len(body)} features but the model at MODEL_PATH expects {n_features}: "
            "features' dataset (DATASET_PATH) and the model must have the same feature columns"
        )
    return _valid_id(message), [_finite_number(value, "body item") for value in body]


def _decode_object(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise BadMessage(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        message = json.loads(raw, object_pairs_hook=_object_without_duplicate_keys)
    except BadMessage:
        raise
    except RecursionError:
        raise BadMessage("JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError):  # ValueError also covers integers of more than 4,300 digits
        raise BadMessage("not valid JSON") from None
    if not isinstance(message, dict):
        raise BadMessage(f"not a JSON object but {type(message).__name__}")
    if "body" not in message:
        raise BadMessage("no body")
    return message


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse {"id": "a", "id": "b"}: parsers disagree on which one counts."""
    message = dict(pairs)
    if len(message) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise BadMessage(f"key {duplicate[:40]!r} appears more than once")
    return message


def _valid_id(message: dict[str, Any]) -> str:
    row_id = message.get("id")
    if not isinstance(row_id, str) or not row_id:
        raise BadMessage("id must be a non-empty string")
    if len(row_id) > MAX_ID_LENGTH or not row_id.isprintable():
        raise BadMessage(f"id must be printable and at most {MAX_ID_LENGTH} characters")
    if row_id in RESERVED_IDS:
        raise BadMessage(f"id {row_id!r} is reserved: it reads like the CSV's header")
    return row_id


def _finite_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadMessage(f"{what} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise BadMessage(f"{what} is an integer of {len(str(value))} digits, beyond a float's range") from None
    if not math.isfinite(number):
        raise BadMessage(f"{what} must be finite, got {value!r}")
    return number
