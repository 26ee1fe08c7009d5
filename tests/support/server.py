"""A real uvicorn server running the service app on a free loopback port, for tests.

    with serving(Settings(database_url=url, admin_secret="s")) as server:
        httpx.post(server.graphql_url, json={"query": "{ invocations { id } }"})

The server runs in a background thread with its own event loop, so tests talk to it over
real sockets (HTTP and WebSocket) and can still read `server.app.state` (for example the
database's statement counter). `post()` is a small synchronous helper returning the
decoded JSON body.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from service.app import create_app
from service.cli.serving import uvicorn_config
from service.settings import Settings
from tests.support.pgserver import free_port


@dataclass
class RunningServer:
    """A started server: its base URL and the app it serves."""

    base_url: str
    app: Starlette
    client: httpx.Client

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/v1/graphql"

    @property
    def websocket_url(self) -> str:
        return self.graphql_url.replace("http://", "ws://", 1)

    @property
    def statements_executed(self) -> int:
        """SQL statements the server's database has run so far."""
        return int(self.app.state.database.statements_executed)

    def post(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        operation_name: str | None = None,
        path: str = "/v1/graphql",
    ) -> dict[str, Any]:
        """POST one GraphQL request; returns the JSON body (asserting HTTP 200)."""
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = dict(variables)
        if operation_name is not None:
            body["operationName"] = operation_name
        response = self.client.post(path, json=body, headers=dict(headers or {}))
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()


@contextlib.contextmanager
def serving(settings: Settings, *, startup_timeout: float = 30.0) -> Iterator[RunningServer]:
    """Serve `create_app(settings)` with uvicorn until the block ends."""
    app = create_app(settings)
    with serving_asgi(app, app, startup_timeout=startup_timeout) as running:
        yield running


def serving_module(database_url: str, **settings: Any) -> Iterator[RunningServer]:
    """For module fixtures (`yield from serving_module(url, admin_secret=…)`): the service
    on `database_url` with `settings`, without the background rollup."""
    with serving(Settings(database_url=database_url, rollup_interval=0, **settings)) as server:
        yield server


@contextlib.contextmanager
def serving_asgi(
    asgi_app: Any, service_app: Starlette, *, startup_timeout: float = 30.0, root_path: str = ""
) -> Iterator[RunningServer]:
    """Serve any ASGI app (`asgi_app`: the service, or a host application mounting
    `service_app`) with uvicorn until the block ends; the server has stopped on exit.
    `root_path` is uvicorn's `--root-path` (a proxy in front strips that prefix)."""
    port = free_port()
    # The service's own server configuration (timeouts, limits), as `serve` runs it.
    config = uvicorn_config(
        asgi_app,
        # A plain page (no service app) gets the default limits.
        getattr(service_app.state, "settings", None) or Settings(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        root_path=root_path,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    base_url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base_url, timeout=30.0)
    try:
        yield RunningServer(base_url=base_url, app=service_app, client=client)
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=15)
