"""`event-detector retention`: delete old records in batches, keeping failures longer.

A `RetentionPolicy` says, in days:

- `success_days`: how long `completed` invocations are kept;
- `failure_days`: how long every other invocation is kept (`failed`, `timeout`,
  `rejected`, and `running` ones, which at that age are stuck: their process died);
- `log_days` (optional): log lines older than this go earlier than their invocation;
- `payload_days` (optional): payload bodies (the invocation's payload and context, job
  options and results) older than this are set to NULL, while the rows stay.

Deleting an invocation deletes its event executions, job executions and log lines.
Quarantined records older than `failure_days` are deleted too. `metrics_hourly` (the
hourly aggregates) is never touched: the rollup outlives the raw rows.

Every statement touches at most `batch_size` rows and commits on its own, so retention
can run beside live writers without long locks. `dry_run=True` only counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from detector import InvocationStatus
from service.storage.maintenance import (
    event_executions,
    invocations,
    job_executions,
    job_logs,
    open_engine,
    quarantined_records,
)

# (step name, rows done in this batch) after every batch.
ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Ages in days (see the module docstring); raises ValueError for impossible values."""

    success_days: float = 7.0
    failure_days: float = 30.0
    log_days: float | None = None
    payload_days: float | None = None
    batch_size: int = 1000

    def __post_init__(self) -> None:
        for name in ("success_days", "failure_days", "log_days", "payload_days"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive number of days, got {value}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass(slots=True)
class RetentionCounts:
    """Rows deleted (or, in a dry run, that would be) per kind."""

    successful_invocations: int = 0
    failed_invocations: int = 0
    event_executions: int = 0
    job_executions: int = 0
    job_logs: int = 0
    payloads_cleared: int = 0
    job_bodies_cleared: int = 0
    quarantined_records: int = 0
    dry_run: bool = False
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def invocations(self) -> int:
        return self.successful_invocations + self.failed_invocations


@dataclass(frozen=True, slots=True)
class _Cutoffs:
    success: datetime
    failure: datetime
    logs: datetime | None
    payloads: datetime | None


def _cutoffs(policy: RetentionPolicy, now: datetime) -> _Cutoffs:
    def ago(days: float | None) -> datetime | None:
        return None if days is None else now - timedelta(days=days)

    success = ago(policy.success_days)
    failure = ago(policy.failure_days)
    assert success is not None and failure is not None
    return _Cutoffs(success, failure, ago(policy.log_days), ago(policy.payload_days))


def _expired(cutoffs: _Cutoffs, *, successful: bool) -> Any:
    if successful:
        return sa.and_(
            invocations.c.status == InvocationStatus.COMPLETED.value,
            invocations.c.created_at < cutoffs.success,
        )
    return sa.and_(
        invocations.c.status != InvocationStatus.COMPLETED.value,
        invocations.c.created_at < cutoffs.failure,
    )


def _payload_filters(cutoffs: _Cutoffs) -> tuple[Any, Any] | None:
    if cutoffs.payloads is None:
        return None
    invocation_bodies = sa.and_(
        invocations.c.created_at < cutoffs.payloads,
        sa.or_(
            invocations.c.source_event_payload.is_not(None),
            invocations.c.context_data.is_not(None),
        ),
    )
    job_bodies = sa.and_(
        job_executions.c.created_at < cutoffs.payloads,
        sa.or_(job_executions.c.job_options.is_not(None), job_executions.c.result.is_not(None)),
    )
    return invocation_bodies, job_bodies


async def count_expired(
    database_url: str, policy: RetentionPolicy, *, now: datetime | None = None
) -> RetentionCounts:
    """How many rows `apply_retention` would delete or clear (the progress bar's totals).

    Event and job executions and log lines are counted through their invocations, plus
    the log lines that are old on their own.
    """
    cutoffs = _cutoffs(policy, now or datetime.now(UTC))
    engine = open_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await _count(conn, cutoffs, dry_run=True)
    finally:
        await engine.dispose()


async def _count(conn: AsyncConnection, cutoffs: _Cutoffs, *, dry_run: bool) -> RetentionCounts:
    async def scalar(statement: Any) -> int:
        return int((await conn.execute(statement)).scalar_one())

    expired = sa.or_(_expired(cutoffs, successful=True), _expired(cutoffs, successful=False))
    expired_ids = sa.select(invocations.c.id).where(expired)
    counts = RetentionCounts(dry_run=dry_run)
    counts.successful_invocations = await scalar(
        sa.select(sa.func.count()).where(_expired(cutoffs, successful=True))
    )
    counts.failed_invocations = await scalar(
        sa.select(sa.func.count()).where(_expired(cutoffs, successful=False))
    )
    counts.event_executions = await scalar(
        sa.select(sa.func.count()).where(event_executions.c.invocation_id.in_(expired_ids))
    )
    counts.job_executions = await scalar(
        sa.select(sa.func.count()).where(job_executions.c.invocation_id.in_(expired_ids))
    )
    old_logs = job_logs.c.invocation_id.in_(expired_ids)
    if cutoffs.logs is not None:
        old_logs = sa.or_(old_logs, job_logs.c.created_at < cutoffs.logs)
    counts.job_logs = await scalar(sa.select(sa.func.count()).where(old_logs))
    bodies = _payload_filters(cutoffs)
    if bodies is not None:
        # Rows deleted anyway are not counted as cleared.
        counts.payloads_cleared = await scalar(
            sa.select(sa.func.count()).where(bodies[0], sa.not_(expired))
        )
        counts.job_bodies_cleared = await scalar(
            sa.select(sa.func.count()).where(
                bodies[1], job_executions.c.invocation_id.not_in(expired_ids)
            )
        )
    counts.quarantined_records = await scalar(
        sa.select(sa.func.count()).where(quarantined_records.c.created_at < cutoffs.failure)
    )
    return counts


async def apply_retention(
    database_url: str,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> RetentionCounts:
    """Apply `policy` now (or as of `now`); returns what was deleted and cleared.

    Order: invocations past their age (with their events, jobs and log lines), then log
    lines past `log_days`, then bodies past `payload_days`, then old quarantined records.
    Raises ValueError for an unsupported URL and the driver's error if the database
    cannot be reached (batches already committed stay deleted; running again resumes).
    """
    cutoffs = _cutoffs(policy, now or datetime.now(UTC))
    engine = open_engine(database_url)
    try:
        if dry_run:
            async with engine.connect() as conn:
                return await _count(conn, cutoffs, dry_run=True)
        counts = RetentionCounts()
        note = progress or (lambda step, n: None)
        for successful in (True, False):
            await _delete_invocations(engine, cutoffs, successful, policy.batch_size, counts, note)
        if cutoffs.logs is not None:
            counts.job_logs += await _delete_in_batches(
                engine, job_logs, job_logs.c.created_at < cutoffs.logs, policy.batch_size, note
            )
        bodies = _payload_filters(cutoffs)
        if bodies is not None:
            counts.payloads_cleared = await _clear_in_batches(
                engine,
                invocations,
                bodies[0],
                {"source_event_payload": sa.null(), "context_data": sa.null()},
                policy.batch_size,
                note,
            )
            counts.job_bodies_cleared = await _clear_in_batches(
                engine,
                job_executions,
                bodies[1],
                {"job_options": sa.null(), "result": sa.null()},
                policy.batch_size,
                note,
            )
        counts.quarantined_records = await _delete_in_batches(
            engine,
            quarantined_records,
            quarantined_records.c.created_at < cutoffs.failure,
            policy.batch_size,
            note,
        )
        return counts
    finally:
        await engine.dispose()


async def _delete_invocations(
    engine: AsyncEngine,
    cutoffs: _Cutoffs,
    successful: bool,
    batch_size: int,
    counts: RetentionCounts,
    note: ProgressCallback,
) -> None:
    condition = _expired(cutoffs, successful=successful)
    while True:
        async with engine.begin() as conn:
            ids = list(
                (
                    await conn.execute(
                        sa.select(invocations.c.id)
                        .where(condition)
                        .order_by(invocations.c.created_at)
                        .limit(batch_size)
                    )
                ).scalars()
            )
            if not ids:
                return
            # Children first: counts are exact, and log lines have no foreign key.
            logs = await conn.execute(sa.delete(job_logs).where(job_logs.c.invocation_id.in_(ids)))
            jobs = await conn.execute(
                sa.delete(job_executions).where(job_executions.c.invocation_id.in_(ids))
            )
            events = await conn.execute(
                sa.delete(event_executions).where(event_executions.c.invocation_id.in_(ids))
            )
            deleted = await conn.execute(sa.delete(invocations).where(invocations.c.id.in_(ids)))
        counts.job_logs += logs.rowcount
        counts.job_executions += jobs.rowcount
        counts.event_executions += events.rowcount
        if successful:
            counts.successful_invocations += deleted.rowcount
        else:
            counts.failed_invocations += deleted.rowcount
        note("successful invocations" if successful else "failed invocations", deleted.rowcount)


async def _delete_in_batches(
    engine: AsyncEngine, table: sa.Table, condition: Any, batch_size: int, note: ProgressCallback
) -> int:
    total = 0
    while True:
        async with engine.begin() as conn:
            ids = list(
                (
                    await conn.execute(sa.select(table.c.id).where(condition).limit(batch_size))
                ).scalars()
            )
            if not ids:
                return total
            result = await conn.execute(sa.delete(table).where(table.c.id.in_(ids)))
        total += result.rowcount
        note(table.name, result.rowcount)


async def _clear_in_batches(
    engine: AsyncEngine,
    table: sa.Table,
    condition: Any,
    values: dict[str, Any],
    batch_size: int,
    note: ProgressCallback,
) -> int:
    total = 0
    while True:
        async with engine.begin() as conn:
            ids = list(
                (
                    await conn.execute(sa.select(table.c.id).where(condition).limit(batch_size))
                ).scalars()
            )
            if not ids:
                return total
            result = await conn.execute(sa.update(table).where(table.c.id.in_(ids)).values(values))
        total += result.rowcount
        note(f"{table.name} bodies", result.rowcount)
