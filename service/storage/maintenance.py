"""Async SQLAlchemy engines for the maintenance work of the service and the CLI.

`open_engine(url)` gives an engine whose connections see the observability tables by
their bare names on both backends (PostgreSQL: `schema_translate_map` to
`event_detector_observability`, and no prepared statements, so it works through
PgBouncer in transaction mode; SQLite: the one connection policy of
`detector.observability.sqlite_policy`: foreign keys on and a busy timeout, so deletes
cascade as on PostgreSQL and concurrent writers wait instead of failing).

Opening an SQLite URL creates the file: work that only reads (or deletes) what was
recorded first calls `require_tables(url)`, which creates nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from detector.observability import sqlite_policy
from detector.observability.migrate import async_engine_url, is_sqlite, redact_url, sqlite_path
from detector.observability.models import POSTGRES_SCHEMA, metadata
from service.storage.database import UNPREPARED_STATEMENTS

invocations = metadata.tables["invocations"]
event_executions = metadata.tables["event_executions"]
job_executions = metadata.tables["job_executions"]
job_logs = metadata.tables["job_logs"]
metrics_hourly = metadata.tables["metrics_hourly"]
plugin_instances = metadata.tables["plugin_instances"]
quarantined_records = metadata.tables["quarantined_records"]


def open_engine(url: str, *, pool_size: int = 2) -> AsyncEngine:
    """An async engine for `sqlite:///…` or `postgresql://…`; raises ValueError otherwise."""
    async_url = async_engine_url(url)
    if is_sqlite(url):
        engine = create_async_engine(async_url, poolclass=sa.NullPool)
        sa.event.listen(
            engine.sync_engine, "connect", lambda dbapi, _record: sqlite_policy.configure(dbapi)
        )
        return engine
    return create_async_engine(
        async_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        execution_options={"schema_translate_map": {None: POSTGRES_SCHEMA}},
        # Maintenance runs few statements: none prepared, so it works through PgBouncer
        # in transaction mode as well as directly.
        connect_args=UNPREPARED_STATEMENTS,
    )


def dialect_of(url: str) -> str:
    """`sqlite` or `postgresql`."""
    return "sqlite" if is_sqlite(url) else "postgresql"


class MissingDatabase(LookupError):
    """There is no database at the URL, or it has no observability tables.

    `missing_file` is True when there is no database at all (a path with no file), False
    when one exists without the tables (`event-detector migrate` creates them).
    """

    def __init__(self, message: str, *, missing_file: bool) -> None:
        super().__init__(message)
        self.missing_file = missing_file


async def require_tables(url: str) -> None:
    """Raise MissingDatabase unless `url` holds the observability tables; creates nothing.

    SQLite is checked through a read-only connection (a missing file stays missing, and
    an unreadable one is named); PostgreSQL through the catalog. The driver's error
    passes through when a PostgreSQL server cannot be reached.
    """
    if is_sqlite(url):
        _require_sqlite_tables(url)
        return
    engine = open_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            found = (
                await conn.execute(sa.text(f"SELECT to_regclass('{POSTGRES_SCHEMA}.invocations')"))
            ).scalar_one()
    finally:
        await engine.dispose()
    if found is None:
        raise MissingDatabase(
            f"{redact_url(url)} has no event-detector tables (schema {POSTGRES_SCHEMA})",
            missing_file=False,
        )


def _require_sqlite_tables(url: str) -> None:
    path = sqlite_path(url)
    if path == ":memory:" or path.startswith("file:"):
        raise MissingDatabase(f"{path} is not a database file", missing_file=True)
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise MissingDatabase(f"no database at {file}", missing_file=True)
    try:
        connection = sqlite_policy.connect(str(file), read_only=True)
        with contextlib.closing(connection):
            found = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'invocations'"
            ).fetchone()
    except sqlite3.Error as error:
        raise MissingDatabase(
            f"{file} cannot be read as an SQLite database: {error}", missing_file=True
        ) from None
    if found is None:
        raise MissingDatabase(f"{file} has no event-detector tables", missing_file=False)
