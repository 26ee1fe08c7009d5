"""Computed fields answer what the SQL functions of `schema.sql` answer.

On PostgreSQL the migrated database has the functions Hasura would call
(`invocation_success_rate`, `invocation_avg_job_duration`, `event_job_success_rate`);
the engine computes the same values as SQL expressions on both backends.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from detector.observability.models import POSTGRES_SCHEMA
from service.app import engine_config
from service.graphql import GraphQLEngine
from service.settings import Settings
from service.storage.database import Database
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.db import run

S = POSTGRES_SCHEMA


def test_computed_fields_equal_the_postgres_functions(postgres_url: str) -> None:
    from tests.support.db import prepare_database

    run(prepare_database(postgres_url))
    dataset = build_dataset()
    run(insert_dataset(postgres_url, dataset))

    async def compare() -> None:
        connection = await asyncpg.connect(postgres_url)
        database = Database(postgres_url)
        engine = GraphQLEngine(engine_config(Settings(database_url=postgres_url)), database)
        try:
            rows = await connection.fetch(
                f"SELECT i.id::text AS id, {S}.invocation_success_rate(i) AS rate, "
                f"{S}.invocation_avg_job_duration(i) AS average FROM {S}.invocations i"
            )
            functions = {row["id"]: (row["rate"], row["average"]) for row in rows}
            events = await connection.fetch(
                f"SELECT e.id::text AS id, {S}.event_job_success_rate(e) AS rate FROM {S}.event_executions e"
            )
            event_rates = {row["id"]: row["rate"] for row in events}
            result = await engine.execute(
                "{ invocations { id success_rate avg_job_duration } event_executions { id job_success_rate } }"
            )
            assert result.errors is None, result.errors
            for row in result.data["invocations"]:
                rate, average = functions[row["id"]]
                assert row["success_rate"] == float(rate)
                assert row["avg_job_duration"] == pytest.approx(float(average), rel=1e-15)
            for row in result.data["event_executions"]:
                assert row["job_success_rate"] == float(event_rates[row["id"]])
            assert len(functions) == len(dataset.invocations)
        finally:
            await connection.close()
            await database.dispose()

    asyncio.run(compare())
