"""The composition root: the service's parts assembled into an ASGI application.

- `create_app(settings)`: all of it: the GraphQL API (HTTP, both WebSocket protocols,
  GraphiQL), the web client, the webhook, re-runs, `/metrics` and `/healthz`.
- `create_graphql_app(settings)`: the GraphQL API alone (with GraphiQL and `/healthz`), for
  gateways that want only the API.

Either app runs on its own (`event-detector serve`, `uvicorn --factory`) or mounted in a
host application under any path prefix (Starlette's `Mount`, FastAPI's `app.mount`): the
pages and the web client build every URL from where they were served. Background work
(the live queries' change source, the rollup) starts with the app's lifespan when the
server or the host runs it; otherwise once, on the first request, and it is stopped when
the event loop ends (or by `app.state.lifecycle.aclose()`). Nothing process-wide is changed:
no logging or signal set-up, no global registries, and no garbage-collector tuning unless
`settings.gc_freeze` asks for it (`event-detector serve` does: it owns its process).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from detector import Plugin
from detector.observability import ObservabilityPlugin
from detector.observability.models import metadata as observability_tables
from service import assets
from service.endpoints.cors import OriginPolicy
from service.endpoints.graphiql import GraphiQL
from service.endpoints.metrics import MetricsMiddleware, ServiceMetrics
from service.endpoints.rerun import InvocationRerunner
from service.endpoints.webclient import web_routes
from service.endpoints.webhook import WebhookReceiver
from service.graphql import EngineConfig, GraphQLEngine, GraphQLView, load_catalog
from service.live import LiveQueries, LiveSettings
from service.live.collector import LiveQueriesCollector
from service.operations.periodic_rollup import PeriodicRollup
from service.settings import Settings
from service.storage.database import Database
from service.storage.leader import leader_lock

log = logging.getLogger("service.app")

GRAPHQL_PATHS = ("/v1/graphql", "/graphql")


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@dataclass(slots=True)
class ServiceRuntime:
    """Everything the app runs besides the GraphQL API and the web client."""

    settings: Settings
    metrics: ServiceMetrics
    webhook: WebhookReceiver
    plugins: list[Plugin] = field(default_factory=list)
    observability: ObservabilityPlugin | None = None
    rollup: PeriodicRollup | None = None

    @classmethod
    def from_settings(cls, settings: Settings, database: Database | None = None) -> ServiceRuntime:
        """Build the parts `settings` asks for (the webhook's plugins only with an events
        directory; the rollup only with a positive interval). `database` lets the webhook
        accept functions that have invocations recorded already. Raises ValueError naming
        a setting the service cannot run with."""
        observability: ObservabilityPlugin | None = None
        plugins: list[Plugin] = []
        if settings.events_dir is not None:
            if "OBSERVABILITY_GRAPHQL_URL" in settings.observability_environ:
                raise ValueError(
                    "OBSERVABILITY_GRAPHQL_URL is set, but the webhook records into the "
                    "service's own database (EVENT_DETECTOR_DATABASE_URL): unset it"
                )
            observability = ObservabilityPlugin(
                settings.database_url,
                environ=settings.observability_environ,
                # uvicorn handles SIGTERM itself and shuts the app down (which flushes).
                handle_sigterm=False,
                # The webhook records into the service's database, through its pooler too.
                transaction_pooling=settings.database_transaction_pooling,
            )
            plugins.append(observability)
            if settings.otel_enabled:
                from opentelemetry.trace import SpanKind

                from detector.otel import OpenTelemetryPlugin

                plugins.append(OpenTelemetryPlugin(root_span_kind=SpanKind.SERVER))
        metrics = ServiceMetrics(
            database_url=settings.database_url,
            plugin_stats=observability.stats if observability is not None else None,
            instance_stale_after=settings.instance_stale_after,
        )
        webhook = WebhookReceiver(settings, plugins, metrics, database)
        periodic = None
        if settings.rollup_interval > 0:
            periodic = PeriodicRollup(
                settings.database_url,
                settings.rollup_interval,
                on_outcome=lambda outcome: metrics.rollups.labels(outcome).inc(),
                # Once across every worker and replica: the holder of this lock runs it.
                leader=leader_lock(
                    settings.database_url, "rollup", session_url=settings.session_database_url
                ),
            )
        return cls(settings, metrics, webhook, plugins, observability, periodic)

    def routes(self) -> list[Route]:
        return [
            Route("/metrics", self.metrics.endpoint, methods=["GET"]),
            Route("/hooks/{function}", self.webhook.handle, methods=["POST"]),
        ]

    def middleware(self) -> list[Middleware]:
        return [Middleware(MetricsMiddleware, metrics=self.metrics)]

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Start background work; at shutdown stop it and flush what the webhook recorded."""
        if self.rollup is not None:
            self.rollup.start()
        try:
            yield
        finally:
            if self.rollup is not None:
                await self.rollup.stop()
            for plugin in self.plugins:
                with contextlib.suppress(Exception):
                    await plugin.shutdown()
            await self.metrics.dispose()


