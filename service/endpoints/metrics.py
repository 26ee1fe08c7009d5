"""Prometheus metrics of the service: `/metrics` in the text exposition format.

`ServiceMetrics` owns one `CollectorRegistry` per app (several apps in one process, as in
tests, never share counters). It exposes:

- `event_detector_http_requests_total{route,method,status}` and
  `event_detector_http_request_duration_seconds{route,method}`: every HTTP request, by
  route template (`/hooks/{function}`, never the raw path, so label cardinality stays
  bounded), counted by `MetricsMiddleware`;
- `event_detector_live_subscriptions`: a gauge the subscription engine moves with
  `metrics.live_subscriptions.inc()` / `.dec()` (or `.set(n)`);
- `event_detector_webhook_deliveries_total{function,outcome}`: webhook deliveries by
  outcome (`completed`, `failed`, `timeout`, `rejected`, `unauthorized`, `error`, …);
- `event_detector_reruns_total{outcome}`: invocations re-run from the console or API
  (`service.endpoints.rerun`), by the new invocation's status, or `refused` / `error`;
- the observability plugin's health, for the plugin running in this process (its
  `stats()`, label `instance`) and for every other process that reported into the
  `plugin_instances` table recently: buffer depth, flush lag, records written, dropped
  by reason, quarantined.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from detector.observability.models import PluginInstance
from service.storage.maintenance import open_engine

log = logging.getLogger("service.endpoints.metrics")

# Buckets from 5 ms to 10 s, as OpenTelemetry's FaaS duration histogram recommends.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "unmatched"

StatsSource = Callable[[], dict[str, Any] | None]


class ServiceMetrics:
    """The service's metric instruments and the `/metrics` endpoint.

    `plugin_stats` returns the in-process observability plugin's `stats()` (or None when
    there is none); `database_url` is read at each scrape for the `plugin_instances` of
    other processes (rows updated within `instance_stale_after` seconds).
    """

    def __init__(
        self,
        *,
        database_url: str | None = None,
        plugin_stats: StatsSource | None = None,
        instance_stale_after: float = 300.0,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.database_url = database_url
        self.plugin_stats = plugin_stats
        self.instance_stale_after = instance_stale_after
        self.requests = Counter(
            "event_detector_http_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "event_detector_http_request_duration_seconds",
            "HTTP request latency (until the response is complete) by route template.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.live_subscriptions = Gauge(
            "event_detector_live_subscriptions",
            "GraphQL subscriptions currently open on this process.",
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "event_detector_webhook_deliveries",
            "Hasura webhook deliveries by function and outcome.",
            ["function", "outcome"],
            registry=self.registry,
        )
        self.reruns = Counter(
            "event_detector_reruns",
            "Recorded invocations run again through POST /v1/rerun, by outcome (the new "
            "invocation's status, or refused, error).",
            ["outcome"],
            registry=self.registry,
        )
        self.rollups = Counter(
            "event_detector_rollups",
            "Background rollup runs by outcome (ok, error).",
            ["outcome"],
            registry=self.registry,
        )
        self.registry.register(_PluginStatsCollector(self))
        self._engine: Any = None

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished HTTP request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    async def endpoint(self, request: Request) -> Response:
        """`GET /metrics`: this process's instruments plus other processes' plugin health."""
        instances = await self._recent_instances()
        text = generate_latest(self.registry)
        if instances is not None:
            extra = CollectorRegistry(auto_describe=False)
            extra.register(_InstanceRowsCollector(instances))
            text += generate_latest(extra)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    async def _recent_instances(self) -> list[dict[str, Any]] | None:
        """`plugin_instances` rows updated recently; None when the table cannot be read."""
        if not self.database_url:
            return None
        try:
            if self._engine is None:
                self._engine = open_engine(self.database_url, pool_size=1)
            table = PluginInstance.__table__
            since = datetime.now(UTC) - timedelta(seconds=self.instance_stale_after)
            async with self._engine.connect() as conn:
                result = await conn.execute(sa.select(table).where(table.c.updated_at >= since))
                rows = [dict(row._mapping) for row in result]
        except Exception as exc:  # the store may be down: the scrape must still answer
            log.warning("metrics: cannot read plugin_instances (%s)", type(exc).__name__)
            return None
        own = self._own_instance_id()
        return [row for row in rows if row["id"] != own]

    def _own_instance_id(self) -> str | None:
        stats = self.plugin_stats() if self.plugin_stats else None
        return None if stats is None else stats.get("instance_id")

    async def dispose(self) -> None:
        """Close the connection used for `plugin_instances` (at shutdown)."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


