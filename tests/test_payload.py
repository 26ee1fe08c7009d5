"""Hasura payload validation, the HasuraEvent view, and the row-change helpers."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector import (
    HasuraEvent,
    InvalidEventPayload,
    Operation,
    changed_columns,
    column_has_changed,
    parse_hasura_event,
)
from tests.support.library import hasura_payload

ROW = {"id": 1, "status": "packed"}


def _with(path: str, value: Any) -> dict[str, Any]:
    """A valid UPDATE payload with the dotted `path` set to `value` (`...=DELETE` removes it)."""
    payload = hasura_payload()
    *parents, last = path.split(".")
    node = payload
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return payload


DELETE = object()

# (description, payload, the field the error must name)
MALFORMED: list[tuple[str, Any, str]] = [
    ("payload is null", None, "payload"),
    ("payload is a list", [hasura_payload()], "payload"),
    ("payload is a string", json.dumps(hasura_payload()), "payload"),
    ("payload is a number", 42, "payload"),
    ("payload is empty", {}, "event"),
    ("event missing", _with("event", DELETE), "event"),
    ("event null", _with("event", None), "event"),
    ("event a list", _with("event", []), "event"),
    ("event a string", _with("event", "UPDATE"), "event"),
    ("op missing", _with("event.op", DELETE), "event.op"),
    ("op null", _with("event.op", None), "event.op"),
    ("op a number", _with("event.op", 1), "event.op"),
    ("op lower case", _with("event.op", "update"), "event.op"),
    ("op unknown", _with("event.op", "TRUNCATE"), "event.op"),
    ("op empty", _with("event.op", ""), "event.op"),
    ("op a list", _with("event.op", ["UPDATE"]), "event.op"),
    ("data missing", _with("event.data", DELETE), "event.data"),
    ("data null", _with("event.data", None), "event.data"),
    ("data a list", _with("event.data", [ROW]), "event.data"),
    ("data a string", _with("event.data", "row"), "event.data"),
    ("new a string", _with("event.data.new", "shipped"), "event.data.new"),
    ("new a list", _with("event.data.new", [ROW]), "event.data.new"),
    ("new a number", _with("event.data.new", 3), "event.data.new"),
    ("new a boolean", _with("event.data.new", True), "event.data.new"),
    ("old a string", _with("event.data.old", "packed"), "event.data.old"),
    ("old a list", _with("event.data.old", []), "event.data.old"),
    ("UPDATE without old", _with("event.data.old", None), "event.data.old"),
    ("UPDATE without new", _with("event.data.new", DELETE), "event.data.new"),
    ("INSERT without new", hasura_payload("INSERT", None, None), "event.data.new"),
    ("DELETE without old", hasura_payload("DELETE", None, None), "event.data.old"),
    ("MANUAL without new", hasura_payload("MANUAL", ROW, None), "event.data.new"),
    ("created_at a number", _with("created_at", 1709539542), "created_at"),
    ("created_at not a date", _with("created_at", "yesterday"), "created_at"),
    ("id a list", _with("id", ["x"]), "id"),
    ("id an object", _with("id", {"uuid": "x"}), "id"),
    ("id a boolean", _with("id", True), "id"),
    ("table a string", _with("table", "public.orders"), "table"),
    ("table without name", _with("table", {"schema": "public"}), "table.name"),
    ("table name empty", _with("table.name", ""), "table.name"),
    ("table name a number", _with("table.name", 5), "table.name"),
    ("table schema empty", _with("table.schema", ""), "table.schema"),
    ("table schema a list", _with("table.schema", ["public"]), "table.schema"),
    ("trigger a string", _with("trigger", "orders_events"), "trigger"),
    ("trigger name a list", _with("trigger.name", ["t"]), "trigger.name"),
    ("trigger name a float", _with("trigger.name", 1.5), "trigger.name"),
    ("delivery_info a string", _with("delivery_info", "retry 1"), "delivery_info"),
    (
        "current_retry negative",
        _with("delivery_info.current_retry", -1),
        "delivery_info.current_retry",
    ),
    (
        "current_retry a string",
        _with("delivery_info.current_retry", "1"),
        "delivery_info.current_retry",
    ),
    (
        "current_retry a boolean",
        _with("delivery_info.current_retry", True),
        "delivery_info.current_retry",
    ),
    ("max_retries a float", _with("delivery_info.max_retries", 1.5), "delivery_info.max_retries"),
    (
        "session_variables a string",
        _with("event.session_variables", "admin"),
        "event.session_variables",
    ),
    (
        "session variable an object",
        _with("event.session_variables", {"x-hasura-role": {"name": "admin"}}),
        "event.session_variables.x-hasura-role",
    ),
    (
        "session variable a list",
        _with("event.session_variables", {"x-hasura-user-id": [1]}),
        "event.session_variables.x-hasura-user-id",
    ),
    ("trace_context a string", _with("event.trace_context", "abc"), "event.trace_context"),
    (
        "trace_id a list",
        _with("event.trace_context", {"trace_id": ["abc"]}),
        "event.trace_context.trace_id",
    ),
    (
        "span_id an object",
        _with("event.trace_context", {"trace_id": "abc", "span_id": {}}),
        "event.trace_context.span_id",
    ),
    (
        "sampling_state a list",
        _with("event.trace_context", {"sampling_state": []}),
        "event.trace_context.sampling_state",
    ),
]


@pytest.mark.parametrize(
    ("payload", "field"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_malformed_payload_raises_naming_the_field(payload: Any, field: str) -> None:
    with pytest.raises(InvalidEventPayload) as caught:
        parse_hasura_event(payload)
    assert caught.value.field == field
    assert f"`{field}`" in str(caught.value)
    assert caught.value.problem in str(caught.value)


def test_invalid_payload_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"event\.op"):
        parse_hasura_event(_with("event.op", "upsert"))


def test_op_error_shows_the_wrong_value_or_its_kind() -> None:
    with pytest.raises(InvalidEventPayload, match="got 'upsert'"):
        parse_hasura_event(_with("event.op", "upsert"))
    with pytest.raises(InvalidEventPayload, match="got a number"):
        parse_hasura_event(_with("event.op", 7))


def test_missing_row_message_reads_naturally() -> None:
    with pytest.raises(InvalidEventPayload, match="must be an object for an INSERT event"):
        parse_hasura_event(hasura_payload("INSERT", None, None))
    with pytest.raises(InvalidEventPayload, match="must be an object for a DELETE event"):
        parse_hasura_event(hasura_payload("DELETE", None, None))


@pytest.mark.parametrize(
    ("op", "old", "new"),
    [
        ("INSERT", None, ROW),
        ("UPDATE", ROW, {**ROW, "status": "shipped"}),
        ("DELETE", ROW, None),
        ("MANUAL", None, ROW),
    ],
)
def test_every_operation_parses(op: str, old: Any, new: Any) -> None:
    event = parse_hasura_event(hasura_payload(op, old, new))
    assert event.op is Operation(op)
    assert event.old == old
    assert event.new == new
    assert event.row == (new if new is not None else old)


def test_typed_view_exposes_every_field() -> None:
    payload = hasura_payload(
        session_variables={"X-Hasura-Role": "user", "x-hasura-user-email": "ana@example.com"},
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        current_retry=2,
    )
    event = parse_hasura_event(payload)
    assert event.id == payload["id"]
    assert event.created_at == datetime(2026, 3, 4, 8, 5, 42, 900113, tzinfo=UTC)
    assert event.trigger_name == "orders_events"
    assert event.table is not None and str(event.table) == "public.orders"
    assert event.session_variables == {
        "x-hasura-role": "user",
        "x-hasura-user-email": "ana@example.com",
    }
    assert event.role == "user"
    assert event.user == "ana@example.com"
    assert event.delivery_info.current_retry == 2
    assert event.delivery_info.attempt == 3
    assert event.trace_context is not None
    assert event.trace_context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event.raw is payload


def test_optional_fields_may_be_absent_or_null() -> None:
    payload = {"event": {"op": "INSERT", "data": {"old": None, "new": ROW}}}
    event = parse_hasura_event(payload)
    assert (event.id, event.created_at, event.trigger_name, event.table) == (None, None, None, None)
    assert event.session_variables == {}
    assert event.delivery_info.attempt == 1
    assert event.trace_context is None
    nulls = {
        "id": None,
        "created_at": None,
        "trigger": None,
        "table": None,
        "delivery_info": None,
        "event": {
            "op": "INSERT",
            "data": {"new": ROW},
            "session_variables": None,
            "trace_context": None,
        },
    }
    assert parse_hasura_event(nulls).new == ROW


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-04T08:05:42.900113", datetime(2026, 3, 4, 8, 5, 42, 900113, tzinfo=UTC)),
        ("2026-03-04T08:05:42Z", datetime(2026, 3, 4, 8, 5, 42, tzinfo=UTC)),
        ("2026-03-04T10:05:42+02:00", datetime(2026, 3, 4, 8, 5, 42, tzinfo=UTC)),
    ],
)
def test_created_at_is_utc(text: str, expected: datetime) -> None:
    assert parse_hasura_event(_with("created_at", text)).created_at == expected


def test_numeric_id_and_session_values_become_strings() -> None:
    payload = _with("id", 981)
    payload["event"]["session_variables"] = {"x-hasura-user-id": 42, "x-hasura-role": None}
    event = parse_hasura_event(payload)
    assert event.id == "981"
    assert event.session_variables == {"x-hasura-user-id": "42"}
    assert event.user == "42"


def test_admin_without_user_is_system() -> None:
    event = parse_hasura_event(hasura_payload(session_variables={"x-hasura-role": "admin"}))
    assert event.user == "system"
    assert parse_hasura_event(hasura_payload(session_variables={})).user is None


def test_parsing_a_hasura_event_returns_it() -> None:
    event = parse_hasura_event(hasura_payload())
    assert parse_hasura_event(event) is event


def test_rows_are_copies_the_raw_payload_is_untouched() -> None:
    payload = hasura_payload()
    event = parse_hasura_event(payload)
    assert event.new is not None
    event.new["status"] = "mutated"
    assert payload["event"]["data"]["new"]["status"] == "shipped"


# Row helpers -------------------------------------------------------------------------


def _update(old: dict[str, Any], new: dict[str, Any]) -> HasuraEvent:
    return parse_hasura_event(hasura_payload("UPDATE", old, new))


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ({"status": "packed"}, {"status": "shipped"}, True),
        ({"status": "packed"}, {"status": "packed"}, False),
        ({"status": None}, {"status": "packed"}, True),
        ({"status": "packed"}, {"status": None}, True),
        ({"status": None}, {"status": None}, False),
        ({"status": {"a": [1, 2]}}, {"status": {"a": [1, 2]}}, False),
        ({"status": {"a": [1, 2]}}, {"status": {"a": [2, 1]}}, True),
        ({"status": 1}, {"status": 1.0}, False),
        ({"status": 1}, {"status": True}, True),
        ({"status": 0}, {"status": False}, True),
        ({"status": [1]}, {"status": [True]}, True),
        ({"status": "1"}, {"status": 1}, True),
        ({}, {"status": "packed"}, False),
        ({"status": "packed"}, {}, False),
    ],
)
def test_column_has_changed(old: dict[str, Any], new: dict[str, Any], changed: bool) -> None:
    assert column_has_changed("status", _update(old, new)) is changed


def test_column_names_are_case_sensitive() -> None:
    event = _update({"status": "a"}, {"status": "b"})
    assert column_has_changed("Status", event) is False


def test_column_has_changed_needs_both_rows() -> None:
    assert (
        column_has_changed("status", parse_hasura_event(hasura_payload("INSERT", None, ROW)))
        is False
    )
    assert (
        column_has_changed("status", parse_hasura_event(hasura_payload("DELETE", ROW, None)))
        is False
    )


def test_row_helpers_accept_raw_payloads_and_validate_them() -> None:
    assert column_has_changed("status", hasura_payload()) is True
    assert changed_columns(hasura_payload()) == ["status"]
    with pytest.raises(InvalidEventPayload):
        column_has_changed("status", {"event": {}})


def test_changed_columns_in_new_row_order_then_removed_columns() -> None:
    old = {"id": 1, "a": 1, "b": 2, "gone": "x", "flag": 1}
    new = {"id": 1, "b": 3, "a": 1, "added": None, "flag": True}
    assert changed_columns(_update(old, new)) == ["b", "added", "flag", "gone"]
    assert changed_columns(parse_hasura_event(hasura_payload("INSERT", None, ROW))) == []


# Fuzzing: anything JSON-shaped either parses or raises InvalidEventPayload ----------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.sampled_from(
    ["id", "created_at", "trigger", "table", "delivery_info", "event", "op", "data", "old", "new"]
)


@st.composite
def mutated_payloads(draw: st.DrawFn) -> Any:
    """A valid payload with a few fields replaced by arbitrary JSON, or arbitrary JSON."""
    if draw(st.booleans()):
        return draw(JSON)
    payload = copy.deepcopy(hasura_payload(trace_id="t"))
    paths = [
        ("id",),
        ("created_at",),
        ("trigger",),
        ("table",),
        ("table", "name"),
        ("delivery_info",),
        ("delivery_info", "current_retry"),
        ("event",),
        ("event", "op"),
        ("event", "data"),
        ("event", "data", "old"),
        ("event", "data", "new"),
        ("event", "session_variables"),
        ("event", "trace_context"),
    ]
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        node = payload
        for key in path[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(key), dict):
                break
            node = node[key]
        else:
            node[path[-1]] = draw(JSON | KEYS)
    return payload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_payloads())
def test_fuzzed_payloads_parse_or_raise_invalid_event_payload(payload: Any) -> None:
    try:
        event = parse_hasura_event(payload)
    except InvalidEventPayload as error:
        assert error.field
        assert error.field.split(".")[0] in {
            "payload",
            "event",
            "id",
            "created_at",
            "trigger",
            "table",
            "delivery_info",
        }
    else:
        assert isinstance(event, HasuraEvent)
        changed_columns(event)  # never raises on a parsed event
