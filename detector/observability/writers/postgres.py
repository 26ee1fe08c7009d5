"""PostgresWriter: bulk upserts through asyncpg.

Execution patches go in one `INSERT … SELECT FROM unnest($1::uuid[], …) ON CONFLICT (id)
DO UPDATE` per (table, column set), updating only the columns the patches carry; log
lines go in with COPY (falling back to `INSERT … ON CONFLICT DO NOTHING` when a retried
batch meets lines that were already written). One transaction per batch.
"""

from __future__ import annotations

import json
from typing import Any

from ..buffer import Batch, Patch
from ..migrate import redact_url
from ..models import POSTGRES_SCHEMA
from .base import (
    COLUMN_KINDS,
    NEVER_UPDATED,
    RecordsRejected,
    SchemaMissing,
    StoreUnavailable,
    group_by_columns,
    short_error,
)

S = POSTGRES_SCHEMA


def upsert_sql(table: str, columns: tuple[str, ...]) -> str:
    """The unnest upsert of `columns` into `table` (parameters: one array per column)."""
    kinds = COLUMN_KINDS[table]
    listed = ", ".join(columns)
    arrays = ", ".join(f"${n}::{kinds[c]}[]" for n, c in enumerate(columns, start=1))
    updates = [c for c in columns if c not in NEVER_UPDATED]
    if updates:
        action = "DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in updates)
    else:
        action = "DO NOTHING"
    return (
        f"INSERT INTO {S}.{table} ({listed}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT (id) {action}"
    )


def _is_data_error(exc: BaseException) -> bool:
    # SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation) are
    # about the records; anything else is about the store.
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate[:2] in {"22", "23"}


class PostgresWriter:
    """Writes batches to PostgreSQL over one asyncpg connection (reconnects as needed)."""

    name = "postgresql"

    def __init__(
        self, url: str, *, connect_timeout: float = 5.0, command_timeout: float = 30.0
    ) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._conn: Any = None
        self.statements = 0

    async def open(self) -> None:
        import asyncpg

        if self._conn is not None and not self._conn.is_closed():
            return
        try:
            conn = await asyncpg.connect(
                self.url,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                server_settings={"application_name": "event-detector-observability"},
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(
                f"cannot connect to {redact_url(self.url)}: {short_error(exc)}"
            ) from None
        present = await conn.fetchval(f"SELECT to_regclass('{S}.invocations') IS NOT NULL")
        if not present:
            await conn.close()
            raise SchemaMissing(
                f"the observability schema is missing in {redact_url(self.url)}: run "
                "`event-detector migrate --db <url>` (or `psql -f schema.sql`), or pass "
                "auto_migrate=True"
            )
        self._conn = conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=2)
            except Exception:
                conn.terminate()

    async def _run(self, work: Any, table: str | None = None) -> Any:
        import asyncpg

        await self.open()
        try:
            return await work(self._conn)
        except asyncpg.UndefinedTableError:
            await self.close()
            raise SchemaMissing(
                "an observability table is missing: run `event-detector migrate`"
            ) from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if _is_data_error(exc):
                raise RecordsRejected(short_error(exc, getattr(exc, "table_name", table))) from None
            await self.close()
            raise StoreUnavailable(short_error(exc)) from None
        except (OSError, TimeoutError, ConnectionError) as exc:
            await self.close()
            raise StoreUnavailable(short_error(exc)) from None

    async def write(self, batch: Batch) -> None:
        """Write one batch in one transaction."""

        async def work(conn: Any) -> None:
            async with conn.transaction():
                for (table, columns), patches in group_by_columns(batch.executions).items():
                    await conn.execute(upsert_sql(table, columns), *_arrays(columns, patches))
                    self.statements += 1
                if batch.logs:
                    await self._write_logs(conn, batch.logs)

        await self._run(work)

    async def _write_logs(self, conn: Any, logs: list[Patch]) -> None:
        import asyncpg

        columns = tuple(logs[0].values)
        records = [tuple(p.values[c] for c in columns) for p in logs]
        try:
            async with conn.transaction():  # a savepoint: a failed COPY leaves the rest
                await conn.copy_records_to_table(
                    "job_logs", schema_name=S, columns=columns, records=records
                )
                self.statements += 1
        except asyncpg.UniqueViolationError:
            # A retried batch whose lines were written before the connection dropped.
            sql = upsert_sql("job_logs", columns).split(" ON CONFLICT")[0]
            await conn.execute(sql + " ON CONFLICT (id) DO NOTHING", *_arrays(columns, logs))
            self.statements += 1

    async def write_quarantined(self, rows: list[dict[str, Any]]) -> None:
        async def work(conn: Any) -> None:
            await conn.executemany(
                f"INSERT INTO {S}.quarantined_records (table_name, record_id, record, error) "
                "VALUES ($1, $2, $3::jsonb, $4)",
                [
                    (r["table_name"], r["record_id"], json.dumps(r["record"]), r["error"])
                    for r in rows
                ],
            )

        await self._run(work, "quarantined_records")

    async def write_instance(self, row: dict[str, Any]) -> None:
        columns = tuple(row)
        patch = Patch("plugin_instances", row["id"], row)

        async def work(conn: Any) -> None:
            await conn.execute(upsert_sql("plugin_instances", columns), *_arrays(columns, [patch]))

        await self._run(work, "plugin_instances")


def _arrays(columns: tuple[str, ...], patches: list[Patch]) -> list[list[Any]]:
    return [[patch.values.get(column) for patch in patches] for column in columns]
