"""Property-based fuzzing (hypothesis) of everything that takes outside input.

- Hasura payloads, valid and mutated, through `listen_to` (with the observability plugin
  recording) and through the webhook of a real server: a result, or
  `InvalidEventPayload` / HTTP 400 naming the field; never anything else, never a 500.
- GraphQL `where` filters over the engine's operators, columns and relationships, on
  both backends, checked against an independent Python evaluation of the same filter on
  the same rows (`tests/support/bool_exp.py`).
- Parameterisation: hostile strings in every place a request can carry text are seen
  by the database only as parameters, never inside SQL text (captured through the
  service `Database`'s statement hook).

Example counts are modest and the same every run (the `ci` profile below) so the suite
stays fast and stable; set `HYPOTHESIS_PROFILE=thorough` for a long, random run.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from detector import EventModule, InvalidEventPayload, job, listen_to
from detector import run as run_jobs
from detector.observability import ObservabilityPlugin
from service.app import engine_config
from service.graphql import GraphQLEngine
from service.settings import Settings
from service.storage.database import Database
from service.storage.maintenance import invocations
from tests.support.bool_exp import Evaluator, Rows, as_json, where_filters
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.db import prepare_database, run
from tests.support.library import hasura_payload
from tests.support.runtime import EXAMPLES_EVENTS, database_for, rows
from tests.support.server import RunningServer, serving

# `ci` draws the same examples every run (a red suite means a change, not luck);
# `thorough` explores afresh each time.
settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ = settings.get_profile(PROFILE)

DATASET = build_dataset()
EVALUATOR = Evaluator(DATASET)
ROWS = Rows(DATASET)
TOP_FIELDS = {"payload", "event", "id", "created_at", "trigger", "table", "delivery_info"}


# -- payload strategies ------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
PATHS = [
    ("id",),
    ("created_at",),
    ("trigger",),
    ("trigger", "name"),
    ("table",),
    ("table", "schema"),
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
    ("event", "trace_context", "trace_id"),
]


@st.composite
def hasura_payloads(draw: st.DrawFn) -> Any:
    """Valid payloads of every operation, the same with a few fields replaced or removed,
    and arbitrary JSON."""
    roll = draw(st.integers(0, 9))
    if roll == 0:
        return draw(JSON)
    op = draw(st.sampled_from(["INSERT", "UPDATE", "DELETE", "MANUAL"]))
    row = draw(st.dictionaries(st.text(max_size=5), JSON, max_size=4))
    old = None if op in ("INSERT", "MANUAL") else {**row, "status": "packed"}
    new = None if op == "DELETE" else {**row, "status": "shipped"}
    payload = hasura_payload(op, old, new, trace_id=draw(st.sampled_from([None, "abc"])))
    if roll <= 3:
        return payload
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3)):
        node = payload
        for key in path[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(key), dict):
                break
            node = node[key]
        else:
            if draw(st.booleans()):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = draw(JSON)
    return payload


def _check_field(field: str, message: str) -> None:
    assert field.split(".")[0] in TOP_FIELDS, field
    assert f"`{field}`" in message, (field, message)


# -- the library: listen_to with the plugin recording ------------------------------------


def _modules() -> list[EventModule]:
    async def detector(event_name: str, event: Any) -> bool:
        return event.new is not None and event.new.get("status") == "shipped"

    async def work(event_name: str, event: Any, options: dict[str, Any]) -> Any:
        options["logger"].info("row %s", event.new)
        return event.new

    async def handler(event_name: str, event: Any) -> Any:
        return await run_jobs(event_name, event, [job(work)])

    return [EventModule("orders.shipped", detector, handler)]


@pytest.fixture(scope="module")
def recording(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ObservabilityPlugin, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'library.db'}"
    plugin = ObservabilityPlugin(url, flush_interval=3600, handle_sigterm=False)
    try:
        yield plugin, url
    finally:
        plugin.shutdown_sync(5)


def test_fuzzed_payloads_through_listen_to_give_a_result_or_name_the_field_and_are_recorded(
    recording: tuple[ObservabilityPlugin, str],
) -> None:
    plugin, url = recording
    outcomes: dict[str, str | None] = {}  # invocation id -> rejected field (None: ran)
    modules = _modules()

    @FUZZ
    @given(hasura_payloads())
    def check(payload: Any) -> None:
        invocation_id = str(uuid.uuid4())
        try:
            result = asyncio.run(
                listen_to(
                    copy.deepcopy(payload),
                    modules=modules,
                    plugins=[plugin],
                    invocation_id=invocation_id,
                )
            )
        except InvalidEventPayload as error:
            _check_field(error.field, str(error))
            outcomes[invocation_id] = error.field
        else:
            assert result.invocation_id == invocation_id
            assert not result.error, result.error
            json.dumps(result.to_dict())  # JSON-ready, whatever the row held
            outcomes[invocation_id] = None

    check()
    assert plugin.force_flush(30)
    stored = {
        row["id"]: row
        for row in rows(
            url,
            sa.select(invocations.c.id, invocations.c.status, invocations.c.error_message),
        )
    }
    assert set(stored) == set(outcomes), "every payload is recorded, rejected ones too"
    for invocation_id, field in outcomes.items():
        row = stored[invocation_id]
        if field is None:
            assert row["status"] == "completed", row
        else:
            assert row["status"] == "rejected" and f"`{field}`" in row["error_message"], row
    assert plugin.stats()["conversion_errors"] == 0
    assert plugin.stats()["quarantined"] == 0


# -- the webhook over a real server ------------------------------------------------------


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    url = f"sqlite:///{tmp_path_factory.mktemp('hooks') / 'hooks.db'}"
    run(prepare_database(url))
    settings = Settings(
        database_url=url,
        events_dir=EXAMPLES_EVENTS,
        webhook_functions=["orders"],
        rollup_interval=0,
    )
    with serving(settings) as s:
        yield s


def test_fuzzed_deliveries_are_answered_200_or_400_naming_the_field(
    webhook: RunningServer,
) -> None:
    bodies = st.one_of(
        hasura_payloads().map(lambda p: json.dumps(p).encode()),
        st.binary(max_size=40),
        st.text(max_size=40).map(str.encode),
    )

    @FUZZ
    @given(bodies)
    def check(body: bytes) -> None:
        answer = webhook.client.post(
            "/hooks/orders", content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code in (200, 400), (answer.status_code, answer.text[:300])
        reply = answer.json()
        if answer.status_code == 400:
            assert reply["error"] == "invalid_payload"
            if reply["field"] != "body":
                _check_field(reply["field"], reply["message"])
            assert reply["invocation_id"]
        else:
            assert reply["invocation_id"] and isinstance(reply["events"], list)

    check()


# -- GraphQL where filters against an independent evaluation ---------------------------


class EngineHarness:
    """The engine in-process over a dataset database, with every SQL statement captured."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.database = Database(url)
        # Compiled at each field's first request (the service waits for its second), so
        # the fuzzed documents, each sent once, exercise the compiled statements.
        config = engine_config(Settings(database_url=url, max_rows=1000))
        self.engine = GraphQLEngine(dataclasses.replace(config, compile_after=1), self.database)
        self.statements: list[tuple[str, Any]] = []
        # Reads on SQLite go through their own pool: capture both engines' statements.
        for engine in {self.database.engine, self.database.read_engine}:
            event.listen(engine.sync_engine, "before_cursor_execute", self._capture)

    def _capture(self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        self.statements.append((statement, parameters))

    def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        result = self.loop.run_until_complete(self.engine.execute(query, variables))
        return self.engine.format(result)

    def close(self) -> None:
        self.loop.run_until_complete(self.database.dispose())
        self.loop.close()


@pytest.fixture(scope="module")
def harness(module_db_url: str) -> Iterator[EngineHarness]:
    run(insert_dataset(module_db_url, DATASET))
    running = EngineHarness(module_db_url)
    try:
        yield running
    finally:
        running.close()


WHERE_QUERIES = {
    table: f"query ($w: {table}_bool_exp!) {{ {table}(where: $w, order_by: {{id: asc}}) {{ id }} }}"
    for table in ("invocations", "event_executions", "job_executions")
}


@pytest.mark.parametrize("table", ["invocations", "event_executions"])
def test_fuzzed_where_filters_select_what_postgresql_semantics_select(
    harness: EngineHarness, table: str
) -> None:
    selected_any = []

    @FUZZ
    @given(where_filters(ROWS, table))
    def check(where: dict[str, Any]) -> None:
        body = harness.execute(WHERE_QUERIES[table], {"w": where})
        assert "errors" not in body, (as_json(where), body)
        got = [row["id"] for row in body["data"][table]]
        expected = EVALUATOR.select(table, where)
        assert got == expected, as_json(where)
        selected_any.append(bool(got))

    check()
    assert any(selected_any), "the filters drawn never matched a row"


# -- parameterisation: hostile text never reaches SQL text -------------------------------

TOKENS = [*"'\";\\%_$()[]*+?|^.-/ \t\nOR1=1", "--", "/*", "*/", "$$", "ü", "✓"]
HOSTILE = st.builds(
    lambda marker, core, tail: f"zq{marker:08x}{core}{tail}",
    st.integers(0, 2**32 - 1),
    st.lists(st.sampled_from(TOKENS), max_size=12).map("".join),
    st.sampled_from(["", "'; DROP TABLE invocations; --", '" OR "1"="1', "\\'", "$1"]),
)


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any], list[str]]:
    """A query and variables carrying hostile strings in one of the places text goes."""
    text = draw(HOSTILE)
    other = draw(HOSTILE)
    places: list[tuple[str, dict[str, Any]]] = [
        ("query ($w: invocations_bool_exp!) { invocations(where: $w) { id } }", {"w": w})
        for w in (
            {"status": {draw(st.sampled_from(["_eq", "_neq", "_gt", "_lte"])): text}},
            {"correlation_id": {"_in": [text, other]}},
            {"source_function": {draw(st.sampled_from(
                ["_like", "_nlike", "_ilike", "_nilike", "_similar", "_nsimilar"]
            )): text}},
            {"error_message": {draw(st.sampled_from(["_regex", "_iregex", "_nregex"])): text}},
            {"context_data": {"_contains": {text: other}}},
            {"context_data": {"_contained_in": {"region": text}}},
            {"context_data": {"_has_key": text}},
            {"context_data": {"_has_keys_any": [text, other]}},
            {"context_data": {"_has_keys_all": [text]}},
            {"context_data": {"_eq": [text, {other: 1}]}},
            {"source_event_payload": {"_cast": {"String": {"_ilike": text}}}},
            {"event_executions": {"event_name": {"_eq": text}}},
            {"job_executions_aggregate": {"count": {
                "predicate": {"_gt": 0}, "filter": {"job_name": {"_like": text}}
            }}},
        )
    ]  # fmt: skip
    places += [
        (
            "query ($p: String) { invocations(limit: 3) { id "
            "source_event_payload(path: $p) context_data(path: $p) } }",
            {"p": f"$.{text}"},
        ),
        (
            "query ($p: String) { invocations(limit: 3) { id context_data(path: $p) } }",
            {"p": f'$["{text}"]'},
        ),
        (
            "mutation ($o: invocations_insert_input!) { insert_invocations_one(object: $o) "
            "{ id source_function } }",
            {
                "o": {
                    "id": str(uuid.uuid4()),
                    "source_function": text,
                    "correlation_id": other,
                    "context_data": {text: [other]},
                    "error_message": text,
                }
            },
        ),
        (
            "mutation ($s: String!, $v: jsonb!) { update_invocations(where: "
            "{source_function: {_eq: $s}}, _set: {error_message: $s}, _append: {context_data: $v}) "
            "{ affected_rows } }",
            {"s": text, "v": {other: text}},
        ),
    ]
    query, variables = draw(st.sampled_from(places))
    return query, variables, [text, other]


