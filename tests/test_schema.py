"""The three copies of the schema agree: the models, `schema.sql` and the migrations.

- a migrated database (PostgreSQL and SQLite) matches the models: tables, columns, types,
  nullability, defaults, CHECK constraints, indexes, foreign keys (alembic's autogenerate
  comparison plus the checks it does not make);
- a PostgreSQL database built from `schema.sql` equals a migrated one, catalog entry by
  catalog entry (columns, constraints, indexes, triggers, functions, the materialized view);
- upgrading is idempotent, and `migrate` recognises a database built from `schema.sql`.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from detector.observability import migrate
from detector.observability.models import POSTGRES_SCHEMA, metadata
from detector.status import EventStatus, InvocationStatus, JobStatus, LogLevel, Operation, values
from tests.support.db import async_url

SCHEMA_SQL = Path(__file__).resolve().parents[1] / "schema.sql"
# change_counters: SQLite's per-table change counters for live queries (revision 0002),
# not a model; checked by tests/test_live_changes.py.
NOT_TABLES = {"alembic_version", "change_counters"}
# dashboard_stats is a materialized view on PostgreSQL (checked through the catalog below).
VIEWS = {"dashboard_stats"}


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if type_ == "index":
        # Compared by `_indexes` (alembic cannot compare `created_at DESC` indexes).
        return False
    if type_ == "table":
        return name not in NOT_TABLES and name not in VIEWS
    table = getattr(obj, "table", None)
    return table is None or table.name not in VIEWS


def _model_diffs(connection: sa.Connection) -> list[Any]:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET search_path TO {POSTGRES_SCHEMA}")
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_object": _include,
        },
    )
    return compare_metadata(context, metadata)


def _check_constraints(connection: sa.Connection) -> dict[str, set[str]]:
    """CHECK constraint name → the set of values it accepts (plus `NULL` if it does)."""
    schema = POSTGRES_SCHEMA if connection.dialect.name == "postgresql" else None
    inspector = sa.inspect(connection)
    found: dict[str, set[str]] = {}
    for table in metadata.sorted_tables:
        if table.name in VIEWS:
            continue
        for check in inspector.get_check_constraints(table.name, schema=schema):
            found[check["name"]] = _accepted(check["sqltext"])
    return found


def _accepted(sqltext: str) -> set[str]:
    accepted = set(re.findall(r"'([^']*)'", sqltext))
    if "IS NULL" in sqltext.upper():
        accepted.add("NULL")
    return accepted


def _model_checks() -> dict[str, set[str]]:
    found = {}
    for table in metadata.sorted_tables:
        for constraint in table.constraints:
            if isinstance(constraint, sa.CheckConstraint):
                found[str(constraint.name)] = _accepted(str(constraint.sqltext))
    return found


IndexSpec = tuple[bool, tuple[tuple[str, bool], ...]]


def _model_indexes() -> dict[str, IndexSpec]:
    """Index name → (unique, ((column, descending), ...)) as the models declare them."""
    found = {}
    for table in metadata.sorted_tables:
        for index in table.indexes:
            columns = []
            for element in index.expressions:
                text = str(element) if not isinstance(element, str) else element
                name, _, order = text.partition(" ")
                columns.append((name.split(".")[-1], order.upper() == "DESC"))
            found[str(index.name)] = (bool(index.unique), tuple(columns))
    return found


def _db_indexes(connection: sa.Connection) -> dict[str, IndexSpec]:
    postgres = connection.dialect.name == "postgresql"
    schema = POSTGRES_SCHEMA if postgres else None
    inspector = sa.inspect(connection)
    found = {}
    for table in metadata.sorted_tables:
        for index in inspector.get_indexes(table.name, schema=schema):
            if index.get("duplicates_constraint"):
                continue  # a UNIQUE constraint's own index
            if postgres:
                sorting = index.get("column_sorting", {})
                descending = {c: "desc" in sorting.get(c, ()) for c in index["column_names"]}
            else:
                sql = connection.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (index["name"],)
                ).scalar_one()
                descending = {c: f"{c} DESC" in sql for c in index["column_names"]}
            columns = tuple((c, descending[c]) for c in index["column_names"])
            found[index["name"]] = (bool(index["unique"]), columns)
    return found


async def _on_connection(url: str, work: Any) -> Any:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


async def test_migrated_database_matches_the_models(empty_db_url: str) -> None:
    assert await migrate.upgrade_async(empty_db_url) == migrate.head_revision()

    diffs = await _on_connection(empty_db_url, _model_diffs)
    assert diffs == []
    checks = await _on_connection(empty_db_url, _check_constraints)
    assert checks == _model_checks()
    indexes = await _on_connection(empty_db_url, _db_indexes)
    assert indexes == _model_indexes()


def _foreign_keys(connection: sa.Connection) -> dict[str, set[tuple[str, str, str | None]]]:
    """Table → {(column, referenced table, ON DELETE)} of the database's foreign keys."""
    schema = POSTGRES_SCHEMA if connection.dialect.name == "postgresql" else None
    inspector = sa.inspect(connection)
    found: dict[str, set[tuple[str, str, str | None]]] = {}
    for table in metadata.sorted_tables:
        if table.name in VIEWS:
            continue
        found[table.name] = {
            (
                fk["constrained_columns"][0],
                fk["referred_table"],
                (fk.get("options") or {}).get("ondelete"),
            )
            for fk in inspector.get_foreign_keys(table.name, schema=schema)
        }
    return found