def engine_config(settings: Settings) -> EngineConfig:
    """The GraphQL engine's configuration from the service's settings: the Hasura
    metadata under `settings.hasura_metadata_dir` over the observability tables."""
    return EngineConfig(
        catalog=load_catalog(settings.hasura_metadata_dir, observability_tables),
        admin_secret=settings.admin_secret,
        unauthorized_role=settings.unauthorized_role,
        jwt_secret=settings.jwt_secret,
        stringify_numeric_types=settings.stringify_numeric_types,
        namespace=settings.graphql_namespace,
        root_field_prefix=settings.graphql_root_field_prefix,
        root_field_suffix=settings.graphql_root_field_suffix,
        type_name_prefix=settings.graphql_type_name_prefix,
        type_name_suffix=settings.graphql_type_name_suffix,
        naming_convention=settings.graphql_naming_convention,
        apollo_federation=settings.apollo_federation,
        max_query_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_tokens=settings.max_tokens,
        max_rows=settings.max_rows,
        max_batch_operations=settings.max_batch_operations,
        max_response_nodes=settings.max_response_nodes,
        max_request_bytes=settings.max_request_bytes,
        max_json_depth=settings.max_json_depth,
        parser_cache_size=settings.parser_cache_size,
        websocket_keepalive=settings.websocket_keepalive,
        websocket_connection_init_timeout=settings.websocket_connection_init_timeout,
        websocket_max_operations=settings.websocket_max_operations,
    )


class Lifecycle:
    """Runs the app's background work once, whoever starts it.

    `resources` is the work's context: entered at start, left at stop. It is entered by
    the ASGI lifespan (`lifespan`) when the server or host application runs it; otherwise
    by the first request (`ensure_started`, called by `StartOnFirstRequest`), in a task of
    its own that holds it until `aclose()`, or until the event loop ends and cancels the
    task (`asyncio.run`, as uvicorn runs, cancels what is left and waits for it), which
    leaves the context as cleanly as a lifespan shutdown would.
    """

    def __init__(self, resources: Callable[[], AbstractAsyncContextManager[None]]) -> None:
        self._resources = resources
        self._in_lifespan = False
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        # One lock per event loop (a lock belongs to the loop that first used it).
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @property
    def running(self) -> bool:
        """Whether the background work runs (from the lifespan or from a first request)."""
        return self._in_lifespan or (self._task is not None and not self._task.done())

    def _holding(self) -> bool:
        """Whether a first request's task holds the work in the running loop (a task of
        another loop, a previous test client's say, is not this loop's work)."""
        task = self._task
        if task is None or task.done():
            return False
        return task.get_loop() is asyncio.get_running_loop()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """The ASGI lifespan: the work runs from startup to shutdown."""
        await self.aclose()
        self._in_lifespan = True
        try:
            async with self._resources():
                yield
        finally:
            self._in_lifespan = False

    async def ensure_started(self) -> None:
        """Start the work unless it runs; raises what its start raised."""
        if self._in_lifespan or self._holding():
            return
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        async with self._lock[1]:
            if self._in_lifespan or self._holding():
                return
            started: asyncio.Future[None] = loop.create_future()
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(
                self._hold(started, self._stop), name="event-detector-background-work"
            )
            # Shielded: a request that goes away while the work starts does not stop it.
            await asyncio.shield(started)

    async def _hold(self, started: asyncio.Future[None], stop: asyncio.Event) -> None:
        try:
            async with self._resources():
                if not started.done():
                    started.set_result(None)
                await stop.wait()
        except asyncio.CancelledError:
            if not started.done():
                started.cancel()
            raise
        except Exception as error:
            if not started.done():
                started.set_exception(error)  # the request that started it fails with it
            else:
                log.exception("stopping the service's background work failed")

    async def aclose(self) -> None:
        """Stop work started by a first request (the lifespan stops its own)."""
        task, self._task = self._task, None
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            return
        assert self._stop is not None
        self._stop.set()
        await task


