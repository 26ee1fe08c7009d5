"""Prometheus families of the live-query engine, read from `LiveQueries.stats()` at scrape.

`event_detector_live_subscriptions` itself is the runtime's gauge (moved by
`LiveQueries.on_count`); this adds the cohorts, runs and change signals behind it, and
the SQL statements the service's database has run (what "no queries while idle" is
measured with).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from service.live.queries import LiveQueries


class LiveQueriesCollector:
    """A `prometheus_client` collector for one `LiveQueries` (register it on a registry)."""

    def __init__(self, live: LiveQueries) -> None:
        self.live = live

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self.live.stats()
        cohorts = GaugeMetricFamily(
            "event_detector_live_cohorts",
            "Distinct live queries and stream positions (identical subscriptions share one).",
        )
        cohorts.add_metric([], stats.cohorts)
        yield cohorts
        runs = CounterMetricFamily(
            "event_detector_live_executions",
            "Live-query executions (one serves every subscriber of a cohort).",
        )
        runs.add_metric([], stats.executions)
        yield runs
        batches = CounterMetricFamily(
            "event_detector_live_batches",
            "Statements that ran many live-query cohorts at once (multiplexed).",
        )
        batches.add_metric([], stats.batches)
        yield batches
        signals = CounterMetricFamily(
            "event_detector_live_change_signals",
            "Change notifications received (tables changed, or everything after a reconnect).",
        )
        signals.add_metric([], stats.change_signals)
        yield signals
        healthy = GaugeMetricFamily(
            "event_detector_live_change_source_up",
            "1 while change notifications flow (SQLite watcher or PostgreSQL LISTEN).",
        )
        healthy.add_metric([], 1 if stats.change_source_healthy else 0)
        yield healthy
        statements = CounterMetricFamily(
            "event_detector_database_statements",
            "SQL statements sent by the service's database pool (all requests and live queries).",
        )
        statements.add_metric([], self.live.database.statements_executed)
        yield statements
