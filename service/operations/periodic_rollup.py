"""The service's runtime parts: webhook receiver, metrics, and background work.

`ServiceRuntime.from_settings(settings)` builds them; `create_app` mounts its `routes()`
(`/metrics`, `/hooks/{function}`), adds its `middleware()` (request metrics) and enters
its `lifespan()` (the periodic rollup; at shutdown: flush the webhook's observability
plugin, close connections).

Other parts of the service reach it as `app.state.runtime`; the subscription engine
moves `app.state.runtime.metrics.live_subscriptions` (a Prometheus gauge).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware import Middleware
from starlette.routing import Route

from detector import Plugin
from detector.observability import ObservabilityPlugin
from detector.observability.rollup import RollupResult, rollup
from service.endpoints.metrics import MetricsMiddleware, ServiceMetrics
from service.endpoints.webhook import WebhookReceiver
from service.settings import Settings
from service.storage.maintenance import invocations, open_engine

log = logging.getLogger("service.operations.periodic_rollup")

# The dashboard covers a moving 30-day window: refresh at least this often.
WINDOW_REFRESH_S = 3600.0


class PeriodicRollup:
    """Runs the rollup (metrics_hourly + dashboard_stats refresh) every `interval` seconds.

    The first run happens at start, so a fresh dashboard has its series at once. Later
    runs are skipped while no invocation changed (one cheap query instead of a refresh
    and its change notification), except once an hour, when the dashboard's 30-day
    window moves. A run that fails is logged and counted, and retried at the next interval.
    """

    def __init__(
        self, database_url: str, interval: float, metrics: ServiceMetrics | None = None
    ) -> None:
        self.database_url = database_url
        self.interval = interval
        self.metrics = metrics
        self.runs = 0
        self.skipped = 0
        self.last_result: RollupResult | None = None
        self._task: asyncio.Task[None] | None = None
        self._engine: AsyncEngine | None = None
        self._seen: tuple[Any, ...] | None = None
        self._last_run = 0.0

    async def _fingerprint(self) -> tuple[Any, ...]:
        """Count and latest update of invocations: equal fingerprints, nothing to roll up."""
        if self._engine is None:
            self._engine = open_engine(self.database_url, pool_size=1)
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.max(invocations.c.updated_at))
                )
            ).one()
        return tuple(row)

    async def run_once(self, *, force: bool = False) -> RollupResult | None:
        """One rollup now, unless nothing changed (`force` runs it anyway); None when it
        was skipped or failed (logged, counted)."""
        try:
            seen = await self._fingerprint()
            fresh = time.monotonic() - self._last_run < WINDOW_REFRESH_S
            if not force and seen == self._seen and fresh:
                self.skipped += 1
                return None
            result = await rollup(self.database_url)
            self._seen, self._last_run = seen, time.monotonic()
        except Exception as exc:
            log.warning("rollup failed: %s: %s", type(exc).__name__, str(exc)[:200])
            if self.metrics is not None:
                self.metrics.rollups.labels("error").inc()
            return None
        self.runs += 1
        self.last_result = result
        if self.metrics is not None:
            self.metrics.rollups.labels("ok").inc()
        return result

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="event-detector-rollup")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


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
            periodic = PeriodicRollup(settings.database_url, settings.rollup_interval, metrics)
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
