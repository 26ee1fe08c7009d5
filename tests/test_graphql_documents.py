"""Root fields answered by one statement that builds their JSON in the database, compiled once.

The engine answers each root field with the JSON its database builds (`sql/documents.py`),
from a statement compiled once per document, operation, role and variable shape
(`execution/compiled.py`). These tests hold it to the row-by-row path
(`json_in_database=False`, one statement per level and rows shaped in Python): the same
answers, to the byte once parsed, for every scalar of every table, relationships with
their arguments, aggregates and their nodes, on both backends; and they check what the
cache may share: values, never what shapes the statement or what a session may see.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from service.app import engine_config
from service.graphql import GraphQLEngine
from service.graphql.catalog.metadata import Catalog, TableInfo
from service.graphql.catalog.scalars import COMPARABLE_SCALARS, NUMERIC_SCALARS
from service.graphql.execution.auth import Session
from service.graphql.sql.budget import budget_scope
from service.settings import Settings
from service.storage.database import Database
from tests.graphql_helpers import with_typename
from tests.support import db
from tests.support.console_operations import INVOCATION_DETAIL, INVOCATIONS_LIST, OVERVIEW_DASHBOARD
from tests.support.dataset import Dataset, build_dataset, insert_dataset
from tests.support.metadata import metadata_with_function_filter


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return build_dataset()


@pytest.fixture(scope="module")
def store(module_db_url: str, dataset: Dataset) -> str:
    db.run(insert_dataset(module_db_url, dataset))
    return module_db_url


@dataclasses.dataclass
class Engines:
    """The same catalog served both ways over one database."""

    database: Database
    json: GraphQLEngine
    rows: GraphQLEngine

    async def both(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The body from the JSON path, asserting the row-by-row path answers the same."""
        from_json = self.json.format(await self.json.execute(query, variables))
        from_rows = self.rows.format(await self.rows.execute(query, variables))
        assert from_json == from_rows, (query, _first_difference(from_json, from_rows))
        return from_json


