"""OpenTelemetryPlugin, checked with the SDK's in-memory span and log exporters."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from detector import InvalidEventPayload, ListenResult, listen_to
from detector.otel import OpenTelemetryPlugin
from tests.support.runtime import EXAMPLES_EVENTS

PAYLOADS = EXAMPLES_EVENTS.parent / "payloads"
HASURA_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HASURA_SPAN = "00f067aa0ba902b7"


@dataclass
class Exported:
    plugin: OpenTelemetryPlugin
    spans: InMemorySpanExporter
    logs: InMemoryLogRecordExporter

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def by_name(self, name: str) -> ReadableSpan:
        found = [span for span in self.finished() if span.name == name]
        assert len(found) == 1, [span.name for span in self.finished()]
        return found[0]

    def records(self) -> list[Any]:
        return [item.log_record for item in self.logs.get_finished_logs()]


@pytest.fixture
def exported() -> Iterator[Exported]:
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    yield Exported(OpenTelemetryPlugin(tracer_provider, logger_provider), spans, logs)
    tracer_provider.shutdown()
    logger_provider.shutdown()


def payload(name: str, *, trace: bool = True) -> dict[str, Any]:
    data = json.loads((PAYLOADS / name).read_text())
    if trace:
        data["event"]["trace_context"] = {"trace_id": HASURA_TRACE, "span_id": HASURA_SPAN}
    else:
        data["event"].pop("trace_context", None)
    return data


def run(data: Any, plugin: OpenTelemetryPlugin) -> ListenResult:
    return asyncio.run(listen_to(data, events_dir=EXAMPLES_EVENTS, plugins=[plugin]))


def ns(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def test_one_trace_per_invocation_continues_hasuras_trace(exported: Exported) -> None:
    data = payload("orders.shipped.update.json")
    result = run(data, exported.plugin)
    spans = exported.finished()
    assert {span.context.trace_id for span in spans} == {int(HASURA_TRACE, 16)}
    root = exported.by_name("orders_events")
    assert root.parent is not None and root.parent.span_id == int(HASURA_SPAN, 16)
    assert root.parent.is_remote
    assert root.kind == SpanKind.CONSUMER
    attributes = dict(root.attributes or {})
    assert attributes["faas.trigger"] == "datasource"
    assert attributes["faas.invocation_id"] == result.invocation_id
    assert attributes["faas.document.collection"] == "public"
    assert attributes["faas.document.name"] == "orders"
    assert attributes["faas.document.operation"] == "edit"
    assert attributes["messaging.message.id"] == data["id"]
    assert attributes["event_detector.correlation_id"] == result.correlation_id
    assert attributes["event_detector.delivery_attempt"] == 1
    assert attributes["event_detector.status"] == "completed"
    assert root.status.status_code == StatusCode.UNSET
    # Every span of the invocation hangs under the root.
    ids = {span.context.span_id for span in spans}
    for span in spans:
        if span is not root:
            assert span.parent is not None and span.parent.span_id in ids


def test_events_jobs_and_their_real_times_form_the_tree(exported: Exported) -> None:
    result = run(payload("orders.shipped.update.json"), exported.plugin)
    root = exported.by_name("orders_events")
    event = exported.by_name("orders.shipped")
    detect = exported.by_name("detect orders.shipped")
    handle = exported.by_name("handle orders.shipped")
    assert event.parent.span_id == root.context.span_id
    assert detect.parent.span_id == event.context.span_id
    assert handle.parent.span_id == event.context.span_id
    assert detect.end_time <= handle.start_time
    shipped = next(e for e in result.events if e.name == "orders.shipped")
    for job in shipped.jobs:
        span = exported.by_name(f"job {job.name}")
        assert span.parent.span_id == handle.context.span_id
        assert span.kind == SpanKind.INTERNAL
        assert span.start_time == ns(job.started_at)
        assert span.end_time == ns(job.ended_at)
        assert dict(span.attributes)["event_detector.job_execution_id"] == job.job_execution_id
        assert handle.start_time <= span.start_time <= span.end_time <= handle.end_time
    # Undetected events have a detection span and no handler span.
    assert (
        exported.by_name("orders.cancelled").end_time
        == exported.by_name("detect orders.cancelled").end_time
    )
    assert not [s for s in exported.finished() if s.name == "handle orders.cancelled"]
    # Skipped modules (orders.created listens to inserts) have no span at all.
    assert not [s for s in exported.finished() if s.name.endswith("orders.created")]
    assert root.start_time <= event.start_time and event.end_time <= root.end_time


def test_failures_set_error_status_and_logs_carry_their_job_span(exported: Exported) -> None:
    result = run(payload("payments.failed.update.json"), exported.plugin)
    root = exported.by_name("payments_events")
    assert root.status.status_code == StatusCode.ERROR
    assert dict(root.attributes)["event_detector.jobs.failed"] == 2
    declined = exported.by_name("job charge_backup_card")
    assert declined.status.status_code == StatusCode.ERROR
    assert dict(declined.attributes)["error.type"] == "CardDeclined"
    timed_out = exported.by_name("job screen_for_fraud")
    assert dict(timed_out.attributes)["error.type"] == "JobTimeoutError"
    assert (
        dict(exported.by_name("job retry_gateway").attributes)["event_detector.job.attempts"] == 3
    )

    records = exported.records()
    assert {r.trace_id for r in records} == {int(HASURA_TRACE, 16)}
    lines = [r for r in records if r.body == "backup card declined for payment pay_88213"]
    assert len(lines) == 1
    assert lines[0].span_id == declined.context.span_id
    assert lines[0].severity_text == "ERROR"
    assert dict(lines[0].attributes)["event_detector.log.source"] == "examples.payments"
    exceptions = [
        r
        for r in records
        if str((r.attributes or {}).get("exception.type")).endswith("CardDeclined")
    ]
    assert len(exceptions) == 1 and exceptions[0].span_id == declined.context.span_id
    notify = exported.by_name("job notify_customer")
    info = [r for r in records if str(r.body).startswith("payment pay_88213")]
    assert info and info[0].span_id == notify.context.span_id
    job_ids = {j.job_execution_id for j in result.jobs}
    for record in records:
        attributes = dict(record.attributes or {})
        if "event_detector.job_execution_id" in attributes:
            assert attributes["event_detector.job_execution_id"] in job_ids


def test_without_trace_context_the_invocation_starts_its_own_trace(exported: Exported) -> None:
    run(payload("users.signed_up.insert.json", trace=False), exported.plugin)
    root = exported.by_name("users_events")
    assert root.parent is None
    assert dict(root.attributes)["faas.document.operation"] == "insert"
    assert {s.context.trace_id for s in exported.finished()} == {root.context.trace_id}


def test_a_rejected_payload_is_an_error_span(exported: Exported) -> None:
    with pytest.raises(InvalidEventPayload):
        run({"event": {"data": {}}, "trigger": {"name": "orders_events"}}, exported.plugin)
    root = exported.by_name("orders_events")
    assert root.status.status_code == StatusCode.ERROR
    assert dict(root.attributes)["error.type"] == "InvalidEventPayload"
    assert dict(root.attributes)["event_detector.status"] == "rejected"


def test_concurrent_invocations_get_separate_traces(exported: Exported) -> None:
    async def both() -> list[ListenResult]:
        return await asyncio.gather(
            listen_to(
                payload("orders.created.insert.json", trace=False),
                events_dir=EXAMPLES_EVENTS,
                plugins=[exported.plugin],
            ),
            listen_to(
                payload("orders.shipped.update.json", trace=False),
                events_dir=EXAMPLES_EVENTS,
                plugins=[exported.plugin],
            ),
        )

    first, second = asyncio.run(both())
    roots = [s for s in exported.finished() if s.name == "orders_events"]
    assert len(roots) == 2
    by_invocation = {dict(r.attributes)["faas.invocation_id"]: r for r in roots}
    for result in (first, second):
        trace_id = by_invocation[result.invocation_id].context.trace_id
        job_spans = [
            s
            for s in exported.finished()
            if s.context.trace_id == trace_id and s.name.startswith("job ")
        ]
        assert sorted(s.name[4:] for s in job_spans) == sorted(j.name for j in result.jobs)


def test_importing_detector_otel_needs_only_the_api() -> None:
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                for banned in ("opentelemetry.sdk", "sqlalchemy", "asyncpg", "starlette", "httpx"):
                    if name == banned or name.startswith(banned + "."):
                        raise ImportError(f"blocked {name}")
                return None

        sys.meta_path.insert(0, Block())
        from detector.otel import OpenTelemetryPlugin
        plugin = OpenTelemetryPlugin()
        print("ok", type(plugin.tracer).__name__)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_the_service_adds_the_plugin_to_webhook_deliveries_when_enabled(tmp_path: Path) -> None:
    from service.app import ServiceRuntime
    from service.settings import Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}",
        events_dir=EXAMPLES_EVENTS,
        otel_enabled=True,
    )
    runtime = ServiceRuntime.from_settings(settings)
    kinds = [type(plugin).__name__ for plugin in runtime.plugins]
    assert kinds == ["ObservabilityPlugin", "OpenTelemetryPlugin"]
    assert runtime.plugins[1].root_span_kind == SpanKind.SERVER
    off = ServiceRuntime.from_settings(settings.model_copy(update={"otel_enabled": False}))
    assert [type(plugin).__name__ for plugin in off.plugins] == ["ObservabilityPlugin"]
