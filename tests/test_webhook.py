"""The Hasura webhook receiver over a real uvicorn server, recording into both backends."""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from service.endpoints.webhook import WebhookReceiver
from service.settings import Settings
from service.storage.maintenance import event_executions, invocations, job_executions
from tests.support.pgserver import free_port
from tests.support.runtime import EXAMPLES_EVENTS, count, database_for, rows
from tests.support.server import RunningServer, serving

SECRET = "s3cret-for-tests"
EXAMPLE_PAYLOADS = EXAMPLES_EVENTS.parent / "payloads"
HEADERS = {"x-event-detector-secret": SECRET}


def example(name: str, **changes: Any) -> dict[str, Any]:
    """An example payload with a fresh Hasura event id (and `current_retry` if given)."""
    payload = json.loads((EXAMPLE_PAYLOADS / name).read_text())
    payload["id"] = str(uuid.uuid4())
    if "current_retry" in changes:
        payload["delivery_info"]["current_retry"] = changes["current_retry"]
    return payload


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, str]]:
    """A server whose webhook runs the example modules for every function."""
    with database_for(request.param, request, tmp_path_factory.mktemp("hooks")) as url:
        settings = Settings(
            database_url=url,
            events_dir=EXAMPLES_EVENTS,
            webhook_functions=["orders", "shop-orders", "payments", "rolled", "burst", "metered"],
            webhook_secret=SECRET,
            rollup_interval=0.3,
        )
        with serving(settings) as running:
            yield running, url


def flush(server: RunningServer) -> None:
    """Wait until the webhook's observability plugin has written what it buffered."""
    assert server.app.state.runtime.observability.force_flush(10.0)


def recorded(url: str, invocation_id: str) -> dict[str, Any]:
    found = rows(url, sa.select(invocations).where(invocations.c.id == invocation_id))
    assert len(found) == 1, f"invocation {invocation_id} not recorded"
    return found[0]


def test_good_delivery_runs_the_modules_and_is_recorded_under_the_path_function(
    server: tuple[RunningServer, str],
) -> None:
    running, url = server
    payload = example("orders.shipped.update.json")
    response = running.client.post("/hooks/shop-orders", json=payload, headers=HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["x-event-detector-invocation-id"] == body["invocation_id"]
    detected = {event["name"] for event in body["events"] if event["detected"]}
    assert detected == {"orders.shipped"}
    shipped = next(event for event in body["events"] if event["name"] == "orders.shipped")
    assert [job["name"] for job in shipped["jobs"]] == [
        "send_shipping_email",
        "update_ledger",
        "mark_fulfilled",
    ]
    flush(running)
    row = recorded(url, body["invocation_id"])
    assert row["source_function"] == "shop-orders"
    assert row["source_event_id"] == payload["id"]
    assert row["delivery_attempt"] == 1
    assert row["status"] == "completed"
    assert row["total_jobs_run"] == 3
    assert row["event_modules_directory"] == str(EXAMPLES_EVENTS)


def test_a_delivery_with_failed_jobs_is_answered_200_with_the_failures(
    server: tuple[RunningServer, str],
) -> None:
    running, url = server
    response = running.client.post(
        "/hooks/payments", json=example("payments.failed.update.json"), headers=HEADERS
    )
    assert response.status_code == 200, "a retry would re-run every job"
    body = response.json()
    assert body["status"] == "failed"
    statuses = {job["name"]: job["status"] for event in body["events"] for job in event["jobs"]}
    assert statuses["charge_backup_card"] == "failed"
    assert statuses["screen_for_fraud"] == "timeout"
    flush(running)
    assert recorded(url, body["invocation_id"])["total_jobs_failed"] == 2


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "missing"), ({"x-event-detector-secret": "wrong"}, "wrong")],
)
def test_a_delivery_without_the_shared_secret_is_refused_and_not_run(
    server: tuple[RunningServer, str], headers: dict[str, str], reason: str
) -> None:
    running, url = server
    payload = example("orders.created.insert.json")
    response = running.client.post("/hooks/orders", json=payload, headers=headers)
    assert response.status_code == 401, reason
    assert "x-event-detector-secret" in response.json()["message"]
    flush(running)
    assert count(url, invocations, invocations.c.source_event_id == payload["id"]) == 0


def test_a_body_that_is_not_json_is_400_naming_the_body_and_recorded_rejected(
    server: tuple[RunningServer, str],
) -> None:
    running, url = server
    response = running.client.post(
        "/hooks/orders",
        content=b'{"event": {"op": "INSERT"',
        headers={**HEADERS, "content-type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "body"
    assert "not JSON" in body["message"]
    flush(running)
    row = recorded(url, body["invocation_id"])
    assert row["status"] == "rejected"
    assert row["source_function"] == "orders"
    assert "not JSON" in row["error_message"]
    assert row["source_event_payload"] == '{"event": {"op": "INSERT"'


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("missing_op.json", "event.op"),
        ("row_not_an_object.json", "event.data.new"),
        ("not_a_hasura_event.json", "event"),
    ],
)
def test_an_invalid_payload_is_400_naming_the_field_and_recorded_rejected(
    server: tuple[RunningServer, str], name: str, field: str
) -> None:
    running, url = server
    payload = json.loads((EXAMPLE_PAYLOADS / "invalid" / name).read_text())
    response = running.client.post("/hooks/orders", json=payload, headers=HEADERS)
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field
    assert f"`{field}`" in body["message"]
    flush(running)
    row = recorded(url, body["invocation_id"])
    assert row["status"] == "rejected"
    assert f"`{field}`" in row["error_message"]


