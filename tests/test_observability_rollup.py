"""The rollup writes metrics_hourly and refreshes dashboard_stats, alike on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from detector.observability.models import POSTGRES_SCHEMA, metadata
from detector.observability.rollup import percentile_cont, rollup
from tests.support.db import async_url
from tests.support.observability import rows

NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
HOUR = NOW.replace(minute=0) - timedelta(hours=2)


async def _insert(url: str, table: str, values: list[dict[str, Any]]) -> None:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            if url.startswith("postgresql"):
                conn = await conn.execution_options(schema_translate_map={None: POSTGRES_SCHEMA})
            await conn.execute(sa.insert(metadata.tables[table]), values)
    finally:
        await engine.dispose()


def _invocation(function: str, minute: int, status: str, duration: int, **extra: Any) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "created_at": HOUR + timedelta(minutes=minute),
        "source_function": function,
        "status": status,
        "total_duration_ms": duration,
        **extra,
    }


async def test_rollup_writes_every_hour_and_recomputes_changed_ones(db_url: str) -> None:
    durations = [10, 20, 30, 40, 100]
    statuses = ["completed", "completed", "failed", "timeout", "completed"]
    hour_one = [
        _invocation(
            "orders_fn", n * 5, s, d, events_detected_count=1, total_jobs_run=2, total_jobs_failed=1
        )
        for n, (s, d) in enumerate(zip(statuses, durations, strict=True))
    ]
    later = _invocation("orders_fn", 65, "completed", 7)
    other = _invocation("users_fn", 10, "failed", 5)
    await _insert(db_url, "invocations", hour_one)
    await _insert(db_url, "invocations", [later, other])
    events = [
        {"id": str(uuid.uuid4()), "invocation_id": inv["id"], "event_name": name, "detected": True}
        for inv, name in zip(
            hour_one, ["shipped", "shipped", "paid", "shipped", "paid"], strict=True
        )
    ]
    await _insert(db_url, "event_executions", events)
    await _insert(
        db_url,
        "job_executions",
        [
            {
                "invocation_id": e["invocation_id"],
                "event_execution_id": e["id"],
                "job_name": job,
                "status": status,
            }
            for e, job, status in zip(
                events,
                ["email", "email", "ledger", "email", "ledger"],
                ["failed", "timeout", "failed", "completed", "running"],
                strict=True,
            )
        ],
    )

    result = await rollup(db_url, now=NOW)
    assert result.hours_rolled_up == 3
    metrics = {
        (r["hour_bucket"], r["source_function"]): r for r in await rows(db_url, "metrics_hourly")
    }
    assert set(metrics) == {
        (HOUR, "orders_fn"),
        (HOUR + timedelta(hours=1), "orders_fn"),
        (HOUR, "users_fn"),
    }
    m = metrics[(HOUR, "orders_fn")]
    assert (m["total_invocations"], m["successful_invocations"], m["failed_invocations"]) == (
        5,
        3,
        1,
    )
    assert (m["total_events_detected"], m["total_jobs_run"], m["total_jobs_failed"]) == (5, 10, 5)
    assert Decimal(m["avg_duration_ms"]) == Decimal("40.00")
    assert (m["min_duration_ms"], m["max_duration_ms"]) == (10, 100)
    assert Decimal(m["p95_duration_ms"]) == Decimal("88.00")
    assert m["top_detected_events"] == [
        {"event_name": "shipped", "count": 3},
        {"event_name": "paid", "count": 2},
    ]
    assert m["most_failed_jobs"] == [
        {"job_name": "email", "count": 2},
        {"job_name": "ledger", "count": 1},
    ]

    # Nothing new: nothing to roll up. A late invocation: only its hour is recomputed.
    assert (await rollup(db_url, now=NOW)).hours_rolled_up == 0
    await _insert(db_url, "invocations", [_invocation("users_fn", 20, "completed", 15)])
    assert (await rollup(db_url, now=NOW)).hours_rolled_up == 1
    users = [r for r in await rows(db_url, "metrics_hourly") if r["source_function"] == "users_fn"]
    assert users[0]["total_invocations"] == 2 and users[0]["successful_invocations"] == 1

    stats = {
        (r["hour_bucket"], r["source_function"]): r
        for r in await rows(db_url, "dashboard_stats", "hour_bucket")
    }
    d = stats[(HOUR, "orders_fn")]
    assert (d["total_invocations"], d["successful_invocations"], d["failed_invocations"]) == (
        5,
        3,
        1,
    )
    assert float(d["avg_duration_ms"]) == 40.0
    assert d["p95_duration_ms"] == pytest.approx(88.0)
    assert (d["total_jobs_run"], d["total_jobs_failed"]) == (10, 5)
    assert stats[(HOUR, "users_fn")]["total_invocations"] == 2


def test_percentile_cont_matches_postgresql() -> None:
    assert percentile_cont([], 0.95) is None
    assert percentile_cont([7], 0.95) == 7
    assert percentile_cont([40, 10, 30, 20, 100], 0.95) == pytest.approx(88.0)
    assert percentile_cont([1, 2], 0.5) == 1.5
