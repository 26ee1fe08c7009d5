"""Both WebSocket protocols frame by frame, as Hasura speaks them (raw `websockets`).

The server has an admin secret, a 1 s init timeout, a 0.5 s keep-alive and at most
three operations per connection, so each rule shows quickly. Protocol handling does not
depend on the database, so one SQLite database serves the module.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.settings import Settings
from tests.support.db import prepare_database, run
from tests.support.live import LEGACY, TRANSPORT_WS, RawSocket, wait_until
from tests.support.server import RunningServer, serving

SECRET = "s3cret"
ADMIN = {"x-hasura-admin-secret": SECRET}
COUNT = """subscription ($fn: String!) {
  invocations_aggregate(where: {source_function: {_eq: $fn}}) { aggregate { count } }
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path: Path = tmp_path_factory.mktemp("protocols") / "observability.db"
    url = f"sqlite:///{path}"
    run(prepare_database(url))
    settings = Settings(
        database_url=url,
        admin_secret=SECRET,
        rollup_interval=0,
        websocket_connection_init_timeout=1.0,
        websocket_keepalive=0.5,
        websocket_max_operations=3,
    )
    with serving(settings) as running:
        yield running


def insert(server: RunningServer, function: str) -> None:
    body = server.post(
        "mutation ($o: invocations_insert_input!) { insert_invocations_one(object: $o) { id } }",
        {"o": {"source_function": function, "status": "completed"}},
        headers=ADMIN,
    )
    assert "errors" not in body, body


def start(kind: str, operation_id: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    return {
        "id": operation_id,
        "type": kind,
        "payload": {"query": query, "variables": variables or {}},
    }


# --- legacy graphql-ws ---------------------------------------------------------------------------


async def test_a_client_naming_no_subprotocol_speaks_the_legacy_protocol(
    server: RunningServer,
) -> None:
    async with RawSocket.connect(server.websocket_url) as socket:
        assert socket.subprotocol is None  # the handshake names none back
        assert await socket.init(ADMIN) == {"type": "connection_ack"}
        await socket.send(start("start", "1", "{ invocations(limit: 1) { id } }"))
        assert (await socket.receive())["type"] == "data"
        assert await socket.receive() == {"type": "complete", "id": "1"}


async def test_legacy_keep_alive_follows_the_ack(server: RunningServer) -> None:
    async with RawSocket.connect(server.websocket_url, [LEGACY]) as socket:
        assert socket.subprotocol == LEGACY
        await socket.send({"type": "connection_init", "payload": {"headers": ADMIN}})
        frames = [await socket.receive(skip_ka=False) for _ in range(3)]
        assert frames == [{"type": "connection_ack"}, {"type": "ka"}, {"type": "ka"}]


async def test_legacy_bad_messages_get_connection_errors_and_the_socket_stays_open(
    server: RunningServer,
) -> None:
    async with RawSocket.connect(server.websocket_url, [LEGACY]) as socket:
        await socket.init(ADMIN)
        for bad, problem in [
            ("{not json", "parsing ClientMessage failed"),
            ("[1, 2]", "expected an object"),
            ({"type": "subscribe", "id": "1"}, "unexpected type for ClientMessage: 'subscribe'"),
            ({"type": "start", "id": "1", "payload": {"query": 7}}, "'payload.query' must be"),
            ({"type": "start", "payload": {"query": "{ x }"}}, "'id' must be a string"),
        ]:
            await socket.send(bad)
            frame = await socket.receive()
            assert frame["type"] == "connection_error"
            assert "parsing ClientMessage failed" in frame["payload"]
            assert problem in frame["payload"]
        await socket.send(start("start", "ok", "{ invocations(limit: 1) { id } }"))
        assert (await socket.receive())["type"] == "data"


async def test_legacy_start_before_init_and_duplicate_ids_fail_like_hasura(
    server: RunningServer,
) -> None:
    function = f"fn-{uuid.uuid4().hex[:8]}"
    async with RawSocket.connect(server.websocket_url, [LEGACY]) as socket:
        await socket.send(start("start", "1", COUNT, {"fn": function}))
        error = await socket.receive()
        assert error == {
            "type": "error",
            "id": "1",
            "payload": {
                "message": "start received before the connection is initialised",
                "extensions": {"path": "$", "code": "start-failed"},
            },
        }
        assert await socket.receive() == {"type": "complete", "id": "1"}
        await socket.init(ADMIN)
        await socket.send(start("start", "1", COUNT, {"fn": function}))
        assert (await socket.receive())["payload"]["data"]["invocations_aggregate"]
        await socket.send(start("start", "1", COUNT, {"fn": function}))
        duplicate = await socket.receive()
        assert duplicate["type"] == "error"
        assert duplicate["payload"]["message"] == "an operation already exists with this id: 1"
        assert await socket.receive() == {"type": "complete", "id": "1"}
        # The first operation with that id keeps running.
        await asyncio.to_thread(insert, server, function)
        update = await socket.receive()
        assert update["type"] == "data"
        assert update["payload"]["data"]["invocations_aggregate"]["aggregate"]["count"] == 1
        await socket.send({"type": "stop", "id": "1"})
        assert await socket.receive() == {"type": "complete", "id": "1"}


async def test_legacy_refused_credentials_give_a_connection_error_then_start_errors(
    server: RunningServer,
) -> None:
    async with RawSocket.connect(server.websocket_url, [LEGACY]) as socket:
        refused = await socket.init({"x-hasura-admin-secret": "wrong"})
        assert refused["type"] == "connection_error"
        assert "x-hasura-admin-secret" in refused["payload"]
        await socket.send(start("start", "1", "{ invocations { id } }"))
        error = await socket.receive()
        assert error["type"] == "error"
        assert error["payload"]["message"].startswith(
            "cannot start as connection_init failed with : "
        )
        assert error["payload"]["extensions"]["code"] == "start-failed"
        # A later init with the right secret is accepted.
        assert (await socket.receive())["type"] == "complete"
        assert await socket.init(ADMIN) == {"type": "connection_ack"}


async def test_legacy_errors_are_in_hasuras_shape(server: RunningServer) -> None:
    async with RawSocket.connect(server.websocket_url, [LEGACY]) as socket:
        await socket.init(ADMIN)
        await socket.send(start("start", "v", "subscription { invocations { nope } }"))
        error = await socket.receive()
        assert error["type"] == "error" and error["id"] == "v"
        assert error["payload"] == {
            "errors": [
                {
                    "message": "field 'nope' not found in type: 'invocations'",
                    "extensions": {
                        "path": "$.selectionSet.invocations.selectionSet.nope",
                        "code": "validation-failed",
                    },
                }
            ]
        }
        assert await socket.receive() == {"type": "complete", "id": "v"}
        for cursor in ("[]", "[null]", "null"):
            await socket.send(
                start(
                    "start",
                    f"c{cursor}",
                    f"subscription {{ invocations_stream(batch_size: 1, cursor: {cursor}) {{ id }} }}",
                )
            )
            error = await socket.receive()
            assert error["type"] == "error"
            assert error["payload"]["errors"][0]["extensions"]["code"] == "validation-failed"
            assert (await socket.receive())["type"] == "complete"


async def test_legacy_init_timeout_closes_the_socket(server: RunningServer) -> None:
    async with RawSocket.connect(server.websocket_url, [LEGACY]) as socket:
        assert await socket.closed_with(seconds=10) == (4408, "Connection initialisation timeout")


# --- graphql-transport-ws --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("{not json", "WebSocket message must be valid JSON"),
        ("[1]", "expected an object with a string 'type'"),
        ({"type": "nope"}, "Unknown message type: nope"),
        ({"type": "subscribe", "id": "1", "payload": {"query": None}}, "'payload.query'"),
    ],
)
async def test_transport_ws_closes_on_a_malformed_message(
    server: RunningServer, bad: Any, reason: str
) -> None:
    async with RawSocket.connect(server.websocket_url, [TRANSPORT_WS]) as socket:
        assert await socket.init(ADMIN) == {"type": "connection_ack"}
        await socket.send(bad)
        code, text = await socket.closed_with()
        assert code == 4400 and reason in text


