"""The service's database: one async SQLAlchemy engine over asyncpg or aiosqlite.

`Database` owns the engine and what every connection needs:

- PostgreSQL: the observability tables live in `POSTGRES_SCHEMA`; the models carry no
  schema, so every statement is translated with `schema_translate_map`. Behind a pooler
  in transaction mode (`transaction_pooling`), no prepared statement is kept.
- SQLite: the one connection policy of `detector.observability.sqlite_policy` (WAL,
  busy timeout, enforced foreign keys so deletes cascade as on PostgreSQL), plus the
  functions, aggregates and collation of `service.graphql.sql.sqlite_functions` that give
  filters PostgreSQL's semantics.
  Reads use a second pool (`read_engine`) whose connections are in autocommit from the
  start, which saves the thread hops of switching and resetting them on every read.

The request pool opens up to `pool_size` connections as load needs them and keeps them:
no overflow connections that close as soon as they are returned. Under load those were
opened and closed again all the time, and a PostgreSQL backend's start costs the server
more CPU than the statement it then runs (bench `workers`: 2.8 against 1.8 ms of
PostgreSQL CPU per list request, 364 against 479 requests/s with one worker).

Every statement runs under a time limit (`statement_timeout` seconds; 0 turns it off),
so no request can hold a connection, or SQLite's worker thread, for longer:

- PostgreSQL: on a direct connection, `statement_timeout` is a startup parameter of the
  session (set once per connection; reads stay in autocommit). Behind a pooler in
  transaction mode (`transaction_pooling`), where a session-level setting would land on
  some other server connection (or be refused), `SET LOCAL statement_timeout` starts every
  transaction, and reads run in a read-only transaction to carry it.
  A statement cut short fails with SQLSTATE 57014.
- SQLite: a progress handler, called every `SQLITE_PROGRESS_STEPS` virtual-machine steps,
  interrupts a statement that has run past its deadline (`sqlite3.OperationalError:
  interrupted`). One call of a registered function is one step: those functions must
  be cheap per row themselves (the pattern operators run on RE2 for that reason).

`service.graphql.sql.dberrors` answers both as Hasura-style errors.

It also counts the SQL statements it sends (`statements_executed`), for tests that
bound the statements per request and for the service's metrics.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_

from detector.observability import sqlite_policy
from detector.observability.migrate import async_engine_url
from detector.observability.models import POSTGRES_SCHEMA
from detector.observability.sqlite_policy import SQLFunctions
from service.graphql.sql import sqlite_functions

logger = logging.getLogger(__name__)

SQLITE_PROGRESS_STEPS = 10_000
"""Virtual-machine steps between two deadline checks (well under a millisecond of work)."""

UNPREPARED_STATEMENTS: dict[str, Any] = {
    "prepared_statement_cache_size": 0,
    "statement_cache_size": 0,
    "prepared_statement_name_func": lambda: "",
}
"""asyncpg through SQLAlchemy with no server-side prepared statement kept between two
statements (unnamed statements only): what a pooler in transaction mode (PgBouncer)
needs, since the next statement may run on another server connection. Each statement
then costs one more round trip (about 0.15 ms on loopback), so direct connections keep
their caches."""


def asyncpg_dsn(url: str) -> str:
    """A DSN asyncpg accepts, from `postgresql://` or `postgresql+asyncpg://` URLs."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url.removeprefix(prefix)
    return url


def async_database_url(url: str) -> str:
    """The SQLAlchemy async URL for `sqlite:///…` or `postgresql://…`.

    URLs that already name an async driver pass through. Raises `ValueError` for any
    other scheme, naming the accepted ones.
    """
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    return async_engine_url(url)


