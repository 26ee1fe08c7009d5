"""The one SQLite connection policy: what every connection to an observability store gets.

Every connection to the file — the plugin's writer, migrations, the rollup, and the
service's pools, storage engines and change watcher — is configured here, so that they
agree on how long to wait for each other:

- `busy_timeout` of `BUSY_TIMEOUT` seconds: a connection that finds the file locked
  waits that long for the lock before failing with "database is locked";
- WAL journal (readers never block the writer; a property of the file, set by the first
  connection that can: switching from a rollback journal is refused at once while
  another connection writes, and is then left to a later connection);
- `synchronous=NORMAL` (durable in WAL mode at every checkpoint, no fsync per commit);
- foreign keys enforced (deletes cascade as on PostgreSQL);
- optionally, SQL functions, aggregates and collations the caller needs (`SQLFunctions`;
  the service registers its PostgreSQL emulation through this hook).

    conn = sqlite_policy.connect(path)                  # stdlib, autocommit
    sqlite_policy.configure(dbapi_connection, functions)  # a SQLAlchemy `connect` event

`configure` takes a standard library `sqlite3.Connection` (what SQLAlchemy's pysqlite
driver hands to a `connect` event too) or SQLAlchemy's aiosqlite adapter; this module
itself needs only the standard library.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 10.0
"""Seconds a connection waits for a lock held by another: longer than any write of the
plugin, the service or a rollup takes; a migration of a large file may take longer."""

PRAGMAS = (
    f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
"""Per-connection settings, run on every new connection (WAL is asked for separately)."""


@dataclass(frozen=True)
class SQLFunctions:
    """SQL functions to register on each connection: `scalars` as name → (number of
    arguments, function), `aggregates` as name → class (one argument), `collations` as
    name → comparison function."""

    scalars: Mapping[str, tuple[int, Callable[..., Any]]] = field(default_factory=dict)
    aggregates: Mapping[str, type] = field(default_factory=dict)
    collations: Mapping[str, Callable[[str, str], int]] = field(default_factory=dict)


def connect(
    path: str,
    *,
    functions: SQLFunctions | None = None,
    check_same_thread: bool = False,
    read_only: bool = False,
) -> sqlite3.Connection:
    """A standard library connection to `path` with the policy applied, in autocommit
    mode (`isolation_level=None`: transactions are begun explicitly). `read_only` opens
    an existing file for reading only (it is never created, nor switched to WAL). Raises
    `sqlite3.Error` when the file cannot be opened."""
    target = f"{Path(path).resolve().as_uri()}?mode=ro" if read_only else path
    conn = sqlite3.connect(
        target,
        timeout=BUSY_TIMEOUT,
        isolation_level=None,
        check_same_thread=check_same_thread,
        uri=read_only,
    )
    try:
        if read_only:
            for pragma in PRAGMAS:
                conn.execute(pragma)
            if functions is not None:
                register(conn, functions)
        else:
            apply(conn, functions)
    except BaseException:
        conn.close()
        raise
    return conn


def configure(dbapi_connection: Any, functions: SQLFunctions | None = None) -> None:
    """Apply the policy to a new DB-API connection, from a SQLAlchemy `connect` event.

    Takes a `sqlite3.Connection` (the pysqlite driver) or SQLAlchemy's aiosqlite adapter
    (whose connection lives on aiosqlite's own thread: the policy is applied there).
    """
    if isinstance(dbapi_connection, sqlite3.Connection):
        apply(dbapi_connection, functions)
        return
    # SQLAlchemy's aiosqlite adapter: run on aiosqlite's worker thread, which owns the
    # sqlite3 connection, through SQLAlchemy's bridge from the event's greenlet.
    from sqlalchemy.util import await_

    driver = dbapi_connection.driver_connection
    await_(driver._execute(apply, driver._conn, functions))


def apply(conn: sqlite3.Connection, functions: SQLFunctions | None = None) -> None:
    """Apply the policy to a `sqlite3.Connection`, on the thread that may use it."""
    for pragma in PRAGMAS:
        conn.execute(pragma)
    enable_wal(conn)
    if functions is not None:
        register(conn, functions)


def enable_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode unless it is already (or cannot switch now: see above)."""
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        log.info("sqlite: WAL mode not set now (%s); a later connection sets it", exc)


def register(conn: sqlite3.Connection, functions: SQLFunctions) -> None:
    """Register `functions` on `conn` (scalar functions as deterministic)."""
    for name, (arity, function) in functions.scalars.items():
        conn.create_function(name, arity, function, deterministic=True)
    for name, aggregate in functions.aggregates.items():
        conn.create_aggregate(name, 1, aggregate)
    for name, collation in functions.collations.items():
        conn.create_collation(name, collation)
