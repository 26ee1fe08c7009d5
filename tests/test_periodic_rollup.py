"""The service's background rollup: runs at start, then only when invocations changed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from service.operations.periodic_rollup import PeriodicRollup
from service.storage.maintenance import invocations
from tests.support.runtime import count, execute

dashboard_stats = invocations.metadata.tables["dashboard_stats"]


def test_periodic_rollup_skips_runs_while_nothing_changed(db_url: str) -> None:
    periodic = PeriodicRollup(db_url, interval=3600)

    async def scenario() -> list[object]:
        outcomes = [await periodic.run_once(), await periodic.run_once()]
        await asyncio.to_thread(
            execute,
            db_url,
            sa.insert(invocations).values(
                id=str(uuid.uuid4()),
                created_at=datetime.now(UTC),
                source_function="fn",
                status="completed",
            ),
        )
        outcomes += [await periodic.run_once(), await periodic.run_once(force=True)]
        await periodic.stop()
        return outcomes

    first, unchanged, changed, forced = asyncio.run(scenario())
    assert first is not None and unchanged is None
    assert changed is not None and changed.hours_rolled_up == 1
    assert forced is not None and forced.hours_rolled_up == 0
    assert (periodic.runs, periodic.skipped) == (3, 1)
    assert count(db_url, dashboard_stats, dashboard_stats.c.source_function == "fn") == 1
