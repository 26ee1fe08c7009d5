"""The ASGI application: GraphQL API, web client, health and metrics on one Starlette app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .runtime import ServiceRuntime
from .settings import Settings


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application for `settings` (read from the environment when omitted).

    `app.state` holds `settings` and `runtime` (`service.runtime.ServiceRuntime`: the
    webhook receiver, `metrics`, the periodic rollup).
    """
    settings = settings or Settings()
    runtime = ServiceRuntime.from_settings(settings)
    routes = [Route("/healthz", healthz), *runtime.routes()]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with runtime.lifespan():
            yield

    app = Starlette(routes=routes, middleware=runtime.middleware(), lifespan=lifespan)
    app.state.settings = settings
    app.state.runtime = runtime
    return app