async def test_transport_ws_protocol_rules(server: RunningServer) -> None:
    url = server.websocket_url
    async with RawSocket.connect(url, [TRANSPORT_WS]) as socket:
        await socket.send(start("subscribe", "1", "{ invocations { id } }"))
        assert await socket.closed_with() == (4401, "Unauthorized")
    async with RawSocket.connect(url, [TRANSPORT_WS]) as socket:
        await socket.send({"type": "connection_init", "payload": {"headers": {}}})
        assert await socket.closed_with() == (4403, "Forbidden")
    async with RawSocket.connect(url, [TRANSPORT_WS]) as socket:
        await socket.init(ADMIN)
        await socket.send({"type": "connection_init", "payload": {}})
        assert (await socket.closed_with())[0] == 4429
    async with RawSocket.connect(url, [TRANSPORT_WS]) as socket:
        assert await socket.closed_with() == (4408, "Connection initialisation timeout")
    async with RawSocket.connect(url, [TRANSPORT_WS]) as socket:
        await socket.init(ADMIN)
        await socket.send({"type": "ping"})
        assert await socket.receive() == {"type": "pong"}
        await socket.send(start("subscribe", "1", COUNT, {"fn": "x"}))
        assert (await socket.receive())["type"] == "next"
        await socket.send(start("subscribe", "1", COUNT, {"fn": "x"}))
        assert (await socket.closed_with())[0] == 4409


