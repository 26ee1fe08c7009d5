"""Security through subscriptions: the `viewer` role over WebSocket, on both protocols.

- every way to reach a hidden column (the matrix of `test_security.py`), sent as a
  subscription: admin gets results, the viewer an error, on both backends;
- `_stream` subscriptions select and order by hidden columns for admin only;
- live updates a viewer receives after admin writes carry none of the hidden values;
- one subscription text, two roles: each role runs its own query (no cohort is shared
  across roles whose permissions differ);
- no credentials: the connection is refused and nothing runs.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from service.settings import Settings
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.db import run
from tests.support.live import LEGACY, PROTOCOLS, TRANSPORT_WS, RawSocket, insert_rows, subscribed
from tests.support.metadata import metadata_with_function_filter
from tests.support.server import RunningServer, serving
from tests.test_security import ADMIN, HIDDEN, REACHING, SECRET, VIEWER

DATASET = build_dataset()
MARKER = "RESTRICTED-subscriptions-51e0"


@pytest.fixture(scope="module")
def server(module_db_url: str) -> Iterator[RunningServer]:
    run(insert_dataset(module_db_url, DATASET))
    settings = Settings(database_url=module_db_url, admin_secret=SECRET, rollup_interval=0)
    with serving(settings) as running:
        yield running


async def _answers(
    server: RunningServer, queries: list[str], headers: dict[str, str], protocol: str
) -> list[dict[str, Any]]:
    """The first answer to each subscription, one operation at a time on one socket."""
    start, data, stop = (
        ("subscribe", "next", "complete") if protocol == TRANSPORT_WS else ("start", "data", "stop")
    )
    answers = []
    async with RawSocket.connect(server.websocket_url, [protocol]) as socket:
        ack = await socket.init(headers)
        assert ack["type"] == "connection_ack", ack
        for n, query in enumerate(queries):
            operation = f"op{n}"
            await socket.send({"id": operation, "type": start, "payload": {"query": query}})
            while True:  # frames of earlier (stopped) operations may still arrive
                frame = await socket.receive(15)
                if frame.get("id") == operation and frame["type"] != "complete":
                    break
            answers.append(frame)
            if frame["type"] == data:
                await socket.send({"id": operation, "type": stop})
    return answers


def _protocol(server: RunningServer) -> str:
    # Both protocols, one per backend (permissions do not depend on either).
    return LEGACY if server.app.state.database.is_sqlite else TRANSPORT_WS


def _subscription(query: str) -> str:
    return "subscription " + query.removeprefix("query ")


STREAMS = [
    (f"stream {table}.{column}", f"{{ {table}_stream(batch_size: 5, cursor: {{initial_value: "
     f'{{created_at: "2000-01-01T00:00:00Z"}}}}) {{ id {column} }} }}')
    for table, columns in HIDDEN.items() if table in ("invocations", "event_executions",
                                                     "job_executions", "job_logs")
    for column in columns
] + [
    (f"stream cursor {table}.{column}", f"{{ {table}_stream(batch_size: 5, cursor: "
     f'{{initial_value: {{{column}: "A"}}}}) {{ id }} }}')
    for table, column in (("invocations", "error_stack"), ("job_executions", "error_stack"))
]  # fmt: skip


async def test_every_way_to_a_hidden_column_is_refused_to_the_viewer_over_websocket(
    server: RunningServer,
) -> None:
    protocol = _protocol(server)
    cases = REACHING + STREAMS
    queries = [_subscription(query) for _, query in cases]
    data = "next" if protocol == TRANSPORT_WS else "data"
    for answer, (label, _) in zip(
        await _answers(server, queries, ADMIN, protocol), cases, strict=True
    ):
        assert answer["type"] == data and "errors" not in answer["payload"], (label, answer)
    for answer, (label, _) in zip(
        await _answers(server, queries, VIEWER, protocol), cases, strict=True
    ):
        assert answer["type"] in ("error", data), (label, answer)
        payload = answer["payload"]
        assert not (isinstance(payload, dict) and payload.get("data")), (label, answer)
        errors = payload.get("errors", payload) if isinstance(payload, dict) else payload
        codes = {e.get("extensions", {}).get("code") for e in _as_list(errors)}
        assert codes == {"validation-failed"}, (label, answer)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


async def test_live_updates_to_the_viewer_never_carry_hidden_values(
    server: RunningServer, module_db_url: str
) -> None:
    query = (
        "subscription { invocations(order_by: {created_at: desc}, limit: 3) "
        "{ id status job_executions { id status } event_executions { id status } } }"
    )
    new_id = str(uuid.uuid4())
    async with subscribed(
        server.websocket_url, query, headers=VIEWER, protocol=_protocol(server)
    ) as viewer:
        first = await viewer.next()
        assert new_id not in json.dumps(first)
        await insert_rows(
            module_db_url,
            "invocations",
            [
                {
                    "id": new_id,
                    "created_at": datetime.now(UTC),
                    "source_function": "secrets",
                    "status": "failed",
                    "source_event_payload": {"card": MARKER},
                    "context_data": {"note": MARKER},
                    "error_stack": f"Traceback {MARKER}",
                }
            ],
        )
        event_id = str(uuid.uuid4())
        await insert_rows(
            module_db_url,
            "event_executions",
            [
                {
                    "id": event_id,
                    "invocation_id": new_id,
                    "created_at": datetime.now(UTC),
                    "event_name": "leaky",
                    "status": "handler_failed",
                    "handler_error_stack": f"Traceback {MARKER}",
                }
            ],
        )
        await insert_rows(
            module_db_url,
            "job_executions",
            [
                {
                    "id": str(uuid.uuid4()),
                    "invocation_id": new_id,
                    "event_execution_id": event_id,
                    "created_at": datetime.now(UTC),
                    "job_name": "leaky",
                    "status": "failed",
                    "job_options": {"note": MARKER},
                    "result": {"note": MARKER},
                    "error_stack": f"Traceback {MARKER}",
                }
            ],
        )
        update = await viewer.until(lambda result: new_id in json.dumps(result), 20)
        assert update["invocations"][0]["id"] == new_id
        assert MARKER not in json.dumps(update)
        assert viewer.pending() == 0 or MARKER not in json.dumps(await viewer.next())


@pytest.fixture(scope="module")
def filtered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """SQLite; the viewer sees only the invocations of its `X-Hasura-Function`."""
    root = tmp_path_factory.mktemp("filtered")
    metadata = metadata_with_function_filter(root / "metadata")
    url = f"sqlite:///{root / 'filtered.db'}"
    from tests.support.db import prepare_database

    run(prepare_database(url))
    run(insert_dataset(url, copy.deepcopy(DATASET)))
    settings = Settings(
        database_url=url, admin_secret=SECRET, hasura_metadata_dir=metadata, rollup_interval=0
    )
    with serving(settings) as running:
        yield running


async def test_one_subscription_text_under_two_roles_runs_as_each_role(
    filtered: RunningServer,
) -> None:
    count = "subscription { invocations_aggregate { aggregate { count } } }"
    viewer = {**VIEWER, "x-hasura-function": "orders_handler"}
    mine = sum(1 for r in DATASET.invocations if r["source_function"] == "orders_handler")
    url = filtered.websocket_url
    async with (
        subscribed(url, count, headers=ADMIN, protocol=TRANSPORT_WS) as admin,
        subscribed(url, count, headers=viewer, protocol=TRANSPORT_WS) as restricted,
        subscribed(url, count, headers=viewer, protocol=LEGACY) as restricted_legacy,
    ):

        def number(result: dict[str, Any]) -> int:
            return int(result["invocations_aggregate"]["aggregate"]["count"])

        assert number(await admin.next()) == len(DATASET.invocations)
        assert number(await restricted.next()) == mine
        assert number(await restricted_legacy.next()) == mine
        url_db = filtered.app.state.settings.database_url
        await insert_rows(
            url_db,
            "invocations",
            [{"id": str(uuid.uuid4()), "created_at": datetime.now(UTC),
              "source_function": "users_handler", "status": "completed"}],
        )  # fmt: skip
        assert number(await admin.next()) == len(DATASET.invocations) + 1
        await asyncio.sleep(0.5)
        for subscription in (restricted, restricted_legacy):
            while subscription.pending():
                assert number(await subscription.next()) == mine


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_socket_without_credentials_is_refused_and_runs_nothing(
    server: RunningServer, protocol: str
) -> None:
    before = server.statements_executed
    async with RawSocket.connect(server.websocket_url, [protocol]) as socket:
        if protocol == LEGACY:
            answer = await socket.init({})
            assert answer["type"] == "connection_error", answer
            await socket.send({"id": "1", "type": "start",
                               "payload": {"query": "subscription { invocations { id } }"}})  # fmt: skip
            refused = await socket.receive()
            assert refused["type"] == "error", refused
        else:
            await socket.send({"type": "connection_init", "payload": {}})
            code, _ = await socket.closed_with()
            assert code == 4403, code
    assert server.statements_executed == before
