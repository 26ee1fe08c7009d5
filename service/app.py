"""The ASGI application: GraphQL API, web client, health and metrics on one Starlette app."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .settings import Settings


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application for `settings` (read from the environment when omitted)."""
    settings = settings or Settings()
    app = Starlette(routes=[Route("/healthz", healthz)])
    app.state.settings = settings
    return app
