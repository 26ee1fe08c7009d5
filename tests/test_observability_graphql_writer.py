"""GraphQLWriter: the mutations it sends and how it reads errors.

The end-to-end test against this project's service waits for the service's mutations;
until then httpx's transport seam stands in for the endpoint (no network, real httpx).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from detector.observability.buffer import Batch, Patch
from detector.observability.writers import RecordsRejected, StoreUnavailable
from detector.observability.writers.graphql import GraphQLWriter


def _batch() -> Batch:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return Batch(
        [
            Patch(
                "invocations",
                "i1",
                {
                    "id": "i1",
                    "created_at": now,
                    "source_function": "f",
                    "source_event_payload": '{"a":1}',
                },
            ),
            Patch("job_executions", "j1", {"id": "j1", "status": "completed"}),
        ],
        [Patch("job_logs", "l1", {"id": "l1", "invocation_id": "i1", "message": "m"})],
    )


async def test_one_mutation_per_batch_in_foreign_key_order() -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append({"body": body, "secret": request.headers.get("x-hasura-admin-secret")})
        return httpx.Response(200, json={"data": {}})

    writer = GraphQLWriter(
        "http://store/v1/graphql", admin_secret="s3", transport=httpx.MockTransport(handler)
    )
    await writer.write(_batch())
    await writer.close()
    health, mutation = sent
    assert "invocations(limit: 1)" in health["body"]["query"]
    query = mutation["body"]["query"]
    assert mutation["secret"] == "s3"
    assert query.index("insert_invocations") < query.index("insert_job_executions")
    assert query.index("insert_job_executions") < query.index("insert_job_logs")
    assert "constraint: invocations_pkey, update_columns: [source_function, " in query
    assert (
        "insert_job_logs(objects: $objects2, on_conflict: {constraint: job_logs_pkey, update_columns: []})"
        in query
    )
    objects = mutation["body"]["variables"]["objects0"]
    assert objects[0]["source_event_payload"] == {"a": 1}
    assert objects[0]["created_at"] == "2026-01-02T03:04:05+00:00"


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (
            httpx.Response(
                200,
                json={"errors": [{"message": "x", "extensions": {"code": "constraint-violation"}}]},
            ),
            RecordsRejected,
        ),
        (httpx.Response(503, text="down"), StoreUnavailable),
        (
            httpx.Response(
                200, json={"errors": [{"message": "x", "extensions": {"code": "access-denied"}}]}
            ),
            StoreUnavailable,
        ),
    ],
)
async def test_errors_are_classified(response: httpx.Response, error: type[Exception]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json={"data": {}}) if calls == 1 else response

    writer = GraphQLWriter("http://store/v1/graphql", transport=httpx.MockTransport(handler))
    with pytest.raises(error) as raised:
        await writer.write(_batch())
    assert "i1" not in str(raised.value)
    await writer.close()