class Database:
    """An async engine for the observability database, on SQLite or PostgreSQL.

    Use `read()` for queries (autocommit: no BEGIN/ROLLBACK round trips) and `begin()`
    for writes in one transaction. Call `dispose()` on shutdown.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        echo: bool = False,
        transaction_pooling: bool = False,
        statement_timeout: float = 0,
    ) -> None:
        self.url = url
        self.statement_timeout = statement_timeout
        """Seconds one statement may run before the database cancels it; 0: no limit."""
        self._limit_per_transaction = statement_timeout > 0 and transaction_pooling
        milliseconds = max(1, round(statement_timeout * 1000))
        async_url = async_database_url(url)
        self.dialect = "sqlite" if async_url.startswith("sqlite") else "postgresql"
        # One pool policy on both backends: up to `pool_size` connections, kept (see above).
        options: dict[str, Any] = {"echo": echo, "pool_size": pool_size, "max_overflow": 0}
        if self.dialect == "postgresql":
            options.update(
                pool_pre_ping=False,
                execution_options={"schema_translate_map": {None: POSTGRES_SCHEMA}},
            )
            connect_args: dict[str, Any] = {}
            if transaction_pooling:
                connect_args.update(UNPREPARED_STATEMENTS)
            elif statement_timeout > 0:
                # A direct connection keeps its session: the limit is set once, when it
                # connects, and reads stay in autocommit (no BEGIN, SET LOCAL, COMMIT).
                connect_args["server_settings"] = {"statement_timeout": str(milliseconds)}
            options["connect_args"] = connect_args
        self.engine: AsyncEngine = create_async_engine(async_url, **options)
        # Reads run in autocommit. On SQLite, switching a pooled connection to autocommit
        # and rolling it back on return are thread hops into aiosqlite (~1.5 ms a read);
        # a second pool whose connections are autocommit from the start avoids both.
        self.read_engine: AsyncEngine = self.engine
        if self.dialect == "sqlite":
            self.read_engine = create_async_engine(
                async_url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, **options
            )
        self._statements = itertools.count()
        self._statements_seen = 0
        self._limit_statement = f"SET LOCAL statement_timeout = {milliseconds}"
        for engine in {self.engine, self.read_engine}:
            event.listen(engine.sync_engine, "before_cursor_execute", self._count_statement)
            if self.dialect == "sqlite":
                event.listen(engine.sync_engine, "connect", _prepare_sqlite_connection)
        if statement_timeout > 0:
            if self.dialect == "postgresql":
                if transaction_pooling:
                    event.listen(self.engine.sync_engine, "begin", self._limit_transaction)
            else:
                for engine in {self.engine, self.read_engine}:
                    event.listen(engine.sync_engine, "connect", _watch_sqlite_statements)
                    event.listen(engine.sync_engine, "before_cursor_execute", self._start_clock)
                    event.listen(engine.sync_engine, "after_cursor_execute", _stop_clock)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def statements_executed(self) -> int:
        """SQL statements sent since this `Database` was created (all connections),
        not counting the statement time limit's `SET LOCAL`."""
        return self._statements_seen

    def _count_statement(self, conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if statement == self._limit_statement:
            return  # the time limit's own SET LOCAL is not the request's work
        self._statements_seen = next(self._statements) + 1

    def _limit_transaction(self, conn: Connection) -> None:
        # PostgreSQL: the limit lasts for this transaction only (see the module's docstring).
        conn.exec_driver_sql(self._limit_statement)

    def _start_clock(self, conn: Connection, *args: Any) -> None:
        # SQLite: the progress handler of this connection stops the statement after this.
        deadline = conn.info.get(_DEADLINE)
        if deadline is not None:
            deadline.at = time.monotonic() + self.statement_timeout

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection for read-only statements.

        Autocommit (no BEGIN/COMMIT round trips), except on PostgreSQL behind a pooler in
        transaction mode with a statement time limit, where a read-only transaction
        carries the `SET LOCAL`.
        """
        if self.read_engine is not self.engine:
            async with self.read_engine.connect() as conn:
                yield conn
            return
        async with self.engine.connect() as conn:
            if self._limit_per_transaction:
                conn = await conn.execution_options(postgresql_readonly=True)
                async with conn.begin():
                    yield conn
                return
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    async def connect(self) -> AsyncConnection:
        """A pooled connection the caller begins, commits and closes (mutations)."""
        return await self.engine.connect()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection inside a transaction, committed on success."""
        async with self.engine.begin() as conn:
            yield conn

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


ENGINE_SQLITE_FUNCTIONS = SQLFunctions(
    scalars=sqlite_functions.SCALAR_FUNCTIONS,
    aggregates=sqlite_functions.AGGREGATES,
    collations=sqlite_functions.COLLATIONS,
)
"""What the GraphQL engine needs on every SQLite connection (PostgreSQL's semantics)."""


_DEADLINE = "statement_deadline"


def _stop_clock(conn: Connection, *args: Any) -> None:
    # Between statements (COMMIT included) nothing is interrupted.
    deadline = conn.info.get(_DEADLINE)
    if deadline is not None:
        deadline.at = math.inf


class _StatementDeadline:
    """When the statement running on one SQLite connection must stop (monotonic time)."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = math.inf

    def passed(self) -> bool:
        """The progress handler: true interrupts the running statement."""
        return time.monotonic() > self.at


def _watch_sqlite_statements(
    dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry
) -> None:
    """Install the progress handler that enforces statement deadlines on a connection."""
    deadline = _StatementDeadline()
    record.info[_DEADLINE] = deadline
    driver = dbapi_connection.driver_connection  # type: ignore[attr-defined]
    raw = driver._conn
    await_(driver._execute(raw.set_progress_handler, deadline.passed, SQLITE_PROGRESS_STEPS))


def _prepare_sqlite_connection(
    dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry
) -> None:
    """The one SQLite policy, plus the engine's functions, on a new connection."""
    sqlite_policy.configure(dbapi_connection, ENGINE_SQLITE_FUNCTIONS)


__all__ = ["UNPREPARED_STATEMENTS", "Database", "async_database_url", "asyncpg_dsn"]
