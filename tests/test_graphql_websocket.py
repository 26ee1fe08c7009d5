"""The WebSocket route serves the engine's subscription root over both protocols.

Each test takes a subscription's first result (re-execution on change is covered by
`test_live_queries.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from service.settings import Settings
from tests.graphql_helpers import sort_rows, ts
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.db import run
from tests.support.server import RunningServer, serving

DATASET = build_dataset()
PROTOCOLS = [WebsocketsTransport.APOLLO_SUBPROTOCOL, WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL]


@pytest.fixture(scope="module")
def server(module_db_url: str) -> Iterator[RunningServer]:
    run(insert_dataset(module_db_url, DATASET))
    with serving(Settings(database_url=module_db_url)) as running:
        yield running


def subscribe(
    server: RunningServer, protocol: str, query: str, variables: dict[str, Any] | None = None
) -> list[Any]:
    """The first result of a subscription (as a one-element list)."""

    async def collect() -> list[Any]:
        transport = WebsocketsTransport(url=server.websocket_url, subprotocols=[protocol])
        async with Client(transport=transport, fetch_schema_from_transport=False) as session:
            results = session.subscribe(GraphQLRequest(query, variable_values=variables))
            try:
                return [await asyncio.wait_for(anext(results), 30)]
            finally:
                await results.aclose()

    return asyncio.run(collect())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_live_query_root_fields_answer_over_websocket(server: RunningServer, protocol: str) -> None:
    results = subscribe(
        server,
        protocol,
        "subscription ($id: uuid!) { invocations_by_pk(id: $id) { id status event_executions_aggregate { aggregate { count } } } }",
        {"id": DATASET.invocations[3]["id"]},
    )
    events = [
        e for e in DATASET.event_executions if e["invocation_id"] == DATASET.invocations[3]["id"]
    ]
    assert results == [
        {
            "invocations_by_pk": {
                "id": DATASET.invocations[3]["id"],
                "status": DATASET.invocations[3]["status"],
                "event_executions_aggregate": {"aggregate": {"count": len(events)}},
            }
        }
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stream_returns_the_batch_after_the_cursor(server: RunningServer, protocol: str) -> None:
    ordered = sort_rows(DATASET.invocations, ("created_at", "asc"))
    cursor = ordered[4]["created_at"]
    results = subscribe(
        server,
        protocol,
        "subscription ($c: timestamptz) { invocations_stream(batch_size: 3, "
        "cursor: {initial_value: {created_at: $c}, ordering: ASC}) { id created_at } }",
        {"c": ts(cursor)},
    )
    assert results == [
        {
            "invocations_stream": [
                {"id": r["id"], "created_at": ts(r["created_at"])} for r in ordered[5:8]
            ]
        }
    ]


def test_validation_errors_arrive_as_error_frames(server: RunningServer) -> None:
    with pytest.raises(TransportQueryError) as raised:
        subscribe(
            server,
            WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL,
            "subscription { invocations { nope } }",
        )
    assert "nope" in str(raised.value)
    with pytest.raises(TransportQueryError):
        subscribe(
            server,
            WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL,
            "subscription { invocations_stream(batch_size: 1, cursor: []) { id } }",
        )
