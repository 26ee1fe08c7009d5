"""Async SQLAlchemy engines for the maintenance work of the service and the CLI.

`open_engine(url)` gives an engine whose connections see the observability tables by
their bare names on both backends (PostgreSQL: `schema_translate_map` to
`event_detector_observability`; SQLite: the one connection policy of
`detector.observability.sqlite_policy`: foreign keys on and a busy timeout, so deletes
cascade as on PostgreSQL and concurrent writers wait instead of failing).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from detector.observability import sqlite_policy
from detector.observability.migrate import async_engine_url, is_sqlite
from detector.observability.models import POSTGRES_SCHEMA, metadata

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
    )


def dialect_of(url: str) -> str:
    """`sqlite` or `postgresql`."""
    return "sqlite" if is_sqlite(url) else "postgresql"
