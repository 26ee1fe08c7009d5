"""The observability plugin's GraphQL writer, talking to this service over real HTTP.

The library's `GraphQLWriter` sends Hasura mutations (`insert_<table>` with
`on_conflict`); the engine must accept them unchanged, and what it stores must read back
through the API as the `ListenResult` says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector import listen_to
from detector.observability import ObservabilityPlugin
from service.settings import Settings
from tests.support.server import RunningServer, serving

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SECRET = "writer-secret"


@pytest.fixture
def server(db_url: str) -> Iterator[RunningServer]:
    with serving(Settings(database_url=db_url, admin_secret=SECRET)) as running:
        yield running


async def test_graphql_writer_records_through_the_service(server: RunningServer) -> None:
    plugin = ObservabilityPlugin(
        graphql_url=server.graphql_url,
        admin_secret=SECRET,
        flush_interval=60,
        handle_sigterm=False,
        environ={},
    )
    payloads = [
        "orders.shipped.update.json",
        "payments.failed.update.json",
        "users.signed_up.insert.json",
    ]
    try:
        results = [
            await listen_to(
                json.loads((EXAMPLES / "payloads" / name).read_text()),
                events_dir=EXAMPLES / "events",
                plugins=[plugin],
            )
            for name in payloads
        ]
        assert plugin.force_flush(20)
    finally:
        await plugin.shutdown()
    stats = plugin.stats()
    assert stats["writer"] == "graphql"
    assert (stats["dropped_total"], stats["quarantined"], stats["failed_flushes"]) == (0, 0, 0)
    assert stats["written"]
    headers = {"x-hasura-admin-secret": SECRET}
    for result in results:
        body = server.post(
            """query ($id: uuid!) { invocations_by_pk(id: $id) { id correlation_id status total_jobs_run
                 event_executions(order_by: {event_name: asc}) { event_name detected
                   job_executions(order_by: {job_name: asc}) { job_name status } } } }""",
            {"id": result.invocation_id},
            headers=headers,
        )
        assert "errors" not in body, body
        row = body["data"]["invocations_by_pk"]
        assert row["correlation_id"] == result.correlation_id
        assert row["total_jobs_run"] == len(result.jobs)
        stored_events = {e["event_name"]: e for e in row["event_executions"]}
        for event in result.events:
            assert stored_events[event.name]["detected"] == event.detected
            assert sorted(
                j["job_name"] for j in stored_events[event.name]["job_executions"]
            ) == sorted(job.name for job in event.jobs)

    # A retried job's attempts, as the library reported them (payments.failed's gateway).
    retried = next(job for result in results for job in result.jobs if job.attempts > 1)
    body = server.post(
        "query ($id: uuid!) { job_executions_by_pk(id: $id) { attempts attempt_history } }",
        {"id": retried.job_execution_id},
        headers=headers,
    )
    stored = body["data"]["job_executions_by_pk"]
    assert stored["attempts"] == retried.attempts == len(stored["attempt_history"])
    assert [(a["attempt"], a["status"], a["error_message"]) for a in stored["attempt_history"]] == [
        (a.attempt, a.status.value, a.error) for a in retried.attempt_history
    ]
