import json

import pytest

from pipeline.messages import (
    MAX_ID_LENGTH,
    MAX_MESSAGE_BYTES,
    BadMessage,
    decode_features,
    decode_value,
    encode,
    new_id,
)


def test_a_value_message_round_trips_and_extra_keys_are_ignored() -> None:
    raw = json.dumps({"id": "a-1", "body": 151, "sent_at": 1.5}).encode()
    assert decode_value(raw) == ("a-1", 151.0)
    assert decode_value(encode("b", 2.5)) == ("b", 2.5)


def test_a_features_message_round_trips() -> None:
    assert decode_features(encode("x", [0.1, -2.0, 3]), 3) == ("x", [0.1, -2.0, 3.0])


def test_ids_are_unique_uuid_strings() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(row_id) == 36 and row_id.count("-") == 4 for row_id in ids)


BAD_VALUES = {
    "not JSON": b"{oops",
    "not UTF-8": b"\xff\xfe",
    "an array": b"[1, 2]",
    "a string": b'"hello"',
    "no id": b'{"body": 1.0}',
    "a number id": b'{"id": 7, "body": 1.0}',
    "an empty id": b'{"id": "", "body": 1.0}',
    "an id with a newline": b'{"id": "a\\nb", "body": 1.0}',
    "no body": b'{"id": "a"}',
    "a string body": b'{"id": "a", "body": "1.0"}',
    "a boolean body": b'{"id": "a", "body": true}',
    "a null body": b'{"id": "a", "body": null}',
    "a NaN body": b'{"id": "a", "body": NaN}',
    "an infinite body": b'{"id": "a", "body": -Infinity}',
    "an oversized message": b'{"id": "a", "body": 1.0, "pad": "' + b"x" * MAX_MESSAGE_BYTES + b'"}',
    "an id too long": b'{"id": "' + b"a" * (MAX_ID_LENGTH + 1) + b'", "body": 1.0}',
    "an id with a tab": b'{"id": "a\\tb", "body": 1.0}',
    "an id with a lone surrogate": b'{"id": "a\\ud800", "body": 1.0}',
    "the id 'id'": b'{"id": "id", "body": 1.0}',
    "an integer beyond a float": b'{"id": "a", "body": 1' + b"0" * 400 + b"}",
    "an integer of 5,000 digits": b'{"id": "a", "body": 1' + b"0" * 5000 + b"}",
    "a float beyond a float": b'{"id": "a", "body": 1e400}',
    "JSON nested deeper than the recursion limit": b'{"id": "a", "body": 1, "x": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}",
    "a duplicate id": b'{"id": "a", "body": 1.0, "id": "b"}',
    "a duplicate body": b'{"id": "a", "body": 1.0, "body": 2.0}',
    "a duplicate key in an extra object": b'{"id": "a", "body": 1.0, "x": {"k": 1, "k": 2}}',
}


@pytest.mark.parametrize("raw", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_value_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(BadMessage):
        decode_value(raw)


BAD_FEATURES = {
    "a number body": b'{"id": "a", "body": 1.0}',
    "too few features": b'{"id": "a", "body": [1.0, 2.0]}',
    "too many features": b'{"id": "a", "body": [1.0, 2.0, 3.0, 4.0]}',
    "a string feature": b'{"id": "a", "body": [1.0, "2", 3.0]}',
    "a nested list": b'{"id": "a", "body": [1.0, [2.0], 3.0]}',
    "a NaN feature": b'{"id": "a", "body": [1.0, NaN, 3.0]}',
    "an infinite feature": b'{"id": "a", "body": [1.0, Infinity, 3.0]}',
    "a boolean feature": b'{"id": "a", "body": [1.0, false, 3.0]}',
    "a feature beyond a float": b'{"id": "a", "body": [1.0, 1' + b"0" * 400 + b", 3.0]}",
    "features nested deeper than the recursion limit": b'{"id": "a", "body": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("raw", BAD_FEATURES.values(), ids=BAD_FEATURES.keys())
def test_bad_features_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(BadMessage):
        decode_features(raw, 3)


def test_ids_of_any_printable_characters_up_to_the_limit_are_accepted() -> None:
    for row_id in ("Id", "ids", "a,b", 'say "hi"', "ünïcødé ✓", "a b", "x" * MAX_ID_LENGTH):
        assert decode_value(encode(row_id, 1.0)) == (row_id, 1.0)


def test_integers_within_float_range_are_numbers_and_large_ones_round() -> None:
    assert decode_value(b'{"id": "a", "body": 7}') == ("a", 7.0)
    assert decode_value(b'{"id": "a", "body": 1' + b"0" * 300 + b"}") == ("a", 1e300)
