"""Alembic environment: runs on the connection `detector.observability.migrate` hands it.

There is no `alembic.ini`: `migrate.upgrade(url)` opens the connection (PostgreSQL through
asyncpg, SQLite through the standard library), creates the schema, takes a lock so two
processes never migrate at once, and passes the connection in `config.attributes`.
"""

from __future__ import annotations

from alembic import context

from detector.observability.models import POSTGRES_SCHEMA, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=POSTGRES_SCHEMA if connection.dialect.name == "postgresql" else None,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
