"""Retention deletes exactly what its policy says, on both backends, in batches."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from service.operations.retention import RetentionPolicy, apply_retention, count_expired
from service.storage.maintenance import (
    event_executions,
    invocations,
    job_executions,
    job_logs,
    metrics_hourly,
    quarantined_records,
)
from tests.support.runtime import count, database_for, execute, rows

NOW = datetime.now(UTC).replace(microsecond=0)
POLICY = RetentionPolicy(success_days=7, failure_days=30, log_days=3, payload_days=1, batch_size=2)

# name: (status, age in days, kept?)
INVOCATIONS = {
    "ok_12h": ("completed", 0.5, True),
    "ok_2d": ("completed", 2, True),
    "ok_5d": ("completed", 5, True),
    "ok_10d": ("completed", 10, False),
    "ok_40d": ("completed", 40, False),
    "failed_10d": ("failed", 10, True),
    "timeout_10d": ("timeout", 10, True),
    "rejected_29d": ("rejected", 29, True),
    "failed_40d": ("failed", 40, False),
    "timeout_40d": ("timeout", 40, False),
    "rejected_40d": ("rejected", 40, False),
    "running_40d": ("running", 40, False),
}


def ids_for(name: str) -> dict[str, str]:
    """Stable ids of the rows built for invocation `name`."""
    space = uuid.UUID("6f1c2a34-0b7d-4c55-9a0e-2d3f4b5c6d7e")
    return {
        part: str(uuid.uuid5(space, f"{name}/{part}"))
        for part in ("invocation", "event", "job", "log_job", "log_event", "log_invocation")
    }


def build(url: str) -> None:
    invocation_rows, event_rows, job_rows, log_rows = [], [], [], []
    for name, (status, days, _) in INVOCATIONS.items():
        ids, at = ids_for(name), NOW - timedelta(days=days)
        invocation_rows.append(
            {
                "id": ids["invocation"],
                "created_at": at,
                "source_function": name,
                "status": status,
                "source_event_payload": {"event": {"op": "UPDATE"}, "name": name},
                "context_data": {"tenant": "t1"},
            }
        )
        event_rows.append(
            {
                "id": ids["event"],
                "invocation_id": ids["invocation"],
                "created_at": at,
                "event_name": "orders.shipped",
                "status": "completed",
            }
        )
        job_rows.append(
            {
                "id": ids["job"],
                "invocation_id": ids["invocation"],
                "event_execution_id": ids["event"],
                "created_at": at + timedelta(seconds=1),
                "job_name": "send_email",
                "status": "completed",
                "job_options": {"template": "x"},
                "result": {"sent": True},
            }
        )
        for part, event_id, job_id in (
            ("log_job", ids["event"], ids["job"]),
            ("log_event", ids["event"], None),
            ("log_invocation", None, None),
        ):
            log_rows.append(
                {
                    "id": ids[part],
                    "invocation_id": ids["invocation"],
                    "event_execution_id": event_id,
                    "job_execution_id": job_id,
                    "created_at": at + timedelta(seconds=2),
                    "message": f"{name} {part}",
                }
            )
    # Lines whose invocation is gone (or never written): deleted by age alone.
    log_rows.append(_orphan_log("orphan_old", NOW - timedelta(days=10)))
    log_rows.append(_orphan_log("orphan_new", NOW - timedelta(days=1)))
    execute(url, invocations.insert(), invocation_rows)
    execute(url, event_executions.insert(), event_rows)
    execute(url, job_executions.insert(), job_rows)
    execute(url, job_logs.insert(), log_rows)
    execute(
        url,
        quarantined_records.insert(),
        [
            {
                "created_at": NOW - timedelta(days=40),
                "table_name": "job_logs",
                "record": {},
                "error": "x",
            },
            {
                "created_at": NOW - timedelta(days=10),
                "table_name": "job_logs",
                "record": {},
                "error": "y",
            },
        ],
    )
    execute(
        url,
        metrics_hourly.insert(),
        {
            "hour_bucket": NOW - timedelta(days=40),
            "source_function": "ok_40d",
            "total_invocations": 1,
        },
    )


def _orphan_log(message: str, at: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "invocation_id": str(uuid.uuid4()),
        "event_execution_id": None,
        "job_execution_id": None,
        "created_at": at,
        "message": message,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with database_for(request.param, request, tmp_path) as url:
        build(url)
        yield url


def test_dry_run_counts_exactly_what_retention_then_does_and_deletes_nothing(
    seeded: str,
) -> None:
    planned = asyncio.run(count_expired(seeded, POLICY, now=NOW))
    dry = asyncio.run(apply_retention(seeded, POLICY, now=NOW, dry_run=True))
    assert dry.dry_run and count(seeded, invocations) == len(INVOCATIONS)
    done = asyncio.run(apply_retention(seeded, POLICY, now=NOW))
    for counts in (planned, dry):
        assert counts.successful_invocations == done.successful_invocations == 2
        assert counts.failed_invocations == done.failed_invocations == 4
        assert counts.event_executions == done.event_executions == 6
        assert counts.job_executions == done.job_executions == 6
        # 6 deleted invocations x 3 lines, 4 kept invocations older than 3 days x 3, 1 orphan.
        assert counts.job_logs == done.job_logs == 31
        assert counts.payloads_cleared == done.payloads_cleared == 5
        assert counts.job_bodies_cleared == done.job_bodies_cleared == 5
        assert counts.quarantined_records == done.quarantined_records == 1


def test_retention_keeps_failures_longer_and_deletes_exactly_the_expired_rows(
    seeded: str,
) -> None:
    progress: list[tuple[str, int]] = []
    asyncio.run(
        apply_retention(seeded, POLICY, now=NOW, progress=lambda s, n: progress.append((s, n)))
    )
    kept = {name for name, (_, _, keep) in INVOCATIONS.items() if keep}
    remaining = {
        r["source_function"] for r in rows(seeded, sa.select(invocations.c.source_function))
    }
    assert remaining == kept
    kept_ids = {ids_for(name)["invocation"] for name in kept}
    for table in (event_executions, job_executions):
        owners = {r["invocation_id"] for r in rows(seeded, sa.select(table.c.invocation_id))}
        assert owners == kept_ids
    lines = {r["message"] for r in rows(seeded, sa.select(job_logs.c.message))}
    young = {name for name in kept if INVOCATIONS[name][1] <= 3}
    assert lines == {
        f"{name} {part}" for name in young for part in ("log_job", "log_event", "log_invocation")
    } | {"orphan_new"}
    bodies = {
        r["source_function"]: (r["source_event_payload"], r["context_data"])
        for r in rows(
            seeded,
            sa.select(
                invocations.c.source_function,
                invocations.c.source_event_payload,
                invocations.c.context_data,
            ),
        )
    }
    assert bodies["ok_12h"] == ({"event": {"op": "UPDATE"}, "name": "ok_12h"}, {"tenant": "t1"})
    for name in kept - {"ok_12h"}:
        assert bodies[name] == (None, None), name
    job_bodies = rows(
        seeded,
        sa.select(
            job_executions.c.invocation_id, job_executions.c.job_options, job_executions.c.result
        ),
    )
    for job in job_bodies:
        fresh = job["invocation_id"] == ids_for("ok_12h")["invocation"]
        assert (job["job_options"] is not None) is fresh
        assert (job["result"] is not None) is fresh
    assert count(seeded, quarantined_records) == 1
    assert count(seeded, metrics_hourly) == 1, "the hourly rollup outlives raw rows"
    # Batches of 2: more than one statement per step.
    deleted = [n for step, n in progress if step == "failed invocations"]
    assert deleted == [2, 2]
    again = asyncio.run(apply_retention(seeded, POLICY, now=NOW))
    assert again.invocations == again.job_logs == again.payloads_cleared == 0


def test_without_log_or_payload_ages_only_whole_invocations_go(seeded: str) -> None:
    policy = RetentionPolicy(success_days=7, failure_days=30, batch_size=50)
    done = asyncio.run(apply_retention(seeded, policy, now=NOW))
    assert done.invocations == 6
    assert done.job_logs == 18
    assert done.payloads_cleared == done.job_bodies_cleared == 0
    assert count(seeded, job_logs) == 6 * 3 + 2
    assert count(seeded, invocations, invocations.c.source_event_payload.is_(None)) == 0


def test_policy_rejects_impossible_values() -> None:
    with pytest.raises(ValueError, match="success_days"):
        RetentionPolicy(success_days=0)
    with pytest.raises(ValueError, match="batch_size"):
        RetentionPolicy(batch_size=0)
