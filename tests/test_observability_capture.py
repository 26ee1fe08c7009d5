"""Redaction, safe serialisation and size caps (`detector.observability.capture`)."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.observability.capture import Sanitizer, SnapshotEncoder, truncate_text


def test_deny_list_matches_keys_by_case_insensitive_substring() -> None:
    sanitizer = Sanitizer()
    cleaned = sanitizer.clean(
        {
            "API_Token": "t",
            "user": {"Password": "p", "name": "ana", "cards": [1, 2]},
            "Authorization": "Bearer x",
            "apikey": 1,
            "private_key_pem": "k",
            "cookie": "c",
            "ssn": "1",
            "amount": 3,
        }
    )
    assert cleaned == {
        "API_Token": "[redacted]",
        "user": {"Password": "[redacted]", "name": "ana", "cards": "[redacted]"},
        "Authorization": "[redacted]",
        "apikey": "[redacted]",
        "private_key_pem": "[redacted]",
        "cookie": "[redacted]",
        "ssn": "[redacted]",
        "amount": 3,
    }


def test_session_variables_survive_while_the_secrets_inside_them_are_redacted() -> None:
    cleaned = Sanitizer().clean(
        {
            "session_variables": {
                "x-hasura-role": "user",
                "x-hasura-user-id": "u-1",
                "x-hasura-admin-secret": "hunter2",
                "x-hasura-session-token": "st",
                "x-hasura-session-id": "sid",
                "x-hasura-access-token": "at",
            },
            "session_id": "s1",
            "SessionId": "s2",
            "session_token": "s3",
            "user_session_key": "s4",
            "session_count": 3,
        }
    )
    assert cleaned == {
        "session_variables": {
            "x-hasura-role": "user",
            "x-hasura-user-id": "u-1",
            "x-hasura-admin-secret": "[redacted]",
            "x-hasura-session-token": "[redacted]",
            "x-hasura-session-id": "[redacted]",
            "x-hasura-access-token": "[redacted]",
        },
        "session_id": "[redacted]",
        "SessionId": "[redacted]",
        "session_token": "[redacted]",
        "user_session_key": "[redacted]",
        "session_count": 3,
    }


def test_user_keys_and_callback_redact_by_path() -> None:
    seen: list[tuple[Any, ...]] = []

    def redact(value: Any, path: tuple[Any, ...]) -> Any:
        seen.append(path)
        if path[-1:] == ("email",):
            return "***@" + str(value).split("@")[-1]
        return value

    sanitizer = Sanitizer(redact_keys=["iban"], redact=redact)
    out = sanitizer.clean({"Customer_IBAN": "DE00", "rows": [{"email": "ana@example.com"}]})
    assert out == {"Customer_IBAN": "[redacted]", "rows": [{"email": "***@example.com"}]}
    assert ("rows", 0, "email") in seen

    def broken(value: Any, path: tuple[Any, ...]) -> Any:
        raise RuntimeError("bug")

    failing = Sanitizer(redact=broken)
    assert failing.clean({"a": 1}) == "[redaction failed]"
    assert failing.redaction_errors == 1


class Colour(Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: float


class Opaque:
    pass


def test_anything_becomes_safe_json() -> None:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    listed: list[Any] = [1]
    listed.append(listed)
    value = {
        "loop": loop,
        "listed": listed,
        "bytes": b"\x00\x01secret",
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "day": date(2026, 1, 2),
        "span": timedelta(seconds=1.5),
        "id": uuid.UUID(int=1),
        "money": Decimal("12.50"),
        "nan": math.nan,
        "inf": -math.inf,
        "set": {3, 1, 2},
        "point": Point(1, 2.5),
        "error": ValueError("bad value"),
        "colour": Colour.RED,
        "object": Opaque(),
        "function": test_anything_becomes_safe_json,
        7: "int key",
    }
    text = Sanitizer().to_json(value)
    assert text is not None
    out = json.loads(text)
    assert out["loop"] == {"name": "loop", "self": "[circular reference]"}
    assert out["listed"] == [1, "[circular reference]"]
    assert out["bytes"] == "[bytes: 8 bytes]"
    assert out["when"] == "2026-01-02T03:04:05+00:00" and out["day"] == "2026-01-02"
    assert out["span"] == 1.5 and out["id"] == str(uuid.UUID(int=1))
    assert out["money"] == "12.50"
    assert out["nan"] == "nan" and out["inf"] == "-inf"
    assert out["set"] == [1, 2, 3]
    assert out["point"] == {"x": 1, "y": 2.5}
    assert out["error"] == {"type": "ValueError", "message": "bad value"}
    assert out["colour"] == "red"
    assert out["object"].startswith("[") and "Opaque object]" in out["object"]
    assert out["function"] == "[function test_anything_becomes_safe_json]"
    assert out["7"] == "int key"


def test_values_over_the_cap_become_an_explicit_marker() -> None:
    sanitizer = Sanitizer(max_value_bytes=200)
    text = sanitizer.to_json({"rows": ["x" * 50] * 10, "id": 1})
    assert text is not None and len(text) < 400
    marker = json.loads(text)
    assert marker["_truncated"] is True and marker["_original_size"] > 200
    assert marker["_keys"] == ["rows", "id"]
    assert "200" in marker["_reason"]
    assert sanitizer.to_json(None) is None
    assert truncate_text("abcdef", 4) == "abcd… [truncated 2 characters]"
    assert truncate_text("abc", 4) == "abc"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_to_json_never_raises_and_always_gives_valid_json(value: Any) -> None:
    text = Sanitizer(max_value_bytes=500).to_json(value)
    if value is None:
        assert text is None
    else:
        assert text is not None
        # No NaN/Infinity tokens: PostgreSQL's jsonb would refuse them.
        json.loads(text, parse_constant=lambda token: pytest.fail(f"JSON has {token}"))


# Keys drawn partly from the deny-list (in any case, inside longer names), so that the
# text fast path of `snapshot_to_json` meets both denied and innocent keys.
snapshot_keys = st.one_of(
    st.text(max_size=12),
    st.builds(
        lambda prefix, word, suffix, upper: prefix + (word.upper() if upper else word) + suffix,
        st.text(max_size=3),
        st.sampled_from(["token", "secret", "password", "card", "api_key", "ssn"]),
        st.text(max_size=3),
        st.booleans(),
    ),
)
snapshot_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["NaN", "Infinity", "token", "x" * 300]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(snapshot_keys, children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(snapshot_values, st.sampled_from([64, 400, 65536]))
def test_snapshot_text_is_cleaned_exactly_as_the_value_it_holds(value: Any, cap: int) -> None:
    # The writer thread turns snapshot text into stored JSON; its fast path (text kept as
    # it is) must give what parsing and cleaning in full gives.
    sanitizer = Sanitizer(max_value_bytes=cap)
    text = SnapshotEncoder().encode(value)
    assert sanitizer.snapshot_to_json(text) == sanitizer.to_json(json.loads(text))


def test_snapshot_text_with_a_denied_key_or_a_callback_is_cleaned_in_full() -> None:
    encoder = SnapshotEncoder()
    text = encoder.encode({"user": {"Api_Token": "t-1", "name": "ana"}, "n": float("nan")})
    cleaned = json.loads(Sanitizer().snapshot_to_json(text) or "")
    assert cleaned == {"user": {"Api_Token": "[redacted]", "name": "ana"}, "n": "nan"}
    # A word JSON would escape cannot be found in the text: such lists parse in full.
    quoted = Sanitizer(redact_keys=['we"ird'])
    text = encoder.encode({'a we"ird key': 1})
    assert json.loads(quoted.snapshot_to_json(text) or "") == {'a we"ird key': "[redacted]"}
    seen: list[Any] = []
    with_callback = Sanitizer(redact=lambda value, path: seen.append(path) or value)
    with_callback.snapshot_to_json(encoder.encode({"a": 1}))
    assert seen == [(), ("a",)]
