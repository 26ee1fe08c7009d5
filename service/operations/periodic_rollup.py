"""The periodic rollup: `metrics_hourly` and `dashboard_stats` kept fresh while the service runs.

`PeriodicRollup(url, interval)` runs `detector.observability.rollup.rollup` at start and
then every `interval` seconds, skipping runs while no invocation changed. The app starts
it in its lifespan (see `service.app`). With a `leader` lock (`service.storage.leader`),
only the process holding it runs the rollup: once per interval across every worker and
replica on the database, whichever of them is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from detector.observability.rollup import RollupResult, rollup
from service.storage.leader import LeaderLock
from service.storage.maintenance import invocations, open_engine

log = logging.getLogger("service.operations.periodic_rollup")

# The dashboard covers a moving 30-day window: refresh at least this often.
WINDOW_REFRESH_S = 3600.0


class PeriodicRollup:
    """Runs the rollup (metrics_hourly + dashboard_stats refresh) every `interval` seconds.

    The first run happens at start, so a fresh dashboard has its series at once. Later
    runs are skipped while no invocation changed (one cheap query instead of a refresh
    and its change notification), except once an hour, when the dashboard's 30-day
    window moves. A run that fails is logged and counted, and retried at the next interval.
    """

    def __init__(
        self,
        database_url: str,
        interval: float,
        on_outcome: Callable[[str], None] | None = None,
        leader: LeaderLock | None = None,
    ) -> None:
        self.database_url = database_url
        self.interval = interval
        self.on_outcome = on_outcome
        """Called with `"ok"` or `"error"` after every run that was not skipped (metrics)."""
        self.leader = leader
        self.runs = 0
        self.skipped = 0
        self.followed = 0
        """Turns left to the process holding the leader lock."""
        self.last_result: RollupResult | None = None
        self._task: asyncio.Task[None] | None = None
        self._engine: AsyncEngine | None = None
        self._seen: tuple[Any, ...] | None = None
        self._last_run = 0.0

    async def _fingerprint(self) -> tuple[Any, ...]:
        """Count and latest update of invocations: equal fingerprints, nothing to roll up."""
        if self._engine is None:
            self._engine = open_engine(self.database_url, pool_size=1)
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.max(invocations.c.updated_at))
                )
            ).one()
        return tuple(row)

    async def run_once(self, *, force: bool = False) -> RollupResult | None:
        """One rollup now, unless nothing changed (`force` runs it anyway); None when it
        was skipped or failed (logged, counted)."""
        try:
            if self.leader is not None and not await self.leader.acquire():
                self.followed += 1
                return None
            seen = await self._fingerprint()
            fresh = time.monotonic() - self._last_run < WINDOW_REFRESH_S
            if not force and seen == self._seen and fresh:
                self.skipped += 1
                return None
            result = await rollup(self.database_url)
            self._seen, self._last_run = seen, time.monotonic()
        except Exception as exc:
            log.warning("rollup failed: %s: %s", type(exc).__name__, str(exc)[:200])
            if self.on_outcome is not None:
                self.on_outcome("error")
            return None
        self.runs += 1
        self.last_result = result
        if self.on_outcome is not None:
            self.on_outcome("ok")
        return result

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="event-detector-rollup")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self.leader is not None:
            await self.leader.release()
