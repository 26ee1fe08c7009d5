"""Background work runs once across processes: the rollup's leader lock.

Each `PeriodicRollup` below stands for a service process (its own lock object: its own
PostgreSQL session or its own open file), on one database per backend.
"""

from __future__ import annotations

import asyncio

import asyncpg

from service.operations.periodic_rollup import PeriodicRollup
from service.storage.leader import PostgresLeaderLock, leader_lock
from tests.support.dataset import build_dataset, insert_dataset


def test_one_process_runs_the_rollup_and_another_takes_over_when_it_stops(db_url: str) -> None:
    async def scenario() -> None:
        await insert_dataset(db_url, build_dataset())
        first, second = (
            PeriodicRollup(db_url, 60, leader=leader_lock(db_url, "rollup")) for _ in range(2)
        )
        try:
            assert await first.run_once(force=True) is not None
            assert await second.run_once(force=True) is None  # the first one leads
            assert (first.runs, second.runs, second.followed) == (1, 0, 1)
            assert await first.run_once(force=True) is not None  # and keeps leading
            await first.stop()  # the leader goes away (as a process that exits)
            assert await second.run_once(force=True) is not None
            assert second.runs == 1
        finally:
            await first.stop()
            await second.stop()

    asyncio.run(scenario())


def test_a_leader_whose_session_is_cut_stops_leading(postgres_url: str) -> None:
    async def scenario() -> None:
        first, second = PostgresLeaderLock(postgres_url, "t"), PostgresLeaderLock(postgres_url, "t")
        admin = await asyncpg.connect(postgres_url)
        try:
            assert await first.acquire() and not await second.acquire()
            held = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            [holder] = [row["pid"] for row in await admin.fetch(held)]
            # The server ends the leader's session (a restart, a failover, a network cut).
            await admin.execute("SELECT pg_terminate_backend($1)", holder)
            assert await second.acquire()
            assert not await first.acquire()  # it learns it lost the lock; it does not run
            assert len(await admin.fetch(held)) == 1
        finally:
            await first.release()
            await second.release()
            await admin.close()

    asyncio.run(scenario())