def _first_difference(left: Any, right: Any, path: str = "$") -> str | None:
    """Where two JSON values first differ, and how (for a readable failure)."""
    if isinstance(left, dict) and isinstance(right, dict):
        if list(left) != list(right):
            return f"{path}: keys {list(left)} != {list(right)}"
        for key in left:
            found = _first_difference(left[key], right[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return f"{path}: {len(left)} items != {len(right)}"
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            found = _first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    if left != right or type(left) is not type(right):
        return f"{path}: {left!r} != {right!r}"
    return None


@pytest.fixture
async def engines(store: str) -> AsyncIterator[Engines]:
    database = Database(store)
    # The JSON engine compiles at a field's first request (the service waits for its
    # second), so every query here is answered by its compiled statement.
    config = dataclasses.replace(engine_config(Settings(database_url=store)), compile_after=1)
    try:
        yield Engines(
            database,
            GraphQLEngine(config, database),
            GraphQLEngine(dataclasses.replace(config, json_in_database=False), database),
        )
    finally:
        await database.dispose()


def _selection(table: TableInfo) -> str:
    fields = [column.field for column in table.columns.values()]
    fields += list(table.computed_fields)
    return " ".join(fields)


def _aggregates(table: TableInfo) -> str:
    numeric = [c.field for c in table.columns.values() if c.scalar in NUMERIC_SCALARS]
    comparable = [c.field for c in table.columns.values() if c.scalar in COMPARABLE_SCALARS]
    blocks = ["count", f"distinct: count(columns: [{comparable[0]}], distinct: true)"]
    if numeric:
        listed = " ".join(numeric)
        for operation in ("sum", "avg", "stddev", "stddev_pop", "var_samp", "variance"):
            blocks.append(f"{operation} {{ {listed} }}")
    for operation in ("max", "min"):
        blocks.append(f"{operation} {{ {' '.join(comparable)} }}")
    return " ".join(blocks)


def _tables(catalog: Catalog) -> Iterator[TableInfo]:
    for table in catalog.tables.values():
        if table.primary_key:
            yield table


async def test_every_scalar_of_every_table_reads_the_same_from_the_database_json(
    engines: Engines,
) -> None:
    catalog = engines.json.catalog
    answered: set[str] = set()
    for table in _tables(catalog):
        order = ", ".join(f"{{{table.columns[key].field}: asc}}" for key in table.primary_key)
        roots = catalog.naming.table(table).root_fields
        body = await engines.both(
            f"{{ {roots.select}(order_by: [{order}], limit: 40) {{ __typename {_selection(table)} }}"
            f" {roots.select_aggregate} {{ aggregate {{ {_aggregates(table)} }} }} }}"
        )
        assert "errors" not in body, (table.name, body)
        if body["data"][roots.select]:
            answered.add(table.name)
    assert {"invocations", "event_executions", "job_executions", "job_logs"} <= answered


async def test_numbers_are_strings_alike_when_stringified(store: str) -> None:
    database = Database(store)
    config = dataclasses.replace(
        engine_config(Settings(database_url=store, stringify_numeric_types=True)),
        compile_after=1,
    )
    engines = Engines(
        database,
        GraphQLEngine(config, database),
        GraphQLEngine(dataclasses.replace(config, json_in_database=False), database),
    )
    try:
        for table in _tables(config.catalog):
            roots = config.catalog.naming.table(table).root_fields
            body = await engines.both(
                f"{{ {roots.select}(limit: 40) {{ {_selection(table)} }}"
                f" {roots.select_aggregate} {{ aggregate {{ {_aggregates(table)} }} }} }}"
            )
            assert "errors" not in body, (table.name, body)
    finally:
        await database.dispose()


async def test_relationships_with_their_arguments_and_aggregates_read_the_same(
    engines: Engines, dataset: Dataset
) -> None:
    wide = " ".join(f"a{n}: id" for n in range(60))  # beyond one json_build_object call
    queries = [
        "{ invocations(order_by: {created_at: desc}, limit: 6) { id"
        "  event_executions(order_by: {created_at: asc}, limit: 1, offset: 1) { id event_name }"
        '  job_executions_aggregate(where: {status: {_eq: "completed"}}) {'
        "    aggregate { count max { duration_ms } avg { duration_ms } } nodes { id job_name } }"
        "  logs(order_by: [{created_at: asc}, {seq: asc}], limit: 2) { message } } }",
        "{ job_executions(distinct_on: job_name, order_by: [{job_name: asc}, {created_at: desc}])"
        "  { job_name created_at invocation { id status source_function } } }",
        "{ job_executions(order_by: {id: asc}, limit: 8) { id event_execution { event_name"
        "  invocation { correlation_id event_executions_aggregate { aggregate { count } } } } } }",
        f"{{ invocations(order_by: {{id: asc}}, limit: 2) {{ {wide} }} }}",
        "{ invocations_aggregate(order_by: {created_at: asc}, limit: 5, offset: 2) {"
        "  aggregate { count sum { total_jobs_run } } nodes { id created_at } } }",
        "{ invocations(where: {event_executions: {detected: {_eq: true}}}, order_by:"
        "  [{total_duration_ms: desc_nulls_last}, {id: asc}]) { id total_duration_ms } }",
        # Lists of objects whose members are constants first, last, between values or
        # only constants; lists with no rows (PostgreSQL writes the constants between two
        # rows once, as string_agg's separator).
        "{ invocations(order_by: {id: asc}, limit: 3) { __typename id t: __typename"
        "  event_executions(order_by: {id: asc}) { __typename }"
        '  none: event_executions(where: {event_name: {_eq: "no such event"}}) { id __typename }'
        "  job_executions_aggregate(order_by: {id: asc}) { nodes { __typename id t: __typename"
        "  job_name } } } }",
        "{ invocations(where: {id: {_is_null: true}}) { __typename id }"
        "  invocations_aggregate(where: {id: {_is_null: true}}) { nodes { id __typename } } }",
        # A jsonb path is answered row by row; the answer is the same.
        '{ invocations(order_by: {id: asc}, limit: 3) { id op: source_event_payload(path: "$.op") } }',
    ]
    for query in queries:
        body = await engines.both(query)
        assert "errors" not in body, (query, body)
    missing = await engines.both(
        '{ invocations_by_pk(id: "00000000-0000-0000-0000-000000000000") { id } }'
    )
    assert missing == {"data": {"invocations_by_pk": None}}
    now = datetime.now(UTC)
    window = {"timeRange": (now - timedelta(days=5)).isoformat(), "timeRangeEnd": now.isoformat()}
    for query, variables in (
        (OVERVIEW_DASHBOARD, window),
        (INVOCATIONS_LIST, {"limit": 10, "offset": 5}),
        (INVOCATION_DETAIL, {"id": dataset.invocations[3]["id"]}),
    ):
        body = await engines.both(with_typename(query), variables)
        assert "errors" not in body, body


async def test_requests_differing_in_values_share_one_compiled_statement(
    engines: Engines, dataset: Dataset
) -> None:
    engine = engines.json
    query = "query ($id: uuid!) { invocations_by_pk(id: $id) { id status } }"
    for invocation in dataset.invocations[:6]:
        result = await engine.execute(query, {"id": invocation["id"]})
        assert result.data == {
            "invocations_by_pk": {"id": invocation["id"], "status": invocation["status"]}
        }
    assert engine.compiled.compilations == 1
    assert engine.compiled.hits == 5


async def test_a_variable_that_shapes_the_statement_is_part_of_the_key(engines: Engines) -> None:
    engine = engines.json
    query = "query ($n: Int) { invocations(limit: $n, order_by: {created_at: asc}) { id } }"
    for n in (1, 2, 3, 1, 2):
        result = await engine.execute(query, {"n": n})
        assert len(result.data["invocations"]) == n
    # `limit` is checked against the row cap in Python: it shapes the statement, so each
    # value compiles once (the first one twice: once to learn it) and repeats hit.
    assert engine.compiled.compilations == 4
    assert engine.compiled.hits == 2


async def test_a_variable_shape_is_compiled_at_its_second_request(
    store: str, engines: Engines
) -> None:
    """Compiling costs several row-by-row answers: a shape sent once (a filter combination
    tried once) is answered row by row, and each shape is compiled at its second request,
    whatever the values in it."""
    engine = GraphQLEngine(engine_config(Settings(database_url=store)), engines.database)
    assert engine.config.compile_after == 2
    query = (
        "query ($where: invocations_bool_exp) {"
        "  invocations(where: $where, order_by: {id: asc}) { id status } }"
    )
    shapes = [
        {"status": {"_eq": "completed"}},
        {"source_function": {"_eq": "orders_handler"}},
        {"status": {"_neq": "completed"}, "total_jobs_run": {"_gt": 0}},
    ]
    again = [
        {"status": {"_eq": "failed"}},  # the first shape, another value
        {"source_function": {"_eq": "users_handler"}},
        {"status": {"_neq": "failed"}, "total_jobs_run": {"_gt": 1}},
    ]

    async def answer(where: dict[str, Any]) -> Any:
        result = await engine.execute(query, {"where": where})
        expected = await engines.rows.execute(query, {"where": where})
        assert result.errors is None and result.data == expected.data
        return result.data

    for where in shapes:
        await answer(where)
    assert engine.compiled.compilations == 0
    for where in again:
        assert (await answer(where))["invocations"], where  # rows, not an empty answer
    assert engine.compiled.compilations == 3
    await answer(shapes[0])
    assert (engine.compiled.compilations, engine.compiled.hits) == (3, 1)


def test_sessions_share_a_statement_and_see_only_their_rows(
    module_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    metadata = metadata_with_function_filter(tmp_path / "metadata")
    dataset = build_dataset()

    async def scenario(url: str) -> None:
        await insert_dataset(url, dataset)
        database = Database(url)
        config = engine_config(Settings(database_url=url, hasura_metadata_dir=metadata))
        engine = GraphQLEngine(dataclasses.replace(config, compile_after=1), database)
        query = "{ invocations_aggregate { aggregate { count } } invocations { source_function } }"
        try:
            for function in ("orders_handler", "users_handler", "orders_handler", "nobody"):
                session = Session("viewer", {"x-hasura-function": function})
                result = await engine.execute(query, session=session)
                expected = [i for i in dataset.invocations if i["source_function"] == function]
                assert result.data["invocations_aggregate"]["aggregate"]["count"] == len(expected)
                assert len(result.data["invocations"]) == len(expected)
                assert {row["source_function"] for row in result.data["invocations"]} <= {function}
            # One statement per root field, whatever the session: its values are parameters.
            assert engine.compiled.compilations == 2
            missing = await engine.execute(query, session=Session("viewer", {}))
            assert missing.errors and "x-hasura-function" in missing.errors[0].message
        finally:
            await database.dispose()

    with db.database_for(module_backend, request, tmp_path / "store") as url:
        asyncio.run(scenario(url))


# -- the response budget ----------------------------------------------------------------------


async def test_the_budget_refuses_the_same_answers_on_both_paths(engines: Engines) -> None:
    """A compiled answer is charged what it holds: over the budget, the same refusal."""
    query = "{ job_executions { id logs { id } } }"
    whole = await engines.both(query)
    size = sum(1 + len(job["logs"]) for job in whole["data"]["job_executions"])
    for limit, refused in ((size, False), (size - 1, True)):
        bodies = []
        for engine in (engines.json, engines.rows):
            with budget_scope(limit):
                bodies.append(engine.format(await engine.execute(query)))
        if refused:
            # The same error; row by row names the level that overran, compiled the field.
            [error], [row_error] = bodies[0]["errors"], bodies[1]["errors"]
            assert error["message"] == row_error["message"]
            assert f"more than {limit} rows and objects" in error["message"]
            assert error["extensions"] == {
                "code": "validation-failed",
                "path": "$.selectionSet.job_executions",
            }
            assert row_error["extensions"]["path"].startswith(error["extensions"]["path"])
        else:
            assert bodies[0] == bodies[1] and "errors" not in bodies[0]


async def test_shapes_that_could_amplify_are_built_row_by_row(engines: Engines) -> None:
    """Back to a table already on the path, or one relationship listed twice under one
    parent: row by row, where shared rows are loaded once and the budget refuses before
    building. Aggregates without nodes, and object relationships once each, compile."""
    cases = {
        "{ job_logs(limit: 3) { id invocation { id logs { id } } } }": False,
        "{ invocations(limit: 3) { a: event_executions { id } b: event_executions { id } } }": False,
        "{ invocations(limit: 3) { id a: event_executions_aggregate { aggregate { count } }"
        " b: event_executions_aggregate { aggregate { count } } } }": True,
        "{ invocations(limit: 3) { event_executions { job_executions { logs { id } } } } }": True,
    }
    for query, compiles in cases.items():
        await engines.both(query)  # the same answer either way
        before = engines.database.statements_executed
        await engines.json.execute(query)
        statements = engines.database.statements_executed - before
        assert (statements == 1) == compiles, (query, statements)


async def test_answers_are_counted_exactly_near_the_limit(engines: Engines) -> None:
    """Root fields charge an upper bound of what they hold until the bounds would overrun
    the budget; then they are counted exactly: a request that fits exactly is answered."""
    # Thirty aliases: an answer's bound (its length over the 8 characters of the
    # smallest object, `{"id":x}`) is several times what it holds, so the bounds of the
    # first few alone reach the limit.
    query = "{ " + " ".join(
        f"a{n}: job_logs {{ id message invocation {{ id }} }}" for n in range(30)
    )
    query += " }"
    whole = await engines.both(query)
    size = sum(1 + (row["invocation"] is not None) for a in whole["data"].values() for row in a)
    for limit, refused in ((size, False), (size - 1, True)):
        with budget_scope(limit) as budget:
            body = engines.json.format(await engines.json.execute(query))
        assert ("errors" in body) == refused, (limit, body.get("errors"))
        if not refused:
            assert body == whole and budget is not None and budget.used + budget.pending >= size
