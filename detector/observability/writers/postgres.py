"""PostgresWriter: bulk writes through asyncpg, COPY wherever the rows are new.

- Rows the buffer knows are new (started, and possibly finished, since the last flush:
  one coalesced patch each) and log lines go in with binary COPY, the fastest path into
  PostgreSQL. If a retried batch meets rows that were written already (the commit
  reached the server but its answer did not reach us), the COPY fails on the primary
  key and that group is written by the upsert below instead (log lines: DO NOTHING).
- Patches of rows written before (a job's end after its start was flushed) go in one
  `INSERT … SELECT FROM unnest($1::uuid[], …) ON CONFLICT (id) DO UPDATE` per
  (table, column set), updating only the columns the patches carry.

One transaction per batch, parents before children. Works through PgBouncer in
transaction mode: COPY runs inside its transaction and no prepared statement is cached.
"""

from __future__ import annotations

import asyncio
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
    """Writes batches to PostgreSQL over two asyncpg connections (reconnects as needed).

    Execution records and log lines of a batch are written concurrently, each on its own
    connection and in its own transaction: the server works on both at once (log lines
    carry no foreign keys, so their order against the executions does not matter). If
    either fails the whole batch is retried or bisected; rows already committed by the
    other half are then skipped or upserted, never duplicated.
    """

    name = "postgresql"

    def __init__(
        self, url: str, *, connect_timeout: float = 5.0, command_timeout: float = 30.0
    ) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._conn: Any = None
        self._log_conn: Any = None
        self.statements = 0
        self.copied = 0  # rows written by COPY (the rest by upserts)

    async def _connect(self) -> Any:
        import asyncpg

        try:
            return await asyncpg.connect(
                self.url,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                server_settings={"application_name": "event-detector-observability"},
                # No server-side prepared statement outlives its statement: the store may
                # be reached through PgBouncer in transaction mode, where the next
                # statement can land on another server connection. (A few statements a
                # batch: the extra round trip is noise next to COPY.)
                statement_cache_size=0,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(
                f"cannot connect to {redact_url(self.url)}: {short_error(exc)}"
            ) from None

    async def open(self) -> None:
        if self._conn is None or self._conn.is_closed():
            conn = await self._connect()
            present = await conn.fetchval(f"SELECT to_regclass('{S}.invocations') IS NOT NULL")
            if not present:
                await conn.close()
                raise SchemaMissing(
                    f"the observability schema is missing in {redact_url(self.url)}: run "
                    "`event-detector migrate --db <url>` (or `psql -f schema.sql`), or pass "
                    "auto_migrate=True"
                )
            self._conn = conn
        if self._log_conn is None or self._log_conn.is_closed():
            self._log_conn = await self._connect()

    async def close(self) -> None:
        conns = (self._conn, self._log_conn)
        self._conn = self._log_conn = None
        for conn in conns:
            if conn is not None and not conn.is_closed():
                try:
                    await conn.close(timeout=2)
                except Exception:
                    conn.terminate()

    async def _run(self, work: Any, table: str | None = None, *, logs: bool = False) -> Any:
        import asyncpg

        await self.open()
        try:
            return await work(self._log_conn if logs else self._conn)
        except asyncpg.UndefinedTableError:
            await self.close()
            raise SchemaMissing(
                "an observability table is missing: run `event-detector migrate`"
            ) from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if _is_data_error(exc) or isinstance(exc, asyncpg.DataError):
                # DataError: a value the driver could not encode for its column.
                raise RecordsRejected(short_error(exc, getattr(exc, "table_name", table))) from None
            await self.close()
            raise StoreUnavailable(short_error(exc)) from None
        except (OSError, TimeoutError, ConnectionError) as exc:
            await self.close()
            raise StoreUnavailable(short_error(exc)) from None

    async def write(self, batch: Batch) -> None:
        """Write one batch: executions (one transaction) and log lines (another), at once."""

        async def executions(conn: Any) -> None:
            async with conn.transaction():
                for (table, columns), patches in group_by_columns(batch.executions).items():
                    fresh = [p for p in patches if p.new]
                    if fresh:
                        await self._copy(conn, table, columns, fresh)
                    if len(fresh) < len(patches):
                        known = [p for p in patches if not p.new]
                        await conn.execute(upsert_sql(table, columns), *_arrays(columns, known))
                        self.statements += 1

        async def logs(conn: Any) -> None:
            async with conn.transaction():
                for columns, lines in _log_groups(batch.logs).items():
                    await self._copy(conn, "job_logs", columns, lines)

        await self.open()
        work = []
        if batch.executions:
            work.append(self._run(executions))
        if batch.logs:
            work.append(self._run(logs, "job_logs", logs=True))
        outcomes = await asyncio.gather(*work, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        # The store being unavailable decides (retry everything); else a rejection.
        for error in errors:
            if not isinstance(error, RecordsRejected):
                raise error
        if errors:
            raise errors[0]

    async def _copy(
        self, conn: Any, table: str, columns: tuple[str, ...], patches: list[Patch]
    ) -> None:
        """COPY rows believed new; on a primary-key clash, upsert them instead."""
        import asyncpg

        records = [tuple(map(p.values.__getitem__, columns)) for p in patches]
        try:
            async with conn.transaction():  # a savepoint: a failed COPY leaves the rest
                await conn.copy_records_to_table(
                    table, schema_name=S, columns=columns, records=records
                )
            self.statements += 1
            self.copied += len(records)
        except asyncpg.UniqueViolationError:
            # A retried batch whose rows were written before the connection dropped.
            sql = upsert_sql(table, columns)
            if table == "job_logs":
                sql = sql.split(" ON CONFLICT")[0] + " ON CONFLICT (id) DO NOTHING"
            await conn.execute(sql, *_arrays(columns, patches))
            self.statements += 2

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


def _log_groups(logs: list[Patch]) -> dict[tuple[str, ...], list[Patch]]:
    groups: dict[tuple[str, ...], list[Patch]] = {}
    for patch in logs:
        groups.setdefault(tuple(patch.values), []).append(patch)
    return groups
