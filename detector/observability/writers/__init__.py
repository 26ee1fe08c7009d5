"""Writers: where the plugin's batches go (PostgreSQL, SQLite, or a GraphQL endpoint).

A writer is the narrow seam between the plugin and a store (like OpenTelemetry's
`SpanExporter`). It runs on the plugin's writer thread, one call at a time, and raises:

- `StoreUnavailable` when the store cannot be reached or used right now (the plugin keeps
  the batch and retries with backoff);
- `RecordsRejected` when the store refused the data itself (a constraint, a type): the
  plugin bisects the batch to find the records at fault and quarantines them.

Messages are short and never contain record values.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..buffer import Batch
from .base import (
    COLUMN_KINDS,
    RecordsRejected,
    SchemaMissing,
    StoreUnavailable,
    WriteError,
)


class Writer(Protocol):
    """What the plugin needs from a store."""

    name: str

    async def open(self) -> None:
        """Connect and check the schema (raise `SchemaMissing` with what to do)."""

    async def write(self, batch: Batch, instance: dict[str, Any] | None = None) -> None:
        """Upsert the execution patches and insert the log lines, atomically, and the
        health row `instance` (`plugin_instances`) with them when given."""

    async def write_quarantined(self, rows: list[dict[str, Any]]) -> None:
        """Insert rows into `quarantined_records`."""

    async def write_instance(self, row: dict[str, Any]) -> None:
        """Upsert this plugin's `plugin_instances` row."""

    async def close(self) -> None:
        """Release connections; `open` may be called again later."""

    # Optional: `abort()` drops connections at once, failing the operation in progress
    # (called on the writer's thread when a shutdown's deadline passes; without it the
    # plugin cancels the write); `forget()` drops references to connections without
    # touching them (in a forked child, they belong to the parent).


def writer_for(
    database_url: str | None,
    graphql_url: str | None,
    admin_secret: str | None = None,
    *,
    auto_migrate: bool | None = None,
    transaction_pooling: bool = False,
) -> Writer:
    """The writer for a configured store. `auto_migrate`: create or upgrade the schema
    when the writer connects (default: SQLite yes, PostgreSQL no). `transaction_pooling`:
    PostgreSQL is reached through a pooler in transaction mode (no prepared statement kept).

    Only the chosen writer's module is imported, and with it only its driver's needs."""
    if graphql_url:
        from .graphql import GraphQLWriter

        return GraphQLWriter(graphql_url, admin_secret=admin_secret)
    assert database_url
    if database_url.startswith("sqlite:"):
        from .sqlite import SQLiteWriter

        return SQLiteWriter(database_url, auto_migrate=auto_migrate is not False)
    from .postgres import PostgresWriter

    return PostgresWriter(
        database_url, auto_migrate=bool(auto_migrate), transaction_pooling=transaction_pooling
    )


__all__ = [
    "COLUMN_KINDS",
    "RecordsRejected",
    "SchemaMissing",
    "StoreUnavailable",
    "WriteError",
    "Writer",
    "writer_for",
]
