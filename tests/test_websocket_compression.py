"""WebSocket compression is off unless asked for, as in Hasura.

Browsers (and the `websockets` client) offer permessage-deflate on every handshake, and
uvicorn accepts it by default: the service would then compress every frame of every
subscription, a cost in CPU that frames of a few hundred bytes do not repay.
`EVENT_DETECTOR_WEBSOCKET_COMPRESSION` (or Hasura's `HASURA_GRAPHQL_CONNECTION_COMPRESSION`)
turns it on. Real uvicorn servers, a real client that offers compression.
"""

from __future__ import annotations

import asyncio

import pytest
import websockets

from service.settings import Settings
from tests.support.live import TRANSPORT_WS, RawSocket
from tests.support.server import serving_module


async def _negotiated(url: str) -> tuple[str | None, dict]:
    """The extensions the server accepted, and its answer to one query over the socket."""
    async with websockets.connect(url, subprotocols=[TRANSPORT_WS]) as connection:
        accepted = connection.response.headers.get("Sec-WebSocket-Extensions")
        socket = RawSocket(connection)
        await socket.send({"type": "connection_init", "payload": {}})
        assert (await socket.receive())["type"] == "connection_ack"
        query = "{ invocations(limit: 1) { id } }"
        await socket.send({"id": "1", "type": "subscribe", "payload": {"query": query}})
        return accepted, await socket.receive()


@pytest.mark.parametrize("compression", [False, True])
def test_permessage_deflate_only_when_turned_on(module_sqlite_url: str, compression: bool) -> None:
    settings = {"websocket_compression": True} if compression else {}
    for server in serving_module(module_sqlite_url, **settings):
        accepted, answer = asyncio.run(_negotiated(server.websocket_url))
        assert answer["type"] == "next" and "invocations" in answer["payload"]["data"]
        if compression:
            assert accepted is not None and "permessage-deflate" in accepted
        else:
            assert accepted is None


def test_hasuras_variable_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASURA_GRAPHQL_CONNECTION_COMPRESSION", "true")
    assert Settings().websocket_compression is True
    monkeypatch.delenv("HASURA_GRAPHQL_CONNECTION_COMPRESSION")
    assert Settings().websocket_compression is False
