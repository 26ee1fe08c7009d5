"""The one SQLite connection policy (`detector.observability.sqlite_policy`): every
connection to an observability store gets the same pragmas, on each driver."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from detector.observability import sqlite_policy
from detector.observability.sqlite_policy import SQLFunctions

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {
    "busy_timeout": int(sqlite_policy.BUSY_TIMEOUT * 1000),
    "journal_mode": "wal",
    "synchronous": 1,  # NORMAL
    "foreign_keys": 1,
}


class Longest:
    """An aggregate: the longest text."""

    def __init__(self) -> None:
        self.best = ""

    def step(self, value: str) -> None:
        self.best = max(self.best, value, key=len)

    def finalize(self) -> str:
        return self.best


FUNCTIONS = SQLFunctions(
    scalars={"twice": (1, lambda value: value * 2)},
    aggregates={"longest": Longest},
    collations={"reverse": lambda a, b: (a < b) - (a > b)},
)
PROBE = (
    "SELECT twice(21), (SELECT longest(v) FROM (SELECT 'a' AS v UNION SELECT 'ccc' UNION "
    "SELECT 'bb')), (SELECT group_concat(v, '') FROM (SELECT v FROM (SELECT 'a' AS v UNION "
    "SELECT 'b') ORDER BY v COLLATE reverse))"
)
PROBED = (42, "ccc", "ba")


def _settings(execute: Any) -> dict[str, Any]:
    return {name: execute(f"PRAGMA {name}") for name in EXPECTED}


def test_a_stdlib_connection_gets_the_policy_and_the_functions(tmp_path: Path) -> None:
    conn = sqlite_policy.connect(str(tmp_path / "o.db"), functions=FUNCTIONS)
    try:
        assert _settings(lambda sql: conn.execute(sql).fetchone()[0]) == EXPECTED
        assert conn.execute(PROBE).fetchone() == PROBED
        assert conn.isolation_level is None  # autocommit: transactions begun explicitly
    finally:
        conn.close()


def test_sqlalchemy_connect_events_apply_it_on_pysqlite_and_aiosqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    sa.event.listen(
        engine, "connect", lambda dbapi, _: sqlite_policy.configure(dbapi, functions=FUNCTIONS)
    )
    with engine.connect() as conn:
        assert _settings(lambda sql: conn.exec_driver_sql(sql).scalar()) == EXPECTED
        assert tuple(conn.exec_driver_sql(PROBE).one()) == PROBED
    engine.dispose()

    async def through_aiosqlite() -> tuple[dict[str, Any], tuple[Any, ...]]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
        sa.event.listen(
            engine.sync_engine,
            "connect",
            lambda dbapi, _: sqlite_policy.configure(dbapi, functions=FUNCTIONS),
        )
        try:
            async with engine.connect() as conn:
                settings = {
                    name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                    for name in EXPECTED
                }
                return settings, tuple((await conn.exec_driver_sql(PROBE)).one())
        finally:
            await engine.dispose()

    import asyncio

    assert asyncio.run(through_aiosqlite()) == (EXPECTED, PROBED)


def test_a_file_another_connection_writes_to_is_left_in_its_journal_mode_without_error(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "o.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    try:
        conn = sqlite_policy.connect(path)  # cannot switch to WAL now: said, not raised
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        conn.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_nothing_opens_or_tunes_sqlite_connections_but_the_policy() -> None:
    """The library, the plugin and the service (pools, storage, change watcher) all use it."""
    opening = re.compile(
        r"sqlite3\.connect\(|PRAGMA (busy_timeout|journal_mode|synchronous|foreign_keys)|"
        r"connect_args=\{\"timeout\""
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted([*(ROOT / "detector").rglob("*.py"), *(ROOT / "service").rglob("*.py")])
        if path.name != "sqlite_policy.py"
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if opening.search(line)
    ]
    assert offenders == []
