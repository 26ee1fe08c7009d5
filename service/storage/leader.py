"""Leadership: background work that must run once across every process and replica.

Several service processes (`serve --workers N`, or N replicas behind a load balancer) on
one database each start the same background work; the rollup must still run once per
interval, not once per process. Each process asks a `LeaderLock` before each run; the
one that holds it runs, the others skip. The holder keeps it while it lives: a process
that dies (or loses its connection) lets another take over at its next try.

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held on a
  dedicated connection. It must reach the server directly: a pooler in transaction
  mode hands the session to other clients between transactions. Give it
  `Settings.session_database_url`.
- SQLite: an exclusive `flock` on a file beside the database (`<database>-leader`), held
  by an open descriptor; the kernel releases it when the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from typing import Any, Protocol

import asyncpg

from detector.observability.migrate import is_sqlite, sqlite_path
from service.storage.database import asyncpg_dsn

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for `name`."""
    digest = hashlib.blake2b(f"event-detector:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LeaderLock(Protocol):
    """Whether this process leads the work the lock is named after."""

    async def acquire(self) -> bool:
        """True if this process holds the lock now (taking it if it is free)."""
        ...

    async def release(self) -> None:
        """Let another process lead (also done by the process ending)."""
        ...


class PostgresLeaderLock:
    """`pg_try_advisory_lock(key)` on a connection of its own, kept while leading."""

    def __init__(self, url: str, name: str, *, connect_timeout: float = 10.0) -> None:
        self.dsn = asyncpg_dsn(url)
        self.key = lock_key(name)
        self.connect_timeout = connect_timeout
        self._connection: Any = None

    async def acquire(self) -> bool:
        connection = self._connection
        if connection is not None:
            try:
                await connection.fetchval("SELECT 1")
                return True
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                # The session (and with it the lock) is gone: try to lead again below.
                await self.release()
        connection = await asyncpg.connect(
            self.dsn,
            timeout=self.connect_timeout,
            statement_cache_size=0,
            # Who leads, for whoever looks at pg_stat_activity.
            server_settings={"application_name": f"event-detector-leader:{os.getpid()}"},
        )
        try:
            held = await connection.fetchval("SELECT pg_try_advisory_lock($1)", self.key)
        except BaseException:
            connection.terminate()
            raise
        if held:
            self._connection = connection
            return True
        await connection.close()
        return False

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await asyncio.wait_for(connection.close(), 5)
            except Exception:
                connection.terminate()


class FileLeaderLock:
    """An exclusive, non-blocking `flock` on `path`, kept while leading."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    async def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def leader_lock(database_url: str, name: str, *, session_url: str | None = None) -> LeaderLock:
    """The lock for `name` on the database of `database_url` (PostgreSQL: held through
    `session_url` when given, a URL that reaches the server directly)."""
    if is_sqlite(database_url):
        return FileLeaderLock(f"{sqlite_path(database_url)}-{name}-leader")
    return PostgresLeaderLock(session_url or database_url, name)
