"""The service mounted in a host application under a path prefix.

Starlette's `Mount` and FastAPI's `app.mount`, each with the host running the service's
lifespan and without. Under `/observability` a query, a live subscription over both
WebSocket protocols (which must see a change: the change source runs), the web client's
page and files, GraphiQL, the webhook and `/metrics` all work, on a real uvicorn. Without
the host's lifespan the background work starts on the first request and is stopped
cleanly when the server stops: the webhook's plugin, which holds its records for an hour
here, writes them only then. A real Chromium then loads the web client and GraphiQL
under the prefix: every request stays under it, and the page's CSP lets all of it run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import mimetypes
import re
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from service.app import create_app, create_graphql_app
from service.settings import Settings
from service.storage.maintenance import invocations
from tests.support.live import LEGACY, TRANSPORT_WS, RawSocket
from tests.support.runtime import EXAMPLES_EVENTS, rows
from tests.support.server import RunningServer, serving_asgi

PREFIX = "/observability"
PAYLOAD = json.loads(
    (EXAMPLES_EVENTS.parent / "payloads" / "orders.created.insert.json").read_text()
)
COUNT = "subscription { invocations_aggregate { aggregate { count } } }"
INSERT = """mutation ($fn: String!) {
  insert_invocations_one(object: {source_function: $fn, status: "completed"}) { id }
}"""


async def host_page(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the host's own page")


def starlette_host(service: Starlette, run_lifespan: bool) -> Any:
    def lifespan(app: Starlette) -> Any:
        return service.router.lifespan_context(service)

    return Starlette(
        routes=[Route("/", host_page), Mount(PREFIX, app=service)],
        lifespan=lifespan if run_lifespan else None,
    )


def fastapi_host(service: Starlette, run_lifespan: bool) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service.router.lifespan_context(service):
            yield

    host = FastAPI(lifespan=lifespan if run_lifespan else None)
    host.get("/")(host_page)
    host.mount(PREFIX, service)
    return host


HOSTS: dict[str, Callable[[Starlette, bool], Any]] = {
    "starlette": starlette_host,
    "fastapi": fastapi_host,
}


def service_settings(url: str) -> Settings:
    return Settings(
        database_url=url,
        events_dir=EXAMPLES_EVENTS,
        # The flat examples directory serves these functions (one per host and lifespan).
        webhook_functions=[f"{host}-{run}" for host in HOSTS for run in ("lifespan", "lazy")],
        rollup_interval=0,
        # The webhook's records stay in its buffer until the plugin shuts down.
        observability_environ={"OBSERVABILITY_FLUSH_INTERVAL": "3600"},
    )


def recorded(url: str, function: str) -> int:
    return len(
        rows(url, sa.select(invocations.c.id).where(invocations.c.source_function == function))
    )


def graphql(server: RunningServer, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = server.post(query, variables, path=f"{PREFIX}/v1/graphql")
    assert "errors" not in body, body
    return body["data"]


async def subscribe_and_see_a_change(server: RunningServer, protocol: str, function: str) -> None:
    """A live count over `protocol` answers, then answers again after an insert."""
    url = f"{server.websocket_url.removesuffix('/v1/graphql')}{PREFIX}/v1/graphql"
    start, data = ("subscribe", "next") if protocol == TRANSPORT_WS else ("start", "data")
    async with RawSocket.connect(url, [protocol]) as socket:
        assert socket.subprotocol == protocol
        assert (await socket.init())["type"] == "connection_ack"
        await socket.send({"id": "1", "type": start, "payload": {"query": COUNT}})
        first = await socket.receive()
        assert first["type"] == data, first
        before = first["payload"]["data"]["invocations_aggregate"]["aggregate"]["count"]
        await asyncio.to_thread(graphql, server, INSERT, {"fn": function})
        while True:  # the change arrives as a new result
            frame = await socket.receive()
            assert frame["type"] == data, frame
            if frame["payload"]["data"]["invocations_aggregate"]["aggregate"]["count"] > before:
                break


@pytest.mark.parametrize("run_lifespan", [True, False], ids=["host-lifespan", "no-lifespan"])
@pytest.mark.parametrize("host_kind", sorted(HOSTS))
def test_everything_works_under_a_prefix(
    module_sqlite_url: str, host_kind: str, run_lifespan: bool
) -> None:
    service = create_app(service_settings(module_sqlite_url))
    lifecycle = service.state.lifecycle
    function = f"{host_kind}-{'lifespan' if run_lifespan else 'lazy'}"
    with serving_asgi(HOSTS[host_kind](service, run_lifespan), service) as server:
        # The host runs the work from its start, or nothing runs before a request.
        assert lifecycle.running is run_lifespan
        client = server.client
        assert client.get("/").text == "the host's own page"

        # GraphQL over HTTP, and the first request started the work.
        assert "invocations" in graphql(server, "{ invocations(limit: 1) { id } }")
        assert lifecycle.running

        # Live subscriptions over both protocols see a change.
        for protocol in (TRANSPORT_WS, LEGACY):
            asyncio.run(subscribe_and_see_a_change(server, protocol, f"{function}-{protocol}"))

        # The web client: its page points at the prefix, its files are served there.
        page = client.get(f"{PREFIX}/invocations")
        assert page.status_code == 200
        assert f'<base href="{PREFIX}/">' in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        for relative in [*re.findall(r'"\./(vendor/[^"]+\.js)"', page.text), "app/main.js"]:
            script = client.get(f"{PREFIX}/{relative}")
            assert script.status_code == 200, relative
            assert script.headers["content-type"].startswith("text/javascript"), relative

        # GraphiQL, from local files.
        ide = client.get(f"{PREFIX}/v1/graphql", headers={"accept": "text/html"})
        assert ide.status_code == 200 and f'<base href="{PREFIX}/">' in ide.text
        assert "unpkg" not in ide.text and "cdn" not in ide.text.lower()
        assert client.get(f"{PREFIX}/graphiql/graphiql.js").status_code == 200

        # The webhook and the metrics.
        delivery = client.post(f"{PREFIX}/hooks/{function}", json=PAYLOAD)
        assert delivery.status_code == 200, delivery.text
        assert client.get(f"{PREFIX}/metrics").status_code == 200
        assert recorded(module_sqlite_url, function) == 0, "held in the plugin's buffer until stop"

    # The server stopped: so did the work, flushing what the webhook recorded.
    assert not lifecycle.running
    assert recorded(module_sqlite_url, function) == 1


def test_the_graphql_only_app_serves_the_api_and_nothing_else(module_sqlite_url: str) -> None:
    service = create_graphql_app(service_settings(module_sqlite_url))
    with serving_asgi(starlette_host(service, run_lifespan=False), service) as server:
        assert "invocations" in graphql(server, "{ invocations(limit: 1) { id } }")
        asyncio.run(subscribe_and_see_a_change(server, TRANSPORT_WS, "graphql-only"))
        assert server.client.get(f"{PREFIX}/healthz").json() == {"status": "ok"}
        ide = server.client.get(f"{PREFIX}/graphql", headers={"accept": "text/html"})
        assert ide.status_code == 200 and "graphiql/start.js" in ide.text
        for path in ("/", "/invocations", "/metrics", "/v1/rerun", "/app/main.js"):
            assert server.client.get(f"{PREFIX}{path}").status_code == 404, path
        assert server.client.post(f"{PREFIX}/hooks/orders", json=PAYLOAD).status_code == 404


@pytest.mark.browser
def test_the_web_client_and_graphiql_run_under_the_prefix_in_chromium(
    module_sqlite_url: str, tab: Any
) -> None:
    from playwright.sync_api import expect

    service = create_app(service_settings(module_sqlite_url))
    with serving_asgi(fastapi_host(service, run_lifespan=False), service) as server:
        graphql(server, INSERT, {"fn": "chromium"})
        requested: list[str] = []
        tab.page.on("request", lambda request: requested.append(request.url))
        failed: list[str] = []
        tab.page.on(
            "response",
            lambda response: failed.append(response.url) if response.status >= 400 else None,
        )

        tab.page.goto(f"{server.base_url}{PREFIX}/invocations")
        # Rows link to their pages under the prefix; a click stays there.
        link = tab.page.locator(f'a[href^="{PREFIX}/invocations/"]').first
        expect(link).to_be_visible()
        link.click()
        expect(tab.page).to_have_url(re.compile(f"{re.escape(PREFIX)}/invocations/[0-9a-f-]+"))

        with tab.page.expect_response(
            lambda response: (
                response.url.endswith(f"{PREFIX}/v1/graphql")
                and response.request.method == "POST"
                and "__schema" in (response.request.post_data or "")
            )
        ) as introspection:
            tab.page.goto(f"{server.base_url}{PREFIX}/v1/graphql")
        assert introspection.value.ok
        # A query runs; a dialog opens (its scroll lock adds inline styles, which the
        # page's policy allows for GraphiQL: any refusal would be a console error).
        page = tab.page
        page.locator(".graphiql-query-editor .CodeMirror").first.click()
        page.keyboard.press("Control+a")
        page.keyboard.type(
            '{ invocations(where: {source_function: {_eq: "chromium"}}) { source_function } }'
        )
        page.get_by_label("Execute query (Ctrl-Enter)").first.click()
        expect(page.locator(".graphiql-response").first).to_contain_text(
            '"source_function": "chromium"'
        )
        page.get_by_label("Open settings dialog").click()
        expect(page.get_by_role("dialog")).to_be_visible()
        page.keyboard.press("Escape")

        assert requested, "the pages made requests"
        outside = [url for url in requested if not url.startswith(f"{server.base_url}{PREFIX}/")]
        outside = [url for url in outside if not url.startswith("data:")]
        assert not outside, f"requests outside the prefix: {outside}"
        assert not failed, f"failed requests: {failed}"


def test_behind_a_proxy_that_strips_the_prefix_the_pages_keep_it(module_sqlite_url: str) -> None:
    """uvicorn's --root-path: the proxy forwards `/invocations` for `/gw/invocations`."""
    service = create_app(service_settings(module_sqlite_url))
    with serving_asgi(service, service, root_path="/gw") as server:
        page = server.client.get("/invocations")  # as the proxy forwards it
        assert page.status_code == 200 and '<base href="/gw/">' in page.text
        assert server.client.get("/app/main.js").status_code == 200
        assert "invocations" in server.post("{ invocations(limit: 1) { id } }")["data"]


def process_state() -> dict[str, Any]:
    if not mimetypes.inited:
        mimetypes.init()  # the standard library reads the system's table on first use
    root = logging.getLogger()
    return {
        "gc frozen": gc.get_freeze_count(),
        "gc thresholds": gc.get_threshold(),
        "mime types": dict(mimetypes.types_map),
        "root logger": (root.level, list(root.handlers)),
        "signals": {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)},
    }


def test_a_mounted_service_changes_nothing_process_wide(module_sqlite_url: str) -> None:
    before = process_state()
    service = create_app(Settings(database_url=module_sqlite_url, rollup_interval=0))
    with serving_asgi(fastapi_host(service, run_lifespan=False), service) as server:
        assert "invocations" in graphql(server, "{ invocations(limit: 1) { id } }")
        assert service.state.lifecycle.running
        assert server.client.get(f"{PREFIX}/app/main.js").status_code == 200
        assert process_state() == before


def test_settings_are_an_object_and_the_assets_a_path(tmp_path: Path) -> None:
    """No environment variable is needed: every path defaults to the installed copy."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert (settings.hasura_metadata_dir / "databases" / "databases.yaml").is_file()
    assert (settings.web_dir / "index.html").is_file()