@pytest.fixture
def empty_harness(
    module_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[EngineHarness]:
    """The engine over an empty database of its own (the mutations below write)."""
    with database_for(module_backend, request, tmp_path) as url:
        running = EngineHarness(url)
        try:
            yield running
        finally:
            running.close()


def test_hostile_text_reaches_the_database_only_as_parameters(
    empty_harness: EngineHarness,
) -> None:
    harness = empty_harness
    codes = {
        "validation-failed",
        "data-exception",
        "constraint-violation",
        "parse-failed",
        "unexpected",
    }

    @FUZZ
    @given(hostile_requests())
    def check(request: tuple[str, dict[str, Any], list[str]]) -> None:
        query, variables, texts = request
        harness.statements.clear()
        body = harness.execute(query, variables)
        if "errors" in body:
            for error in body["errors"]:
                assert error["extensions"]["code"] in codes, error
                assert error["message"] and "Traceback" not in error["message"], error
                assert "SELECT" not in error["message"], error
                if error["extensions"]["code"] == "data-exception":
                    # The only data errors these requests can cause: a bad pattern.
                    assert error["message"].startswith("invalid regular expression"), error
        markers = [t[:10] for t in texts]  # the unique `zq…` prefix of each string
        for statement, _ in harness.statements:
            for marker in markers:
                assert marker not in statement, (marker, statement)
        # jsonb `path` arguments are followed in Python on the rows read: never SQL.
        if "errors" not in body and "(path: $p)" not in query:
            sent = repr([p for _, p in harness.statements])
            assert any(marker in sent for marker in markers), "the text never reached SQL"

    check()