def _trigger_names(connection: sa.Connection, table: str) -> set[str]:
    """SQLite: the names of the triggers on `table`."""
    rows = connection.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (table,)
    )
    return set(rows.scalars())


# The enforced foreign keys, all ON DELETE CASCADE. job_executions.invocation_id has none
# (SPEC §6 flush throughput; revision 0003): jobs go with their event executions.
FOREIGN_KEYS = {
    "event_executions": {("invocation_id", "invocations", "CASCADE")},
    "job_executions": {("event_execution_id", "event_executions", "CASCADE")},
}


async def test_only_the_cascading_parent_links_are_enforced(empty_db_url: str) -> None:
    await migrate.upgrade_async(empty_db_url)
    found = await _on_connection(empty_db_url, _foreign_keys)
    assert {table: fks for table, fks in found.items() if fks} == FOREIGN_KEYS
    assert not metadata.tables["job_executions"].c.invocation_id.foreign_keys
    assert "job_executions_invocation_id_fkey" not in SCHEMA_SQL.read_text()


JOB_ROWS = 3


async def _insert_a_job_tree(url: str) -> str:
    """One invocation, one event execution and `JOB_ROWS` jobs; returns the invocation id."""
    invocation, event = str(uuid.uuid4()), str(uuid.uuid4())
    engine = create_async_engine(async_url(url))
    prefix = f"{POSTGRES_SCHEMA}." if url.startswith("postgresql") else ""
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(f"INSERT INTO {prefix}invocations (id, source_function) VALUES (:i, 'f')"),
                {"i": invocation},
            )
            await conn.execute(
                sa.text(
                    f"INSERT INTO {prefix}event_executions (id, invocation_id, event_name) "
                    "VALUES (:e, :i, 'e')"
                ),
                {"e": event, "i": invocation},
            )
            await conn.execute(
                sa.text(
                    f"INSERT INTO {prefix}job_executions (id, invocation_id, event_execution_id, "
                    "job_name) VALUES (:j, :i, :e, 'j')"
                ),
                [{"j": str(uuid.uuid4()), "i": invocation, "e": event} for _ in range(JOB_ROWS)],
            )
    finally:
        await engine.dispose()
    return invocation


async def _count_jobs(url: str, invocation: str) -> int:
    prefix = f"{POSTGRES_SCHEMA}." if url.startswith("postgresql") else ""

    def count(connection: sa.Connection) -> int:
        return int(
            connection.execute(
                sa.text(f"SELECT count(*) FROM {prefix}job_executions WHERE invocation_id = :i"),
                {"i": invocation},
            ).scalar_one()
        )

    return int(await _on_connection(url, count))


