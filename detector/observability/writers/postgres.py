"""PostgresWriter: batches into PostgreSQL through asyncpg, in as few round trips as it can.

A flush far from its store (another zone or region, a serverless function behind a
pooler) costs its round trips times the network's latency, however few its rows. So:

- A batch of fewer than `copy_min_rows` records (every flush except those of heavy load)
  is ONE statement on one connection: a data-modifying CTE per (table, column set) group,
  `INSERT … SELECT FROM unnest($1::uuid[], …) ON CONFLICT (id) DO UPDATE` of only the
  columns the group's patches carry (log lines: `DO NOTHING`), plus this plugin's
  `plugin_instances` health row when one is due. One statement is one implicit
  transaction: no BEGIN, no COMMIT, a single round trip once asyncpg has prepared that
  shape (it caches prepared statements per connection). Foreign keys are checked at the
  end of the statement, so a batch's children may ride with their parents.
- A larger batch is bound by bandwidth, not latency: rows new since the last flush go in
  with binary COPY (the fastest path into PostgreSQL) and the rest, with the health row,
  in one upsert statement, in one transaction; log lines are COPYed at the same time on a
  second connection (they carry no foreign keys). A retried batch whose rows were written
  already (the commit reached the server, its answer was lost) fails its COPY on a
  primary key, and is written again as the one idempotent upsert statement above.

One operation at a time: every method takes the writer's lock, so nothing (a health
report at shutdown, say) ever shares a connection with a write in progress. Only
connection failures close the connections; other errors leave them open.

Behind a pooler in transaction mode (PgBouncer; `transaction_pooling=True`, the plugin's
`OBSERVABILITY_TRANSACTION_POOLING`), no prepared statement is kept: the next statement
may run on another server connection. Each statement then costs one more round trip.
COPY always runs inside its transaction.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from ..buffer import Batch, Patch
from ..tables import HEAD_REVISION, POSTGRES_SCHEMA
from ..urls import redact_url
from .base import (
    COLUMN_KINDS,
    NEVER_UPDATED,
    RecordsRejected,
    SchemaMissing,
    StoreUnavailable,
    WriteError,
    group_by_columns,
    short_error,
)

S = POSTGRES_SCHEMA
LOG_TABLE = "job_logs"
INSTANCE_TABLE = "plugin_instances"
# Parents before children: the order of a batch's groups (and so one statement text for
# one shape of batch, whatever order its patches arrived in).
_RANK = {"invocations": 0, "event_executions": 1, "job_executions": 2, LOG_TABLE: 3}
# SQLSTATEs of a server that is going away or refusing connections (besides class 08).
_SERVER_GONE = {"57P01", "57P02", "57P03"}

Group = tuple[str, tuple[str, ...], list[Patch]]


def upsert_sql(table: str, columns: tuple[str, ...], first: int = 1) -> str:
    """The unnest upsert of `columns` into `table`, its parameters (one `text[]` per column,
    see `_arrays`) numbered from `first`. Log lines are never updated (`DO NOTHING`)."""
    kinds = COLUMN_KINDS[table]
    listed = ", ".join(columns)
    arrays = ", ".join(f"${n}::text[]" for n in range(first, first + len(columns)))
    # Text arrays cast per column on the server: asyncpg encodes text[] without asking
    # the server about types (any other array type costs six round trips per connection).
    values = ", ".join(c if kinds[c] == "text" else f"{c}::{kinds[c]}" for c in columns)
    updates = [c for c in columns if c not in NEVER_UPDATED] if table != LOG_TABLE else []
    if updates:
        action = "DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in updates)
    else:
        action = "DO NOTHING"
    return (
        f"INSERT INTO {S}.{table} ({listed}) SELECT {values} "
        f"FROM unnest({arrays}) AS v({listed}) ON CONFLICT (id) {action}"
    )


def statement_for(groups: list[Group]) -> tuple[str, list[list[Any]]]:
    """One statement upserting every group (a data-modifying CTE each), and its arguments."""
    parts, args = [], []
    for n, (table, columns, patches) in enumerate(groups):
        parts.append(f"g{n} AS ({upsert_sql(table, columns, first=len(args) + 1)})")
        args.extend(_arrays(table, columns, patches))
    return "WITH " + ", ".join(parts) + " SELECT 1", args


def is_connection_failure(exc: BaseException, conn: Any = None) -> bool:
    """Whether `exc` means the connection (or the server behind it) is gone.

    Only these close the writer's connections. A usage error ("another operation is in
    progress") or a server error about one statement leaves the connection usable.
    """
    if isinstance(exc, OSError | TimeoutError | EOFError):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if sqlstate.startswith("08") or sqlstate in _SERVER_GONE:
        return True
    # asyncpg says "connection is closed" with a plain InterfaceError: ask the connection.
    return conn is not None and conn.is_closed()


def _is_data_error(exc: BaseException) -> bool:
    # SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation) are
    # about the records; anything else is about the store.
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate[:2] in {"22", "23"}


class PostgresWriter:
    """Writes batches to PostgreSQL over asyncpg (one connection; a second one for the log
    lines of large batches), reconnecting as needed. Methods run on one event loop, one
    at a time (they wait for each other)."""

    name = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
        copy_min_rows: int = 1000,
        auto_migrate: bool = False,
        transaction_pooling: bool = False,
    ) -> None:
        self.url = url
        self.transaction_pooling = transaction_pooling
        self.auto_migrate = auto_migrate
        self._migrated = False
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.copy_min_rows = copy_min_rows
        self._conn: Any = None
        self._log_conn: Any = None
        self._lock = asyncio.Lock()
        self.statements = 0  # statements sent (COPY included)
        self.copied = 0  # rows written by COPY (the rest by upserts)

    # -- connections -------------------------------------------------------------------

    async def _connect(self) -> Any:
        import asyncpg

        try:
            return await asyncpg.connect(
                self.url,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                server_settings={"application_name": "event-detector-observability"},
                # Prepared statements make a flush one round trip; behind a pooler in
                # transaction mode none may outlive its statement (see the docstring).
                statement_cache_size=0 if self.transaction_pooling else 100,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(
                f"cannot connect to {redact_url(self.url)}: {short_error(exc)}"
            ) from None

    async def _main_connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        return self._conn

    async def _logs_connection(self) -> Any:
        if self._log_conn is None or self._log_conn.is_closed():
            self._log_conn = await self._connect()
        return self._log_conn

    async def open(self) -> None:
        """Connect (once; a missing schema shows on the first write as `SchemaMissing`).
        With `auto_migrate`, first create or upgrade the schema unless the database is at
        the newest revision (one query; alembic and SQLAlchemy load only when it is not)."""
        async with self._lock:
            conn = await self._main_connection()
            if self.auto_migrate and not self._migrated:
                await self._migrate(conn)

    async def _migrate(self, conn: Any) -> None:
        import asyncpg

        try:
            revision = await conn.fetchval(f"SELECT version_num FROM {S}.alembic_version")
        except asyncpg.UndefinedTableError:
            revision = None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            if is_connection_failure(exc, conn):
                self._drop(conn)
            raise StoreUnavailable(short_error(exc)) from None
        if revision != HEAD_REVISION:
            from ..migrate import upgrade_async

            try:
                await upgrade_async(self.url)
            except Exception as exc:
                raise StoreUnavailable(f"migration failed: {short_error(exc)}") from None
        self._migrated = True

    async def close(self) -> None:
        conns = (self._conn, self._log_conn)
        self._conn = self._log_conn = None
        for conn in conns:
            if conn is not None and not conn.is_closed():
                try:
                    await conn.close(timeout=2)
                except Exception:
                    conn.terminate()

    def abort(self) -> None:
        """Drop the connections at once, failing any operation in progress on them (the
        server rolls back what it has not committed). Call on the writer's event loop."""
        conns = (self._conn, self._log_conn)
        self._conn = self._log_conn = None
        for conn in conns:
            if conn is not None:
                conn.terminate()

    def forget(self) -> None:
        """In a forked child: drop the parent's connections without touching them."""
        self._conn = self._log_conn = None
        self._lock = asyncio.Lock()

    # -- running work ----------------------------------------------------------------

    async def _run(
        self, work: Callable[[Any], Awaitable[Any]], table: str | None = None, *, logs: bool = False
    ) -> Any:
        """Run `work(connection)`, turning errors into the writer's errors."""
        import asyncpg

        conn = await (self._logs_connection() if logs else self._main_connection())
        try:
            return await work(conn)
        except asyncio.CancelledError:
            # Cut short mid-protocol (a shutdown's deadline): the connection's state is
            # unknown, so it goes, and the server rolls back what it has not committed.
            self._drop(conn)
            raise
        except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
            raise SchemaMissing(
                "an observability table or column is missing: run `event-detector migrate`"
            ) from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            if is_connection_failure(exc, conn):
                self._drop(conn)
                raise StoreUnavailable(short_error(exc)) from None
            if _is_data_error(exc) or isinstance(exc, asyncpg.DataError):
                # DataError: a value the driver could not encode for its column.
                raise RecordsRejected(short_error(exc, getattr(exc, "table_name", table))) from None
            if isinstance(exc, asyncpg.InterfaceError):
                # A usage error: about this call, not the store. Keep the connection.
                raise WriteError(short_error(exc)) from None
            raise StoreUnavailable(short_error(exc)) from None

    def _drop(self, conn: Any) -> None:
        conn.terminate()
        if conn is self._conn:
            self._conn = None
        if conn is self._log_conn:
            self._log_conn = None

    # -- writing ---------------------------------------------------------------------

    async def write(self, batch: Batch, instance: dict[str, Any] | None = None) -> None:
        """Write one batch, and the health row `instance` with it (atomically with the
        executions). Raises `StoreUnavailable`, `SchemaMissing` or `RecordsRejected`."""
        async with self._lock:
            if len(batch) < self.copy_min_rows:
                reused = self._conn is not None and not self._conn.is_closed()
                try:
                    await self._write_statement(batch, instance)
                except StoreUnavailable:
                    if not reused or self._conn is not None:
                        raise
                    # The connection had died while idle (a server or pooler timeout, a
                    # serverless instance thawed after a pause): once more on a new one,
                    # now, rather than after a backoff. Upserts make a repeat harmless.
                    await self._write_statement(batch, instance)
                return
            try:
                await self._write_copying(batch, instance)
            except _AlreadyWritten:
                await self._write_statement(batch, instance)

    async def _write_statement(self, batch: Batch, instance: dict[str, Any] | None) -> None:
        groups = _groups(batch, instance)
        if not groups:
            return
        sql, args = statement_for(groups)

        async def work(conn: Any) -> None:
            await conn.execute(sql, *args)

        await self._run(work)
        self.statements += 1

    async def _write_copying(self, batch: Batch, instance: dict[str, Any] | None) -> None:
        copies: list[Group] = []
        upserts: list[Group] = []
        for table, columns, patches in _groups(Batch(batch.executions, []), None):
            fresh = [p for p in patches if p.new]
            if fresh:
                copies.append((table, columns, fresh))
            if len(fresh) < len(patches):
                upserts.append((table, columns, [p for p in patches if not p.new]))
        upserts += _groups(Batch([], []), instance)

        async def executions(conn: Any) -> None:
            async with conn.transaction():
                for table, columns, patches in copies:  # parents first: COPY checks at once
                    await self._copy(conn, table, columns, patches)
                if upserts:
                    sql, args = statement_for(upserts)
                    await conn.execute(sql, *args)
                    self.statements += 1

        async def logs(conn: Any) -> None:
            for columns, lines in _log_groups(batch.logs).items():
                await self._copy(conn, LOG_TABLE, columns, lines)

        work = []
        if copies or upserts:
            work.append(self._run(executions))
        if batch.logs:
            work.append(self._run(logs, LOG_TABLE, logs=True))
        outcomes = await asyncio.gather(*work, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        # The store being unavailable decides (retry everything); then rows written
        # before (redo as upserts); else a rejection.
        for error in errors:
            if not isinstance(error, RecordsRejected | _AlreadyWritten):
                raise error
        for error in errors:
            if isinstance(error, _AlreadyWritten):
                raise error
        if errors:
            raise errors[0]

    async def _copy(
        self, conn: Any, table: str, columns: tuple[str, ...], patches: list[Patch]
    ) -> None:
        import asyncpg

        records = [tuple(map(p.values.__getitem__, columns)) for p in patches]
        try:
            await conn.copy_records_to_table(table, schema_name=S, columns=columns, records=records)
        except asyncpg.UniqueViolationError:
            # Rows written before their commit's answer was lost: `write` redoes the batch
            # as upserts (`_run` lets this through: it is neither a rejection nor a failure).
            raise _AlreadyWritten from None
        self.statements += 1
        self.copied += len(records)

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

        async with self._lock:
            await self._run(work, "quarantined_records")
            self.statements += 1

    async def write_instance(self, row: dict[str, Any]) -> None:
        async with self._lock:
            await self._write_statement(Batch([], []), row)


class _AlreadyWritten(Exception):
    """A COPY met rows that exist already: write the batch as upserts instead."""


def _groups(batch: Batch, instance: dict[str, Any] | None) -> list[Group]:
    """The batch's (table, columns, patches) groups, parents first, in a stable order."""
    groups: list[Group] = [
        (table, columns, patches)
        for (table, columns), patches in group_by_columns(batch.executions).items()
    ]
    groups.extend((LOG_TABLE, columns, lines) for columns, lines in _log_groups(batch.logs).items())
    groups.sort(key=lambda g: (_RANK.get(g[0], 9), g[1]))
    if instance is not None:
        groups.append(
            (INSTANCE_TABLE, tuple(instance), [Patch(INSTANCE_TABLE, instance["id"], instance)])
        )
    return groups


def _arrays(table: str, columns: tuple[str, ...], patches: list[Patch]) -> list[list[Any]]:
    """One text array per column: values as PostgreSQL reads them back from text."""
    kinds = COLUMN_KINDS[table]
    arrays = []
    for column in columns:
        values = [patch.values.get(column) for patch in patches]
        as_text = _TEXT.get(kinds[column])
        if as_text is not None:
            values = [None if v is None else as_text(v) for v in values]
        arrays.append(values)
    return arrays


def _timestamp_text(value: Any) -> str:
    if isinstance(value, datetime):
        # Naive values are UTC, as everywhere in the plugin.
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return str(value)


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# How a value of a column kind is written as text (text and uuid: as they are).
_TEXT: dict[str, Callable[[Any], str]] = {
    "timestamptz": _timestamp_text,
    "jsonb": _json_text,
    "boolean": lambda value: "true" if value else "false",
    "integer": str,
    "bigint": str,
    "numeric": str,
    "float8": repr,
    "uuid": str,
}


def _log_groups(logs: list[Patch]) -> dict[tuple[str, ...], list[Patch]]:
    groups: dict[tuple[str, ...], list[Patch]] = {}
    for patch in logs:
        groups.setdefault(tuple(patch.values), []).append(patch)
    return groups
