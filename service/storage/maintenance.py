"""Async SQLAlchemy engines for the maintenance work of the service and the CLI.

`open_engine(url)` gives an engine whose connections see the observability tables by
their bare names on both backends (PostgreSQL: `schema_translate_map` to
`event_detector_observability`, and no prepared statements, so it works through
PgBouncer in transaction mode; SQLite: foreign keys on and a busy timeout, so deletes
cascade as on PostgreSQL and concurrent writers wait instead of failing).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from detector.observability.migrate import async_engine_url, is_sqlite
from detector.observability.models import POSTGRES_SCHEMA, metadata
from service.storage.database import UNPREPARED_STATEMENTS

SQLITE_BUSY_TIMEOUT_S = 30.0

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
        engine = create_async_engine(
            async_url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S},
            poolclass=sa.NullPool,
        )

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

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
