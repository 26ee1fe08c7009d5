"""The example event modules and payloads: what the demo and the docs rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detector import (
    EventStatus,
    InvalidEventPayload,
    InvocationStatus,
    JobStatus,
    TrackingToken,
    listen_to,
    parse_hasura_event,
)
from tests.support.library import RecordingPlugin

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EVENTS = EXAMPLES / "events"
PAYLOADS = EXAMPLES / "payloads"

EVENT_NAMES = [
    "orders.cancelled",
    "orders.created",
    "orders.fulfilled",
    "orders.shipped",
    "payments.failed",
    "users.email_changed",
    "users.signed_up",
]

# payload file -> (invocation status, {detected event: {job: (status, attempts)}})
EXPECTED: dict[str, tuple[InvocationStatus, dict[str, dict[str, tuple[JobStatus, int]]]]] = {
    "orders.created.insert.json": (
        InvocationStatus.COMPLETED,
        {
            "orders.created": {
                "send_confirmation_email": (JobStatus.COMPLETED, 1),
                "reserve_inventory": (JobStatus.COMPLETED, 1),
                "notify_warehouse": (JobStatus.COMPLETED, 1),
            }
        },
    ),
    "orders.created.manual.json": (
        InvocationStatus.COMPLETED,
        {
            "orders.created": {
                "send_confirmation_email": (JobStatus.COMPLETED, 1),
                "reserve_inventory": (JobStatus.COMPLETED, 1),
                "notify_warehouse": (JobStatus.COMPLETED, 1),
            }
        },
    ),
    "orders.shipped.update.json": (
        InvocationStatus.COMPLETED,
        {
            "orders.shipped": {
                "send_shipping_email": (JobStatus.COMPLETED, 1),
                "update_ledger": (JobStatus.COMPLETED, 1),
                "mark_fulfilled": (JobStatus.COMPLETED, 1),
            }
        },
    ),
    "orders.fulfilled.cascade.json": (
        InvocationStatus.COMPLETED,
        {"orders.fulfilled": {"request_review": (JobStatus.COMPLETED, 1)}},
    ),
    "orders.cancelled.update.json": (
        InvocationStatus.COMPLETED,
        {
            "orders.cancelled": {
                "refund_payment": (JobStatus.COMPLETED, 2),
                "restock_items": (JobStatus.COMPLETED, 1),
                "send_cancellation_email": (JobStatus.COMPLETED, 1),
            }
        },
    ),
    "payments.failed.update.json": (
        InvocationStatus.FAILED,
        {
            "payments.failed": {
                "notify_customer": (JobStatus.COMPLETED, 1),
                "charge_backup_card": (JobStatus.FAILED, 1),
                "retry_gateway": (JobStatus.COMPLETED, 3),
                "screen_for_fraud": (JobStatus.TIMEOUT, 1),
            }
        },
    ),
    "users.signed_up.insert.json": (
        InvocationStatus.COMPLETED,
        {
            "users.signed_up": {
                "send_welcome_email": (JobStatus.COMPLETED, 1),
                "create_crm_contact": (JobStatus.COMPLETED, 1),
                "grant_trial": (JobStatus.COMPLETED, 1),
            }
        },
    ),
    "users.email_changed.update.json": (
        InvocationStatus.COMPLETED,
        {
            "users.email_changed": {
                "send_verification_email": (JobStatus.COMPLETED, 1),
                "notify_old_address": (JobStatus.COMPLETED, 1),
                "sync_crm_contact": (JobStatus.COMPLETED, 1),
            }
        },
    ),
    "users.deleted.delete.json": (InvocationStatus.COMPLETED, {}),
}


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def test_every_payload_file_has_an_expectation() -> None:
    assert sorted(path.name for path in PAYLOADS.glob("*.json")) == sorted(EXPECTED)


def test_examples_are_loaded_by_path_not_imported_as_a_package() -> None:
    assert not (EXAMPLES / "__init__.py").exists()
    assert not (EVENTS / "__init__.py").exists()
    assert (EVENTS / "_helpers.py").exists()


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_example_payload_runs_as_expected(name: str) -> None:
    status, detected = EXPECTED[name]
    plugin = RecordingPlugin()
    result = await listen_to(load(name), events_dir=EVENTS, plugins=[plugin])
    assert [event.name for event in result.events] == EVENT_NAMES  # _helpers is no event
    assert not [event for event in result.events if event.status is EventStatus.DETECTION_FAILED]
    assert {event.name for event in result.detected_events} == set(detected)
    for event in result.detected_events:
        assert event.status is EventStatus.COMPLETED
        assert {
            job_result.name: (job_result.status, job_result.attempts) for job_result in event.jobs
        } == detected[event.name]
    assert result.status is status
    json.dumps(result.to_dict(camel=True))  # example jobs return JSON values
    if detected:
        assert plugin.logs, "example jobs log or print"


@pytest.mark.parametrize("name", sorted(path.name for path in PAYLOADS.glob("invalid/*.json")))
async def test_invalid_example_payloads_are_rejected(name: str) -> None:
    plugin = RecordingPlugin()
    with pytest.raises(InvalidEventPayload):
        await listen_to(load(f"invalid/{name}"), events_dir=EVENTS, plugins=[plugin])
    assert plugin.args("on_invocation_end")[0][1].status is InvocationStatus.REJECTED


def test_payloads_cover_hasura_features() -> None:
    events = {path.name: parse_hasura_event(load(path.name)) for path in PAYLOADS.glob("*.json")}
    ops = {event.op.value for event in events.values()}
    assert ops == {"INSERT", "UPDATE", "DELETE", "MANUAL"}
    assert any(event.trace_context for event in events.values())
    assert any(event.delivery_info.current_retry > 0 for event in events.values())
    assert any("x-correlation-id" in event.session_variables for event in events.values())
    assert any(
        TrackingToken.try_parse((event.new or {}).get("updated_by")) for event in events.values()
    )


async def test_example_logs_and_prints_are_captured_per_job() -> None:
    plugin = RecordingPlugin()
    result = await listen_to(
        load("orders.created.insert.json"), events_dir=EVENTS, plugins=[plugin]
    )
    ids = {job_result.name: job_result.job_execution_id for job_result in result.jobs}
    lines = {(line.job_execution_id, line.source, line.message) for line in plugin.logs}
    assert (ids["reserve_inventory"], "stdout", "reserving 2 x MUG-BLUE-350") in lines
    warehouse = [line for line in plugin.logs if line.message == "warehouse notified"]
    assert warehouse[0].data == {"order_id": "ord_10482", "warehouse": "north"}
    assert warehouse[0].job_execution_id == ids["notify_warehouse"]


async def test_the_cascade_example_links_child_to_parent_job() -> None:
    """orders.shipped's mark_fulfilled writes its token; the follow-up is orders.fulfilled."""
    parent = await listen_to(load("orders.shipped.update.json"), events_dir=EVENTS, plugins=[])
    mark = next(job_result for job_result in parent.jobs if job_result.name == "mark_fulfilled")
    follow_up = mark.result["cascade_payload"]
    plugin = RecordingPlugin()
    child = await listen_to(follow_up, events_dir=EVENTS, plugins=[plugin])
    assert [event.name for event in child.detected_events] == ["orders.fulfilled"]
    assert child.correlation_id == parent.correlation_id
    (invocation,) = plugin.args("on_invocation_start")[0]
    assert invocation.source_job_id == mark.job_execution_id
    assert invocation.source_function == "orders_events"
