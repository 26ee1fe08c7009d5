"""End to end: the real example event modules run through `listen_to` with a real
`ObservabilityPlugin`, on real SQLite and PostgreSQL; every stored row is checked
column by column against the `ListenResult` the caller got."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from detector import (
    EventResult,
    InvalidEventPayload,
    JobResult,
    ListenResult,
    TrackingToken,
    listen_to,
    listen_to_sync,
)
from detector.observability import ObservabilityPlugin
from detector.observability.buffer import Batch, Patch
from detector.observability.sqltypes import parse_timestamp
from detector.observability.writers import writer_for
from tests.support import db
from tests.support.library import write_module
from tests.support.observability import rows

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EVENTS = EXAMPLES / "events"
PAYLOADS = EXAMPLES / "payloads"
VALID = sorted(path.name for path in PAYLOADS.glob("*.json"))
INVALID = sorted(path.name for path in PAYLOADS.glob("invalid/*.json"))


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


@pytest.fixture
def plugin(db_url: str) -> Iterator[ObservabilityPlugin]:
    # A long interval: the tests decide when to flush (force_flush), except serverless.
    plugin = ObservabilityPlugin(db_url, flush_interval=60, handle_sigterm=False)
    yield plugin
    plugin.shutdown_sync()


async def stored(url: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Every row of the four record tables, by table and id."""
    tables = ("invocations", "event_executions", "job_executions", "job_logs")
    return {table: {row["id"]: row for row in await rows(url, table)} for table in tables}


def expected_user(payload: dict[str, Any]) -> str | None:
    session = {k.lower(): v for k, v in payload["event"].get("session_variables", {}).items()}
    return session.get("x-hasura-user-email") or session.get("x-hasura-user-id")


def check_invocation(
    row: dict[str, Any],
    result: ListenResult,
    payload: dict[str, Any],
    *,
    context: dict[str, Any] | None = None,
) -> None:
    """The invocation row says what the result says (SPEC §2, §5a)."""
    new = payload["event"]["data"].get("new") or {}
    token = TrackingToken.try_parse(new.get("updated_by"))
    source_job_id = token.job_execution_id if token else None
    jobs = result.jobs
    completed = sum(1 for job in jobs if job.completed)
    session = payload["event"].get("session_variables", {})
    assert row["id"] == result.invocation_id
    assert row["correlation_id"] == result.correlation_id
    assert row["source_function"] == payload["trigger"]["name"]
    assert row["source_table"] == f"{payload['table']['schema']}.{payload['table']['name']}"
    assert row["source_operation"] == payload["event"]["op"]
    assert row["source_system"] == "hasura"
    assert row["source_trigger_name"] == payload["trigger"]["name"]
    assert row["source_event_id"] == payload["id"]
    assert row["source_event_time"] == parse_timestamp(payload["created_at"])
    assert row["source_user_email"] == expected_user(payload)
    assert row["source_user_role"] == session.get("x-hasura-role")
    assert row["source_job_id"] == source_job_id
    assert row["delivery_attempt"] == payload["delivery_info"]["current_retry"] + 1
    assert row["received_at"] is not None and row["received_at"] <= row["created_at"]
    assert row["total_duration_ms"] == round(result.duration_ms)
    assert row["events_detected_count"] == len(result.detected_events)
    assert row["total_jobs_run"] == len(jobs)
    assert row["total_jobs_succeeded"] == completed
    assert row["total_jobs_failed"] == len(jobs) - completed  # SPEC §5a: not completed
    assert row["auto_load_modules"] is True
    assert row["event_modules_directory"] == str(EVENTS)
    assert row["status"] == result.status.value
    assert row["error_message"] == result.error
    assert row["context_data"] == context
    trace = payload["event"].get("trace_context")
    assert row["trace_id"] == (trace["trace_id"] if trace else None)
    # The payload is kept, redacted: Hasura's session stays readable, secrets do not.
    kept = row["source_event_payload"]
    assert kept["id"] == payload["id"] and kept["event"]["op"] == payload["event"]["op"]
    assert kept["event"]["session_variables"] == session


