"""The service's request pool keeps the connections a burst opened (`storage/database.py`).

A PostgreSQL server process started for a burst and stopped after it costs the server
more CPU than the statements it runs, so the pool opens connections as load needs them
and keeps them, up to `pool_size`, instead of opening overflow connections that close
when they are returned. Bursts are made with a barrier: every connection is out at once.
"""

from __future__ import annotations

import asyncio

from service.storage.database import Database
from tests.support import db


async def _burst(database: Database, size: int) -> set[int]:
    """The server processes of `size` reads holding their connections at once."""
    everyone_holds = asyncio.Barrier(size)

    async def hold() -> int:
        async with database.read() as conn:
            pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar()
            await everyone_holds.wait()
            return int(pid)

    return set(await asyncio.gather(*(hold() for _ in range(size))))


async def _reads(database: Database, count: int) -> list[int]:
    """The server processes of `count` reads started together (each holds its connection
    while its statement runs: the first ones are out when the later ones ask)."""

    async def read() -> int:
        async with database.read() as conn:
            return int((await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar())

    return list(await asyncio.gather(*(read() for _ in range(count))))


async def test_a_burst_reuses_the_connections_the_last_one_opened(postgres_url: str) -> None:
    await db.prepare_database(postgres_url)
    database = Database(postgres_url, pool_size=4)
    try:
        opened = await _burst(database, 4)
        assert len(opened) == 4
        assert await _burst(database, 4) == opened
        # Three times as many reads as connections: they wait for the four (the pool used
        # to open eight more for them, and close those as soon as they were returned).
        used = await _reads(database, 12)
        assert len(used) == 12 and set(used) <= opened
        assert await _burst(database, 4) == opened
    finally:
        await database.dispose()