class StartOnFirstRequest:
    """Starts the app's background work before its first request, when no lifespan did."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.lifecycle.ensure_started()
        await self.app(scope, receive, send)


@dataclass(slots=True)
class GraphQLAPI:
    """The GraphQL API's parts, shared by both apps."""

    database: Database
    engine: GraphQLEngine
    live: LiveQueries
    view: GraphQLView
    graphiql: GraphiQL
    gc_freeze: bool = False

    @classmethod
    def from_settings(
        cls, settings: Settings, *, on_live_count: Callable[[int], None] | None = None
    ) -> GraphQLAPI:
        database = Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            statement_timeout=settings.statement_timeout,
            transaction_pooling=settings.database_transaction_pooling,
        )
        engine = GraphQLEngine(engine_config(settings), database)
        live = LiveQueries(engine, LiveSettings.from_settings(settings), on_count=on_live_count)
        graphiql = GraphiQL(assets.default_path(assets.GRAPHIQL_DIR))
        origins = OriginPolicy.from_settings(settings)
        view = GraphQLView(engine, ide_page=graphiql.page, websocket_origins=origins.allows)
        return cls(database, engine, live, view, graphiql, settings.gc_freeze)

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [Route("/healthz", healthz), *self.graphiql.routes()]
        for path in GRAPHQL_PATHS:
            routes.append(Route(path, self.view))
            routes.append(WebSocketRoute(path, self.view))
        # The names this role's schema serves (customization), for clients that adapt:
        # the web console asks before its first query, and the map is ~100 KB of JSON
        # that gzip makes ~8 KB.
        names = GZipMiddleware(request_response(self.view.names))
        routes.append(Route(f"{GRAPHQL_PATHS[0]}/names", names, methods=["GET"]))
        return routes

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Schemas built, live queries listening for changes; the pool closed at the end."""
        self.engine.warm_up()
        if self.gc_freeze:
            # Only when asked for (settings.gc_freeze): it changes the whole process.
            gc.collect()
            gc.freeze()
        try:
            await self.live.start()
            try:
                yield
            finally:
                await self.live.stop()
        finally:
            await self.database.dispose()
            if self.gc_freeze:
                gc.unfreeze()


def _assemble(
    settings: Settings,
    routes: list[BaseRoute],
    middleware: list[Middleware],
    work: Callable[[], AbstractAsyncContextManager[None]],
) -> Starlette:
    """The Starlette app of `routes`, running `work` through a `Lifecycle`, behind the
    first-request start, the CORS policy and `middleware`."""
    lifecycle = Lifecycle(work)
    layers = [
        Middleware(StartOnFirstRequest, lifecycle=lifecycle),
        *OriginPolicy.from_settings(settings).middleware(),
        *middleware,
    ]
    app = Starlette(routes=routes, middleware=layers, lifespan=lifecycle.lifespan)
    app.state.settings = settings
    app.state.lifecycle = lifecycle
    return app


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the whole service for `settings` (read from the environment when omitted).

    Serve it alone, or mount it in a host application under any prefix (see the module
    docstring). The web client (`web/`, see `service.endpoints.webclient`) is served at the
    app's root and its pages. `app.state` holds `settings`, `lifecycle` (`Lifecycle`),
    `database` (`service.storage.database.Database`), `engine`
    (`service.graphql.execution.engine.GraphQLEngine`), `runtime` (`ServiceRuntime`: the
    webhook receiver, `metrics`, the periodic rollup), `live` (`service.live.LiveQueries`:
    subscriptions re-run on change; `live.stats()`) and `rerun`
    (`service.endpoints.rerun.InvocationRerunner`: `GET`/`POST /v1/rerun`). Raises ValueError
    (its message names the problem) for settings it cannot run with: a JWT secret without
    an admin secret, an unsupported JWT form, the plugin told to record elsewhere than the
    service's database.
    """
    settings = settings or Settings()
    api = GraphQLAPI.from_settings(settings)
    runtime = ServiceRuntime.from_settings(settings, api.database)
    api.live.on_count = runtime.metrics.live_subscriptions.set
    runtime.metrics.registry.register(LiveQueriesCollector(api.live))
    rerun = InvocationRerunner(
        settings,
        api.database,
        api.engine.authenticate,
        runtime.webhook,
        runtime.metrics,
        runtime.observability,
    )
    routes: list[BaseRoute] = [*api.routes(), *runtime.routes(), *rerun.routes()]
    try:
        routes.extend(web_routes(settings.web_dir))
    except FileNotFoundError as exc:
        # A web_dir without the client: serve the API alone.
        log.warning("web client not served: %s", exc)

    @contextlib.asynccontextmanager
    async def work() -> AsyncIterator[None]:
        async with api.running(), runtime.lifespan():
            yield

    app = _assemble(settings, routes, runtime.middleware(), work)
    app.state.database = api.database
    app.state.engine = api.engine
    app.state.runtime = runtime
    app.state.live = api.live
    app.state.rerun = rerun
    return app


def create_graphql_app(settings: Settings | None = None) -> Starlette:
    """Build the GraphQL API alone: `/v1/graphql` and `/graphql` (HTTP, both WebSocket
    protocols, GraphiQL) and `/healthz`; no web client, webhook, re-runs or `/metrics`.

    For gateways that route to the API only; mount it anywhere, as `create_app`.
    `app.state` holds `settings`, `lifecycle`, `database`, `engine`, `live` and `rollup`
    (`PeriodicRollup`, or None when `settings.rollup_interval` is 0).
    """
    settings = settings or Settings()
    api = GraphQLAPI.from_settings(settings)
    rollup = (
        PeriodicRollup(settings.database_url, settings.rollup_interval)
        if settings.rollup_interval > 0
        else None
    )

    @contextlib.asynccontextmanager
    async def work() -> AsyncIterator[None]:
        async with api.running():
            if rollup is not None:
                rollup.start()
            try:
                yield
            finally:
                if rollup is not None:
                    await rollup.stop()

    app = _assemble(settings, api.routes(), [], work)
    app.state.database = api.database
    app.state.engine = api.engine
    app.state.live = api.live
    app.state.rollup = rollup
    return app
