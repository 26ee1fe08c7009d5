"""Multiplexed live queries: subscriptions that differ only in values share one statement.

Cohorts whose root field compiles to the same statement (same document, operation and
role; different variables or session variables) run together, `live_batch_size` of them
in one SQL statement, each answered under its own parameters. These tests count the
statements the service runs for one change, check that each subscriber still gets its
own answer (its own permissions included), and that a batch that fails falls back to
running each cohort alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.settings import Settings
from tests.support.db import prepare_database, run
from tests.support.live import insert_rows, subscribed, wait_until
from tests.support.metadata import metadata_with_function_filter
from tests.support.server import RunningServer, serving

BATCH_SIZE = 4
COUNT_BY_FUNCTION = """
subscription ($f: String!) {
  invocations_aggregate(where: {source_function: {_eq: $f}}) { aggregate { count } }
}"""
COUNT = "subscription { invocations_aggregate { aggregate { count } } }"


@pytest.fixture(scope="module")
def server(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # The viewer role sees only the invocations of its X-Hasura-Function session variable.
    metadata = metadata_with_function_filter(tmp_path_factory.mktemp("multiplex") / "metadata")
    settings = Settings(
        database_url=module_db_url,
        admin_secret="s",
        hasura_metadata_dir=metadata,
        rollup_interval=0,
        live_batch_size=BATCH_SIZE,
    )
    with serving(settings) as running:
        yield running


def _rows(counts: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {"id": str(uuid.uuid4()), "source_function": function, "status": "completed"}
        for function, count in counts.items()
        for _ in range(count)
    ]


async def _count_each(
    stack: contextlib.AsyncExitStack, server: RunningServer, functions: list[str]
) -> list[Any]:
    """One subscription counting the invocations of each function (as admin)."""
    admin = {"x-hasura-admin-secret": "s"}
    return [
        await stack.enter_async_context(
            subscribed(server.websocket_url, COUNT_BY_FUNCTION, {"f": f}, headers=admin)
        )
        for f in functions
    ]


def _count(result: dict[str, Any]) -> int:
    return int(result["invocations_aggregate"]["aggregate"]["count"])


async def test_cohorts_differing_in_variables_run_one_statement_per_batch(
    server: RunningServer, module_db_url: str
) -> None:
    live = server.app.state.live
    functions = [f"variables-{n}" for n in range(10)]
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = await _count_each(stack, server, functions)
        assert [_count(await s.next()) for s in subscriptions] == [0] * 10
        assert live.stats().cohorts == 10
        before = live.stats()
        statements = server.statements_executed
        # One commit from another connection: every cohort's table changed at once.
        await insert_rows(
            module_db_url, "invocations", _rows({f: n for n, f in enumerate(functions)})
        )
        answers = [await s.until(lambda r: _count(r) > 0) for s in subscriptions[1:]]
        assert [_count(a) for a in answers] == list(range(1, 10))
        await wait_until(lambda: live.stats().executions - before.executions >= 10)
        after = live.stats()
        # Ten cohorts, batches of four: three statements, not ten (nor thirty).
        assert after.batches - before.batches == 3
        assert after.executions - before.executions == 10
        assert server.statements_executed - statements == 3
        assert subscriptions[0].pending() == 0  # its count did not change: nothing sent


async def test_sessions_in_one_batch_see_only_what_their_permissions_allow(
    server: RunningServer, module_db_url: str
) -> None:
    live = server.app.state.live
    functions = [f"session-{n}" for n in range(3)]

    def viewer(function: str) -> dict[str, str]:
        return {
            "x-hasura-admin-secret": "s",
            "x-hasura-role": "viewer",
            "x-hasura-function": function,
        }

    async with contextlib.AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(
                subscribed(server.websocket_url, COUNT, headers=viewer(f))
            )
            for f in functions
        ]
        assert [_count(await s.next()) for s in subscriptions] == [0, 0, 0]
        before = live.stats()
        await insert_rows(module_db_url, "invocations", _rows({functions[1]: 2, functions[2]: 5}))
        assert _count(await subscriptions[1].next()) == 2
        assert _count(await subscriptions[2].next()) == 5
        await wait_until(lambda: live.stats().executions - before.executions >= 3)
        # The three sessions share one statement: one batch answered them all.
        assert live.stats().batches - before.batches == 1
        await asyncio.sleep(0.3)
        assert subscriptions[0].pending() == 0


async def test_a_batch_that_fails_runs_each_cohort_alone(
    server: RunningServer, module_db_url: str
) -> None:
    live = server.app.state.live
    functions = [f"fallback-{n}" for n in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = await _count_each(stack, server, functions)
        assert [_count(await s.next()) for s in subscriptions] == [0, 0, 0]
        # A parameter set no database can bind makes the next batch statement fail (as a
        # value the database rejects would): each cohort must then run on its own.
        broken = next(c for c in live._cohorts.values() if c.parameters == [functions[0]])
        broken.parameters = [object()]
        before = live.stats()
        await insert_rows(module_db_url, "invocations", _rows({f: 1 for f in functions}))
        assert [_count(await s.next()) for s in subscriptions] == [1, 1, 1]
        assert live.stats().batches == before.batches


def test_one_statement_answers_many_parameter_sets_on_its_own(tmp_path: Path) -> None:
    """The batch statement itself, outside the service: (set number, JSON) per set."""
    from service.app import engine_config
    from service.graphql import GraphQLEngine
    from service.storage.database import Database

    url = f"sqlite:///{tmp_path / 'batch.db'}"
    run(prepare_database(url))

    async def scenario() -> None:
        await insert_rows(url, "invocations", _rows({"a": 1, "b": 2}))
        database = Database(url)
        config = engine_config(Settings(database_url=url))
        # Compiled at its first request (not its second, as the service does).
        engine = GraphQLEngine(dataclasses.replace(config, compile_after=1), database)
        try:
            query = "query ($f: String!) { invocations(where: {source_function: {_eq: $f}}) { source_function } }"
            result = await engine.execute(query, {"f": "a"})
            assert result.data == {"invocations": [{"source_function": "a"}]}
            [compiled] = [entry for entry in engine.compiled._fields.values() if entry]
            batch = compiled.batch(engine.dialect)
            async with database.read() as conn:
                rows = (
                    await conn.execute(batch.statement, batch.values([["b"], ["a"], ["c"]]))
                ).all()
            assert sorted(rows) == [
                (0, '[{"source_function":"b"},{"source_function":"b"}]'),
                (1, '[{"source_function":"a"}]'),
                (2, "[]"),
            ]
        finally:
            await database.dispose()

    asyncio.run(scenario())
