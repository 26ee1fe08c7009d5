"""Re-runs (`POST /v1/rerun`) over a real uvicorn server, recording into both backends.

Originals are recorded the way production records them (the webhook, or the library with
its observability plugin); re-runs are read back from the database, never taken from the
answer alone.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

from detector import listen_to
from detector.observability import ObservabilityPlugin
from service.settings import Settings
from service.storage.maintenance import invocations, job_executions
from tests.support.library import hasura_payload, write_module
from tests.support.runtime import count, database_for, rows
from tests.support.server import RunningServer, serving

ADMIN_SECRET = "s3cret-for-reruns"
JWT_KEY = "a-jwt-signing-key-of-at-least-32-bytes!"
ADMIN = {"x-hasura-admin-secret": ADMIN_SECRET}
MAX_IDS = 5

AUDIT = """
from detector import job, run

def detector(event_name, event):
    return True

def audit_log(event_name, event, options):
    return {"audited": event.new["id"]}

async def handler(event_name, event):
    return await run(event_name, event, [job(audit_log)])
"""
CHARGE_BROKEN = """
from detector import job, run

def detector(event_name, event):
    return event.new["status"] == "shipped"

def charge(event_name, event, options):
    raise RuntimeError("card processor down")

async def handler(event_name, event):
    return await run(event_name, event, [job(charge)])
"""
# The fix deployed after the failure: the job succeeds and says what it saw.
CHARGE_FIXED = """
from detector import job, run

def detector(event_name, event):
    return event.new["status"] == "shipped"

def charge(event_name, event, options):
    return {"charged": event.new["id"], "context": dict(event.context)}

async def handler(event_name, event):
    return await run(event_name, event, [job(charge)])
"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, str, Path]]:
    """A server with the webhook on (`events/` serves every function, `events/charges/`
    the `charges` function), an admin secret, a JWT secret and a `viewer` role."""
    directory = tmp_path_factory.mktemp("rerun")
    events_dir = directory / "events"
    events_dir.mkdir()
    write_module(events_dir, "orders.audit", AUDIT)
    (events_dir / "charges").mkdir()
    with database_for(request.param, request, directory) as url:
        settings = Settings(
            database_url=url,
            events_dir=events_dir,
            webhook_functions=["orders"],
            admin_secret=ADMIN_SECRET,
            jwt_secret=json.dumps({"type": "HS256", "key": JWT_KEY}),
            unauthorized_role="viewer",
            rerun_max_invocations=MAX_IDS,
            rollup_interval=0,
        )
        with serving(settings) as running:
            yield running, url, events_dir


def deliver(running: RunningServer, function: str, payload: dict[str, Any]) -> str:
    """One webhook delivery, written to the database; its invocation id."""
    response = running.client.post(f"/hooks/{function}", json=payload)
    assert response.status_code == 200, response.text
    flush(running)
    return str(response.json()["invocation_id"])


def flush(running: RunningServer) -> None:
    assert running.app.state.runtime.observability.force_flush(10.0)


def fresh_payload(**changes: Any) -> dict[str, Any]:
    payload = hasura_payload()
    payload["id"] = str(uuid.uuid4())
    payload["event"]["data"]["new"].update(changes)
    return payload


def record_with_plugin(url: str, events_dir: Path, payload: Any, **config: Any) -> str:
    """Record one invocation with a plugin configured differently from the server's."""
    plugin = ObservabilityPlugin(url, environ={}, auto_migrate=False, **config)

    async def run() -> str:
        result = await listen_to(
            payload, events_dir=events_dir, source_function="orders", plugins=[plugin]
        )
        return result.invocation_id

    try:
        return asyncio.run(run())
    finally:
        assert plugin.shutdown_sync(10.0)


def rerun(running: RunningServer, body: dict[str, Any], headers: Any = None) -> httpx.Response:
    return running.client.post(
        "/v1/rerun", json=body, headers=ADMIN if headers is None else headers
    )


def reruns_of(url: str, invocation_id: str) -> list[dict[str, Any]]:
    return [
        row
        for row in rows(url, sa.select(invocations).order_by(invocations.c.created_at))
        if isinstance(row["context_data"], dict)
        and row["context_data"].get("rerun_of") == invocation_id
    ]


def token(role: str) -> str:
    claims = {
        "sub": "ops-1",
        "https://hasura.io/jwt/claims": {
            "x-hasura-allowed-roles": [role],
            "x-hasura-default-role": role,
        },
    }
    return jwt.encode(claims, JWT_KEY, algorithm="HS256")


