"""ObservabilityPlugin on real PostgreSQL and SQLite: what it stores, and how it writes."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from detector.errors import ConfigurationError
from detector.observability import ObservabilityPlugin
from detector.results import JobAttempt
from detector.status import InvocationStatus, JobStatus, LogLevel
from tests.support.observability import InvocationDriver, payload, rows


@pytest.fixture
def plugin(db_url: str) -> Any:
    # A long interval: these tests decide when to flush.
    plugin = ObservabilityPlugin(db_url, flush_interval=60, instance_report_interval=0.0)
    yield plugin
    plugin.shutdown_sync()


def by_name(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


async def test_a_full_invocation_is_stored_with_every_column(plugin: Any, db_url: str) -> None:
    run = InvocationDriver(plugin)
    invocation = await run.start(tenant="acme", api_token="t-123")
    await run.log("invocation starts")

    shipped = await run.event("orders.shipped")
    await run.log("checking status", event=shipped)
    await run.detected(shipped, True)
    email = await run.job_start(shipped, "send_email", to="ana@example.com", smtp_password="pw")
    await run.log("sending", job=email, data={"attempt": 1, "session_id": "s"})
    ledger = await run.job_start(shipped, "ledger", retries=0)
    slow = await run.job_start(shipped, "slow")
    flaky = await run.job_start(shipped, "flaky", retries=3)
    first, second = flaky.started_at, flaky.started_at + timedelta(milliseconds=40)
    flaky_attempts = [
        JobAttempt(
            1,
            first,
            first + timedelta(milliseconds=10),
            10.4,
            JobStatus.FAILED,
            "gateway down",
            "ConnectionError",
        ),
        JobAttempt(2, second, second + timedelta(milliseconds=7), 7.0, JobStatus.COMPLETED),
    ]
    results = [
        await run.job_end(email, JobStatus.COMPLETED, result={"sent": True, "token": "x"}),
        await run.job_end(ledger, JobStatus.FAILED, error=ValueError("ledger closed")),
        await run.job_end(slow, JobStatus.TIMEOUT, error=TimeoutError("exceeded 0.5 s")),
        await run.job_end(
            flaky, JobStatus.COMPLETED, result=3, attempts=3, attempt_history=flaky_attempts
        ),
    ]
    await run.log("job failed", job=ledger, level=LogLevel.ERROR)
    await run.handler_end(shipped, results)

    cancelled = await run.event("orders.cancelled")
    await run.detected(cancelled, False)
    broken = await run.event("orders.broken")
    await run.detected(broken, False, error=KeyError("status"))
    result = await run.end()

    assert plugin.force_flush(10)
    [inv] = await rows(db_url, "invocations")
    assert inv["id"] == invocation.invocation_id
    assert inv["correlation_id"] == run.correlation_id
    assert inv["source_function"] == "orders_fn"
    assert inv["source_table"] == "public.orders"
    assert inv["source_operation"] == "UPDATE"
    assert inv["source_system"] == "hasura"
    assert inv["source_trigger_name"] == "orders_changed"
    assert inv["source_event_id"] == "evt-0001"  # text: not a UUID
    assert inv["source_event_time"].isoformat() == "2026-11-24T10:15:30.123456+00:00"
    assert inv["source_user_email"] == "ana@example.com"
    assert inv["source_user_role"] == "user"
    assert inv["source_job_id"] is None
    assert inv["delivery_attempt"] == 1
    assert inv["received_at"] == invocation.received_at
    assert inv["created_at"] == invocation.started_at
    assert inv["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert inv["auto_load_modules"] is True
    assert inv["event_modules_directory"] == "/srv/events"
    assert inv["status"] == "failed"
    assert inv["total_duration_ms"] == 56
    # Counters per SPEC §5a: every job that did not complete counts as failed.
    assert (inv["events_detected_count"], inv["total_jobs_run"]) == (1, 4)
    assert (inv["total_jobs_succeeded"], inv["total_jobs_failed"]) == (2, 2)
    assert inv["events_detected_count"] == len(result.detected_events)
    new = inv["source_event_payload"]["event"]["data"]["new"]
    assert new["status"] == "shipped" and new["card_number"] == "[redacted]"
    # Who made the change stays readable; Hasura's session is not a secret as a whole.
    assert inv["source_event_payload"]["event"]["session_variables"] == {
        "x-hasura-role": "user",
        "x-hasura-user-email": "ana@example.com",
    }
    assert inv["context_data"] == {"tenant": "acme", "api_token": "[redacted]"}

    events = by_name(await rows(db_url, "event_executions"), "event_name")
    assert set(events) == {"orders.shipped", "orders.cancelled", "orders.broken"}
    ev = events["orders.shipped"]
    assert ev["invocation_id"] == invocation.invocation_id
    assert ev["event_module_path"] == "/srv/events/orders.shipped.py"
    assert ev["detected"] is True and ev["status"] == "completed"
    assert (ev["detection_duration_ms"], ev["handler_duration_ms"]) == (2, 30)
    assert (ev["jobs_count"], ev["jobs_succeeded"], ev["jobs_failed"]) == (4, 2, 2)
    assert events["orders.cancelled"]["status"] == "not_detected"
    assert events["orders.cancelled"]["detected"] is False
    failed = events["orders.broken"]
    assert failed["status"] == "detection_failed" and failed["detected"] is False
    assert failed["detection_error"] == "'status'"
    assert "KeyError" in failed["detection_error_stack"]

    jobs = by_name(await rows(db_url, "job_executions"), "job_name")
    email_row = jobs["send_email"]
    assert email_row["event_execution_id"] == shipped.event_execution_id
    assert email_row["job_function_name"] == "send_email_fn"
    assert email_row["status"] == "completed" and email_row["duration_ms"] == 12
    assert email_row["job_options"] == {"to": "ana@example.com", "smtp_password": "[redacted]"}
    assert email_row["result"] == {"sent": True, "token": "[redacted]"}
    assert email_row["started_at"] == email.started_at and email_row["ended_at"] is not None
    assert jobs["ledger"]["status"] == "failed"
    assert jobs["ledger"]["error_type"] == "ValueError"
    assert jobs["ledger"]["error_message"] == "ledger closed"
    assert "ValueError: ledger closed" in jobs["ledger"]["error_stack"]
    assert jobs["slow"]["status"] == "timeout"
    assert jobs["flaky"]["attempts"] == 3 and jobs["flaky"]["result"] == 3
    assert jobs["flaky"]["attempt_history"] == [
        {
            "attempt": 1,
            "started_at": first.isoformat(),
            "ended_at": (first + timedelta(milliseconds=10)).isoformat(),
            "duration_ms": 10,
            "status": "failed",
            "error_type": "ConnectionError",
            "error_message": "gateway down",
        },
        {
            "attempt": 2,
            "started_at": second.isoformat(),
            "ended_at": (second + timedelta(milliseconds=7)).isoformat(),
            "duration_ms": 7,
            "status": "completed",
            "error_type": None,
            "error_message": None,
        },
    ]
    assert email_row["attempt_history"] is None  # ran once: nothing more to say

    logs = await rows(db_url, "job_logs", order_by="seq")
    assert [line["message"] for line in logs] == [
        "invocation starts",
        "checking status",
        "sending",
        "job failed",
    ]
    assert logs[0]["event_execution_id"] is None and logs[0]["job_execution_id"] is None
    assert logs[1]["event_execution_id"] == shipped.event_execution_id
    assert logs[2]["job_execution_id"] == email.job_execution_id
    assert logs[2]["data"] == {"attempt": 1, "session_id": "[redacted]"}
    assert logs[3]["level"] == "error"
    assert all(line["invocation_id"] == invocation.invocation_id for line in logs)

    stats = plugin.stats()
    assert stats["written"]["job_executions"] == 4
    assert stats["dropped_total"] == 0 and stats["quarantined"] == 0
    [instance] = await rows(db_url, "plugin_instances")
    assert instance["id"] == stats["instance_id"] and instance["writer"] == plugin.writer.name
    assert instance["records_written"] >= 11


async def test_a_row_started_and_finished_between_flushes_is_written_once(
    plugin: Any, db_url: str
) -> None:
    run = InvocationDriver(plugin)
    await run.start()
    event = await run.event("orders.shipped")
    await run.detected(event, True)
    jobs = [await run.job_start(event, f"job{n}") for n in range(3)]
    results = [await run.job_end(job, JobStatus.COMPLETED) for job in jobs]
    await run.handler_end(event, results)
    await run.end()
    statements_before = plugin.writer.statements
    assert plugin.force_flush(10)

    # Start and end patches of each row merged: one upsert per table (each row once),
    # and the health row (a report is always due here) in the same transaction: on
    # SQLite a statement each, on PostgreSQL all of them in one statement.
    assert plugin.stats()["written"] == {
        "invocations": 1,
        "event_executions": 1,
        "job_executions": 3,
    }
    expected = {"sqlite": 4, "postgresql": 1}[plugin.writer.name]
    assert plugin.writer.statements - statements_before == expected
    [job_row] = [r for r in await rows(db_url, "job_executions") if r["job_name"] == "job0"]
    assert job_row["status"] == "completed" and job_row["started_at"] is not None


async def test_end_patches_update_rows_written_earlier(plugin: Any, db_url: str) -> None:
    run = InvocationDriver(plugin)
    await run.start()
    event = await run.event("orders.shipped")
    await run.detected(event, True)
    job = await run.job_start(event, "send", to="x")
    assert plugin.force_flush(10)
    [row] = await rows(db_url, "job_executions")
    assert row["status"] == "running"

    outcome = await run.job_end(job, JobStatus.COMPLETED, result={"ok": 1})
    await run.handler_end(event, [outcome])
    await run.end()
    assert plugin.force_flush(10)
    [row] = await rows(db_url, "job_executions")
    assert row["status"] == "completed" and row["result"] == {"ok": 1}
    assert row["job_options"] == {"to": "x"}  # kept: the end patch did not carry it
    [inv] = await rows(db_url, "invocations")
    assert inv["status"] == "completed" and inv["updated_at"] > inv["created_at"]


async def test_child_invocation_written_before_its_parent_job_links_up(
    plugin: Any, db_url: str
) -> None:
    parent_job_id = str(uuid.uuid4())
    child = InvocationDriver(plugin, source_job_id=parent_job_id, correlation_id="chain-1")
    await child.start()
    await child.end()
    assert plugin.force_flush(10)  # the child lands first: no enforced foreign key

    parent = InvocationDriver(plugin, correlation_id="chain-1")
    await parent.start()
    event = await parent.event("orders.shipped")
    await parent.detected(event, True)
    # The job whose tracking token the child carried.
    job = await parent.job_start(event, "update_order", job_id=parent_job_id)
    await parent.handler_end(event, [await parent.job_end(job, JobStatus.COMPLETED)])
    await parent.end()
    assert plugin.force_flush(10)

    invocations = {r["id"]: r for r in await rows(db_url, "invocations")}
    child_row = invocations[child.info.invocation_id]
    assert child_row["source_job_id"] == parent_job_id
    [job_row] = await rows(db_url, "job_executions")
    assert job_row["id"] == parent_job_id
    assert {r["correlation_id"] for r in invocations.values()} == {"chain-1"}


async def test_rejected_timeout_and_invocation_errors_are_kept(plugin: Any, db_url: str) -> None:
    from datetime import UTC, datetime

    from detector.plugins import InvocationInfo, ListenOptions
    from detector.results import ListenResult
    from tests.support.observability import call

    bad = {"id": "x", "event": {"op": "TRUNCATE"}, "table": {"name": "orders"}}
    started = datetime.now(UTC)
    info = InvocationInfo(
        invocation_id=str(uuid.uuid4()),
        correlation_id="c-bad",
        source_function="orders_fn",
        payload=bad,
        event=None,
        options=ListenOptions(),
        received_at=started,
        started_at=started,
        error=ValueError("invalid Hasura event payload: `event.op` must be one of …"),
    )
    await call(plugin.on_invocation_start, info)
    rejected = ListenResult(info.invocation_id, "c-bad", status=InvocationStatus.REJECTED)
    await call(plugin.on_invocation_end, info, rejected)

    cut = InvocationDriver(plugin)
    await cut.start()
    await call(plugin.on_error, RuntimeError("module cache broken"), "invocation", cut.info)
    await cut.end(status=InvocationStatus.TIMEOUT)
    assert plugin.force_flush(10)

    invocations = {r["id"]: r for r in await rows(db_url, "invocations")}
    rejected_row = invocations[info.invocation_id]
    assert rejected_row["status"] == "rejected"
    assert rejected_row["error_message"].startswith("invalid Hasura event payload")
    assert rejected_row["source_table"] == "public.orders"
    assert rejected_row["source_operation"] is None  # TRUNCATE is not a Hasura op
    assert rejected_row["source_event_payload"] == bad
    timeout_row = invocations[cut.info.invocation_id]
    assert timeout_row["status"] == "timeout"
    # The invocation-level error stays; the end did not erase it.
    assert timeout_row["error_message"] == "the invocation's deadline was reached"
    assert "RuntimeError: module cache broken" in timeout_row["error_stack"]


async def test_a_record_the_store_rejects_is_quarantined_and_the_rest_written(
    plugin: Any, db_url: str
) -> None:
    good = [InvocationDriver(plugin) for _ in range(5)]
    for run in good:
        await run.start()
    poisoned = InvocationDriver(plugin)
    await poisoned.start()
    plugin.buffer.absorb()  # the start is converted; the bad patch below merges over it
    # A status the CHECK constraint refuses (as if a buggy caller sent it).
    plugin.buffer.add_execution(
        "invocations",
        poisoned.info.invocation_id,
        {"id": poisoned.info.invocation_id, "source_function": "f", "status": "exploded"},
    )
    for run in good:
        await run.end()
    assert plugin.force_flush(10)

    stored = {r["id"]: r for r in await rows(db_url, "invocations")}
    assert set(stored) == {run.info.invocation_id for run in good}
    assert all(r["status"] == "completed" for r in stored.values())
    assert plugin.stats()["quarantined"] == 1
    [kept] = plugin.quarantined_records
    assert kept["record_id"] == poisoned.info.invocation_id
    assert kept["record"]["status"] == "exploded"
    assert "check" in kept["error"].lower() or "constraint" in kept["error"].lower()
    assert "exploded" not in kept["error"]  # messages carry no values
    [row] = await rows(db_url, "quarantined_records")
    assert row["table_name"] == "invocations" and row["record"]["status"] == "exploded"


async def test_log_lines_over_the_per_job_cap_are_counted_and_marked(db_url: str) -> None:
    plugin = ObservabilityPlugin(db_url, flush_interval=60, max_logs_per_job=3)
    try:
        run = InvocationDriver(plugin)
        await run.start()
        event = await run.event("e")
        await run.detected(event, True)
        job = await run.job_start(event, "chatty")
        for n in range(10):
            await run.log(f"line {n} " + "x" * 50, job=job)
        await run.handler_end(event, [await run.job_end(job, JobStatus.COMPLETED)])
        await run.end()
        assert plugin.force_flush(10)
        logs = await rows(db_url, "job_logs", order_by="seq")
        assert [line["message"][:6] for line in logs[:3]] == ["line 0", "line 1", "line 2"]
        assert logs[3]["message"] == "[7 more log lines not recorded: cap of 3 lines per job]"
        assert logs[3]["seq"] == 4 and logs[3]["level"] == "warn"
        assert plugin.stats()["dropped"] == {"log_lines_over_per_job_cap": 7}
    finally:
        plugin.shutdown_sync()


async def test_serverless_flush_waits_for_the_write(db_url: str) -> None:
    plugin = ObservabilityPlugin(db_url, serverless=True, flush_interval=60)
    try:
        run = InvocationDriver(plugin)
        await run.start()
        await run.end()  # ends with `await plugin.flush()`, as listen_to does
        [row] = await rows(db_url, "invocations")
        assert row["status"] == "completed"
        # shutdown then reuse (upstream never wrote again after a shutdown).
        await plugin.shutdown()
        again = InvocationDriver(plugin)
        await again.start()
        await again.end()
        assert len(await rows(db_url, "invocations")) == 2
    finally:
        plugin.shutdown_sync()


def test_configuration_from_arguments_and_environment(tmp_path: Any) -> None:
    environ = {
        "OBSERVABILITY_DB_URL": f"sqlite:///{tmp_path / 'env.db'}",
        "OBSERVABILITY_CAPTURE_PAYLOAD": "false",
        "OBSERVABILITY_REDACT_KEYS": "iban, pin",
        "OBSERVABILITY_BATCH_SIZE": "50",
        "OBSERVABILITY_SERVERLESS": "yes",
    }
    plugin = ObservabilityPlugin(environ=environ, batch_size=25)
    assert plugin.config.database_url == environ["OBSERVABILITY_DB_URL"]
    assert plugin.config.capture_payload is False and plugin.config.serverless is True
    assert plugin.config.batch_size == 25  # arguments win
    assert plugin.sanitizer.is_denied("customer_IBAN") and plugin.sanitizer.is_denied("Password")
    assert ObservabilityPlugin(environ={}).config.database_url == "sqlite:///event-detector.db"
    with pytest.raises(ConfigurationError, match="OBSERVABILITY_BATCH_SIZE"):
        ObservabilityPlugin(environ={"OBSERVABILITY_BATCH_SIZE": "many"})
    with pytest.raises(ConfigurationError, match="not both"):
        ObservabilityPlugin("sqlite:///x.db", graphql_url="http://h/v1/graphql", environ={})
    with pytest.raises(ConfigurationError, match="unknown"):
        ObservabilityPlugin("sqlite:///x.db", captur_payload=False, environ={})


async def test_capture_switches_off_store_no_bodies(db_url: str) -> None:
    plugin = ObservabilityPlugin(
        db_url,
        flush_interval=60,
        capture_payload=False,
        capture_job_options=False,
        capture_results=False,
        capture_logs=False,
        capture_error_stacks=False,
    )
    try:
        run = InvocationDriver(plugin)
        await run.start(secret_thing=1)
        event = await run.event("e")
        await run.detected(event, True)
        job = await run.job_start(event, "j", opt=1)
        await run.log("hidden", job=job)
        await run.handler_end(
            event, [await run.job_end(job, JobStatus.FAILED, result=1, error=ValueError("v"))]
        )
        await run.end()
        assert plugin.force_flush(10)
        [inv] = await rows(db_url, "invocations")
        assert inv["source_event_payload"] is None
        [job_row] = await rows(db_url, "job_executions")
        assert job_row["job_options"] is None and job_row["result"] is None
        assert job_row["error_message"] == "v" and job_row["error_stack"] is None
        assert await rows(db_url, "job_logs") == []
    finally:
        plugin.shutdown_sync()


def test_payload_helper_is_a_valid_hasura_payload() -> None:
    from detector.payload import parse_hasura_event

    assert parse_hasura_event(payload()).op == "UPDATE"
    assert json.dumps(payload())
