"""`event-detector export`: invocations as NDJSON, one per line, with everything under them.

Each line is one invocation's columns plus:

- `event_executions`: its events, each with `job_executions` (each with its `logs`) and
  the event's own `logs` (detector and handler lines);
- `logs`: the invocation's lines that belong to no event.

Invocations are read in `(created_at, id)` order in pages of `batch_size` (keyset
pagination), and their children with one query per table per page, so memory stays
bounded by the page whatever the export's size. Timestamps are ISO-8601 UTC, numbers
stay numbers (decimals as JSON numbers), JSON columns are nested JSON.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO

import sqlalchemy as sa

from service.storage.maintenance import (
    event_executions,
    invocations,
    job_executions,
    job_logs,
    open_engine,
)

ProgressCallback = Callable[[int], None]
BODY_COLUMNS = ("source_event_payload", "context_data")
JOB_BODY_COLUMNS = ("job_options", "result")


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which invocations to export: `since` ≤ created_at < `until`, any of `statuses`,
    any of `functions` (empty: all). `include_bodies=False` leaves out payloads,
    contexts, job options and results."""

    since: datetime | None = None
    until: datetime | None = None
    statuses: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    include_bodies: bool = True

    def conditions(self) -> list[Any]:
        found: list[Any] = []
        if self.since is not None:
            found.append(invocations.c.created_at >= self.since)
        if self.until is not None:
            found.append(invocations.c.created_at < self.until)
        if self.statuses:
            found.append(invocations.c.status.in_(self.statuses))
        if self.functions:
            found.append(invocations.c.source_function.in_(self.functions))
        return found


async def count_invocations(database_url: str, selection: ExportFilter) -> int:
    """How many invocations `selection` matches (for a progress bar)."""
    engine = open_engine(database_url)
    try:
        async with engine.connect() as conn:
            statement = sa.select(sa.func.count()).select_from(invocations)
            for condition in selection.conditions():
                statement = statement.where(condition)
            return int((await conn.execute(statement)).scalar_one())
    finally:
        await engine.dispose()


async def iter_invocations(
    database_url: str, selection: ExportFilter, *, batch_size: int = 500
) -> AsyncIterator[dict[str, Any]]:
    """Yield each selected invocation as a nested dict (oldest first)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    engine = open_engine(database_url)
    try:
        after: tuple[datetime, str] | None = None
        while True:
            async with engine.connect() as conn:
                statement = sa.select(invocations)
                for condition in selection.conditions():
                    statement = statement.where(condition)
                if after is not None:
                    statement = statement.where(
                        sa.or_(
                            invocations.c.created_at > after[0],
                            sa.and_(
                                invocations.c.created_at == after[0],
                                invocations.c.id > after[1],
                            ),
                        )
                    )
                statement = statement.order_by(invocations.c.created_at, invocations.c.id).limit(
                    batch_size
                )
                page = [dict(row._mapping) for row in await conn.execute(statement)]
                if not page:
                    return
                nested = await _nest(conn, page, selection.include_bodies)
            for item in nested:
                yield item
            last = page[-1]
            after = (last["created_at"], last["id"])
    finally:
        await engine.dispose()


async def export_ndjson(
    database_url: str,
    out: TextIO,
    selection: ExportFilter | None = None,
    *,
    batch_size: int = 500,
    progress: ProgressCallback | None = None,
) -> int:
    """Write the selected invocations to `out`, one JSON object per line; returns the count."""
    written = 0
    async for item in iter_invocations(
        database_url, selection or ExportFilter(), batch_size=batch_size
    ):
        out.write(
            json.dumps(item, default=_json_default, ensure_ascii=False, separators=(",", ":"))
        )
        out.write("\n")
        written += 1
        if progress is not None:
            progress(1)
    out.flush()
    return written


async def _nest(
    conn: Any, page: list[dict[str, Any]], include_bodies: bool
) -> list[dict[str, Any]]:
    ids = [row["id"] for row in page]
    events_by_invocation: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in await conn.execute(
        sa.select(event_executions)
        .where(event_executions.c.invocation_id.in_(ids))
        .order_by(event_executions.c.created_at, event_executions.c.id)
    ):
        events_by_invocation[row.invocation_id].append(dict(row._mapping))
    jobs_by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in await conn.execute(
        sa.select(job_executions)
        .where(job_executions.c.invocation_id.in_(ids))
        .order_by(job_executions.c.created_at, job_executions.c.id)
    ):
        job = dict(row._mapping)
        if not include_bodies:
            for column in JOB_BODY_COLUMNS:
                job.pop(column, None)
        jobs_by_event[row.event_execution_id].append(job)
    logs_by_owner: dict[tuple[str, str | None, str | None], list[dict[str, Any]]] = defaultdict(
        list
    )
    for row in await conn.execute(
        sa.select(job_logs)
        .where(job_logs.c.invocation_id.in_(ids))
        .order_by(job_logs.c.seq, job_logs.c.created_at, job_logs.c.id)
    ):
        line = dict(row._mapping)
        key = (row.invocation_id, row.event_execution_id, row.job_execution_id)
        logs_by_owner[key].append(line)

    nested = []
    for invocation in page:
        if not include_bodies:
            for column in BODY_COLUMNS:
                invocation.pop(column, None)
        events = []
        for event in events_by_invocation[invocation["id"]]:
            jobs = jobs_by_event[event["id"]]
            for job in jobs:
                job["logs"] = logs_by_owner.pop((invocation["id"], event["id"], job["id"]), [])
            event["job_executions"] = jobs
            event["logs"] = logs_by_owner.pop((invocation["id"], event["id"], None), [])
            events.append(event)
        invocation["event_executions"] = events
        # Lines of no event, plus any whose event or job row is missing (never lost).
        leftovers = [
            line
            for key in [k for k in logs_by_owner if k[0] == invocation["id"]]
            for line in logs_by_owner.pop(key)
        ]
        invocation["logs"] = sorted(leftovers, key=lambda line: line["seq"])
        nested.append(invocation)
    return nested


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)
