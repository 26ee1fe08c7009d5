"""Drive the observability plugin through the real plugin API (its hooks) and read back
what it stored, on either backend."""

from __future__ import annotations

import inspect
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from detector.payload import parse_hasura_event
from detector.plugins import CapturedLog, EventInfo, InvocationInfo, JobInfo, ListenOptions
from detector.results import EventResult, JobAttempt, JobResult, ListenResult
from detector.status import EventStatus, InvocationStatus, JobStatus, LogLevel
from tests.support.db import async_url


async def call(hook: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a plugin hook the way the library does: await it if it is awaitable; a hook
    the plugin opted out of (None) is not called."""
    if hook is None:
        return None
    outcome = hook(*args, **kwargs)
    if inspect.isawaitable(outcome):
        return await outcome
    return outcome


def payload(
    *,
    event_id: str = "evt-0001",
    op: str = "UPDATE",
    updated_by: str | None = None,
    retry: int = 0,
    extra_new: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "created_at": "2026-11-24T10:15:30.123456",
        "trigger": {"name": "orders_changed"},
        "table": {"schema": "public", "name": "orders"},
        "delivery_info": {"current_retry": retry, "max_retries": 3},
        "event": {
            "op": op,
            "session_variables": {
                "x-hasura-role": "user",
                "x-hasura-user-email": "ana@example.com",
            },
            "data": {
                "old": {"id": 7, "status": "packed"},
                "new": {
                    "id": 7,
                    "status": "shipped",
                    "card_number": "4111",
                    "updated_by": updated_by,
                    **(extra_new or {}),
                },
            },
            "trace_context": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "1"},
        },
    }


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class InvocationDriver:
    """Plays one invocation's hooks on a plugin, keeping the ids the library would assign."""

    plugin: Any
    raw: dict[str, Any] = field(default_factory=payload)
    source_job_id: str | None = None
    correlation_id: str = field(default_factory=lambda: f"corr-{uuid.uuid4().hex[:8]}")
    info: InvocationInfo | None = None
    events: list[EventResult] = field(default_factory=list)
    seq: int = 0

    async def start(self, **context: Any) -> InvocationInfo:
        event = parse_hasura_event(self.raw)
        started = now()
        self.info = InvocationInfo(
            invocation_id=str(uuid.uuid4()),
            correlation_id=self.correlation_id,
            source_function="orders_fn",
            payload=self.raw,
            event=event,
            options=ListenOptions(events_dir=None, context=dict(context)),
            received_at=started - timedelta(milliseconds=3),
            started_at=started,
            source_job_id=self.source_job_id,
            delivery_attempt=event.delivery_info.attempt,
        )
        self.info.options.events_dir = "/srv/events"  # type: ignore[assignment]
        await call(self.plugin.on_invocation_start, self.info)
        return self.info

    async def event(self, name: str) -> EventInfo:
        assert self.info is not None
        info = EventInfo(str(uuid.uuid4()), name, f"/srv/events/{name}.py", self.info, now())
        await call(self.plugin.on_detection_start, info)
        return info

    async def detected(
        self, event: EventInfo, detected: bool, error: BaseException | None = None
    ) -> None:
        await call(self.plugin.on_detection_end, event, detected, 1.6, error)
        if not detected or error is not None:
            status = EventStatus.DETECTION_FAILED if error else EventStatus.NOT_DETECTED
            self.events.append(
                EventResult(event.name, False, str(error) if error else None, [], status)
            )

    async def job_start(
        self, event: EventInfo, name: str, job_id: str | None = None, **options: Any
    ) -> JobInfo:
        info = JobInfo(job_id or str(uuid.uuid4()), name, f"{name}_fn", options, event, now())
        await call(self.plugin.on_job_start, info)
        return info

    async def job_end(
        self,
        job: JobInfo,
        status: JobStatus,
        *,
        result: Any = None,
        error: BaseException | None = None,
        attempts: int = 1,
        duration_ms: float = 12.4,
        attempt_history: list[JobAttempt] | None = None,
    ) -> JobResult:
        if error is not None:
            await call(self.plugin.on_error, error, "job", self.info, job.event, job)
        outcome = JobResult(
            name=job.name,
            completed=status == JobStatus.COMPLETED,
            status=status,
            result=result,
            error=None if error is None else str(error),
            error_type=None if error is None else type(error).__name__,
            attempts=attempts,
            duration_ms=duration_ms,
            started_at=job.started_at,
            ended_at=now(),
            job_execution_id=job.job_execution_id,
            attempt_history=attempt_history,
            exception=error,  # as the library sets it
        )
        await call(self.plugin.on_job_end, job, outcome)
        return outcome

    async def handler_end(
        self, event: EventInfo, jobs: list[JobResult], error: BaseException | None = None
    ) -> None:
        await call(self.plugin.on_handler_end, event, jobs, 30.2, error)
        status = EventStatus.HANDLER_FAILED if error else EventStatus.COMPLETED
        self.events.append(
            EventResult(event.name, True, str(error) if error else None, jobs, status)
        )

    async def log(
        self,
        message: str,
        *,
        event: EventInfo | None = None,
        job: JobInfo | None = None,
        level: LogLevel = LogLevel.INFO,
        data: dict[str, Any] | None = None,
    ) -> CapturedLog:
        assert self.info is not None
        self.seq += 1
        record = CapturedLog(
            invocation_id=self.info.invocation_id,
            event_execution_id=event.event_execution_id if event else None,
            job_execution_id=job.job_execution_id if job else None,
            level=level,
            message=message,
            created_at=now(),
            seq=self.seq,
            source="orders.jobs" if job else "stdout",
            line_number=42,
            data=data,
        )
        await call(self.plugin.on_log, record)
        return record

    async def end(
        self, status: InvocationStatus | None = None, error: str | None = None
    ) -> ListenResult:
        assert self.info is not None
        jobs = [job for event in self.events for job in event.jobs]
        if status is None:
            failed = any(job.status != JobStatus.COMPLETED for job in jobs) or any(
                e.status in (EventStatus.DETECTION_FAILED, EventStatus.HANDLER_FAILED)
                for e in self.events
            )
            status = InvocationStatus.FAILED if failed else InvocationStatus.COMPLETED
        result = ListenResult(
            invocation_id=self.info.invocation_id,
            correlation_id=self.correlation_id,
            events=self.events,
            duration_ms=55.7,
            timed_out=status == InvocationStatus.TIMEOUT,
            error=error,
            status=status,
        )
        await call(self.plugin.on_invocation_end, self.info, result)
        await call(self.plugin.flush)
        return result


async def rows(url: str, table: str, order_by: str = "created_at") -> list[dict[str, Any]]:
    """Every row of `table` as plain dicts (timestamps as aware datetimes, jsonb decoded)."""
    from detector.observability.models import POSTGRES_SCHEMA, metadata

    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            if url.startswith("postgresql"):
                conn = await conn.execution_options(schema_translate_map={None: POSTGRES_SCHEMA})
            model = metadata.tables[table]
            query = sa.select(model)
            if order_by in model.c:
                query = query.order_by(model.c[order_by])
            result = await conn.execute(query)
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()