def check_event(row: dict[str, Any], event: EventResult, result: ListenResult) -> None:
    jobs = event.jobs
    completed = sum(1 for job in jobs if job.completed)
    assert row["invocation_id"] == result.invocation_id
    assert row["correlation_id"] == result.correlation_id
    assert row["event_name"] == event.name
    assert row["event_module_path"] == str(EVENTS / f"{event.name}.py")
    assert row["detected"] is event.detected
    assert row["status"] == event.status.value
    if event.detection_duration_ms is None:  # skipped: its detector never ran
        assert row["detection_duration_ms"] is None and event.status.value == "skipped"
    else:
        assert row["detection_duration_ms"] == round(event.detection_duration_ms)
    if event.handler_duration_ms is None:
        assert row["handler_duration_ms"] is None
    else:
        assert row["handler_duration_ms"] == round(event.handler_duration_ms)
    assert (row["jobs_count"], row["jobs_succeeded"], row["jobs_failed"]) == (
        len(jobs),
        completed,
        len(jobs) - completed,
    )
    assert row["detection_error"] is None and row["handler_error"] is None


def check_job(
    row: dict[str, Any], job: JobResult, event: EventResult, result: ListenResult
) -> None:
    assert row["invocation_id"] == result.invocation_id
    assert row["event_execution_id"] == event.event_execution_id
    assert row["correlation_id"] == result.correlation_id
    assert row["job_name"] == job.name
    assert row["status"] == job.status.value
    assert row["attempts"] == job.attempts
    assert row["started_at"] == job.started_at and row["ended_at"] == job.ended_at
    assert row["duration_ms"] == round(job.duration_ms)
    assert row["error_type"] == job.error_type
    assert row["error_message"] == job.error
    if job.completed:
        assert row["error_stack"] is None
        assert row["result"] == json.loads(json.dumps(job.result))
    else:
        # Every job that did not complete has its stack (capture of stacks is on).
        assert job.error_type in row["error_stack"]


