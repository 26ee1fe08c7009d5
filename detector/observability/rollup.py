"""The hourly rollup: `metrics_hourly` and the `dashboard_stats` refresh (SPEC §5a).

`await rollup(url)` (async; `rollup_sync(url)` from sync code):

1. finds every (UTC hour, source_function) that has invocations and is not rolled up yet,
   or whose invocations changed since its rollup (more invocations, or one updated after
   the rollup row was written);
2. writes its `metrics_hourly` row: invocation counts (successful = `completed`, failed =
   `failed`), events detected, jobs run and failed (every job that did not complete),
   avg/min/max/p95 (continuous) of `total_duration_ms`, the top 10 detected events and the
   10 most failed jobs (`[{"event_name"|"job_name": …, "count": n}]`, by count then name);
3. refreshes `dashboard_stats`: `REFRESH MATERIALIZED VIEW CONCURRENTLY` on PostgreSQL
   (then a NOTIFY for live queries), a recomputation with the view's definition on SQLite.

Aggregates are computed in Python from the same rows on both backends, so both give the
same figures (averages and p95 rounded half-up to 2 decimals in `metrics_hourly`).
Needs `sqlalchemy[asyncio]` with asyncpg (PostgreSQL) or aiosqlite (SQLite).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from ..status import InvocationStatus, JobStatus
from . import sqlite_policy
from .migrate import async_engine_url, check_url, is_sqlite
from .models import POSTGRES_SCHEMA, metadata
from .sqltypes import parse_timestamp

TOP = 10
DASHBOARD_WINDOW = timedelta(days=30)
_CENT = Decimal("0.01")

invocations = metadata.tables["invocations"]
event_executions = metadata.tables["event_executions"]
job_executions = metadata.tables["job_executions"]
metrics_hourly = metadata.tables["metrics_hourly"]
dashboard_stats = metadata.tables["dashboard_stats"]


@dataclass(frozen=True, slots=True)
class RollupResult:
    """What one run did: hours (per source function) written, and the refresh."""

    hours_rolled_up: int
    dashboard_rows: int | None


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's `percentile_cont`: linear interpolation between sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def _hour(value: Any) -> datetime:
    return parse_timestamp(value).replace(minute=0, second=0, microsecond=0)


def _cents(value: float | Decimal | None) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)


async def rollup(url: str, *, now: datetime | None = None) -> RollupResult:
    """Roll up every hour not yet rolled up (or changed since) and refresh dashboard_stats.

    Safe to run repeatedly and concurrently with writers. Raises the driver's error when
    the database cannot be reached, `ValueError` for an unsupported URL.
    """
    check_url(url)
    now = now or datetime.now(UTC)
    engine = create_async_engine(async_engine_url(url), poolclass=sa.NullPool)
    if is_sqlite(url):
        sa.event.listen(engine.sync_engine, "connect", _sqlite_connect)
    try:
        async with engine.begin() as conn:
            if not is_sqlite(url):
                conn = await conn.execution_options(schema_translate_map={None: POSTGRES_SCHEMA})
            hours = await _stale_hours(conn)
            for hour in sorted({h for h, _ in hours}):
                functions = {f for h, f in hours if h == hour}
                await _roll_hour(conn, hour, functions, now)
        if is_sqlite(url):
            async with engine.begin() as conn:
                rows = await _recompute_dashboard(conn, now)
        else:
            async with engine.connect() as conn:
                await conn.execute(
                    sa.text(
                        f"REFRESH MATERIALIZED VIEW CONCURRENTLY {POSTGRES_SCHEMA}.dashboard_stats"
                    )
                )
                await conn.execute(
                    sa.text("SELECT pg_notify('event_detector_changes', 'dashboard_stats')")
                )
                await conn.commit()
                rows = None
        return RollupResult(len(hours), rows)
    finally:
        await engine.dispose()


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    sqlite_policy.configure(dbapi_connection)


def rollup_sync(url: str, *, now: datetime | None = None) -> RollupResult:
    """`rollup` for sync callers (must not be called from a running event loop)."""
    return asyncio.run(rollup(url, now=now))


async def _stale_hours(conn: AsyncConnection) -> set[tuple[datetime, str]]:
    if conn.dialect.name == "postgresql":
        hour = sa.func.date_trunc("hour", invocations.c.created_at, "UTC")
    else:
        hour = sa.func.substr(invocations.c.created_at, 1, 13)
    result = await conn.execute(
        sa.select(
            hour,
            invocations.c.source_function,
            sa.func.count(),
            sa.func.max(invocations.c.updated_at),
        ).group_by(hour, invocations.c.source_function)
    )
    present: dict[tuple[datetime, str], tuple[int, datetime]] = {}
    for bucket, function, count, updated in result:
        key_hour = _hour(bucket + ":00:00" if isinstance(bucket, str) else bucket)
        present[(key_hour, function)] = (count, parse_timestamp(updated))
    done = await conn.execute(
        sa.select(
            metrics_hourly.c.hour_bucket,
            metrics_hourly.c.source_function,
            metrics_hourly.c.total_invocations,
            metrics_hourly.c.updated_at,
        )
    )
    rolled = {(_hour(h), f): (n, u) for h, f, n, u in done}
    stale = set()
    for key, (count, updated) in present.items():
        previous = rolled.get(key)
        if previous is None or previous[0] != count or updated > previous[1]:
            stale.add(key)
    return stale


async def _roll_hour(
    conn: AsyncConnection, hour: datetime, functions: set[str], now: datetime
) -> None:
    end = hour + timedelta(hours=1)
    in_hour = sa.and_(
        invocations.c.created_at >= hour,
        invocations.c.created_at < end,
        invocations.c.source_function.in_(sorted(functions)),
    )
    result = await conn.execute(
        sa.select(
            invocations.c.source_function,
            invocations.c.status,
            invocations.c.total_duration_ms,
            invocations.c.events_detected_count,
            invocations.c.total_jobs_run,
            invocations.c.total_jobs_failed,
        ).where(in_hour)
    )
    groups: dict[str, list[Any]] = defaultdict(list)
    for row in result:
        groups[row.source_function].append(row)

    detected = await _count_by_function(
        conn, event_executions.c.event_name, in_hour, event_executions.c.detected.is_(True)
    )
    not_completed = [
        s.value for s in JobStatus if s not in (JobStatus.COMPLETED, JobStatus.RUNNING)
    ]
    failed_jobs = await _count_by_function(
        conn, job_executions.c.job_name, in_hour, job_executions.c.status.in_(not_completed)
    )

    for function, rows in groups.items():
        durations = [r.total_duration_ms for r in rows if r.total_duration_ms is not None]
        values = {
            "hour_bucket": hour,
            "source_function": function,
            "total_invocations": len(rows),
            "successful_invocations": sum(r.status == InvocationStatus.COMPLETED for r in rows),
            "failed_invocations": sum(r.status == InvocationStatus.FAILED for r in rows),
            "total_events_detected": sum(r.events_detected_count for r in rows),
            "total_jobs_run": sum(r.total_jobs_run for r in rows),
            "total_jobs_failed": sum(r.total_jobs_failed for r in rows),
            "avg_duration_ms": (
                _cents(Decimal(sum(durations)) / len(durations)) if durations else None
            ),
            "min_duration_ms": min(durations) if durations else None,
            "max_duration_ms": max(durations) if durations else None,
            "p95_duration_ms": _cents(percentile_cont([float(d) for d in durations], 0.95)),
            "top_detected_events": _top(detected[function], "event_name"),
            "most_failed_jobs": _top(failed_jobs[function], "job_name"),
            # The real clock, whatever `now` says: later changes are detected against it.
            "updated_at": datetime.now(UTC),
        }
        await conn.execute(_upsert(conn, values))


async def _count_by_function(
    conn: AsyncConnection, name: sa.Column[Any], *conditions: sa.ColumnElement[bool]
) -> dict[str, Counter[str]]:
    """Rows of `name`'s table matching `conditions`, counted per source function of their
    invocation (joined) and per `name`."""
    table = name.table
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for function, value, count in await conn.execute(
        sa.select(invocations.c.source_function, name, sa.func.count())
        .join(invocations, invocations.c.id == table.c.invocation_id)
        .where(*conditions)
        .group_by(invocations.c.source_function, name)
    ):
        counts[function][value] = count
    return counts


def _top(counts: Counter[str], key: str) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    return [{key: name, "count": count} for name, count in ranked]


def _upsert(conn: AsyncConnection, values: dict[str, Any]) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(metrics_hourly).values(**values)
    update = {
        k: statement.excluded[k] for k in values if k not in ("hour_bucket", "source_function")
    }
    return statement.on_conflict_do_update(
        index_elements=["hour_bucket", "source_function"], set_=update
    )


async def _recompute_dashboard(conn: AsyncConnection, now: datetime) -> int:
    """SQLite: the materialized view's definition, recomputed into the table."""
    result = await conn.execute(
        sa.select(
            invocations.c.created_at,
            invocations.c.source_function,
            invocations.c.status,
            invocations.c.total_duration_ms,
            invocations.c.events_detected_count,
            invocations.c.total_jobs_run,
            invocations.c.total_jobs_succeeded,
            invocations.c.total_jobs_failed,
        ).where(invocations.c.created_at >= now - DASHBOARD_WINDOW)
    )
    groups: dict[tuple[datetime, str], list[Any]] = defaultdict(list)
    for row in result:
        groups[(_hour(row.created_at), row.source_function)].append(row)
    rows = []
    for (hour, function), members in groups.items():
        durations = [r.total_duration_ms for r in members if r.total_duration_ms is not None]
        rows.append(
            {
                "hour_bucket": hour,
                "source_function": function,
                "total_invocations": len(members),
                "successful_invocations": sum(r.status == "completed" for r in members),
                "failed_invocations": sum(r.status == "failed" for r in members),
                "total_events_detected": sum(r.events_detected_count for r in members),
                "total_jobs_run": sum(r.total_jobs_run for r in members),
                "total_jobs_succeeded": sum(r.total_jobs_succeeded for r in members),
                "total_jobs_failed": sum(r.total_jobs_failed for r in members),
                "avg_duration_ms": sum(durations) / len(durations) if durations else None,
                "min_duration_ms": min(durations) if durations else None,
                "max_duration_ms": max(durations) if durations else None,
                "p95_duration_ms": percentile_cont([float(d) for d in durations], 0.95),
            }
        )
    await conn.execute(sa.delete(dashboard_stats))
    if rows:
        await conn.execute(sa.insert(dashboard_stats), rows)
    return len(rows)
