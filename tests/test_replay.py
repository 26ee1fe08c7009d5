"""replay: a recorded invocation's payload against the current event modules."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from detector import ListenResult, listen_to
from detector.observability import ObservabilityPlugin
from service.operations.replay import ReplayError, replay
from service.storage.maintenance import invocations, job_executions
from tests.support.library import hasura_payload, write_module
from tests.support.runtime import count

SHIPPED = """
from detector import column_has_changed, job, run

def detector(event_name, event):
    return column_has_changed("status", event) and event.new["status"] == "shipped"

async def notify(event_name, event, options):
    return {"notified": True}

async def handler(event_name, event):
    return await run(event_name, event, [job(notify)])
"""
AUDIT = """
from detector import job, run

def detector(event_name, event):
    return True

def audit_log(event_name, event, options):
    return {"audited": True}

async def handler(event_name, event):
    return await run(event_name, event, [job(audit_log)])
"""


def record(url: str, events_dir: Path, payload: dict[str, Any], **config: Any) -> ListenResult:
    plugin = ObservabilityPlugin(url, environ={}, auto_migrate=False, **config)
    try:
        return asyncio.run(listen_to(payload, events_dir=events_dir, plugins=[plugin]))
    finally:
        assert plugin.shutdown_sync(10.0)


@pytest.fixture
def events_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "events"
    directory.mkdir()
    write_module(directory, "orders.shipped", SHIPPED)
    write_module(directory, "orders.audit", AUDIT)
    return directory


def test_replay_against_unchanged_code_shows_no_difference(db_url: str, events_dir: Path) -> None:
    recorded = record(db_url, events_dir, hasura_payload())
    report = asyncio.run(replay(db_url, recorded.invocation_id))
    assert report.events_dir == events_dir, "defaults to the recorded directory"
    assert report.changed == []
    verdicts = {row.event: (row.then.outcome, row.then.jobs, row.now.jobs) for row in report.rows}
    assert verdicts == {
        "orders.audit": ("detected", ("audit_log",), ("audit_log",)),
        "orders.shipped": ("detected", ("notify",), ("notify",)),
    }
    assert report.result.jobs == [], "detectors only: no job ran"
    assert report.rebuilt_session_variables is None, "stored session variables are readable"


def test_replay_after_modules_change_shows_each_difference(db_url: str, events_dir: Path) -> None:
    recorded = record(db_url, events_dir, hasura_payload())
    jobs_before = count(db_url, job_executions)
    write_module(events_dir, "orders.shipped", SHIPPED.replace('== "shipped"', '== "delivered"'))
    write_module(events_dir, "orders.audit", "def detector(:\n")
    write_module(events_dir, "orders.priority", AUDIT.replace("audit_log", "page_oncall"))
    report = asyncio.run(replay(db_url, recorded.invocation_id))
    rows = {row.event: row for row in report.rows}
    assert rows["orders.shipped"].then.outcome == "detected"
    assert rows["orders.shipped"].now.outcome == "not detected"
    assert rows["orders.audit"].now.outcome == "detection failed"
    assert "SyntaxError" in (rows["orders.audit"].now.error or "")
    assert rows["orders.priority"].then.outcome == "absent"
    assert rows["orders.priority"].now.outcome == "detected"
    assert rows["orders.priority"].now.jobs == ("page_oncall",)
    assert {row.event for row in report.changed} == {
        "orders.shipped",
        "orders.audit",
        "orders.priority",
    }
    # Replaying records nothing and runs no job.
    assert count(db_url, invocations) == 1
    assert count(db_url, job_executions) == jobs_before


def test_replay_shows_skipped_modules_and_declaring_tables_alone_is_no_difference(
    db_url: str, events_dir: Path
) -> None:
    write_module(events_dir, "users.changed", "tables = 'users'\n" + AUDIT)
    recorded = record(db_url, events_dir, hasura_payload())
    # Now users.changed declares nothing (and says no); orders.audit listens to payments.
    write_module(events_dir, "users.changed", AUDIT.replace("return True", "return False"))
    write_module(events_dir, "orders.audit", "tables = ['payments']\n" + AUDIT)
    report = asyncio.run(replay(db_url, recorded.invocation_id))
    rows = {row.event: row for row in report.rows}
    assert (rows["users.changed"].then.outcome, rows["users.changed"].now.outcome) == (
        "skipped",
        "not detected",
    )
    assert (rows["orders.audit"].then.outcome, rows["orders.audit"].now.outcome) == (
        "detected",
        "skipped",
    )
    assert {row.event for row in report.changed} == {"orders.audit"}


def test_replay_with_jobs_compares_the_jobs_that_ran(db_url: str, events_dir: Path) -> None:
    recorded = record(db_url, events_dir, hasura_payload())
    write_module(
        events_dir,
        "orders.shipped",
        SHIPPED.replace("[job(notify)]", "[job(notify), job(notify, name='notify_again')]"),
    )
    report = asyncio.run(replay(db_url, recorded.invocation_id, run_jobs=True))
    shipped = next(row for row in report.rows if row.event == "orders.shipped")
    assert shipped.then.jobs == ("notify",)
    assert shipped.now.jobs == ("notify", "notify_again")
    assert shipped.changed
    assert [job.status.value for job in report.result.jobs if job.name.startswith("notify")] == [
        "completed",
        "completed",
    ]


def test_replay_lists_every_delivery_of_the_hasura_event_and_repeated_jobs(
    db_url: str, events_dir: Path
) -> None:
    first = hasura_payload()
    retry = copy.deepcopy(first)
    retry["delivery_info"]["current_retry"] = 1
    record(db_url, events_dir, first)
    again = record(db_url, events_dir, retry)
    report = asyncio.run(replay(db_url, again.invocation_id))
    assert [d.attempt for d in report.deliveries] == [1, 2]
    assert report.repeated_jobs == {"audit_log": 2, "notify": 2}


def test_replay_needs_the_payload_and_a_known_invocation(db_url: str, events_dir: Path) -> None:
    recorded = record(db_url, events_dir, hasura_payload(), capture_payload=False)
    with pytest.raises(ReplayError, match="no stored payload"):
        asyncio.run(replay(db_url, recorded.invocation_id))
    with pytest.raises(ReplayError, match="no invocation"):
        asyncio.run(replay(db_url, "00000000-0000-4000-8000-000000000000"))
    with pytest.raises(ReplayError, match="not an invocation id"):
        asyncio.run(replay(db_url, "yesterday"))


def test_replay_counts_values_redacted_when_recorded(db_url: str, events_dir: Path) -> None:
    payload = hasura_payload()
    payload["event"]["data"]["new"]["api_token"] = "tok_123"
    recorded = record(db_url, events_dir, payload)
    report = asyncio.run(replay(db_url, recorded.invocation_id))
    assert report.redacted_values == 1
    assert report.changed == []


def test_replay_rebuilds_session_variables_redacted_whole_from_the_record(
    db_url: str, events_dir: Path
) -> None:
    # A deny-list word matching `session_variables` (older versions had `session`)
    # leaves a payload that is no Hasura event: replay uses the recorded role and user.
    recorded = record(db_url, events_dir, hasura_payload(), redact_keys=("session",))
    report = asyncio.run(replay(db_url, recorded.invocation_id))
    assert report.rebuilt_session_variables == {"x-hasura-role": "user", "x-hasura-user-id": "u-1"}
    assert report.changed == []