async def test_every_example_payload_is_stored_as_its_listen_result_says(
    plugin: ObservabilityPlugin, db_url: str
) -> None:
    results: dict[str, ListenResult] = {}
    for name in VALID:
        results[name] = await listen_to(load(name), events_dir=EVENTS, plugins=[plugin])
    assert plugin.force_flush(20)
    data = await stored(db_url)

    assert set(data["invocations"]) == {r.invocation_id for r in results.values()}
    every_event = {e.event_execution_id for r in results.values() for e in r.events}
    assert set(data["event_executions"]) == every_event
    every_job = {j.job_execution_id for r in results.values() for j in r.jobs}
    assert set(data["job_executions"]) == every_job
    for name, result in results.items():
        payload = load(name)
        check_invocation(data["invocations"][result.invocation_id], result, payload)
        for event in result.events:
            check_event(data["event_executions"][event.event_execution_id], event, result)
            for job in event.jobs:
                check_job(data["job_executions"][job.job_execution_id], job, event, result)

    payments = results["payments.failed.update.json"]
    jobs = {job.name: data["job_executions"][job.job_execution_id] for job in payments.jobs}
    assert jobs["charge_backup_card"]["status"] == "failed"
    assert jobs["charge_backup_card"]["error_type"] == "CardDeclined"
    assert jobs["charge_backup_card"]["error_message"] == "backup card ending 4242 declined"
    assert 'raise CardDeclined(f"backup card ending' in jobs["charge_backup_card"]["error_stack"]
    assert (jobs["retry_gateway"]["status"], jobs["retry_gateway"]["attempts"]) == ("completed", 3)
    assert jobs["screen_for_fraud"]["status"] == "timeout"
    assert "JobTimeoutError" in jobs["screen_for_fraud"]["error_stack"]
    inv = data["invocations"][payments.invocation_id]
    assert inv["status"] == "failed" and inv["total_jobs_failed"] == 2
    assert inv["correlation_id"] == "checkout-2026-03-02-ord_10482"  # session variable
    new = inv["source_event_payload"]["event"]["data"]["new"]
    assert new["backup_card_last4"] == "[redacted]" and new["amount_cents"] == 12850

    cancelled = results["orders.cancelled.update.json"]
    assert data["invocations"][cancelled.invocation_id]["delivery_attempt"] == 2
    [refund] = [j for j in cancelled.jobs if j.name == "refund_payment"]
    assert data["job_executions"][refund.job_execution_id]["attempts"] == 2
    signed_up = results["users.signed_up.insert.json"]
    [trial] = [j for j in signed_up.jobs if j.name == "grant_trial"]
    assert data["job_executions"][trial.job_execution_id]["job_options"] == {"days": 14}
    assert data["job_executions"][trial.job_execution_id]["result"] == {"plan": "pro", "days": 14}
    assert data["invocations"][signed_up.invocation_id]["trace_id"] == (
        "0af7651916cd43dd8448eb211c80319c"
    )

    # Log lines: every captured line carries its invocation, event and job.
    lines = list(data["job_logs"].values())
    created = results["orders.created.insert.json"]
    by_message = {line["message"]: line for line in lines}
    by_message.update(
        (line["message"], line) for line in lines if line["invocation_id"] == created.invocation_id
    )
    ids = {job.name: job.job_execution_id for job in created.jobs}
    [event] = created.detected_events
    reserving = by_message["reserving 2 x MUG-BLUE-350"]
    assert reserving["job_execution_id"] == ids["reserve_inventory"]
    assert reserving["event_execution_id"] == event.event_execution_id
    assert reserving["invocation_id"] == created.invocation_id
    assert (reserving["source"], reserving["level"]) == ("stdout", "info")
    notified = [
        line
        for line in lines
        if line["message"] == "warehouse notified"
        and line["invocation_id"] == created.invocation_id
    ]
    assert [line["job_execution_id"] for line in notified] == [ids["notify_warehouse"]]
    assert notified[0]["data"] == {"order_id": "ord_10482", "warehouse": "north"}
    declined = by_message["backup card declined for payment pay_88213"]
    assert declined["level"] == "error" and declined["source"] == "examples.payments"
    assert declined["job_execution_id"] == jobs["charge_backup_card"]["id"]
    assert all(line["invocation_id"] in data["invocations"] for line in lines)
    job_lines = [line for line in lines if line["job_execution_id"] is not None]
    assert all(line["job_execution_id"] in data["job_executions"] for line in job_lines)
    stats = plugin.stats()
    assert stats["dropped_total"] == 0 and stats["quarantined"] == 0
    assert stats["conversion_errors"] == 0 and stats["hook_errors"] == 0


@pytest.mark.parametrize("name", INVALID)
async def test_an_invalid_payload_is_recorded_as_rejected_with_its_error(
    name: str, plugin: ObservabilityPlugin, db_url: str
) -> None:
    payload = load(f"invalid/{name}")
    with pytest.raises(InvalidEventPayload) as raised:
        await listen_to(payload, events_dir=EVENTS, plugins=[plugin])
    assert plugin.force_flush(10)
    [row] = await rows(db_url, "invocations")
    assert row["status"] == "rejected"
    assert row["error_message"] == str(raised.value)
    assert f"`{raised.value.field}`" in row["error_message"]
    assert "InvalidEventPayload" in row["error_stack"]
    assert row["source_event_payload"] == payload  # kept: capture is on
    assert await rows(db_url, "event_executions") == []
    if "table" in payload:
        assert row["source_table"] == "public.orders"
        assert row["source_trigger_name"] == "orders_events"
        assert row["source_function"] == "orders_events"