def metric(running: RunningServer, outcome: str) -> float:
    text = running.client.get("/metrics").text
    found = re.search(rf'^event_detector_reruns_total\{{outcome="{outcome}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_only_admins_may_rerun(served: tuple[RunningServer, str, Path]) -> None:
    running, url, _ = served
    original = deliver(running, "orders", fresh_payload())
    body = {"invocation_ids": [original]}
    refused = {
        "no credentials": ({}, 401),
        "wrong secret": ({"x-hasura-admin-secret": "wrong"}, 401),
        "viewer JWT": ({"authorization": f"Bearer {token('viewer')}"}, 403),
        "bad JWT": ({"authorization": "Bearer not.a.jwt"}, 401),
        "admin secret, viewer role": ({**ADMIN, "x-hasura-role": "viewer"}, 403),
    }
    for name, (headers, status) in refused.items():
        for response in (
            running.client.get("/v1/rerun", headers=headers),
            rerun(running, body, headers),
        ):
            assert response.status_code == status, (name, response.text)
            error = response.json()
            assert set(error) == {"path", "error", "code"}, name
            assert error["code"] in ("access-denied", "invalid-jwt"), name
    assert reruns_of(url, original) == [], "nothing ran for a refused caller"
    assert "admin" in rerun(running, body, {}).json()["error"]

    assert running.client.get("/v1/rerun", headers=ADMIN).json() == {
        "enabled": True,
        "max": MAX_IDS,
    }
    admin_jwt = {"authorization": f"Bearer {token('admin')}"}
    answer = rerun(running, body, admin_jwt)
    assert answer.status_code == 200, answer.text
    assert answer.json()["started"] == 1
    assert len(reruns_of(url, original)) == 1


def test_a_rerun_records_a_new_invocation_with_the_current_codes_outcome(
    served: tuple[RunningServer, str, Path],
) -> None:
    running, url, events_dir = served
    write_module(events_dir / "charges", "orders.charge", CHARGE_BROKEN)
    payload = fresh_payload()
    original = deliver(running, "charges", payload)
    before = rows(url, sa.select(invocations).where(invocations.c.id == original))[0]
    assert before["status"] == "failed"
    completed_before = metric(running, "completed")

    write_module(events_dir / "charges", "orders.charge", CHARGE_FIXED)
    response = rerun(running, {"invocation_ids": [original]})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["started"] == 1 and answer["refused"] == 0
    [result] = answer["results"]
    assert result["invocation_id"] == original
    assert result["status"] == "completed"
    assert result["redacted_values"] == 0

    # Readable at once: the endpoint flushed before answering.
    [new] = rows(
        url, sa.select(invocations).where(invocations.c.id == result["rerun_invocation_id"])
    )
    assert new["status"] == "completed"
    assert new["context_data"] == {"rerun_of": original}
    assert new["source_function"] == "charges"
    assert new["source_event_id"] == payload["id"], "one more delivery of the Hasura event"
    assert new["correlation_id"] == before["correlation_id"], "joins the original's flow"
    assert new["source_event_payload"] == before["source_event_payload"]
    [job] = rows(
        url,
        sa.select(job_executions).where(job_executions.c.invocation_id == new["id"]),
    )
    assert job["status"] == "completed"
    assert job["result"] == {"charged": 7, "context": {"rerun_of": original}}
    # The original is left as it was.
    assert rows(url, sa.select(invocations.c.status).where(invocations.c.id == original)) == [
        {"status": "failed"}
    ]
    assert metric(running, "completed") == completed_before + 1


def test_many_reruns_run_one_after_another_in_recorded_order(
    served: tuple[RunningServer, str, Path],
) -> None:
    running, url, _ = served
    older = deliver(running, "orders", fresh_payload(id=1))
    newer = deliver(running, "orders", fresh_payload(id=2))
    # Asked newest first, and twice (also in upper case): answered in the request's order.
    response = rerun(running, {"invocation_ids": [newer, older, newer.upper()]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["invocation_id"] for r in results] == [newer, older]
    assert response.json()["started"] == 2
    first, second = (reruns_of(url, older), reruns_of(url, newer))
    assert len(first) == 1 and len(second) == 1, "each ran once"
    assert first[0]["created_at"] <= second[0]["created_at"], "the older one ran first"


def test_ids_that_cannot_rerun_are_refused_with_their_reason_and_nothing_recorded(
    served: tuple[RunningServer, str, Path],
) -> None:
    running, url, events_dir = served
    uncaptured = record_with_plugin(url, events_dir, fresh_payload(), capture_payload=False)
    big = fresh_payload(notes="x" * 4096)
    truncated = record_with_plugin(url, events_dir, big, max_value_bytes=1024)
    cleared = deliver(running, "orders", fresh_payload())
    # What `retention --payload-days` does to an old invocation.
    from tests.support.runtime import execute

    execute(
        url,
        sa.update(invocations).where(invocations.c.id == cleared).values(source_event_payload=None),
    )
    unknown = str(uuid.uuid4())
    before = count(url, invocations)

    ids = [uncaptured, truncated, cleared, unknown, "yesterday"]
    response = rerun(running, {"invocation_ids": ids})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["started"] == 0 and answer["refused"] == 5
    reasons = {r["invocation_id"]: (r["reason"], r["error"]) for r in answer["results"]}
    assert reasons[uncaptured][0] == "no_payload"
    assert "capture_payload" in reasons[uncaptured][1]
    assert reasons[cleared][0] == "no_payload"
    assert "retention" in reasons[cleared][1]
    assert reasons[truncated][0] == "truncated"
    assert "OBSERVABILITY_MAX_VALUE_BYTES" in reasons[truncated][1]
    assert reasons[unknown] == ("not_found", f"no invocation {unknown} is recorded")
    assert reasons["yesterday"][0] == "invalid_id"
    assert "not an invocation id" in reasons["yesterday"][1]
    flush(running)
    assert count(url, invocations) == before


def test_redacted_payloads_rerun_only_when_allowed_and_dry_runs_say_so(
    served: tuple[RunningServer, str, Path],
) -> None:
    running, url, _ = served
    original = deliver(running, "orders", fresh_payload(api_token="tok_123", password="pw"))

    checked = rerun(running, {"invocation_ids": [original], "dry_run": True}).json()
    assert checked["ready"] == 0 and checked["refused"] == 1
    [refusal] = checked["results"]
    assert refusal["reason"] == "redacted"
    assert "2 redacted value(s)" in refusal["error"]
    assert "allow_redacted" in refusal["error"]

    dry = rerun(running, {"invocation_ids": [original], "dry_run": True, "allow_redacted": True})
    assert dry.json()["results"] == [
        {
            "invocation_id": original,
            "status": "ready",
            "source_function": "orders",
            "redacted_values": 2,
        }
    ]
    assert rerun(running, {"invocation_ids": [original]}).json()["results"][0]["reason"] == (
        "redacted"
    )
    assert reruns_of(url, original) == [], "neither a refusal nor a dry run records anything"

    ran = rerun(running, {"invocation_ids": [original], "allow_redacted": True}).json()
    assert ran["results"][0]["redacted_values"] == 2
    assert ran["results"][0]["status"] == "completed"
    [new] = reruns_of(url, original)
    assert new["source_event_payload"]["event"]["data"]["new"]["api_token"] == "[redacted]"


def test_bad_requests_and_the_cap_are_400_naming_the_problem(
    served: tuple[RunningServer, str, Path],
) -> None:
    running, url, _ = served
    before = count(url, invocations)
    too_many = [str(uuid.uuid4()) for _ in range(MAX_IDS + 1)]
    cases = [
        ({"invocation_ids": too_many}, "$.invocation_ids", f"at most {MAX_IDS}"),
        ({"invocation_ids": []}, "$.invocation_ids", "non-empty list"),
        ({"invocation_ids": [str(uuid.uuid4()), 7]}, "$.invocation_ids[1]", "got int"),
        ({"where": {"status": {"_eq": "failed"}}}, "$.where", "through GraphQL"),
        ({"invocation_ids": [str(uuid.uuid4())], "force": True}, "$.force", "unknown field"),
        ({"invocation_ids": [str(uuid.uuid4())], "dry_run": "yes"}, "$.dry_run", "true or false"),
    ]
    for body, path, words in cases:
        response = rerun(running, body)
        assert response.status_code == 400, body
        error = response.json()
        assert (error["code"], error["path"]) == ("validation-failed", path), body
        assert words in error["error"], error
    assert "EVENT_DETECTOR_RERUN_MAX_INVOCATIONS" in rerun(running, cases[0][0]).json()["error"]
    not_json = running.client.post("/v1/rerun", content=b"{", headers=ADMIN)
    assert (not_json.status_code, not_json.json()["code"]) == (400, "invalid-json")
    time.sleep(0.05)
    assert count(url, invocations) == before


def test_reruns_are_off_without_an_events_directory(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'off.db'}", rollup_interval=0)
    with serving(settings) as running:
        status = running.client.get("/v1/rerun").json()
        assert status["enabled"] is False
        assert "EVENT_DETECTOR_EVENTS_DIR" in status["message"]
        response = running.client.post("/v1/rerun", json={"invocation_ids": [str(uuid.uuid4())]})
        assert response.status_code == 409
        assert response.json()["code"] == "not-supported"
        assert "EVENT_DETECTOR_EVENTS_DIR" in response.json()["error"]