async def test_transport_ws_queries_complete_and_errors_keep_the_socket_open(
    server: RunningServer,
) -> None:
    async with RawSocket.connect(server.websocket_url, [TRANSPORT_WS]) as socket:
        await socket.init(ADMIN)
        await socket.send(start("subscribe", "q", "{ invocations(limit: 1) { id } }"))
        assert (await socket.receive())["type"] == "next"
        assert await socket.receive() == {"type": "complete", "id": "q"}
        await socket.send(start("subscribe", "bad", "subscription { invocations { nope } }"))
        error = await socket.receive()
        assert error["type"] == "error" and error["id"] == "bad"
        assert error["payload"][0]["extensions"]["code"] == "validation-failed"
        await socket.send(start("subscribe", "syntax", "subscription { invocations {"))
        error = await socket.receive()
        assert error["type"] == "error" and error["id"] == "syntax"
        assert "not a valid graphql query" in error["payload"][0]["message"]
        await socket.send(
            start(
                "subscribe", "two", "subscription { a: invocations { id } b: invocations { id } }"
            )
        )
        assert (await socket.receive())["type"] == "error"
        # Still usable.
        await socket.send(start("subscribe", "again", "{ invocations(limit: 1) { id } }"))
        assert (await socket.receive())["type"] == "next"


@pytest.mark.parametrize("protocol", [LEGACY, TRANSPORT_WS])
async def test_operations_per_connection_are_limited(server: RunningServer, protocol: str) -> None:
    kind = "start" if protocol == LEGACY else "subscribe"
    async with RawSocket.connect(server.websocket_url, [protocol]) as socket:
        await socket.init(ADMIN)
        for number in range(3):
            await socket.send(start(kind, str(number), COUNT, {"fn": str(number)}))
            assert (await socket.receive())["type"] in ("data", "next")
        await socket.send(start(kind, "over", COUNT, {"fn": "over"}))
        error = await socket.receive()
        assert error["type"] == "error" and error["id"] == "over"
        payload = error["payload"]
        message = payload["message"] if isinstance(payload, dict) else payload[0]["message"]
        assert "at most 3" in message


# --- disconnects -------------------------------------------------------------------------------------


async def test_disconnecting_mid_stream_leaves_no_subscription_or_task_behind(
    server: RunningServer,
) -> None:
    live = server.app.state.live
    assert live.loop is not None

    def tasks() -> int:
        return len(asyncio.all_tasks(live.loop))

    await wait_until(lambda: live.stats().subscriptions == 0)
    baseline = tasks()
    stream = """subscription { invocations_stream(batch_size: 1,
        cursor: {initial_value: {created_at: "2000-01-01T00:00:00Z"}}) { id } }"""
    for protocol, kind in ((LEGACY, "start"), (TRANSPORT_WS, "subscribe")):
        for abrupt in (False, True):
            async with RawSocket.connect(server.websocket_url, [protocol]) as socket:
                await socket.init(ADMIN)
                await socket.send(start(kind, "live", COUNT, {"fn": "gone"}))
                await socket.send(start(kind, "stream", stream))
                await socket.receive()
                await wait_until(lambda: live.stats().subscriptions >= 2)
                if abrupt:
                    # No close handshake: the TCP connection just drops.
                    socket.connection.transport.abort()
    await wait_until(lambda: live.stats().subscriptions == 0 and live.stats().cohorts == 0)
    await wait_until(lambda: tasks() <= baseline, seconds=10)
