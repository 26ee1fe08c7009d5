"""Where live queries learn that data changed: one change source per backend.

A change source calls `tables_changed(names)` when it knows which tables changed and
`everything_changed()` when it does not (or when changes may have been missed). Both run
on the event loop. `healthy` says whether signals are flowing; while it is False the
live-query engine falls back to polling.

- `SQLiteChangeWatcher`: a dedicated connection reads `PRAGMA data_version` every
  `interval` (it moves only when *another* connection commits, from this process or any
  other) and, when it moved, the per-table counters the triggers of migration 0002
  maintain. Commits made in this process (the service's own mutations, an observability
  plugin's writer thread) wake it at once, so they are seen without waiting for the poll.
- `PostgresChangeListener`: one dedicated asyncpg connection per process, outside any
  pool, `LISTEN`s on the channel the schema's statement-level triggers notify (payload:
  the table name). A liveness ping detects a dead connection that TCP has not noticed;
  it reconnects with exponential backoff and jitter, and after every (re)connection
  reports `everything_changed()`, because notifications sent meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import sqlite3
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import asyncpg
from sqlalchemy import event

from detector.observability import sqlite_policy
from detector.observability.migrate import sqlite_path
from detector.observability.writers import sqlite as sqlite_writer
from service.storage.database import Database, asyncpg_dsn

log = logging.getLogger(__name__)

CHANGES_CHANNEL = "event_detector_changes"
COUNTERS_QUERY = "SELECT table_name, changes FROM change_counters"

TablesChanged = Callable[[Iterable[str]], None]
EverythingChanged = Callable[[], None]


class ChangeSource(Protocol):
    """What the live-query engine needs from a change source."""

    @property
    def healthy(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SQLiteChangeWatcher:
    """Polls `PRAGMA data_version` on its own connection; woken early by local commits.

    `tables_changed` gets the tables whose counters moved. Without the counters table
    (a database not migrated to revision 0002) every change is `everything_changed`.
    """

    def __init__(
        self,
        database: Database,
        *,
        interval: float,
        tables_changed: TablesChanged,
        everything_changed: EverythingChanged,
    ) -> None:
        self.database = database
        self.path = sqlite_path(database.url)
        self.interval = interval
        self._tables_changed = tables_changed
        self._everything_changed = everything_changed
        self._conn: sqlite3.Connection | None = None
        # Reads run in worker threads; a cancelled `to_thread` leaves its read running,
        # so closing must wait for it (closing under a running statement crashes).
        self._conn_lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._version: int | None = None
        self._counters: dict[str, int] | None = None
        self._committing = False
        self.checks = 0
        """`PRAGMA data_version` reads so far (each costs microseconds, no I/O)."""
        self.counter_reads = 0
        """Reads of the counters table (only after `data_version` moved)."""

    @property
    def healthy(self) -> bool:
        return self._conn is not None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = await asyncio.to_thread(self._connect)
        self._version = self._data_version()
        self._counters = await asyncio.to_thread(self._read_counters)
        # Commits through the service's own pool and by an observability plugin writing
        # from a thread of this process wake the watcher at once. SQLAlchemy announces a
        # commit *before* it happens; the connection's return to the pool comes after.
        sync_engine = self.database.engine.sync_engine
        event.listen(sync_engine, "commit", self._on_local_commit)
        event.listen(sync_engine.pool, "checkin", self._on_checkin)
        sqlite_writer.add_commit_listener(self._on_writer_commit)
        self._task = asyncio.create_task(self._run(), name="live-sqlite-watcher")

    async def stop(self) -> None:
        sqlite_writer.remove_commit_listener(self._on_writer_commit)
        sync_engine = self.database.engine.sync_engine
        with contextlib.suppress(Exception):
            event.remove(sync_engine, "commit", self._on_local_commit)
        with contextlib.suppress(Exception):
            event.remove(sync_engine.pool, "checkin", self._on_checkin)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connect(self) -> sqlite3.Connection:
        # Autocommit: every read is its own short transaction, so the watcher never pins
        # the WAL (a long read would stop checkpoints).
        return sqlite_policy.connect(self.path)

    def _data_version(self) -> int:
        with self._conn_lock:
            if self._conn is None:
                raise sqlite3.ProgrammingError("the change watcher is stopped")
            self.checks += 1
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _read_counters(self) -> dict[str, int] | None:
        with self._conn_lock:
            if self._conn is None:
                raise sqlite3.ProgrammingError("the change watcher is stopped")
            self.counter_reads += 1
            try:
                return {name: int(count) for name, count in self._conn.execute(COUNTERS_QUERY)}
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return None
                raise

    def _on_local_commit(self, *args: Any) -> None:
        self._committing = True

    def _on_checkin(self, *args: Any) -> None:
        if self._committing and self._loop is not None:
            self._committing = False
            # Pool events may come from another thread (a connection collected there).
            self._loop.call_soon_threadsafe(self._wake.set)

    def _on_writer_commit(self, path: str) -> None:
        if self._loop is not None and _same_file(path, self.path):
            self._loop.call_soon_threadsafe(self._wake.set)

    def wake(self) -> None:
        """Look for changes now (call on the event loop)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await wait_event(self._wake, self.interval)
            self._wake.clear()
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A locked or briefly unreadable file: try again at the next tick, and
                # let the engine re-run everything in case this check missed a change.
                log.warning("live queries: cannot read SQLite changes (%s)", exc)
                self._everything_changed()

    async def check(self) -> None:
        """Compare `data_version` (and then the counters) with what was seen last."""
        version = self._data_version()
        if version == self._version:
            return
        self._version = version
        counters = await asyncio.to_thread(self._read_counters)
        if counters is None or self._counters is None:
            self._counters = counters
            self._everything_changed()
            return
        changed = [name for name, count in counters.items() if self._counters.get(name) != count]
        self._counters = counters
        if changed:
            self._tables_changed(changed)


