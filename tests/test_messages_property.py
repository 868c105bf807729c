"""Property: a decoder returns valid data or raises BadMessage, whatever the bytes or the JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.messages import MAX_ID_LENGTH, MAX_MESSAGE_BYTES, BadMessage, decode_features, decode_value

N_FEATURES = 3

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5),
    max_leaves=30,
)
ids = st.one_of(st.text(max_size=MAX_ID_LENGTH + 5), json_values)
bodies = st.one_of(json_values, st.lists(json_values, min_size=N_FEATURES, max_size=N_FEATURES))
messages = st.one_of(json_values, st.fixed_dictionaries({"id": ids, "body": bodies}, optional={"extra": json_values}))


def as_bytes(message: Any) -> bytes:
    return json.dumps(message).encode("utf-8", errors="surrogatepass")


def check_id(row_id: str) -> None:
    assert isinstance(row_id, str) and 0 < len(row_id) <= MAX_ID_LENGTH
    assert row_id.isprintable() and row_id != "id"
    row_id.encode()  # every accepted id can be written to the CSV


def outcome_of_value(raw: bytes) -> None:
    try:
        row_id, body = decode_value(raw)
    except BadMessage:
        return
    check_id(row_id)
    assert type(body) is float and math.isfinite(body)


def outcome_of_features(raw: bytes) -> None:
    try:
        row_id, body = decode_features(raw, N_FEATURES)
    except BadMessage:
        return
    check_id(row_id)
    assert len(body) == N_FEATURES and all(type(value) is float and math.isfinite(value) for value in body)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_bad_message(raw: bytes) -> None:
    outcome_of_value(raw)
    outcome_of_features(raw)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_arbitrary_json_decodes_or_raises_bad_message(message: Any) -> None:
    raw = as_bytes(message)
    outcome_of_value(raw)
    outcome_of_features(raw)


OPENERS = {"[": "]", '{"a":': "}"}
DEEPER_THAN_THE_PARSER_GOES = 50_000  # levels; Python's json gives up near sys.getrecursionlimit() (1,000)


def nested(depth: int, opener: str) -> bytes:
    """A message whose extra key holds a number ``depth`` arrays or objects deep."""
    return f'{{"id": "a", "body": 1, "deep": {opener * depth}1{OPENERS[opener] * depth}}}'.encode()


@settings(max_examples=20)
@given(st.integers(min_value=DEEPER_THAN_THE_PARSER_GOES, max_value=150_000), st.sampled_from(sorted(OPENERS)))
def test_deep_nesting_raises_bad_message(depth: int, opener: str) -> None:
    raw = nested(depth, opener)
    assert len(raw) <= MAX_MESSAGE_BYTES, "refused for its depth, not its size"
    with pytest.raises(BadMessage, match="nested too deeply"):
        decode_value(raw)
    with pytest.raises(BadMessage, match="nested too deeply"):
        decode_features(raw, N_FEATURES)


@given(st.integers(min_value=1, max_value=100), st.sampled_from(sorted(OPENERS)))
def test_shallow_nesting_in_an_extra_key_is_ignored(depth: int, opener: str) -> None:
    assert decode_value(nested(depth, opener)) == ("a", 1.0)
