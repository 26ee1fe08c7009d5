"""A deterministic observability dataset, inserted with SQLAlchemy Core, for API tests.

`build_dataset()` returns plain Python rows (dicts keyed by column name, values as the
API returns them before serialisation: aware datetimes, str UUIDs, JSON values), so tests
compute expected answers from the same rows, independently of the engine.

Shape (`Dataset.invocations` etc.):
- 36 invocations (by default) over three source functions, five statuses, two operations, spread
  over ~22 hours; some durations, emails, correlation ids and payloads are null;
  correlation ids shared in groups of three;
- cascades three levels deep: an invocation's job changes a row whose event triggers a
  child invocation (`source_job_id`), whose job triggers a grandchild;
- 0-3 event executions per invocation (detected or not), 0-3 jobs per detected event,
  varied statuses, null durations, jsonb options and results;
- log lines for detectors (no job) and jobs.

`insert_dataset` then runs the real rollup, which writes `metrics_hourly` and refreshes
`dashboard_stats` (a materialized view on PostgreSQL), and reads those rows back into the
dataset, so tests compare the API with what the database holds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from detector.observability.models import POSTGRES_SCHEMA, metadata
from detector.observability.rollup import rollup
from tests.support.db import async_url

# Two days ago at midnight UTC: inside the 30-day window of dashboard_stats.
BASE_TIME = (datetime.now(UTC) - timedelta(days=2)).replace(
    hour=0, minute=0, second=0, microsecond=0
)
FUNCTIONS = ("orders_handler", "users_handler", "payments_handler")
INVOCATION_STATUSES = ("completed", "failed", "completed", "running", "timeout", "rejected")
NAMESPACE = uuid.UUID("6f1c0d4e-8f7a-4c1e-9a57-3b0f6a2c1d00")


def _id(kind: str, *parts: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{':'.join(map(str, parts))}"))


@dataclass
class Dataset:
    invocations: list[dict[str, Any]] = field(default_factory=list)
    event_executions: list[dict[str, Any]] = field(default_factory=list)
    job_executions: list[dict[str, Any]] = field(default_factory=list)
    job_logs: list[dict[str, Any]] = field(default_factory=list)
    metrics_hourly: list[dict[str, Any]] = field(default_factory=list)
    dashboard_stats: list[dict[str, Any]] = field(default_factory=list)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "invocations": self.invocations,
            "event_executions": self.event_executions,
            "job_executions": self.job_executions,
            "job_logs": self.job_logs,
            "metrics_hourly": self.metrics_hourly,
            "dashboard_stats": self.dashboard_stats,
        }

    def by_id(self, table: str) -> dict[str, dict[str, Any]]:
        return {row["id"]: row for row in self.tables()[table]}


def _payload(i: int) -> Any:
    if i % 7 == 0:
        return None
    data = {
        "op": "UPDATE" if i % 2 else "INSERT",
        "data": {
            "old": None if i % 2 == 0 else {"id": i, "status": "packed"},
            "new": {
                "id": i,
                "status": "shipped" if i % 3 else "packed",
                "tags": ["a", f"t{i % 4}"],
            },
        },
        "trigger": {"name": FUNCTIONS[i % 3]},
    }
    if i % 5 == 0:
        data["note"] = "Ünïcode ✓ order"
    if i % 4 == 1:
        data["priority"] = i % 3
    return data


def build_dataset(invocations: int = 36) -> Dataset:
    """The dataset (same rows every call); `invocations` scales it (at least 26)."""
    if invocations < 26:
        raise ValueError("the dataset needs at least 26 invocations for its cascades")
    ds = Dataset()
    job_counter = 0
    for i in range(invocations):
        created = BASE_TIME + timedelta(
            minutes=37 * i, seconds=i, microseconds=(i * 12345) % 1_000_000
        )
        status = INVOCATION_STATUSES[i % len(INVOCATION_STATUSES)]
        invocation = {
            "id": _id("invocation", i),
            "created_at": created,
            "updated_at": created + timedelta(seconds=2),
            "correlation_id": None if i % 11 == 10 else f"corr-{i // 3:02d}",
            "source_function": FUNCTIONS[i % 3],
            "source_table": "public.orders" if i % 2 else "public.users",
            "source_operation": "UPDATE" if i % 2 else "INSERT",
            "source_system": "hasura",
            "source_trigger_name": FUNCTIONS[i % 3],
            "source_event_id": f"evt-{i}",
            "source_event_payload": _payload(i),
            "source_event_time": created - timedelta(seconds=1),
            "source_user_email": None if i % 4 == 3 else f"user{i % 5}@example.com",
            "source_user_role": "admin" if i % 6 == 0 else "user",
            "source_job_id": None,
            "delivery_attempt": 1 + (i % 3 == 2),
            "received_at": created,
            "total_duration_ms": None if i % 9 == 4 else 100 + (i * 37) % 900,
            "events_detected_count": 0,
            "total_jobs_run": 0,
            "total_jobs_succeeded": 0,
            "total_jobs_failed": 0,
            "auto_load_modules": i % 5 != 0,
            "event_modules_directory": "./events",
            "status": status,
            "error_message": "boom" if status == "failed" else None,
            "error_stack": "Traceback: boom" if status == "failed" else None,
            "context_data": {"region": "eu" if i % 2 else "us", "attempt": i % 3}
            if i % 3
            else None,
            "trace_id": None,
        }
        ds.invocations.append(invocation)
        events = i % 4  # 0..3 events
        for e in range(events):
            detected = (i + e) % 3 != 0
            event_status = "completed" if detected else "not_detected"
            if detected and (i + e) % 5 == 0:
                event_status = "handler_failed"
            event = {
                "id": _id("event", i, e),
                "invocation_id": invocation["id"],
                "created_at": created + timedelta(milliseconds=10 * (e + 1)),
                "updated_at": created + timedelta(milliseconds=10 * (e + 1) + 5),
                "correlation_id": invocation["correlation_id"],
                "event_name": ("orders.shipped", "users.created", "payments.failed")[(i + e) % 3],
                "event_module_path": f"./events/e{e}.py",
                "detected": detected,
                "detection_duration_ms": None if (i + e) % 8 == 7 else 1 + (i * 3 + e) % 20,
                "detection_error": None,
                "detection_error_stack": None,
                "handler_duration_ms": (5 + (i + e) % 40) if detected else None,
                "handler_error": "handler boom" if event_status == "handler_failed" else None,
                "handler_error_stack": "Traceback: handler"
                if event_status == "handler_failed"
                else None,
                "jobs_count": 0,
                "jobs_succeeded": 0,
                "jobs_failed": 0,
                "status": event_status,
            }
            ds.event_executions.append(event)
            if not detected:
                continue
            invocation["events_detected_count"] += 1
            for j in range((i + e) % 4):
                job_status = ("completed", "failed", "completed", "timeout")[(i + j + e) % 4]
                job = {
                    "id": _id("job", i, e, j),
                    "invocation_id": invocation["id"],
                    "event_execution_id": event["id"],
                    "created_at": created + timedelta(milliseconds=100 + 10 * j + e),
                    "updated_at": created + timedelta(milliseconds=200 + 10 * j + e),
                    "correlation_id": invocation["correlation_id"],
                    "job_name": ("send_email", "update_ledger", "notify_slack")[(i + j) % 3],
                    "job_function_name": ("send_email", "update_ledger", "notify")[(i + j) % 3],
                    "job_options": {"retries": j, "queue": "fast" if j % 2 else "slow"}
                    if job_counter % 4
                    else None,
                    "started_at": created + timedelta(milliseconds=100),
                    "ended_at": created + timedelta(milliseconds=300),
                    "duration_ms": None if job_counter % 7 == 3 else 10 + (job_counter * 13) % 300,
                    "attempts": 1 + j % 2,
                    "status": job_status,
                    "result": {"sent": True, "count": job_counter}
                    if job_status == "completed"
                    else None,
                    "error_type": "ValueError" if job_status == "failed" else None,
                    "error_message": "bad value" if job_status == "failed" else None,
                    "error_stack": "Traceback: bad value" if job_status == "failed" else None,
                }
                job_counter += 1
                ds.job_executions.append(job)
                event["jobs_count"] += 1
                invocation["total_jobs_run"] += 1
                if job_status == "completed":
                    event["jobs_succeeded"] += 1
                    invocation["total_jobs_succeeded"] += 1
                else:
                    event["jobs_failed"] += 1
                    invocation["total_jobs_failed"] += 1
                for n in range(j + 1):
                    ds.job_logs.append(
                        {
                            "id": _id("log", i, e, j, n),
                            "invocation_id": invocation["id"],
                            "event_execution_id": event["id"],
                            "job_execution_id": job["id"],
                            "created_at": job["created_at"] + timedelta(milliseconds=n + 1),
                            "seq": n,
                            "level": ("info", "debug", "warn", "error")[(n + j) % 4],
                            "message": f"job {job['job_name']} line {n}",
                            "data": {"n": n} if n % 2 == 0 else None,
                            "source": "stdout" if n % 2 else "logging:jobs",
                            "line_number": 10 + n,
                        }
                    )
            ds.job_logs.append(
                {
                    "id": _id("log", i, e, 99),
                    "invocation_id": invocation["id"],
                    "event_execution_id": event["id"],
                    "job_execution_id": None,
                    "created_at": event["created_at"] + timedelta(milliseconds=1),
                    "seq": 0,
                    "level": "info",
                    "message": f"detector {event['event_name']} said yes",
                    "data": None,
                    "source": "logging:detector",
                    "line_number": None,
                }
            )
    # Cascades: invocation i+12 was triggered by a job of invocation i (three levels:
    # invocation 1 -> 13 -> 25), and shares its correlation id.
    jobs_by_invocation: dict[str, list[dict[str, Any]]] = {}
    for job in ds.job_executions:
        jobs_by_invocation.setdefault(job["invocation_id"], []).append(job)
    for i in (1, 2, 5, 13, 14):
        parent = ds.invocations[i]
        jobs = jobs_by_invocation.get(parent["id"])
        if not jobs:
            continue
        child = ds.invocations[i + 12]
        child["source_job_id"] = jobs[0]["id"]
        child["correlation_id"] = parent["correlation_id"]
        for event in ds.event_executions:
            if event["invocation_id"] == child["id"]:
                event["correlation_id"] = parent["correlation_id"]
        for job in ds.job_executions:
            if job["invocation_id"] == child["id"]:
                job["correlation_id"] = parent["correlation_id"]
    # A dangling source_job_id (the parent job row not written yet): no enforced FK.
    ds.invocations[-1]["source_job_id"] = _id("job", 999, 0, 0)
    return ds


ROLLED_UP = ("metrics_hourly", "dashboard_stats")


async def insert_dataset(url: str, dataset: Dataset) -> None:
    """Insert `dataset` into a migrated database, roll it up, and read the rollups back."""
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            if url.startswith("postgresql"):
                conn = await conn.execution_options(schema_translate_map={None: POSTGRES_SCHEMA})
            for name, rows in dataset.tables().items():
                if rows and name not in ROLLED_UP:
                    await conn.execute(sa.insert(metadata.tables[name]), rows)
        await rollup(url)
        async with engine.connect() as conn:
            if url.startswith("postgresql"):
                conn = await conn.execution_options(schema_translate_map={None: POSTGRES_SCHEMA})
            for name in ROLLED_UP:
                result = await conn.execute(sa.select(metadata.tables[name]))
                rows = [dict(row._mapping) for row in result]
                getattr(dataset, name)[:] = rows
    finally:
        await engine.dispose()