async def wait_event(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait for `event` at most `seconds` (None: no limit); whether it was set.

    `asyncio.timeout` rather than `wait_for`: on Python 3.11, `wait_for` can swallow a
    cancellation that arrives as the event is set, and a stopping task would go on.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


class PostgresChangeListener:
    """`LISTEN event_detector_changes` on one dedicated connection, kept alive.

    `connections` counts successful (re)connections; `notifications` the table names
    received. Pings and reconnections never touch the service's pool.
    """

    def __init__(
        self,
        url: str,
        *,
        tables_changed: TablesChanged,
        everything_changed: EverythingChanged,
        ping_interval: float = 10.0,
        ping_timeout: float = 5.0,
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
        channel: str = CHANGES_CHANNEL,
    ) -> None:
        self.dsn = asyncpg_dsn(url)
        self.channel = channel
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._tables_changed = tables_changed
        self._everything_changed = everything_changed
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._connected = asyncio.Event()
        self.connections = 0
        self.notifications = 0
        self.last_error: str | None = None

    @property
    def healthy(self) -> bool:
        return self._connection is not None and not self._lost.is_set()

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the listening connection (None while disconnected)."""
        connection = self._connection
        return None if connection is None else connection.get_server_pid()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-postgres-listener")
        # Give the first connection a moment, so subscriptions opened right after start
        # are driven by notifications; if it fails, the engine polls until it succeeds.
        await self.wait_connected(2.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_connected(self, seconds: float) -> bool:
        """Wait until the listener is connected (True) or `seconds` pass (False)."""
        return await wait_event(self._connected, seconds) and self.healthy

    def _on_notification(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self.notifications += 1
        self._tables_changed((payload,))

    def _on_termination(self, connection: Any) -> None:
        self._lost.set()

    async def _run(self) -> None:
        backoff = self.initial_backoff
        while True:
            try:
                await self._listen()
                backoff = self.initial_backoff
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("live queries: PostgreSQL listener: %s", self.last_error)
            # Jitter: many processes losing the server at once do not reconnect in step.
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self.max_backoff)

    async def _listen(self) -> None:
        connection: asyncpg.Connection = await asyncpg.connect(self.dsn, timeout=10)
        self._lost.clear()
        try:
            connection.add_termination_listener(self._on_termination)
            await connection.add_listener(self.channel, self._on_notification)
            self._connection = connection
            self.connections += 1
            self._connected.set()
            if self.connections > 1:
                log.info("live queries: PostgreSQL listener reconnected")
            # Anything committed before LISTEN took effect went unannounced.
            self._everything_changed()
            while True:
                if await wait_event(self._lost, self.ping_interval):
                    raise ConnectionError("the listening connection was closed")
                async with asyncio.timeout(self.ping_timeout):
                    await connection.fetchval("SELECT 1")
        finally:
            self._connection = None
            self._connected.clear()
            if not connection.is_closed():
                connection.terminate()
