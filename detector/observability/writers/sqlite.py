"""SQLiteWriter: executemany upserts through the standard library's sqlite3.

Its connection follows the SQLite connection policy (`sqlite_policy`: WAL, busy timeout,
foreign keys), with checkpoints and a page cache sized for bulk writes on top. SQLite has
no trigger for `updated_at`, so the writer sets it on every upsert. Values are stored in the formats `sqltypes` defines
(canonical uuid text, fixed-width UTC timestamps, JSON text).

The writer runs on the plugin's dedicated thread, so blocking calls are fine here.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from .. import sqlite_policy
from ..buffer import Batch, Patch
from ..formats import SQLITE_TIMESTAMP_FORMAT, timestamp_to_sqlite
from ..tables import HEAD_REVISION
from ..urls import sqlite_path
from .base import (
    COLUMN_KINDS,
    NEVER_UPDATED,
    TABLES_WITH_UPDATED_AT,
    RecordsRejected,
    SchemaMissing,
    StoreUnavailable,
    group_by_columns,
    short_error,
)

log = logging.getLogger(__name__)

CommitListener = Callable[[str], None]
_commit_listeners: list[CommitListener] = []


def add_commit_listener(listener: CommitListener) -> None:
    """Call `listener(path)` after every transaction an `SQLiteWriter` of this process commits.

    `path` is the database file. Listeners run on the writer's thread and must be quick
    and thread-safe (a live-query service uses this to look for changes at once instead
    of at its next poll). A listener that raises is logged and otherwise ignored.
    """
    _commit_listeners.append(listener)


def remove_commit_listener(listener: CommitListener) -> None:
    """Stop calling `listener` (no error if it was not added)."""
    try:
        _commit_listeners.remove(listener)
    except ValueError:
        pass


def _announce_commit(path: str) -> None:
    for listener in tuple(_commit_listeners):
        try:
            listener(path)
        except Exception:
            log.exception("observability: a commit listener failed")


def _revision(conn: sqlite3.Connection) -> str | None:
    """The migration revision the file is at (None: never migrated)."""
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else str(row[0])


def upsert_sql(table: str, columns: tuple[str, ...], *, ignore: bool = False) -> str:
    """`INSERT … ON CONFLICT(id) DO UPDATE` of `columns` (and `updated_at`) into `table`."""
    names = list(columns)
    if table in TABLES_WITH_UPDATED_AT and "updated_at" not in names:
        names.append("updated_at")
    placeholders = ", ".join("?" for _ in names)
    updates = [c for c in names if c not in NEVER_UPDATED]
    if ignore or not updates:
        action = "DO NOTHING"
    else:
        action = "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updates)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders}) ON CONFLICT(id) {action}"
    )


def _converter(kind: str) -> Any:
    """How a value of a column kind is bound on SQLite (None: as it is)."""
    if kind == "timestamptz":
        return timestamp_to_sqlite
    if kind == "boolean":
        return int
    return None


def _rows(table: str, columns: tuple[str, ...], patches: list[Patch], now: str) -> list[list]:
    """Parameter rows for `columns` of `patches` (+ `updated_at` = `now` where the table
    has it and the patches do not set it), in the formats `sqltypes` defines."""
    kinds = COLUMN_KINDS[table]
    converted = [
        (index, convert)
        for index, column in enumerate(columns)
        if (convert := _converter(kinds[column])) is not None
    ]
    stamp = table in TABLES_WITH_UPDATED_AT and "updated_at" not in columns
    # A C-level getter for the whole row: patches of a group share their column names.
    pick = itemgetter(*columns) if len(columns) > 1 else (lambda values: (values[columns[0]],))
    rows = []
    for patch in patches:
        values = patch.values
        try:
            row = list(pick(values))
        except KeyError:  # a patch without some column: NULL there
            row = [values.get(column) for column in columns]
        for index, convert in converted:
            value = row[index]
            if value is not None:
                row[index] = convert(value)
        if stamp:
            row.append(now)
        rows.append(row)
    return rows


class SQLiteWriter:
    """Writes batches to an SQLite file; creates or upgrades the schema when it opens."""

    name = "sqlite"

    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.auto_migrate = auto_migrate
        self._conn: sqlite3.Connection | None = None
        self.statements = 0

    async def open(self) -> None:
        """Connect; with `auto_migrate`, create or upgrade the schema first if the file is
        not at the newest revision (alembic and SQLAlchemy load only then). Raises
        `StoreUnavailable`, or `SchemaMissing` without `auto_migrate`."""
        if self._conn is not None:
            return
        conn: sqlite3.Connection | None = None
        try:
            if self.auto_migrate and self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite_policy.connect(self.path)
            if self.auto_migrate and _revision(conn) != HEAD_REVISION:
                self._upgrade()
            # Bulk writing: checkpoint every ~40 MB of WAL instead of SQLite's 4 MB (each
            # checkpoint fsyncs, and index pages changed by many batches are copied once),
            # truncate the WAL file back to 64 MB after a checkpoint, and cache 16 MB of
            # pages (the random-UUID primary-key indexes touch pages all over the file).
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.execute("PRAGMA cache_size=-16000")
            present = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'invocations'"
            ).fetchone()
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error | OSError):
                raise StoreUnavailable(f"cannot open {self.path}: {short_error(exc)}") from None
            raise
        if not present:
            conn.close()
            raise SchemaMissing(
                f"the observability tables are missing in {self.path}: run "
                "`event-detector migrate --db <url>`"
            )
        self._conn = conn

    def _upgrade(self) -> None:
        from ..migrate import upgrade

        try:
            upgrade(self.url)
        except Exception as exc:
            raise StoreUnavailable(
                f"migration failed: {short_error(exc)}: {str(exc)[:150]}"
            ) from None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def forget(self) -> None:
        """In a forked child: drop the parent's connection without touching it."""
        self._conn = None

    def _transaction(self, work: Any) -> None:
        assert self._conn is not None
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            raise RecordsRejected(short_error(exc) + f": {str(exc)[:120]}") from None
        except (sqlite3.InterfaceError, sqlite3.DataError, OverflowError) as exc:
            raise RecordsRejected(short_error(exc)) from None
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if "no such table" in message or "has no column" in message:
                raise SchemaMissing(
                    f"{message[:120]}: run `event-detector migrate --db <url>`"
                ) from None
            raise StoreUnavailable(f"{short_error(exc)}: {message[:120]}") from None
        except sqlite3.Error as exc:
            raise StoreUnavailable(short_error(exc)) from None
        if _commit_listeners:
            _announce_commit(self.path)

    async def write(self, batch: Batch, instance: dict[str, Any] | None = None) -> None:
        """Write one batch, and the health row `instance` with it, in one transaction
        (BEGIN IMMEDIATE)."""
        await self.open()
        now = datetime.now(UTC).strftime(SQLITE_TIMESTAMP_FORMAT)

        def work(conn: sqlite3.Connection) -> None:
            for (table, columns), patches in group_by_columns(batch.executions).items():
                conn.executemany(upsert_sql(table, columns), _rows(table, columns, patches, now))
                self.statements += 1
            if batch.logs:
                columns = tuple(batch.logs[0].values)
                conn.executemany(
                    upsert_sql("job_logs", columns, ignore=True),
                    _rows("job_logs", columns, batch.logs, now),
                )
                self.statements += 1
            if instance is not None:
                _upsert_instance(conn, instance, now)
                self.statements += 1

        self._transaction(work)

    async def write_quarantined(self, rows: list[dict[str, Any]]) -> None:
        import json

        await self.open()
        now = datetime.now(UTC).strftime(SQLITE_TIMESTAMP_FORMAT)

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO quarantined_records (id, created_at, table_name, record_id, "
                "record, error) VALUES (lower(hex(randomblob(4))) || '-' || "
                "lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) "
                "|| '-a' || substr(lower(hex(randomblob(2))), 2) || '-' || "
                "lower(hex(randomblob(6))), ?, ?, ?, ?, ?)",
                [
                    (now, r["table_name"], r["record_id"], json.dumps(r["record"]), r["error"])
                    for r in rows
                ],
            )

        self._transaction(work)

    async def write_instance(self, row: dict[str, Any]) -> None:
        await self.open()
        now = datetime.now(UTC).strftime(SQLITE_TIMESTAMP_FORMAT)
        self._transaction(lambda conn: _upsert_instance(conn, row, now))


def _upsert_instance(conn: sqlite3.Connection, row: dict[str, Any], now: str) -> None:
    columns = tuple(row)
    patch = Patch("plugin_instances", row["id"], row)
    conn.execute(
        upsert_sql("plugin_instances", columns), _rows("plugin_instances", columns, [patch], now)[0]
    )
