"""/metrics: Prometheus text with requests, latencies, live subscriptions, and the health
of observability plugins in this process and in others (`plugin_instances`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.settings import Settings
from service.storage.maintenance import plugin_instances
from tests.support.runtime import database_for, execute
from tests.support.server import serving


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels (the text must parse)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_metrics_show_other_processes_plugins_from_plugin_instances(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with database_for(backend, request, tmp_path) as url:
        now = datetime.now(UTC)
        execute(
            url,
            plugin_instances.insert(),
            [
                {
                    "id": "worker-a:41:ab",
                    "updated_at": now - timedelta(seconds=20),
                    "writer": "postgres",
                    "buffer_depth": 12,
                    "records_written": 900,
                    "records_dropped": 7,
                    "dropped_by_reason": {
                        "log_lines_buffer_full": 5,
                        "payload_bodies_buffer_full": 2,
                    },
                    "records_quarantined": 1,
                    "flush_lag_ms": 1500,
                },
                {
                    "id": "gone:1:cd",
                    "updated_at": now - timedelta(days=2),
                    "writer": "sqlite",
                    "buffer_depth": 99,
                    "records_written": 0,
                    "records_dropped": 0,
                    "dropped_by_reason": {},
                    "records_quarantined": 0,
                    "flush_lag_ms": None,
                },
            ],
        )
        settings = Settings(database_url=url, rollup_interval=0, instance_stale_after=300)
        with serving(settings) as running:
            running.app.state.runtime.metrics.live_subscriptions.set(3)
            running.client.get("/healthz")
            running.client.get("/no/such/page")
            response = running.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    worker = (("instance", "worker-a:41:ab"),)
    assert found[("event_detector_remote_plugin_buffer_records", worker)] == 12
    assert found[("event_detector_remote_plugin_flush_lag_seconds", worker)] == 1.5
    assert found[("event_detector_remote_plugin_records_written_total", worker)] == 900
    assert found[("event_detector_remote_plugin_records_quarantined_total", worker)] == 1
    dropped = "event_detector_remote_plugin_records_dropped_total"
    assert found[(dropped, (*worker, ("reason", "log_lines_buffer_full")))] == 5
    assert found[(dropped, (*worker, ("reason", "payload_bodies_buffer_full")))] == 2
    assert not any(labels == (("instance", "gone:1:cd"),) for _, labels in found), "stale row"
    assert found[("event_detector_live_subscriptions", ())] == 3
    healthz = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert found[("event_detector_http_requests_total", healthz)] == 1
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert found[("event_detector_http_requests_total", unmatched)] == 1, "raw paths never label"
    latency = (("method", "GET"), ("route", "/healthz"))
    assert found[("event_detector_http_request_duration_seconds_count", latency)] == 1
    # No webhook configured: no plugin runs in this process.
    assert not any(name.startswith("event_detector_plugin_") for name, _ in found)


def test_metrics_still_answer_when_the_database_is_unreachable(tmp_path: Path) -> None:
    # A PostgreSQL URL nobody listens on: the scrape must not fail with it.
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:9/none", rollup_interval=0)
    with serving(settings) as running:
        response = running.client.get("/metrics")
    assert response.status_code == 200
    found = samples(response.text)
    assert ("event_detector_live_subscriptions", ()) in found
    assert not any(name.startswith("event_detector_remote_plugin") for name, _ in found)