def test_a_hasura_retry_is_recorded_as_another_delivery_with_its_attempt(
    server: tuple[RunningServer, str],
) -> None:
    running, url = server
    first = example("orders.cancelled.update.json", current_retry=0)
    retry = copy.deepcopy(first)
    retry["delivery_info"]["current_retry"] = 1
    duplicate = copy.deepcopy(retry)  # at-least-once: the same delivery may arrive twice
    answers = [
        running.client.post("/hooks/orders", json=body, headers=HEADERS)
        for body in (first, retry, duplicate)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.json()["invocation_id"] for a in answers}) == 3
    flush(running)
    deliveries = rows(
        url,
        sa.select(invocations.c.delivery_attempt, invocations.c.status)
        .where(invocations.c.source_event_id == first["id"])
        .order_by(invocations.c.delivery_attempt),
    )
    assert [d["delivery_attempt"] for d in deliveries] == [1, 2, 2]
    assert {d["status"] for d in deliveries} == {"completed"}


def test_twenty_concurrent_deliveries_are_all_answered_and_recorded(
    server: tuple[RunningServer, str],
) -> None:
    running, url = server
    names = [
        "orders.created.insert.json",
        "orders.shipped.update.json",
        "users.signed_up.insert.json",
        "users.email_changed.update.json",
        "payments.failed.update.json",
    ]
    payloads = [example(names[i % len(names)]) for i in range(20)]

    async def deliver_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=60) as client:
            return await asyncio.gather(
                *(client.post("/hooks/burst", json=p, headers=HEADERS) for p in payloads)
            )

    answers = asyncio.run(deliver_all())
    assert [a.status_code for a in answers] == [200] * 20
    by_event = {p["id"]: a.json() for p, a in zip(payloads, answers, strict=True)}
    flush(running)
    stored = rows(
        url,
        sa.select(
            invocations.c.id, invocations.c.source_event_id, invocations.c.total_jobs_run
        ).where(invocations.c.source_function == "burst"),
    )
    assert len(stored) == 20
    for row in stored:
        answer = by_event[row["source_event_id"]]
        assert row["id"] == answer["invocation_id"], "each answer matches its own record"
        assert row["total_jobs_run"] == sum(len(e["jobs"]) for e in answer["events"])
    jobs = count(
        url,
        job_executions,
        job_executions.c.invocation_id.in_([row["id"] for row in stored]),
    )
    assert jobs == sum(row["total_jobs_run"] for row in stored)


def test_metrics_count_deliveries_by_outcome_and_show_the_plugin_health(
    server: tuple[RunningServer, str],
) -> None:
    running, _ = server
    running.client.post(
        "/hooks/metered", json=example("orders.created.insert.json"), headers=HEADERS
    )
    running.client.post("/hooks/metered", json={"nope": 1}, headers=HEADERS)
    running.client.post("/hooks/metered", json={}, headers={})
    flush(running)
    text = running.client.get("/metrics").text
    assert (
        'event_detector_webhook_deliveries_total{function="metered",outcome="completed"} 1.0'
        in text
    )
    assert (
        'event_detector_webhook_deliveries_total{function="metered",outcome="rejected"} 1.0' in text
    )
    # Refused before the function counts: under the one fixed label, never the path's.
    assert 'function="metered",outcome="unauthorized"' not in text
    assert (
        'event_detector_webhook_deliveries_total{function="_refused",outcome="unauthorized"}'
        in text
    )
    assert 'route="/hooks/{function}",status="401"' in text
    stats = running.app.state.runtime.observability.stats()
    instance = stats["instance_id"]
    assert f'event_detector_plugin_buffer_records{{instance="{instance}"}} 0.0' in text
    written = sum(stats["written"].values())
    assert written > 0
    assert f'event_detector_plugin_records_written_total{{instance="{instance}"}}' in text


def test_the_rollup_runs_in_the_background_and_fills_the_dashboard(
    server: tuple[RunningServer, str],
) -> None:
    running, url = server
    running.client.post(
        "/hooks/rolled", json=example("orders.created.insert.json"), headers=HEADERS
    )
    flush(running)
    dashboard = invocations.metadata.tables["dashboard_stats"]
    deadline = asyncio.run(_wait_for(url, dashboard, "rolled"))
    assert deadline, "dashboard_stats was not refreshed by the background rollup"
    assert running.app.state.runtime.rollup.runs >= 2


