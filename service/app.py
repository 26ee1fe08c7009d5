"""The ASGI application: GraphQL API, web client, health and metrics on one Starlette app."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute

from detector import Plugin
from detector.observability import ObservabilityPlugin
from detector.observability.models import metadata as observability_tables
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
    def from_settings(cls, settings: Settings) -> ServiceRuntime:
        """Build the parts `settings` asks for (the webhook's plugins only with an events
        directory; the rollup only with a positive interval)."""
        observability: ObservabilityPlugin | None = None
        plugins: list[Plugin] = []
        if settings.events_dir is not None:
            observability = ObservabilityPlugin(
                settings.database_url,
                environ=settings.observability_environ,
                # uvicorn handles SIGTERM itself and shuts the app down (which flushes).
                handle_sigterm=False,
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
        webhook = WebhookReceiver(settings, plugins, metrics)
        periodic = None
        if settings.rollup_interval > 0:
            periodic = PeriodicRollup(
                settings.database_url,
                settings.rollup_interval,
                on_outcome=lambda outcome: metrics.rollups.labels(outcome).inc(),
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
        parser_cache_size=settings.parser_cache_size,
        websocket_keepalive=settings.websocket_keepalive,
        websocket_connection_init_timeout=settings.websocket_connection_init_timeout,
        websocket_max_operations=settings.websocket_max_operations,
    )


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application for `settings` (read from the environment when omitted).

    The web client (`web/`, see `service.endpoints.webclient`) is served at `/` and its pages.
    `app.state` holds `settings`, `database` (`service.storage.database.Database`), `engine`
    (`service.graphql.execution.engine.GraphQLEngine`) and `runtime` (`ServiceRuntime`:
    the webhook receiver, `metrics`, the periodic rollup) and `live` (`service.live.LiveQueries`:
    subscriptions re-run on change; `live.stats()`) and `rerun`
    (`service.endpoints.rerun.InvocationRerunner`: `GET`/`POST /v1/rerun`) for the other parts of the
    service.
    """
    settings = settings or Settings()
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    engine = GraphQLEngine(engine_config(settings), database)
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
    view = GraphQLView(engine)
    routes: list[BaseRoute] = [Route("/healthz", healthz), *runtime.routes(), *rerun.routes()]
    for path in GRAPHQL_PATHS:
        routes.append(Route(path, view))
        routes.append(WebSocketRoute(path, view))
    routes.append(Route(f"{GRAPHQL_PATHS[0]}/names", view.names, methods=["GET"]))
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
