"""CORS as Hasura does it: the domain list, preflights, WebSocket origins, and turning it off.

Each server is a real uvicorn; requests carry the `Origin` a browser would send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from service.settings import Settings
from tests.support.live import TRANSPORT_WS
from tests.support.server import RunningServer, serving, serving_module

HASURA_HEADERS = "x-hasura-admin-secret, x-hasura-role, authorization, content-type"
QUERY = {"query": "{ invocations(limit: 1) { id } }"}


@pytest.fixture(scope="module")
def default_server(module_sqlite_url: str) -> Iterator[RunningServer]:
    yield from serving_module(module_sqlite_url)


@pytest.fixture(scope="module")
def listed_server(module_sqlite_url: str) -> Iterator[RunningServer]:
    yield from serving_module(
        module_sqlite_url, cors_domain="https://*.example.com, http://localhost:3000"
    )


def preflight(server: RunningServer, origin: str, path: str = "/v1/graphql") -> Any:
    return server.client.options(
        path,
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": HASURA_HEADERS,
        },
    )


def websocket_status(server: RunningServer, origin: str) -> int:
    """101 when the handshake from a page of `origin` is accepted, else the HTTP status."""

    async def attempt() -> int:
        try:
            async with websockets.connect(
                server.websocket_url, subprotocols=[TRANSPORT_WS], origin=origin, open_timeout=10
            ):
                return 101
        except websockets.InvalidStatus as refused:
            return refused.response.status_code

    return asyncio.run(attempt())


def test_by_default_every_origin_may_call_the_api(default_server: RunningServer) -> None:
    answer = preflight(default_server, "http://dashboard.test:3000")
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    methods = {m.strip() for m in answer.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "OPTIONS"} <= methods
    allowed = {h.strip() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {h.strip() for h in HASURA_HEADERS.split(",")} <= allowed

    response = default_server.client.post(
        "/v1/graphql", json=QUERY, headers={"origin": "http://dashboard.test:3000"}
    )
    assert response.headers["access-control-allow-origin"] == "*"
    # The preflight is answered on the other JSON endpoints too.
    assert preflight(default_server, "http://dashboard.test:3000", "/v1/rerun").status_code == 200
    assert websocket_status(default_server, "http://dashboard.test:3000") == 101


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("https://a.b.example.com", True),
        ("http://localhost:3000", True),
        ("https://example.com", False),  # `*.` needs a subdomain
        ("http://app.example.com", False),  # the scheme is part of the origin
        ("https://app.example.com:8443", False),  # so is the port
        ("http://localhost:3001", False),
        ("https://evil-example.com", False),
    ],
)
def test_the_domain_list_takes_wildcards_and_ports(
    listed_server: RunningServer, origin: str, allowed: bool
) -> None:
    answer = preflight(listed_server, origin)
    assert (answer.status_code == 200) is allowed
    assert (answer.headers.get("access-control-allow-origin") == origin) is allowed
    response = listed_server.client.post("/v1/graphql", json=QUERY, headers={"origin": origin})
    assert (response.headers.get("access-control-allow-origin") == origin) is allowed
    # Browsers apply no CORS to WebSockets: the handshake's origin is checked, as Hasura does.
    assert websocket_status(listed_server, origin) == (101 if allowed else 403)


def test_hasura_variables_disable_cors(
    module_sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HASURA_GRAPHQL_DISABLE_CORS", "true")
    monkeypatch.setenv("HASURA_GRAPHQL_CORS_DOMAIN", "http://localhost:3000")
    settings = Settings(database_url=module_sqlite_url, rollup_interval=0)
    assert settings.disable_cors and settings.cors_domain == ("http://localhost:3000",)
    with serving(settings) as server:
        answer = preflight(server, "http://localhost:3000")
        assert answer.status_code == 405
        response = server.client.post(
            "/v1/graphql", json=QUERY, headers={"origin": "http://localhost:3000"}
        )
        assert response.status_code == 200
        assert not any(name.startswith("access-control-") for name in response.headers)
        assert websocket_status(server, "http://localhost:3000") == 403
        # The service's own pages (same origin) still connect.
        assert websocket_status(server, server.base_url) == 101


@pytest.mark.parametrize(
    "entry", ["example.com", "https://ex*ample.com", "ftp://example.com", "https://*.*.com"]
)
def test_a_bad_domain_entry_is_refused_naming_it(entry: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        Settings(cors_domain=f"http://localhost:3000, {entry}")