FAILING_MODULES = {
    "broken.import": "import definitely_not_a_module_here\n",
    "broken.detector": (
        "def detector(event_name, event):\n"
        "    print('looking at', event.new['id'])\n"
        "    raise KeyError('no status column')\n"
        "def handler(event_name, event):\n"
        "    return None\n"
    ),
    "broken.handler": (
        "import logging\n"
        "def detector(event_name, event):\n"
        "    return True\n"
        "async def handler(event_name, event):\n"
        "    logging.getLogger('broken').warning('handler about to fail')\n"
        "    raise RuntimeError('handler exploded')\n"
    ),
    "quiet.no": (
        "def detector(event_name, event):\n    return False\n"
        "def handler(event_name, event):\n    return None\n"
    ),
    "users.elsewhere": (
        "tables = ['users']\n"
        "def detector(event_name, event):\n    raise AssertionError('skipped: never runs')\n"
        "def handler(event_name, event):\n    return None\n"
    ),
    "kept.results": (
        "from detector import job, run\n"
        "RECIPIENTS = ['a@example.com']\n"
        "STATE = {'count': 1, 'items': [1]}\n"
        "async def remember(event_name, event, options):\n"
        "    options['logger'].info('remembering')\n"
        "    return STATE\n"
        "def detector(event_name, event):\n    return True\n"
        "async def handler(event_name, event):\n"
        "    results = await run(event_name, event, [job(remember, recipients=RECIPIENTS)])\n"
        "    # The caller's objects change after the job ended: records must not.\n"
        "    STATE['count'] = 99\n"
        "    STATE['items'].append(2)\n"
        "    RECIPIENTS.append('b@example.com')\n"
        "    return results\n"
    ),
}


async def test_failing_modules_detectors_and_handlers_are_recorded_with_stacks(
    tmp_path: Path, plugin: ObservabilityPlugin, db_url: str
) -> None:
    for name, source in FAILING_MODULES.items():
        write_module(tmp_path, name, source)
    payload = load("orders.shipped.update.json")
    result = await listen_to(payload, events_dir=tmp_path, plugins=[plugin])
    assert plugin.force_flush(10)
    data = await stored(db_url)
    events = {e.name: (e, data["event_executions"][e.event_execution_id]) for e in result.events}

    event, row = events["broken.import"]
    assert row["status"] == "detection_failed" and row["detected"] is False
    assert row["detection_error"] == event.error
    assert "definitely_not_a_module_here" in row["detection_error_stack"]
    event, row = events["broken.detector"]
    assert (row["status"], row["detection_error"]) == ("detection_failed", event.error)
    assert "raise KeyError('no status column')" in row["detection_error_stack"]
    event, row = events["broken.handler"]
    assert (row["status"], row["detected"]) == ("handler_failed", True)
    assert row["handler_error"] == "handler exploded"
    assert "raise RuntimeError('handler exploded')" in row["handler_error_stack"]
    assert events["quiet.no"][1]["status"] == "not_detected"
    event, row = events["users.elsewhere"]
    assert (row["status"], row["detected"], row["detection_error"]) == ("skipped", False, None)
    assert row["event_module_path"] == str(tmp_path / "users.elsewhere.py")
    inv = data["invocations"][result.invocation_id]
    assert inv["status"] == "failed" == result.status.value
    assert inv["error_message"] == result.error

    # Values are recorded as they were when the job ended, not as they are now.
    event, _ = events["kept.results"]
    [job] = event.jobs
    job_row = data["job_executions"][job.job_execution_id]
    assert job_row["result"] == {"count": 1, "items": [1]}
    assert job_row["job_options"] == {"recipients": ["a@example.com"]}
    assert job.result == {"count": 99, "items": [1, 2]}  # the caller's object did change

    # Lines of detectors and handlers belong to their event; job lines to their job.
    lines = {line["message"]: line for line in data["job_logs"].values()}
    detector_line = lines["looking at ord_10482"]
    assert detector_line["event_execution_id"] == events["broken.detector"][0].event_execution_id
    assert detector_line["job_execution_id"] is None
    handler_line = lines["handler about to fail"]
    assert handler_line["event_execution_id"] == events["broken.handler"][0].event_execution_id
    assert (handler_line["job_execution_id"], handler_line["level"]) == (None, "warn")
    assert lines["remembering"]["job_execution_id"] == job.job_execution_id
    assert {line["invocation_id"] for line in lines.values()} == {result.invocation_id}


