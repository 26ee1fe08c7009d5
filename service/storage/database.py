"""The service's database: one async SQLAlchemy engine over asyncpg or aiosqlite.

`Database` owns the engine and what every connection needs:

- PostgreSQL: the observability tables live in `POSTGRES_SCHEMA`; the models carry no
  schema, so every statement is translated with `schema_translate_map`.
- SQLite: the one connection policy of `detector.observability.sqlite_policy` (WAL,
  busy timeout, enforced foreign keys so deletes cascade as on PostgreSQL), plus the
  functions, aggregates and collation of `service.graphql.sql.sqlite_functions` that give
  filters PostgreSQL's semantics.
  Reads use a second pool (`read_engine`) whose connections are in autocommit from the
  start, which saves the thread hops of switching and resetting them on every read.

It also counts the SQL statements it sends (`statements_executed`), for tests that
bound the statements per request and for the service's metrics.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from detector.observability import sqlite_policy
from detector.observability.migrate import async_engine_url
from detector.observability.models import POSTGRES_SCHEMA
from detector.observability.sqlite_policy import SQLFunctions
from service.graphql.sql import sqlite_functions

logger = logging.getLogger(__name__)


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

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        async_url = async_database_url(url)
        self.dialect = "sqlite" if async_url.startswith("sqlite") else "postgresql"
        options: dict[str, Any] = {"echo": echo}
        if self.dialect == "postgresql":
            options.update(
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=False,
                execution_options={"schema_translate_map": {None: POSTGRES_SCHEMA}},
            )
        else:
            options.update(pool_size=pool_size, max_overflow=pool_size)
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
        for engine in {self.engine, self.read_engine}:
            event.listen(engine.sync_engine, "before_cursor_execute", self._count_statement)
            if self.dialect == "sqlite":
                event.listen(engine.sync_engine, "connect", _prepare_sqlite_connection)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def statements_executed(self) -> int:
        """SQL statements sent since this `Database` was created (all connections)."""
        return self._statements_seen

    def _count_statement(self, *args: Any) -> None:
        self._statements_seen = next(self._statements) + 1

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection in autocommit mode, for read-only statements."""
        if self.read_engine is not self.engine:
            async with self.read_engine.connect() as conn:
                yield conn
            return
        async with self.engine.connect() as conn:
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


def _prepare_sqlite_connection(
    dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry
) -> None:
    """The one SQLite policy, plus the engine's functions, on a new connection."""
    sqlite_policy.configure(dbapi_connection, ENGINE_SQLITE_FUNCTIONS)


__all__ = ["Database", "async_database_url"]