class _PluginStatsCollector:
    """The in-process observability plugin's `stats()`, read at each scrape."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        source = self.metrics.plugin_stats
        stats = source() if source else None
        if not stats:
            return
        yield from _plugin_families([_from_stats(stats)])


class _InstanceRowsCollector:
    """Plugin health reported by other processes through `plugin_instances`."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from _plugin_families([_from_row(row) for row in self.rows], prefix="remote_")


def _from_stats(stats: dict[str, Any]) -> dict[str, Any]:
    lag = stats.get("flush_lag_ms")
    return {
        "instance": stats.get("instance_id") or "local",
        # Entries still in the inbox (not yet turned into rows) are buffered too.
        "buffer_depth": stats.get("buffered_records", 0)
        + stats.get("inbox_depth", 0)
        + stats.get("in_flight_records", 0),
        "buffer_bytes": stats.get("buffered_bytes"),
        "flush_lag_seconds": 0.0 if lag is None else lag / 1000.0,
        "written": sum(dict(stats.get("written") or {}).values()),
        "dropped": dict(stats.get("dropped") or {}),
        "quarantined": stats.get("quarantined", 0),
        "failed_flushes": stats.get("failed_flushes", 0),
    }


def _from_row(row: dict[str, Any]) -> dict[str, Any]:
    lag = row.get("flush_lag_ms")
    return {
        "instance": row["id"],
        "buffer_depth": row.get("buffer_depth") or 0,
        "buffer_bytes": None,
        "flush_lag_seconds": 0.0 if lag is None else lag / 1000.0,
        "written": row.get("records_written") or 0,
        "dropped": dict(row.get("dropped_by_reason") or {}),
        "quarantined": row.get("records_quarantined") or 0,
        "failed_flushes": None,
    }


def _plugin_families(items: Iterable[dict[str, Any]], prefix: str = "") -> Iterator[Metric]:
    name = f"event_detector_{prefix}plugin"
    where = "other processes (plugin_instances)" if prefix else "this process"
    depth = GaugeMetricFamily(
        f"{name}_buffer_records",
        f"Records buffered, not yet written ({where}).",
        labels=["instance"],
    )
    size = GaugeMetricFamily(
        f"{name}_buffer_bytes", f"Estimated bytes buffered ({where}).", labels=["instance"]
    )
    lag = GaugeMetricFamily(
        f"{name}_flush_lag_seconds",
        f"Age of the oldest buffered record; 0 when the buffer is empty ({where}).",
        labels=["instance"],
    )
    written = CounterMetricFamily(
        f"{name}_records_written", f"Records written to the store ({where}).", labels=["instance"]
    )
    dropped = CounterMetricFamily(
        f"{name}_records_dropped",
        f"Records dropped, by reason ({where}).",
        labels=["instance", "reason"],
    )
    quarantined = CounterMetricFamily(
        f"{name}_records_quarantined",
        f"Records the store rejected and the plugin quarantined ({where}).",
        labels=["instance"],
    )
    failed = CounterMetricFamily(
        f"{name}_failed_flushes",
        f"Flushes that failed and were retried ({where}).",
        labels=["instance"],
    )
    for item in items:
        instance = [str(item["instance"])]
        depth.add_metric(instance, item["buffer_depth"])
        if item["buffer_bytes"] is not None:
            size.add_metric(instance, item["buffer_bytes"])
        lag.add_metric(instance, item["flush_lag_seconds"])
        written.add_metric(instance, item["written"])
        for reason, count in sorted(item["dropped"].items()):
            dropped.add_metric([*instance, str(reason)], count)
        quarantined.add_metric(instance, item["quarantined"])
        if item["failed_flushes"] is not None:
            failed.add_metric(instance, item["failed_flushes"])
    yield from (depth, size, lag, written, dropped, quarantined, failed)


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The router stores the matched route in the (shared) scope.
            route = scope.get("route")
            label = getattr(route, "path", None) or UNMATCHED_ROUTE
            self.metrics.observe_request(
                label, scope.get("method", "GET"), status, time.perf_counter() - started
            )
