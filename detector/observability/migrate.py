"""Create or upgrade the observability schema with the versioned migrations (alembic).

`upgrade(url)` brings a database to the latest revision (`head`); it is idempotent and
safe to run from several processes at once (PostgreSQL: an advisory lock; SQLite: an
immediate transaction). `current_revision(url)` says where a database stands (None for
an empty database). URLs: `sqlite:///path.db` or `postgresql://user:pass@host:port/db`.

PostgreSQL is reached through asyncpg, SQLite through the standard library, so the
plugin needs no other driver. The sync functions may be called from any thread; from
async code use the `*_async` twins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .._sync import run_coroutine_sync
from . import sqlite_policy
from .tables import POSTGRES_SCHEMA
from .urls import check_url, is_postgres, is_sqlite, redact_url, sqlite_path

__all__ = [
    "async_engine_url",
    "check_url",
    "current_revision",
    "current_revision_async",
    "downgrade",
    "head_revision",
    "is_postgres",
    "is_sqlite",
    "redact_url",
    "sqlite_path",
    "upgrade",
    "upgrade_async",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same in every process.
_ADVISORY_LOCK_KEY = 7_311_904_251

T = TypeVar("T")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The revision `upgrade` brings a database to."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def async_engine_url(url: str) -> str:
    """The SQLAlchemy async URL (aiosqlite or asyncpg) for a supported database URL.

    `sqlite:///path.db` → `sqlite+aiosqlite:///path.db`, `postgresql://…` or `postgres://…`
    → `postgresql+asyncpg://…`; the rest of the URL is kept. Raises `ValueError` (see
    `check_url`) for any other URL.
    """
    check_url(url)
    driver = "sqlite+aiosqlite" if is_sqlite(url) else "postgresql+asyncpg"
    made = sa.engine.make_url(url)
    return made.set(drivername=driver).render_as_string(hide_password=False)


def _sqlite_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{sqlite_path(url)}", poolclass=sa.NullPool)

    # The driver's own transaction handling is off so that BEGIN IMMEDIATE takes the
    # write lock up front: two processes migrating the same file run one after the other.
    # The connection policy puts the file in WAL mode: every reader and writer asks for
    # it, but migrating is the moment nothing else writes, when the switch cannot fail.
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        sqlite_policy.configure(dbapi_connection)

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _alembic(connection: sa.Connection, action: Callable[[Config], None]) -> None:
    config = _config()
    config.attributes["connection"] = connection
    action(config)


def _revision_of(connection: sa.Connection) -> str | None:
    options: dict[str, Any] = {}
    if connection.dialect.name == "postgresql":
        options["version_table_schema"] = POSTGRES_SCHEMA
    return MigrationContext.configure(connection, opts=options).get_current_revision()


def _upgrade_connection(connection: sa.Connection, revision: str) -> str | None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
        )
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {POSTGRES_SCHEMA}")
    _alembic(connection, lambda config: command.upgrade(config, revision))
    return _revision_of(connection)


async def _postgres(url: str, work: Callable[[sa.Connection], T], *, write: bool) -> T:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(async_engine_url(url), poolclass=sa.NullPool)
    try:
        if write:
            async with engine.begin() as conn:
                return await conn.run_sync(work)
        async with engine.connect() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


def _postgres_sync(url: str, work: Callable[[sa.Connection], T], *, write: bool) -> T:
    return run_coroutine_sync(
        lambda: _postgres(url, work, write=write), thread_name="event-detector-migrate"
    )


def _sqlite(url: str, work: Callable[[sa.Connection], T], *, write: bool) -> T:
    path = sqlite_path(url)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = _sqlite_engine(url)
    try:
        with engine.begin() if write else engine.connect() as conn:
            return work(conn)
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> str | None:
    """Bring the database at `url` to `revision` (default: the latest); returns the revision.

    Creates the schema (and, on SQLite, the file) when missing. Raises `ValueError` for an
    unsupported URL and the driver's error when the database cannot be reached.
    """
    check_url(url)
    if is_sqlite(url):
        return _sqlite(url, lambda c: _upgrade_connection(c, revision), write=True)
    return _postgres_sync(url, lambda c: _upgrade_connection(c, revision), write=True)


async def upgrade_async(url: str, revision: str = "head") -> str | None:
    """`upgrade` for async callers (SQLite work runs in a worker thread)."""
    check_url(url)
    if is_sqlite(url):
        return await asyncio.to_thread(upgrade, url, revision)
    return await _postgres(url, lambda c: _upgrade_connection(c, revision), write=True)


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at, or None if it was never migrated."""
    check_url(url)
    if is_sqlite(url):
        return _sqlite(url, _revision_of, write=False)
    return _postgres_sync(url, _revision_of, write=False)


async def current_revision_async(url: str) -> str | None:
    """`current_revision` for async callers."""
    check_url(url)
    if is_sqlite(url):
        return await asyncio.to_thread(current_revision, url)
    return await _postgres(url, _revision_of, write=False)


def downgrade(url: str, revision: str) -> str | None:
    """Take the database at `url` back to `revision` (`base` drops everything). For tests
    and operators; the plugin never downgrades."""
    check_url(url)

    def work(connection: sa.Connection) -> str | None:
        _alembic(connection, lambda config: command.downgrade(config, revision))
        return _revision_of(connection)

    if is_sqlite(url):
        return _sqlite(url, work, write=True)
    return _postgres_sync(url, work, write=True)
