"""Correlation ids, their precedence, and tracking tokens across invocations."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector import (
    ConfigurationError,
    EventModule,
    InvalidTrackingToken,
    TrackingToken,
    job,
    listen_to,
    run,
)
from detector.correlation import correlation_id_problem, resolve_correlation
from detector.payload import parse_hasura_event
from tests.support.library import ORDER_PACKED, RecordingPlugin, hasura_payload

JOB_ID = "5b0e9a4c-3d2f-4e1a-b7c6-9d8e7f6a5b4c"
TOKEN = f"orders_fn|flow-42|{JOB_ID}"


def payload_with(
    *,
    token: str | None = None,
    column: str = "updated_by",
    session_id: Any = None,
    trace_id: str | None = None,
) -> dict[str, Any]:
    new = {**ORDER_PACKED, "status": "shipped"}
    if token is not None:
        new[column] = token
    variables = {"x-hasura-role": "user"}
    if session_id is not None:
        variables["x-correlation-id"] = session_id
    return hasura_payload(
        "UPDATE", dict(ORDER_PACKED), new, session_variables=variables, trace_id=trace_id
    )


def resolve(explicit: str | None = None, **payload: Any) -> Any:
    return resolve_correlation(explicit, parse_hasura_event(payload_with(**payload)))


# Precedence --------------------------------------------------------------------------


def test_explicit_option_wins_over_everything() -> None:
    found = resolve("explicit-1", token=TOKEN, session_id="session-1", trace_id="trace-1")
    assert (found.correlation_id, found.origin) == ("explicit-1", "option")
    assert found.source_job_id == JOB_ID  # the cascade link is kept either way


def test_tracking_token_comes_second() -> None:
    found = resolve(token=TOKEN, session_id="session-1", trace_id="trace-1")
    assert (found.correlation_id, found.origin) == ("flow-42", "tracking_token")
    assert found.source_job_id == JOB_ID
    assert found.token_text == TOKEN


def test_camel_case_updated_by_column_is_read() -> None:
    found = resolve(token=TOKEN, column="updatedBy")
    assert found.correlation_id == "flow-42"


def test_session_variable_comes_third() -> None:
    found = resolve(session_id="session-1", trace_id="trace-1")
    assert (found.correlation_id, found.origin) == ("session-1", "session_variable")
    assert found.source_job_id is None


def test_trace_id_comes_fourth() -> None:
    found = resolve(trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
    assert (found.correlation_id, found.origin) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "trace_context",
    )


def test_otherwise_a_new_uuid() -> None:
    first, second = resolve(), resolve()
    assert first.origin == "generated"
    assert uuid.UUID(first.correlation_id).version == 4
    assert first.correlation_id != second.correlation_id


@pytest.mark.parametrize(
    "updated_by",
    [
        "ana@example.com",  # a plain user, not a token
        "only-one-part|",  # empty correlation part
        "a|b|not-a-uuid",  # job part must be a UUID
        "a|b|c|d",  # too many parts
        "|flow",  # empty source
    ],
)
def test_values_that_are_not_tokens_are_skipped(updated_by: str) -> None:
    found = resolve(token=updated_by, session_id="session-1")
    assert found.origin == "session_variable"
    assert found.source_job_id is None


def test_invalid_ids_in_the_payload_are_skipped() -> None:
    found = resolve(session_id="bad\nid", trace_id="x" * 201)
    assert found.origin == "generated"
    found = resolve(session_id="   ", trace_id="trace-ok")
    assert found.correlation_id == "trace-ok"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty or blank"),
        ("x" * 201, "at most 200 characters"),
        ("line\nbreak", "printable"),
        ("tab\there", "printable"),
        (42, "must be a string"),
    ],
)
def test_invalid_explicit_correlation_id_is_a_configuration_error(value: Any, problem: str) -> None:
    assert problem in (correlation_id_problem(value) or "")


async def test_listen_to_rejects_an_invalid_explicit_correlation_id() -> None:
    plugin = RecordingPlugin()
    with pytest.raises(ConfigurationError, match="`correlation_id` must be at most 200"):
        await listen_to(hasura_payload(), modules=[], correlation_id="x" * 201, plugins=[plugin])
    assert plugin.calls == []  # a caller's mistake, raised before anything is recorded


@pytest.mark.parametrize(
    "value", ["a", "x" * 200, "order 7 / shipped", "ünïcødé-流程", "{weird}|chars", "not-a-uuid"]
)
async def test_any_printable_string_up_to_200_characters_is_accepted_as_given(value: str) -> None:
    result = await listen_to(hasura_payload(), modules=[], correlation_id=value, plugins=[])
    assert result.correlation_id == value


# Tracking tokens ---------------------------------------------------------------------


def test_token_formats_and_parses() -> None:
    token = TrackingToken("orders_fn", "flow-42", JOB_ID)
    assert str(token) == token.format() == TOKEN
    assert TrackingToken.parse(TOKEN) == token
    assert TrackingToken.parse("orders_fn|flow-42") == TrackingToken("orders_fn", "flow-42")


def test_separator_and_escape_inside_parts_round_trip() -> None:
    token = TrackingToken("billing|eu\\west", "flow|with|pipes\\", None)
    text = token.format()
    assert text.count("|") - text.count("\\|") == 1  # one real separator
    assert TrackingToken.parse(text) == token


parts = st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp"]), min_size=1, max_size=30
).filter(lambda text: text.strip() and text.isprintable())


@given(source=parts, correlation_id=parts, with_job=st.booleans())
def test_any_token_round_trips(source: str, correlation_id: str, with_job: bool) -> None:
    token = TrackingToken(source, correlation_id, str(uuid.uuid4()) if with_job else None)
    assert TrackingToken.parse(token.format()) == token


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("no separator", "2 or 3 parts"),
        ("a|b|c|d", "2 or 3 parts"),
        ("|flow", "`source`"),
        ("src|", "`correlation_id`"),
        (f"src|{'x' * 201}", "`correlation_id`"),
        ("src|flow|job-7", "`job_execution_id` must be a UUID"),
        ("src|flow\\", "lone escape"),
        (42, "must be a string"),
    ],
)
def test_parse_says_what_is_wrong(text: Any, problem: str) -> None:
    with pytest.raises(InvalidTrackingToken, match=problem):
        TrackingToken.parse(text)
    assert TrackingToken.try_parse(text) is None


def test_for_job_builds_the_token_from_job_options() -> None:
    options = {"correlation_id": "flow-1", "job_execution_id": JOB_ID, "source_function": "fn"}
    assert TrackingToken.for_job(options) == TrackingToken("fn", "flow-1", JOB_ID)
    assert TrackingToken.for_job(options, source="billing").source == "billing"
    assert TrackingToken.for_job({"correlation_id": "c", "job_name": "send"}).source == "send"
    with pytest.raises(ConfigurationError, match="options dict the library passed"):
        TrackingToken.for_job({})


def test_with_job_replaces_the_job_part() -> None:
    token = TrackingToken.parse(TOKEN)
    other = str(uuid.uuid4())
    assert token.with_job(other) == TrackingToken("orders_fn", "flow-42", other)


# Cascades through listen_to ------------------------------------------------------------


async def test_a_job_token_links_the_invocation_its_row_change_triggers() -> None:
    """Parent job writes its token into the row; the child shares the flow and names the job."""
    written: dict[str, Any] = {}

    async def mark_fulfilled(event_name: str, event: Any, options: dict[str, Any]) -> str:
        written["updated_by"] = TrackingToken.for_job(options).format()
        assert written["updated_by"] == options["tracking_token"]
        return options["job_execution_id"]

    async def handler(event_name: str, event: Any) -> Any:
        return await run(event_name, event, [job(mark_fulfilled)])

    parent_module = EventModule("orders.shipped", lambda name, event: True, handler)
    parent = await listen_to(
        hasura_payload(), modules=[parent_module], plugins=[], source_function="orders_fn"
    )
    parent_job_id = parent.events[0].jobs[0].result
    assert TrackingToken.parse(written["updated_by"]) == TrackingToken(
        "orders_fn", parent.correlation_id, parent_job_id
    )

    child_payload = hasura_payload(
        "UPDATE",
        {**ORDER_PACKED, "status": "shipped"},
        {**ORDER_PACKED, "status": "shipped", "fulfilled": True, **written},
    )
    plugin = RecordingPlugin()
    child = await listen_to(child_payload, modules=[], plugins=[plugin])
    assert child.correlation_id == parent.correlation_id
    (invocation,) = plugin.args("on_invocation_start")[0]
    assert invocation.source_job_id == parent_job_id
    assert invocation.source_tracking_token == written["updated_by"]


async def test_delivery_attempt_is_current_retry_plus_one() -> None:
    plugin = RecordingPlugin()
    await listen_to(hasura_payload(current_retry=2), modules=[], plugins=[plugin])
    (invocation,) = plugin.args("on_invocation_start")[0]
    assert invocation.delivery_attempt == 3
