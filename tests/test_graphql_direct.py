"""Queries answered straight from their compiled statements (`execution/direct.py`).

A query whose root fields were all answered by compiled statements is answered the next
time without the GraphQL executor. These tests hold that path to the executor: the same
bytes for the console's operations and for errors (the row cap, the response budget, bad
and undeclared variables), the executor for whatever it does not serve, the longest
statement sent first, and over a real server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from service.app import engine_config
from service.graphql import GraphQLEngine
from service.settings import Settings
from service.storage.database import Database
from tests.graphql_helpers import with_typename
from tests.support import db
from tests.support.console_operations import INVOCATION_DETAIL, INVOCATIONS_LIST, OVERVIEW_DASHBOARD
from tests.support.dataset import Dataset, build_dataset, insert_dataset
from tests.support.server import RunningServer, serving


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return build_dataset()


@pytest.fixture(scope="module")
def store(module_db_url: str, dataset: Dataset) -> str:
    db.run(insert_dataset(module_db_url, dataset))
    return module_db_url


@dataclasses.dataclass
class Engines:
    """One engine answering directly when it can, one always through the executor."""

    database: Database
    direct: GraphQLEngine
    executor: GraphQLEngine

    async def both(
        self, query: str, variables: dict[str, Any] | None = None, name: str | None = None
    ) -> bytes:
        """The body (as the transport encodes it) from both, asserting they are equal
        (but for the order of rows tied in `order_by`: the upstream dashboard orders
        `dashboard_stats` by hour alone, and its rows of one hour come in any order)."""
        bodies = []
        for engine in (self.direct, self.executor):
            result = await engine.schemas.execute(query, variables, engine.context(), None, name)
            bodies.append(orjson.dumps(engine.format(result)))
        assert _untied(bodies[0]) == _untied(bodies[1]), (query, bodies)
        return bodies[0]


def _untied(body: bytes) -> Any:
    answer = orjson.loads(body)
    stats = (answer.get("data") or {}).get("dashboard_stats")
    if stats is not None:
        stats.sort(key=orjson.dumps)
    return answer


def _engines(store: str, **config: Any) -> tuple[Database, GraphQLEngine, GraphQLEngine]:
    database = Database(store)
    settings = engine_config(Settings(database_url=store))
    direct = GraphQLEngine(dataclasses.replace(settings, **config), database)
    executor = GraphQLEngine(
        dataclasses.replace(settings, direct_execution=False, **config), database
    )
    return database, direct, executor


@pytest.fixture
async def engines(store: str) -> AsyncIterator[Engines]:
    database, direct, executor = _engines(store)
    try:
        yield Engines(database, direct, executor)
    finally:
        await database.dispose()


async def test_the_console_operations_answer_the_same_bytes(
    engines: Engines, dataset: Dataset
) -> None:
    now = datetime.now(UTC)
    requests = []
    for days in (1, 2, 5, 30):
        window = {
            "timeRange": (now - timedelta(days=days)).isoformat(),
            "timeRangeEnd": now.isoformat(),
        }
        requests.append((OVERVIEW_DASHBOARD, window))
    for status in ("completed", "failed", "running", "completed"):
        where = {"status": {"_eq": status}}
        requests.append((INVOCATIONS_LIST, {"limit": 5, "offset": 0, "where": where}))
    for invocation in dataset.invocations[:4]:
        requests.append((INVOCATION_DETAIL, {"id": invocation["id"]}))
    requests.append((INVOCATION_DETAIL, {"id": "00000000-0000-0000-0000-000000000000"}))
    for query, variables in requests:
        body = await engines.both(with_typename(query), variables)
        assert b'"errors"' not in body, body
    # Each operation's first request is row by row, its second compiles: from the third
    # on (values differ, shapes do not) the direct path answers: 2 + 2 + 3.
    assert engines.direct.direct is not None
    assert engines.direct.direct.answered == 7


async def test_what_it_does_not_serve_goes_to_the_executor(engines: Engines) -> None:
    direct = engines.direct.direct
    assert direct is not None
    queries = [
        # A root field answered row by row (a jsonb path), beside a compiled one.
        '{ invocations(limit: 2, order_by: {id: asc}) { id } i: invocations(limit: 1) { op: source_event_payload(path: "$.op") } }',
        # A directive on a root field, __typename at the root, a root field twice.
        "query ($skip: Boolean!) { invocations(limit: 2) @skip(if: $skip) { id } }",
        "{ __typename invocations(limit: 2, order_by: {id: asc}) { id } }",
        '{ a: invocations_by_pk(id: "00000000-0000-0000-0000-000000000000") { id }'
        ' b: invocations_by_pk(id: "00000000-0000-0000-0000-000000000001") { id } }',
    ]
    for query in queries:
        for _ in range(4):
            await engines.both(query, {"skip": False} if "$skip" in query else None)
    assert direct.answered == 0


BY_PK = "query ($id: uuid!) { invocations_by_pk(id: $id) { id status } }"
SINCE = (
    "query ($since: timestamptz!) {"
    "  invocations(where: {created_at: {_gte: $since}}, order_by: {id: asc}) { id"
    "  event_executions { id job_executions { id } } } }"
)
FUTURE, PAST = "2999-01-01T00:00:00+00:00", "2000-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("limits", "expected"),
    [({"max_rows": 30}, b"more than 30 rows"), ({"max_response_nodes": 40}, b"max_response_nodes")],
)
async def test_errors_are_the_executors(
    store: str, dataset: Dataset, limits: dict[str, int], expected: bytes
) -> None:
    """Bad and undeclared variables, and the row cap or the response budget, once the
    query is answered directly (36 invocations with their events and jobs: more rows
    than 30, more objects than 40)."""
    database, direct, executor = _engines(store, **limits)
    engines = Engines(database, direct, executor)
    try:
        for _ in range(3):
            await engines.both(BY_PK, {"id": dataset.invocations[0]["id"]})
            await engines.both(SINCE, {"since": FUTURE})
        assert direct.direct is not None and direct.direct.answered == 2
        for query, variables, error in (
            (BY_PK, {"id": "not-a-uuid"}, b"validation-failed"),
            (BY_PK, {"id": dataset.invocations[0]["id"], "other": 1}, b"unexpected variables"),
            (BY_PK, {}, b"validation-failed"),
            (SINCE, {"since": PAST}, expected),
        ):
            body = await engines.both(query, variables)
            assert b'"errors"' in body and error in body, (variables, body)
        assert direct.direct.answered == 2  # the errors of variables are the executor's
    finally:
        await database.dispose()


async def test_the_longest_statement_is_sent_first(postgres_url: str, dataset: Dataset) -> None:
    """On PostgreSQL, where a statement leaves at once (aiosqlite's thread hops make the
    order SQLite starts them in its threads', whatever the order they are given in)."""
    await db.prepare_database(postgres_url)
    await insert_dataset(postgres_url, dataset)
    database, direct, executor = _engines(postgres_url)
    try:
        await _longest_first(Engines(database, direct, executor))
    finally:
        await database.dispose()


async def _longest_first(engines: Engines) -> None:
    query = (
        "query ($since: timestamptz!) {"
        "  jobs: job_executions(where: {created_at: {_gte: $since}}, order_by: {id: asc}) { id }"
        "  invocations(where: {created_at: {_gte: $since}}, order_by: {id: asc}) { id } }"
    )
    engine = engines.direct
    since = {"since": "2000-01-01T00:00:00+00:00"}
    sent: list[str] = []

    def before_cursor_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append("job_executions" if "job_executions" in statement else "invocations")

    sync_engine = engines.database.read_engine.sync_engine
    sa.event.listen(sync_engine, "before_cursor_execute", before_cursor_execute)
    try:
        for _ in range(3):
            await engines.both(query, since)
        compiled = {f.table.name: f for f in engine.compiled._fields.values() if f is not None}
        assert engine.direct is not None and engine.direct.answered == 1
        # How long each took last time decides (set here: measured times are too close).
        for longest, shortest in (
            ("invocations", "job_executions"),
            ("job_executions", "invocations"),
        ):
            compiled[longest].seconds, compiled[shortest].seconds = 2.0, 1.0
            sent.clear()
            result = await engine.schemas.execute(query, since, engine.context(), None, None)
            assert sent == [longest, shortest]
            assert list(result.data or {}) == ["jobs", "invocations"]  # document order
        assert engine.direct.answered == 3
    finally:
        sa.event.remove(sync_engine, "before_cursor_execute", before_cursor_execute)


@pytest.fixture(scope="module")
def server(store: str) -> Iterator[RunningServer]:
    with serving(Settings(database_url=store)) as running:
        yield running


def test_a_served_query_is_answered_directly_over_http(
    server: RunningServer, dataset: Dataset
) -> None:
    engine: GraphQLEngine = server.app.state.engine
    direct = engine.direct
    assert direct is not None
    query = with_typename(INVOCATION_DETAIL)
    bodies = []
    for invocation in dataset.invocations[:5]:
        before = server.statements_executed
        bodies.append(server.post(query, {"id": invocation["id"]}))
        assert server.statements_executed - before <= 3
        assert bodies[-1]["data"]["invocations_by_pk"]["id"] == invocation["id"]
    assert direct.answered == 3  # the first is row by row, the second compiles
    assert server.post(query, {"id": "x"})["errors"][0]["extensions"]["code"] == (
        "validation-failed"
    )
    # Variables that are not an object: the executor's answer, not a server error.
    sent = server.client.post(server.graphql_url, json={"query": query, "variables": ["x"]})
    direct_answer = (sent.status_code, sent.json())
    engine.direct = None
    try:
        sent = server.client.post(server.graphql_url, json={"query": query, "variables": ["x"]})
    finally:
        engine.direct = direct
    assert direct_answer == (sent.status_code, sent.json()) and "errors" in direct_answer[1]
