"""The ASGI application: GraphQL API, web client, health and metrics on one Starlette app."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute

from service.endpoints.webclient import web_routes
from service.graphql.execution.engine import GraphQLEngine
from service.live import LiveQueries, LiveSettings
from service.live.collector import LiveQueriesCollector
from service.operations.periodic_rollup import ServiceRuntime
from service.operations.rerun import InvocationRerunner
from service.settings import Settings
from service.storage.database import Database

log = logging.getLogger("service.app")

GRAPHQL_PATHS = ("/v1/graphql", "/graphql")


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application for `settings` (read from the environment when omitted).

    The web client (`web/`, see `service.endpoints.webclient`) is served at `/` and its pages.
    `app.state` holds `settings`, `database` (`service.storage.database.Database`), `engine`
    (`service.graphql.execution.engine.GraphQLEngine`) and `runtime` (`service.operations.periodic_rollup.ServiceRuntime`:
    the webhook receiver, `metrics`, the periodic rollup) and `live` (`service.live.LiveQueries`:
    subscriptions re-run on change; `live.stats()`) and `rerun`
    (`service.operations.rerun.InvocationRerunner`: `GET`/`POST /v1/rerun`) for the other parts of the
    service.
    """
    settings = settings or Settings()
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    engine = GraphQLEngine(settings, database)
    runtime = ServiceRuntime.from_settings(settings)
    live = LiveQueries(
        engine,
        LiveSettings.from_settings(settings),
        on_count=runtime.metrics.live_subscriptions.set,
    )
    runtime.metrics.registry.register(LiveQueriesCollector(live))
    rerun = InvocationRerunner(
        settings,
        database,
        engine.authenticate,
        runtime.webhook,
        runtime.metrics,
        runtime.observability,
    )
    view = engine.view()
    routes: list[BaseRoute] = [Route("/healthz", healthz), *runtime.routes(), *rerun.routes()]
    for path in GRAPHQL_PATHS:
        routes.append(Route(path, view))
        routes.append(WebSocketRoute(path, view))
    try:
        routes.extend(web_routes(settings.web_dir))
    except FileNotFoundError as exc:
        # An installed package without the repository's web/: serve the API alone.
        log.warning("web client not served: %s", exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine.warm_up()
        # Everything built so far (schemas, metadata, libraries) lives for the whole
        # process: keep it out of the garbage collector's full scans, which otherwise
        # pause large responses by tens of milliseconds.
        gc.collect()
        gc.freeze()
        try:
            await live.start()
            try:
                async with runtime.lifespan():
                    yield
            finally:
                await live.stop()
        finally:
            await database.dispose()

    app = Starlette(routes=routes, middleware=runtime.middleware(), lifespan=lifespan)
    app.state.settings = settings
    app.state.database = database
    app.state.engine = engine
    app.state.runtime = runtime
    app.state.live = live
    app.state.rerun = rerun
    return app
