"""populate_demo: the example modules run through the real library and plugin, back-dated
over the last 48 hours, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from service.operations.demo import DEMO_MARKER, DemoSummary, populate_demo
from service.storage.maintenance import (
    event_executions,
    invocations,
    job_executions,
    job_logs,
    metrics_hourly,
)
from tests.support.runtime import count, database_for, execute, rows, scalar

dashboard_stats = invocations.metadata.tables["dashboard_stats"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, DemoSummary, datetime]]:
    """A database filled once per backend by populate_demo (seed 3)."""
    with database_for(request.param, request, tmp_path_factory.mktemp("demo")) as url:
        now = datetime.now(UTC)
        summary = populate_demo(url, seed=3, invocations=160, now=now)
        yield url, summary, now


def test_demo_records_every_kind_of_outcome(demo_db: tuple[str, DemoSummary, datetime]) -> None:
    url, summary, _ = demo_db
    statuses = {r["status"]: r["n"] for r in rows(url, _grouped(invocations.c.status))}
    assert {"completed", "failed", "timeout", "rejected"} <= set(statuses)
    assert sum(statuses.values()) == summary.invocations == count(url, invocations)
    assert statuses == summary.by_status
    job_statuses = {r["status"] for r in rows(url, _grouped(job_executions.c.status))}
    assert {"completed", "failed", "timeout"} <= job_statuses
    assert count(url, job_executions, job_executions.c.attempts > 1) > 0, "retries recorded"
    assert count(url, job_executions) == summary.jobs
    assert count(url, job_logs, job_logs.c.level == "error") > 0
    assert count(url, event_executions, event_executions.c.detected.is_(False)) > 0
    assert count(url, invocations, invocations.c.delivery_attempt == 2) == summary.redeliveries > 0


def test_demo_spreads_invocations_over_the_last_48_hours(
    demo_db: tuple[str, DemoSummary, datetime],
) -> None:
    url, summary, now = demo_db
    moments = [r["created_at"] for r in rows(url, sa.select(invocations.c.created_at))]
    assert min(moments) >= now - timedelta(hours=48)
    assert max(moments) <= now + timedelta(seconds=5)
    hours = {moment.replace(minute=0, second=0, microsecond=0) for moment in moments}
    assert len(hours) >= 36, f"only {len(hours)} distinct hours"
    recent = [m for m in moments if m >= now - timedelta(hours=1)]
    assert recent, "the last hour has activity (KPIs compare periods)"
    # The console compares the last 24 h with the 24 h before: both have a real share.
    previous = [m for m in moments if m < now - timedelta(hours=24)]
    assert 0.25 * len(moments) <= len(previous) <= 0.5 * len(moments), len(previous)
    assert summary.hours == 48.0
    assert summary.invocations == summary.deliveries + summary.cascades


def test_demo_rows_stay_consistent_after_backdating(
    demo_db: tuple[str, DemoSummary, datetime],
) -> None:
    url, _, _ = demo_db
    joined = rows(
        url,
        sa.select(
            invocations.c.created_at.label("invoked"),
            invocations.c.received_at,
            job_executions.c.started_at,
            job_executions.c.ended_at,
        ).join(job_executions, job_executions.c.invocation_id == invocations.c.id),
    )
    assert joined
    for row in joined:
        assert row["received_at"] <= row["invoked"] + timedelta(milliseconds=5)
        assert row["invoked"] <= row["started_at"] <= row["ended_at"]
        assert row["ended_at"] - row["invoked"] < timedelta(seconds=10)
    logs = rows(
        url,
        sa.select(invocations.c.created_at.label("invoked"), job_logs.c.created_at).join(
            job_logs, job_logs.c.invocation_id == invocations.c.id
        ),
    )
    for row in logs:
        assert timedelta(0) <= row["created_at"] - row["invoked"] < timedelta(seconds=10)


def test_demo_cascades_link_child_invocations_to_the_job_that_caused_them(
    demo_db: tuple[str, DemoSummary, datetime],
) -> None:
    url, summary, _ = demo_db
    children = rows(
        url,
        sa.select(
            invocations.c.correlation_id.label("child_correlation"),
            invocations.c.created_at.label("child_at"),
            job_executions.c.job_name,
            job_executions.c.correlation_id.label("parent_correlation"),
            job_executions.c.ended_at.label("parent_job_ended"),
        ).join(job_executions, job_executions.c.id == invocations.c.source_job_id),
    )
    assert len(children) == summary.cascades > 0
    for child in children:
        assert child["job_name"] == "mark_fulfilled"
        assert child["child_correlation"] == child["parent_correlation"]
        assert child["child_at"] > child["parent_job_ended"] - timedelta(seconds=1)
    fulfilled = count(
        url,
        event_executions,
        event_executions.c.event_name == "orders.fulfilled",
        event_executions.c.detected.is_(True),
    )
    assert fulfilled >= summary.cascades


def test_demo_fills_the_dashboard_series(demo_db: tuple[str, DemoSummary, datetime]) -> None:
    url, summary, _ = demo_db
    total = scalar(url, sa.select(sa.func.sum(dashboard_stats.c.total_invocations)))
    assert int(total) == summary.invocations
    rolled = scalar(url, sa.select(sa.func.sum(metrics_hourly.c.total_invocations)))
    assert int(rolled) == summary.invocations


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_demo_rerun_replaces_only_the_previous_demo_and_is_deterministic(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with database_for(backend, request, tmp_path) as url:
        now = datetime.now(UTC)
        first = populate_demo(url, seed=11, invocations=40, now=now)
        first_roots = _demo_roots(url)
        own_id = str(uuid.uuid4())
        execute(
            url,
            sa.insert(invocations).values(
                id=own_id,
                created_at=now - timedelta(hours=2),
                source_function="mine",
                status="completed",
            ),
        )
        second = populate_demo(url, seed=11, invocations=40, now=now)
        assert second.removed_previous == first.invocations
        assert second.by_status == first.by_status
        assert _demo_roots(url) == first_roots, "same seed: same deliveries, ids and times"
        assert count(url, invocations) == second.invocations + 1
        assert count(url, invocations, invocations.c.id == own_id) == 1, "others are kept"
        # The dashboard was recomputed: the demo hours hold the demo once, plus ours.
        total = scalar(url, sa.select(sa.func.sum(dashboard_stats.c.total_invocations)))
        assert int(total) == second.invocations + 1


def _demo_roots(url: str) -> dict[str, tuple[str, datetime]]:
    demo = invocations.c.source_job_id.is_(None)
    found = rows(
        url,
        sa.select(
            invocations.c.id,
            invocations.c.status,
            invocations.c.created_at,
            invocations.c.context_data,
        ).where(demo),
    )
    return {
        r["id"]: (r["status"], r["created_at"])
        for r in found
        if r["context_data"] and DEMO_MARKER in r["context_data"]
    }


def _grouped(column: sa.Column) -> sa.Select:
    return sa.select(column.label("status"), sa.func.count().label("n")).group_by(column)
