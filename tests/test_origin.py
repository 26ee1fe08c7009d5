"""Requests from pages of other origins are never admin without credentials; JSON endpoints
take JSON only.

Real uvicorn servers; the headers are those a browser sends (`Origin`,
`Sec-Fetch-Site`). Requests without them (curl, Hasura, other servers) behave as before:
with no admin secret they are admin, as in Hasura.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from service.graphql.transport.origin import is_cross_site, json_content_type_error
from tests.support.live import LEGACY, TRANSPORT_WS, RawSocket
from tests.support.runtime import EXAMPLES_EVENTS
from tests.support.server import RunningServer, serving_module

SECRET = "adm1n"
FOREIGN = {"origin": "http://evil.test"}
INSERT = """mutation { insert_invocations_one(object: {source_function: "origin-test",
  status: "completed"}) { id } }"""
READ = "{ invocations(limit: 1) { id } }"


@pytest.fixture(scope="module")
def open_server(module_sqlite_url: str) -> Iterator[RunningServer]:
    """No admin secret, no unauthorized role: what `make run` serves."""
    yield from serving_module(
        module_sqlite_url, events_dir=EXAMPLES_EVENTS, webhook_functions="orders"
    )


@pytest.fixture(scope="module")
def viewer_server(module_sqlite_url: str) -> Iterator[RunningServer]:
    yield from serving_module(
        module_sqlite_url,
        events_dir=EXAMPLES_EVENTS,
        webhook_functions="orders",
        unauthorized_role="viewer",
    )


@pytest.fixture(scope="module")
def secret_server(module_sqlite_url: str) -> Iterator[RunningServer]:
    yield from serving_module(
        module_sqlite_url,
        events_dir=EXAMPLES_EVENTS,
        webhook_functions="orders",
        admin_secret=SECRET,
    )


def errors(server: RunningServer, query: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    return server.post(query, headers=headers).get("errors", [])


def test_requests_without_an_origin_and_from_the_same_origin_are_admin(
    open_server: RunningServer,
) -> None:
    host = open_server.base_url
    for headers in ({}, {"origin": host}, {"sec-fetch-site": "same-origin", "origin": host}):
        assert errors(open_server, INSERT, headers) == [], headers


@pytest.mark.parametrize(
    "headers",
    [FOREIGN, {"origin": "null"}, {**FOREIGN, "sec-fetch-site": "cross-site"}],
    ids=["origin", "null-origin", "fetch-metadata"],
)
def test_a_page_of_another_origin_is_refused_when_no_role_is_left_to_give(
    open_server: RunningServer, headers: dict[str, str]
) -> None:
    found = errors(open_server, READ, headers)
    assert found and found[0]["extensions"]["code"] == "access-denied"
    assert "another origin" in found[0]["message"]
    # Sec-Fetch-Site is the browser's word, even when Origin names the host.
    same_host = {"origin": open_server.base_url, "sec-fetch-site": "same-site"}
    assert errors(open_server, READ, same_host)[0]["extensions"]["code"] == "access-denied"


def test_a_page_of_another_origin_gets_the_unauthorized_role(viewer_server: RunningServer) -> None:
    assert errors(viewer_server, READ, FOREIGN) == []
    refused = errors(viewer_server, INSERT, {**FOREIGN, "x-hasura-role": "admin"})
    assert refused and refused[0]["extensions"]["code"] == "validation-failed"  # no mutations
    assert errors(viewer_server, INSERT, {}) == [], "without Origin: admin, as in Hasura"


def test_a_page_of_another_origin_with_the_admin_secret_is_admin(
    secret_server: RunningServer,
) -> None:
    assert errors(secret_server, INSERT, {**FOREIGN, "x-hasura-admin-secret": SECRET}) == []
    assert errors(secret_server, READ, FOREIGN)[0]["extensions"]["code"] == "access-denied"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY])
def test_a_websocket_from_another_origin_is_not_admin(
    open_server: RunningServer, protocol: str
) -> None:
    """The handshake's Origin decides; headers in `connection_init` cannot pretend otherwise."""

    async def attempt() -> Any:
        async with websockets.connect(
            open_server.websocket_url, subprotocols=[protocol], origin="http://evil.test"
        ) as connection:
            socket = RawSocket(connection)
            spoofed = {"origin": open_server.base_url, "sec-fetch-site": "same-origin"}
            await socket.send({"type": "connection_init", "payload": {"headers": spoofed}})
            if protocol == LEGACY:
                return await socket.receive()
            return await socket.closed_with()

    answer = asyncio.run(attempt())
    if protocol == LEGACY:
        assert answer["type"] == "connection_error"
        assert "another origin" in str(answer["payload"])
    else:
        assert answer == (4403, "Forbidden")


def test_json_endpoints_refuse_other_content_types(open_server: RunningServer) -> None:
    client = open_server.client
    body = b'{"query": "{ invocations { id } }", "invocation_ids": []}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        headers = {"content-type": content_type}
        graphql = client.post("/v1/graphql", content=body, headers=headers)
        assert graphql.status_code == 415
        error = graphql.json()["errors"][0]
        assert error["extensions"]["code"] == "invalid-headers"
        assert content_type in error["message"] and "application/json" in error["message"]
        rerun = client.post("/v1/rerun", content=body, headers=headers)
        assert rerun.status_code == 415 and rerun.json()["code"] == "invalid-headers"
        hook = client.post("/hooks/orders", content=body, headers=headers)
        assert hook.status_code == 415 and content_type in hook.json()["message"]
    # JSON with a charset is JSON; a re-run request without a content type works as before.
    typed = client.post(
        "/v1/graphql", content=body, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert typed.status_code == 200 and "errors" not in typed.json()
    assert client.post("/v1/rerun", content=body).status_code == 400  # no ids: validation


def test_a_page_of_another_origin_cannot_deliver_to_the_webhook(open_server: RunningServer) -> None:
    refused = open_server.client.post("/hooks/orders", json={}, headers=FOREIGN)
    assert refused.status_code == 403 and refused.json()["error"] == "cross_site"
    rerun = open_server.client.post("/v1/rerun", json={"invocation_ids": []}, headers=FOREIGN)
    assert rerun.status_code == 401


@pytest.mark.parametrize(
    ("headers", "cross_site"),
    [
        ({}, False),
        ({"origin": "http://a.test", "host": "a.test"}, False),
        ({"origin": "https://a.test", "host": "a.test:443"}, False),
        ({"origin": "http://a.test:8000", "host": "a.test"}, True),
        ({"origin": "http://b.test", "host": "a.test"}, True),
        ({"origin": "http://a.test", "host": "a.test", "sec-fetch-site": "same-site"}, True),
        ({"origin": "http://b.test", "host": "a.test", "sec-fetch-site": "same-origin"}, False),
        ({"sec-fetch-site": "none"}, False),
        ({"origin": "http://a.test:bad", "host": "a.test"}, True),
    ],
)
def test_cross_site_is_what_the_browser_says(headers: dict[str, str], cross_site: bool) -> None:
    assert is_cross_site(headers) is cross_site


def test_json_content_types() -> None:
    assert json_content_type_error(None) is None
    assert json_content_type_error("application/json; charset=utf-8") is None
    assert json_content_type_error("application/vnd.hasura+json") is None
    assert "text/plain" in (json_content_type_error("text/plain;charset=UTF-8") or "")