async def _wait_for(url: str, dashboard: sa.Table, function: str) -> bool:
    for _ in range(100):
        found = await asyncio.to_thread(
            count, url, dashboard, dashboard.c.source_function == function
        )
        if found:
            return True
        await asyncio.sleep(0.1)
    return False


def test_a_function_directory_serves_its_function_and_unknown_functions_are_404(
    tmp_path: Path,
) -> None:
    base = tmp_path / "functions"
    (base / "billing").mkdir(parents=True)
    shutil.copy(EXAMPLES_EVENTS / "payments.failed.py", base / "billing" / "payments.failed.py")
    shutil.copy(EXAMPLES_EVENTS / "_helpers.py", base / "billing" / "_helpers.py")
    url = f"sqlite:///{tmp_path / 'layout.db'}"
    settings = Settings(
        database_url=url, events_dir=base, rollup_interval=0, webhook_max_body_bytes=4096
    )
    with serving(settings) as running:
        huge = example("payments.failed.update.json")
        huge["event"]["data"]["new"]["note"] = "x" * 5000
        too_large = running.client.post("/hooks/billing", json=huge)
        assert too_large.status_code == 413
        assert too_large.json()["field"] == "body"
        answer = running.client.post("/hooks/billing", json=example("payments.failed.update.json"))
        assert answer.status_code == 200, "no secret configured: open"
        assert [e["name"] for e in answer.json()["events"]] == ["payments.failed"]
        missing = running.client.post("/hooks/shipping", json=example("orders.shipped.update.json"))
        assert missing.status_code == 404
        assert "shipping" in missing.json()["message"]
        traversal = running.client.post("/hooks/..", json={})
        assert traversal.status_code in (404, 405)
        assert running.client.get("/hooks/billing").status_code == 405


DECLARING_MODULES = {
    "orders.noted": (
        "from detector import job, run\n"
        "tables = 'orders'\n"
        "operations = ['UPDATE']\n"
        "def detector(event_name, event):\n    return True\n"
        "async def note(event_name, event, options):\n"
        "    noted = {'raw': b'\\x00\\x01'}\n"
        "    noted['self'] = noted\n"
        "    return noted\n"
        "async def handler(event_name, event):\n"
        "    return await run(event_name, event, [job(note)])\n"
    ),
    "users.changed": (
        "tables = ['public.users']\n"
        "def detector(event_name, event):\n    raise AssertionError('never runs')\n"
        "def handler(event_name, event):\n    return None\n"
    ),
}


def test_modules_declaring_other_tables_are_skipped_and_odd_results_answer_200(
    tmp_path: Path,
) -> None:
    events = tmp_path / "events"
    events.mkdir()
    for name, source in DECLARING_MODULES.items():
        (events / f"{name}.py").write_text(source)
    url = f"sqlite:///{tmp_path / 'declared.db'}"
    with serving(
        Settings(database_url=url, events_dir=events, webhook_functions="orders", rollup_interval=0)
    ) as running:
        answer = running.client.post("/hooks/orders", json=example("orders.shipped.update.json"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        statuses = {event["name"]: event["status"] for event in body["events"]}
        assert statuses == {"orders.noted": "completed", "users.changed": "skipped"}
        assert body["status"] == "completed"
        [noted] = body["events"][0]["jobs"]
        assert noted["result"] == {"raw": "[bytes: 2 bytes]", "self": "[circular reference]"}
        flush(running)
        stored = rows(url, sa.select(event_executions.c.event_name, event_executions.c.status))
        assert sorted((row["event_name"], row["status"]) for row in stored) == [
            ("orders.noted", "completed"),
            ("users.changed", "skipped"),
        ]
        [job] = rows(url, sa.select(job_executions.c.result))
        assert job["result"] == noted["result"]


def test_the_webhook_is_off_without_an_events_directory(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'off.db'}", rollup_interval=0)
    with serving(settings) as running:
        answer = running.client.post("/hooks/orders", json=example("orders.created.insert.json"))
        assert answer.status_code == 404
        assert "EVENT_DETECTOR_EVENTS_DIR" in answer.json()["message"]
        assert running.client.get("/healthz").json() == {"status": "ok"}


def test_our_own_fault_is_500_with_a_short_message_and_no_traceback(tmp_path: Path) -> None:
    class NotAPlugin:
        name = "broken"

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'f.db'}",
        events_dir=EXAMPLES_EVENTS,
        webhook_functions=["orders"],
    )
    receiver = WebhookReceiver(settings, [NotAPlugin()])  # type: ignore[list-item]
    app = Starlette(routes=[Route("/hooks/{function}", receiver.handle, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        answer = httpx.post(
            f"http://127.0.0.1:{port}/hooks/orders", json=example("orders.created.insert.json")
        )
    finally:
        server.should_exit = True
        thread.join(10)
    assert answer.status_code == 500
    body = answer.json()
    assert body["error"] == "configuration_error"
    assert "Traceback" not in answer.text and len(body["message"]) <= 300