async def test_revision_0003_keeps_jobs_indexes_and_change_counters(empty_db_url: str) -> None:
    sqlite = empty_db_url.startswith("sqlite")
    assert await migrate.upgrade_async(empty_db_url, "0002") == "0002"
    invocation = await _insert_a_job_tree(empty_db_url)
    before = await _on_connection(empty_db_url, _foreign_keys)
    assert ("invocation_id", "invocations", "CASCADE") in before["job_executions"]

    assert await migrate.upgrade_async(empty_db_url) == migrate.head_revision()
    assert await _count_jobs(empty_db_url, invocation) == JOB_ROWS
    after = await _on_connection(empty_db_url, _foreign_keys)
    assert after["job_executions"] == FOREIGN_KEYS["job_executions"]
    # The SQLite rebuild keeps every index (created_at DESC included) and constraint.
    assert await _on_connection(empty_db_url, _db_indexes) == _model_indexes()
    assert await _on_connection(empty_db_url, _check_constraints) == _model_checks()
    assert await _on_connection(empty_db_url, _model_diffs) == []
    if sqlite:
        triggers = await _on_connection(empty_db_url, lambda c: _trigger_names(c, "job_executions"))
        assert triggers == {f"job_executions_count_{op}" for op in ("insert", "update", "delete")}
        path = migrate.sqlite_path(empty_db_url)
        counted = _job_counter(path)
        await _insert_a_job_tree(empty_db_url)
        assert _job_counter(path) == counted + JOB_ROWS  # the rebuilt table's triggers fire

    # Downgrading puts the foreign key back (and, on SQLite, the triggers stay).
    assert await asyncio.to_thread(migrate.downgrade, empty_db_url, "0002") == "0002"
    restored = await _on_connection(empty_db_url, _foreign_keys)
    assert restored["job_executions"] == before["job_executions"]
    assert await _count_jobs(empty_db_url, invocation) == JOB_ROWS
    if sqlite:
        triggers = await _on_connection(empty_db_url, lambda c: _trigger_names(c, "job_executions"))
        assert len(triggers) == 3
        indexes = await _on_connection(empty_db_url, _db_indexes)
        assert indexes["idx_job_executions_created_at"] == (False, (("created_at", True),))


async def _set_event_status(url: str, invocation: str, status: str) -> None:
    prefix = f"{POSTGRES_SCHEMA}." if url.startswith("postgresql") else ""
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    f"UPDATE {prefix}event_executions SET status = :s WHERE invocation_id = :i"
                ),
                {"s": status, "i": invocation},
            )
    finally:
        await engine.dispose()


async def test_revision_0005_widens_the_event_status_check_and_keeps_every_row(
    empty_db_url: str,
) -> None:
    sqlite = empty_db_url.startswith("sqlite")
    assert await migrate.upgrade_async(empty_db_url) == migrate.head_revision()
    invocation = await _insert_a_job_tree(empty_db_url)
    for status in ("timeout", "skipped"):
        await _set_event_status(empty_db_url, invocation, status)
    # The constraint changed in place: no job row went with a rebuilt parent table.
    assert await _count_jobs(empty_db_url, invocation) == JOB_ROWS
    checks = await _on_connection(empty_db_url, _check_constraints)
    assert checks["event_executions_status_check"] == set(values(EventStatus))
    if sqlite:
        triggers = await _on_connection(
            empty_db_url, lambda c: _trigger_names(c, "event_executions")
        )
        assert len(triggers) == 3

    # Downgrading maps the new values to what was recorded before, then narrows the check.
    assert await asyncio.to_thread(migrate.downgrade, empty_db_url, "-1") != "0005"
    assert await _count_jobs(empty_db_url, invocation) == JOB_ROWS
    checks = await _on_connection(empty_db_url, _check_constraints)
    assert "skipped" not in checks["event_executions_status_check"]
    prefix = "" if sqlite else f"{POSTGRES_SCHEMA}."
    statuses = await _on_connection(
        empty_db_url,
        lambda c: set(c.exec_driver_sql(f"SELECT status FROM {prefix}event_executions").scalars()),
    )
    assert statuses == {"not_detected"}
    with pytest.raises(sa.exc.IntegrityError):
        await _set_event_status(empty_db_url, invocation, "skipped")
    assert await migrate.upgrade_async(empty_db_url) == migrate.head_revision()
    assert await _on_connection(empty_db_url, _model_diffs) == []


def _job_counter(path: str) -> int:
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT changes FROM change_counters WHERE table_name = 'job_executions'"
        ).fetchone()
    return int(row[0])


def test_check_constraints_accept_exactly_the_status_values() -> None:
    checks = _model_checks()
    assert checks["invocations_status_check"] == set(values(InvocationStatus))
    assert checks["event_executions_status_check"] == set(values(EventStatus))
    assert checks["job_executions_status_check"] == set(values(JobStatus))
    assert checks["job_logs_level_check"] == set(values(LogLevel))
    assert checks["invocations_source_operation_check"] == {*values(Operation), "NULL"}


async def test_sqlite_dashboard_stats_is_a_table_with_the_view_columns(sqlite_url: str) -> None:
    await migrate.upgrade_async(sqlite_url)

    def columns(connection: sa.Connection) -> tuple[list[str], list[Any]]:
        inspector = sa.inspect(connection)
        names = [c["name"] for c in inspector.get_columns("dashboard_stats")]
        return names, inspector.get_indexes("dashboard_stats")

    names, indexes = await _on_connection(sqlite_url, columns)
    assert names == [c.name for c in metadata.tables["dashboard_stats"].columns]
    unique = [i for i in indexes if i["unique"]]
    assert [i["column_names"] for i in unique] == [["hour_bucket", "source_function"]]