SLOW_MODULE = (
    "import asyncio\n"
    "from detector import job, run\n"
    "async def quick(event_name, event, options):\n"
    "    return {'done': True}\n"
    "async def slow(event_name, event, options):\n"
    "    options['logger'].info('slow job starts')\n"
    "    await asyncio.sleep(5)\n"
    "def detector(event_name, event):\n    return True\n"
    "async def handler(event_name, event):\n"
    "    return await run(event_name, event, [job(quick), job(slow)])\n"
)


async def test_a_deadline_cut_is_recorded_as_timeout_right_after_listen_returns(
    tmp_path: Path, db_url: str
) -> None:
    write_module(tmp_path, "orders.slow", SLOW_MODULE)
    # Serverless: the records are in the store when listen_to returns, no flush needed.
    plugin = ObservabilityPlugin(db_url, serverless=True, flush_interval=60, handle_sigterm=False)
    try:
        payload = load("orders.shipped.update.json")
        result = await listen_to(
            payload,
            events_dir=tmp_path,
            plugins=[plugin],
            time_budget_ms=700,
            safety_margin_ms=400,
        )
        assert result.timed_out
        data = await stored(db_url)
        inv = data["invocations"][result.invocation_id]
        assert inv["status"] == "timeout" == result.status.value
        assert inv["error_message"] == result.error and "deadline" in inv["error_message"]
        assert inv["total_jobs_run"] == 2 and inv["total_jobs_failed"] == 1
        jobs = {job.name: data["job_executions"][job.job_execution_id] for job in result.jobs}
        assert jobs["quick"]["status"] == "completed" and jobs["quick"]["result"] == {"done": True}
        assert jobs["slow"]["status"] == "timeout" and jobs["slow"]["error_type"] == (
            "JobTimeoutError"
        )
        assert "deadline" in jobs["slow"]["error_message"]
        # The event the deadline cut is `timeout` too (as its job and the invocation).
        [event] = result.events
        row = data["event_executions"][event.event_execution_id]
        assert row["status"] == "timeout" == event.status.value and row["detected"] is True
        assert "deadline" in row["handler_error"]
        [line] = data["job_logs"].values()
        assert line["job_execution_id"] == jobs["slow"]["id"]
    finally:
        plugin.shutdown_sync()


async def test_a_cascade_links_the_child_invocation_to_the_parent_job(
    plugin: ObservabilityPlugin, db_url: str
) -> None:
    parent = await listen_to(
        load("orders.shipped.update.json"), events_dir=EVENTS, plugins=[plugin]
    )
    [mark] = [job for job in parent.jobs if job.name == "mark_fulfilled"]
    follow_up = mark.result["cascade_payload"]
    child = await listen_to(follow_up, events_dir=EVENTS, plugins=[plugin])
    assert plugin.force_flush(10)
    data = await stored(db_url)
    child_row = data["invocations"][child.invocation_id]
    check_invocation(child_row, child, follow_up)
    assert child_row["source_job_id"] == mark.job_execution_id
    assert child_row["correlation_id"] == parent.correlation_id
    parent_job = data["job_executions"][child_row["source_job_id"]]
    assert parent_job["job_name"] == "mark_fulfilled"
    assert parent_job["invocation_id"] == parent.invocation_id
    # The tracking token the job wrote is in the stored result, as the job returned it.
    assert parent_job["result"]["updated_by"] == mark.result["updated_by"]


