"""Compiled statements run through the driver (`sql.prepared`) as SQLAlchemy would run them.

On both backends, with the types whose values SQLAlchemy processes before the driver sees
them (uuid, timestamptz, jsonb, booleans), the schema map of PostgreSQL, the statement's
own binds (limits) and an expanding `IN` (which has no fixed text, so goes the usual way);
and binds named in place (`name_bind`) as SQLAlchemy's named binds are.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from service.graphql.sql.prepared import DriverStatement, DriverStatements, name_bind
from service.storage.database import Database
from service.storage.maintenance import invocations
from tests.support import db
from tests.support.dataset import build_dataset, insert_dataset


@pytest.fixture(scope="module")
def store(module_db_url: str) -> str:
    db.run(insert_dataset(module_db_url, build_dataset(invocations=30)))
    return module_db_url


@pytest.fixture
async def database(store: str) -> AsyncIterator[Database]:
    opened = Database(store)
    try:
        yield opened
    finally:
        await opened.dispose()


def _statement() -> sa.Select[tuple[int]]:
    table = invocations
    return sa.select(sa.func.count()).select_from(
        sa.select(table.c.id)
        .where(
            table.c.created_at >= sa.bindparam("p0", type_=table.c.created_at.type),
            table.c.id != sa.bindparam("p1", type_=table.c.id.type),
            table.c.source_event_payload.is_not(None),
        )
        .order_by(table.c.created_at)
        .limit(15)
        .subquery()
    )


async def test_the_driver_answers_as_sqlalchemy_does(database: Database) -> None:
    statement = _statement()
    async with database.read() as conn:
        times = (
            await conn.execute(sa.select(invocations.c.created_at).order_by("created_at"))
        ).scalars()
        # A time inside the data: the count depends on the comparison being right.
        values = {"p0": list(times)[-10], "p1": str(uuid.uuid4())}
        expected = (await conn.execute(statement, values)).scalar()
        before = database.statements_executed
        driven = await DriverStatements(statement).execute(conn, values)
        assert database.statements_executed == before + 1  # the events still see it
        assert driven.scalar() == expected and 0 < expected <= 10
        prepared = DriverStatement.compile(
            statement,
            conn.dialect,
            conn.sync_engine.get_execution_options().get("schema_translate_map"),
        )
    assert prepared is not None
    if database.dialect == "postgresql":
        assert "event_detector_observability.invocations" in prepared.sql


async def test_a_statement_without_fixed_text_runs_the_usual_way(database: Database) -> None:
    statement = sa.select(sa.func.count()).where(
        invocations.c.status.in_(sa.bindparam("p0", expanding=True))
    )
    async with database.read() as conn:
        assert DriverStatement.compile(statement, conn.dialect, None) is None
        expected = (await conn.execute(statement, {"p0": ["completed", "failed"]})).scalar()
        result = await DriverStatements(statement).execute(conn, {"p0": ["completed", "failed"]})
        assert result.scalar() == expected and expected > 0


def test_the_sqlalchemy_compiler_has_what_driver_statements_read() -> None:
    """`DriverStatement` reads these of SQLAlchemy's compiled statements."""
    compiled = _statement().compile(dialect=sa.create_engine("sqlite://").dialect)
    for name in ("positiontup", "literal_execute_params", "post_compile_params"):
        assert hasattr(compiled, name), f"SQLCompiler.{name} is gone: sql/prepared.py reads it"
    assert isinstance(compiled._bind_processors, dict)  # type: ignore[attr-defined]
    assert compiled.construct_params({"p0": 1, "p1": "x"})["p1"] == "x"


def _with_values(since: object, job: object, other_job: object) -> sa.Select[tuple[int]]:
    """A count over invocations bound to `since`, `job` and `other_job` (anonymous binds of
    values, as a statement builder makes them, or named binds)."""
    table = invocations
    return sa.select(sa.func.count()).select_from(
        sa.select(table.c.id)
        .where(
            table.c.created_at >= since,
            table.c.id != job,
            table.c.source_job_id != other_job,
        )
        .order_by(table.c.created_at)
        .limit(15)
        .subquery()
    )


def test_a_bind_named_in_place_is_a_named_bind() -> None:
    """`name_bind` makes a value's anonymous bind what `sa.bindparam(name)` is: the same
    text on both dialects, the same cache key, and a required parameter (a value missing
    at execution is an error, never the value it was built with)."""
    since, job = datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4()
    built = _with_values(since, job, job)
    names = {since: "p0", job: "p1"}  # the limit's own bind (15) keeps its value
    for element in visitors.iterate(built):
        if isinstance(element, BindParameter) and element.value in names:
            name_bind(element, names[element.value])
    table = invocations
    expected = _with_values(
        sa.bindparam("p0", type_=table.c.created_at.type),
        sa.bindparam("p1", type_=table.c.id.type),
        sa.bindparam("p1", type_=table.c.source_job_id.type),
    )
    for dialect in (sa.create_engine("sqlite://").dialect, postgresql.dialect()):
        assert str(built.compile(dialect=dialect)) == str(expected.compile(dialect=dialect))
    assert built._generate_cache_key() == expected._generate_cache_key()
    compiled = built.compile(dialect=postgresql.dialect())
    assert compiled.construct_params({"p0": since, "p1": job})["param_1"] == 15
    with pytest.raises(sa.exc.InvalidRequestError, match="p1"):
        compiled.construct_params({"p0": since}, _check=True)