CATALOG_QUERIES = {
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'm') AND a.attnum > 0
          AND NOT a.attisdropped
        ORDER BY 1, a.attnum""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = $1::regnamespace ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = $1 ORDER BY 1, 2""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal ORDER BY 1, 2""",
    "functions": """
        SELECT p.proname, pg_get_functiondef(p.oid), p.provolatile
        FROM pg_proc p WHERE p.pronamespace = $1::regnamespace ORDER BY 1""",
    "views": """
        SELECT matviewname, pg_get_viewdef((schemaname || '.' || matviewname)::regclass)
        FROM pg_matviews WHERE schemaname = $1""",
    "comments": """
        SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c
        WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'm') ORDER BY 1""",
}


async def _catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(url)
    try:
        catalog = {}
        for name, query in CATALOG_QUERIES.items():
            rows = await conn.fetch(query, POSTGRES_SCHEMA)
            # Function bodies may differ in surrounding whitespace only.
            catalog[name] = [
                tuple(re.sub(r"\s+", " ", v).strip() if isinstance(v, str) else v for v in row)
                for row in rows
            ]
        return catalog
    finally:
        await conn.close()


@pytest.fixture
def second_postgres_url(postgres_admin_url: str) -> Any:
    from tests.support import db

    url = db.run(db.create_postgres_database(postgres_admin_url))
    yield url
    db.run(db.drop_postgres_database(postgres_admin_url, url))


async def _load_schema_sql(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA_SQL.read_text())
    finally:
        await conn.close()


async def test_schema_sql_equals_the_migrated_postgres_database(
    postgres_url: str, second_postgres_url: str
) -> None:
    await migrate.upgrade_async(postgres_url)
    await _load_schema_sql(second_postgres_url)
    # Loading it twice is harmless (idempotent).
    await _load_schema_sql(second_postgres_url)

    migrated, from_file = await asyncio.gather(
        _catalog(postgres_url), _catalog(second_postgres_url)
    )
    for part in CATALOG_QUERIES:
        assert from_file[part] == migrated[part], part
    # And what the catalogue holds is what the brief asks for.
    assert {row[0] for row in migrated["functions"]} >= {
        "invocation_success_rate",
        "invocation_avg_job_duration",
        "event_job_success_rate",
        "set_updated_at",
        "notify_change",
    }
    assert migrated["views"][0][0] == "dashboard_stats"
    notify = [row for row in migrated["triggers"] if row[1].endswith("_notify_change")]
    assert {row[0] for row in notify} == {
        t.name for t in metadata.sorted_tables if t.name not in VIEWS
    }
    assert all("FOR EACH STATEMENT" in row[2] for row in notify)

    # migrate knows where a schema.sql database stands and leaves it alone.
    assert await migrate.current_revision_async(second_postgres_url) == migrate.head_revision()
    assert await migrate.upgrade_async(second_postgres_url) == migrate.head_revision()
    assert await _catalog(second_postgres_url) == migrated


# PostgreSQL's names for the types (`format_type`) → the light description's.
_TYPE_NAMES = {"timestamp with time zone": "timestamptz", "double precision": "float8"}


async def test_the_light_table_description_matches_the_models_and_schema_sql(
    postgres_url: str,
) -> None:
    """`tables` (what the writers read, without SQLAlchemy) says what the models say,
    column by column and in order, and what a database built from `schema.sql` holds;
    its HEAD_REVISION is the newest migration."""
    from detector.observability import tables
    from detector.observability.models import TABLES
    from detector.observability.sqltypes import pg_type_name

    from_models = {
        model.__table__.name: [(c.name, pg_type_name(c.type)) for c in model.__table__.columns]
        for model in TABLES
    }
    described = {table: list(columns.items()) for table, columns in tables.COLUMNS.items()}
    assert described == from_models
    assert list(described) == list(from_models)  # foreign-key order
    assert tables.HEAD_REVISION == migrate.head_revision()
    assert tables.TABLES_WITH_UPDATED_AT == {
        t for t, columns in described.items() if "updated_at" in dict(columns)
    }

    await _load_schema_sql(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch(CATALOG_QUERIES["columns"], POSTGRES_SCHEMA)
    finally:
        await conn.close()
    in_database: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_name, _, _ in rows:
        if table not in NOT_TABLES:
            kind = _TYPE_NAMES.get(type_name, type_name.split("(")[0])
            in_database.setdefault(table, []).append((column, kind))
    assert in_database == described


async def test_upgrade_is_idempotent_and_downgrade_reverses_it(empty_db_url: str) -> None:
    assert await migrate.current_revision_async(empty_db_url) is None
    head = migrate.head_revision()
    assert await migrate.upgrade_async(empty_db_url) == head
    assert await migrate.upgrade_async(empty_db_url) == head
    assert await asyncio.to_thread(migrate.downgrade, empty_db_url, "base") is None
    assert await migrate.upgrade_async(empty_db_url) == head
    assert await _on_connection(empty_db_url, _model_diffs) == []


async def test_concurrent_upgrades_do_not_collide(empty_db_url: str) -> None:
    head = migrate.head_revision()
    results = await asyncio.gather(*(migrate.upgrade_async(empty_db_url) for _ in range(3)))
    assert results == [head, head, head]


def test_unsupported_url_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        migrate.upgrade("mysql://localhost/db")


async def _computed(url: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    s = POSTGRES_SCHEMA
    try:
        inv_a, inv_b = (
            "11111111-1111-4111-8111-111111111111",
            "22222222-2222-4222-8222-222222222222",
        )
        event = "33333333-3333-4333-8333-333333333333"
        await conn.execute(
            f"INSERT INTO {s}.invocations (id, source_function, total_jobs_run, "
            f"total_jobs_succeeded) VALUES ($1, 'f', 3, 2), ($2, 'f', 0, 0)",
            inv_a,
            inv_b,
        )
        await conn.execute(
            f"INSERT INTO {s}.event_executions (id, invocation_id, event_name, jobs_count, "
            f"jobs_succeeded) VALUES ($1, $2, 'e', 3, 1)",
            event,
            inv_a,
        )
        await conn.execute(
            f"INSERT INTO {s}.job_executions (invocation_id, event_execution_id, job_name, "
            f"duration_ms) VALUES ($1, $2, 'j', 10), ($1, $2, 'j', 20), ($1, $2, 'j', 40)",
            inv_a,
            event,
        )
        return list(
            await conn.fetch(
                f"SELECT {s}.invocation_success_rate(i), {s}.invocation_avg_job_duration(i) "
                f"FROM {s}.invocations i ORDER BY id"
            )
        ) + list(
            await conn.fetch(f"SELECT {s}.event_job_success_rate(e) FROM {s}.event_executions e")
        )
    finally:
        await conn.close()


async def test_computed_field_functions_follow_the_spec(postgres_url: str) -> None:
    from decimal import Decimal

    await migrate.upgrade_async(postgres_url)
    rows = await _computed(postgres_url)
    assert rows[0][0] == Decimal("66.67")
    assert round(rows[0][1], 4) == Decimal("23.3333")
    assert rows[1][0] == 100 and rows[1][1] == 0
    assert rows[2][0] == Decimal("33.33")


async def test_updated_at_trigger_and_change_notifications(postgres_url: str) -> None:
    await migrate.upgrade_async(postgres_url)
    s = POSTGRES_SCHEMA
    listener = await asyncpg.connect(postgres_url)
    writer = await asyncpg.connect(postgres_url)
    received: asyncio.Queue[str] = asyncio.Queue()
    try:
        await listener.add_listener(
            "event_detector_changes", lambda *args: received.put_nowait(args[3])
        )
        row = await writer.fetchrow(
            f"INSERT INTO {s}.invocations (source_function, updated_at) "
            f"VALUES ('f', now() - interval '1 day') RETURNING id, updated_at"
        )
        assert await asyncio.wait_for(received.get(), 5) == "invocations"
        updated = await writer.fetchval(
            f"UPDATE {s}.invocations SET status = 'completed', "
            f"updated_at = now() - interval '2 days' WHERE id = $1 RETURNING updated_at",
            row["id"],
        )
        assert updated > row["updated_at"]
        assert await asyncio.wait_for(received.get(), 5) == "invocations"
        await writer.execute(
            f"INSERT INTO {s}.job_logs (invocation_id, message) "
            f"SELECT $1, 'line ' || n FROM generate_series(1, 50) n",
            row["id"],
        )
        # One notification per statement, not per row.
        assert await asyncio.wait_for(received.get(), 5) == "job_logs"
        await asyncio.sleep(0.2)
        assert received.empty()
    finally:
        await listener.close()
        await writer.close()


def test_cli_migrate_creates_then_reports_up_to_date(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    command = [sys.executable, "-m", "service.cli", "migrate", "--db", url]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert f"from revision none to {migrate.head_revision()}" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert "is up to date" in second.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate", "--db", "mysql://x/y"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unsupported database URL" in bad.stderr