def test_listen_to_sync_calls_and_threads_share_one_plugin(db_url: str) -> None:
    plugin = ObservabilityPlugin(db_url, flush_interval=0.05, handle_sigterm=False)
    try:
        results: list[ListenResult] = []
        lock = threading.Lock()
        names = ["users.email_changed.update.json", "orders.created.insert.json"]

        def call(name: str) -> None:
            result = listen_to_sync(
                load(name), events_dir=EVENTS, plugins=[plugin], context={"caller": name}
            )
            with lock:
                results.append(result)

        for name in names:  # a fresh event loop per call
            call(name)
        threads = [threading.Thread(target=call, args=(names[n % 2],)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(results) == 6
        assert plugin.force_flush(20)
        data = db.run(stored(db_url))
        assert set(data["invocations"]) == {r.invocation_id for r in results}
        for result in results:
            inv = data["invocations"][result.invocation_id]
            caller = inv["context_data"]["caller"]
            check_invocation(inv, result, load(caller), context={"caller": caller})
            for job in result.jobs:
                assert data["job_executions"][job.job_execution_id]["status"] == "completed"
        # Lines of concurrent invocations (also from worker threads) keep their own ids.
        jobs_by_id = data["job_executions"]
        for line in data["job_logs"].values():
            if line["job_execution_id"] is not None:
                job_row = jobs_by_id[line["job_execution_id"]]
                assert line["invocation_id"] == job_row["invocation_id"]
        notices = [
            line
            for line in data["job_logs"].values()
            if line["message"].startswith("security notice sent to previous address")
        ]
        assert len(notices) == 3 and {line["source"] for line in notices} == {"stderr"}
        assert {jobs_by_id[line["job_execution_id"]]["job_name"] for line in notices} == {
            "notify_old_address"
        }
    finally:
        plugin.shutdown_sync()


async def test_rows_written_again_after_an_unacknowledged_commit_are_not_duplicated(
    db_url: str,
) -> None:
    """A retried batch whose rows were committed already (the answer was lost)."""
    plugin = ObservabilityPlugin(db_url, flush_interval=60, handle_sigterm=False)
    try:
        result = await listen_to(
            load("users.signed_up.insert.json"), events_dir=EVENTS, plugins=[plugin]
        )
        plugin.buffer.absorb()
        batch = plugin.buffer.take(10_000)
        assert all(patch.new for patch in batch.executions)  # started since the last flush
        writer = writer_for(db_url, None)
        try:
            await writer.open()
            await writer.write(batch)
            again = Batch(
                [Patch(p.table, p.id, dict(p.values), new=True) for p in batch.executions],
                batch.logs,
            )
            again.executions[0].values["status"] = "failed"  # what a later patch could say
            await writer.write(again)
        finally:
            await writer.close()
        data = await stored(db_url)
        assert len(data["job_executions"]) == len(result.jobs)
        assert len(data["job_logs"]) == len(batch.logs)
        assert data["invocations"][result.invocation_id]["status"] == "failed"
    finally:
        plugin.shutdown_sync()


async def test_capture_off_installs_no_log_capture_and_records_no_lines(db_url: str) -> None:
    from detector.logcapture import capture

    plugin = ObservabilityPlugin(
        db_url, capture_logs=False, flush_interval=60, handle_sigterm=False
    )
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(capture.users)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        result = await listen_to(
            load("orders.created.insert.json"), events_dir=EVENTS, plugins=[plugin]
        )
        assert plugin.force_flush(10)
        assert set(seen) == {0}  # the root handler and stream proxies were never installed
        assert await rows(db_url, "job_logs") == []
        assert len(await rows(db_url, "job_executions")) == len(result.jobs)
    finally:
        watcher.cancel()
        plugin.shutdown_sync()
