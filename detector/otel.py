"""OpenTelemetry export: one trace per invocation, spans for events and jobs, logs as records.

    from detector.otel import OpenTelemetryPlugin
    result = await listen_to(payload, plugins=[OpenTelemetryPlugin()])

Importing this module needs only `opentelemetry-api` (the `otel` extra). Without an SDK
the global providers are no-ops and the plugin costs little; an application that runs
an SDK (for example `opentelemetry-instrument`, or its own `TracerProvider` with an OTLP
exporter) sees our spans in its pipeline, or passes its providers explicitly.

Trace shape (one trace per invocation):

- root span, named after the source function, kind CONSUMER (SERVER when passed
  `root_span_kind=SpanKind.SERVER`, as the service's webhook does), from the delivery's
  receipt to the end of the invocation. It continues Hasura's `event.trace_context`
  (`trace_id`/`span_id`, hex) when the payload carries one, so the invocation appears
  under Hasura's delivery span;
- per event module checked: a span named after the event, with a `detect <event>` child
  and, when detected, a `handle <event>` child; every job is a `job <name>` span under
  its handler span (jobs run concurrently, so their spans overlap);
- captured log lines are OpenTelemetry log records carrying the trace and span ids of the
  job (or event, or invocation) that logged them; errors are span status ERROR with
  `error.type`, plus an ERROR log record with the exception (log-based events rather
  than span events, which OpenTelemetry is deprecating).

Attributes follow the FaaS conventions for a datasource trigger (`faas.trigger`,
`faas.invocation_id`, `faas.document.collection|name|operation|time`), with Hasura's
event id as `messaging.message.id`; everything specific to us is under
`event_detector.*` (correlation id, delivery attempt, status, job attempts, …).

Spans are built when the invocation ends, from the times the library measured (job spans
use `JobResult.started_at`/`ended_at`): the hooks on the invocation's path only note
timestamps, and exact start and end times are set explicitly. The consequence: these
spans are not the *current* span while user code runs, so auto-instrumented HTTP or
database calls inside a job do not nest under the job span.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import _logs as otel_logs
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from .observability.capture import DEFAULT_REDACT_KEYS, Sanitizer
from .plugins import CapturedLog, EventInfo, InvocationInfo, JobInfo, Plugin
from .results import JobResult, ListenResult
from .status import LogLevel

INSTRUMENTATION_NAME = "event-detector"
INSTRUMENTATION_VERSION = "0.1.0"
DEFAULT_MAX_LOGS_PER_INVOCATION = 1000

_DOCUMENT_OPERATION = {"INSERT": "insert", "UPDATE": "edit", "DELETE": "delete"}
_SEVERITY = {
    LogLevel.DEBUG: (otel_logs.SeverityNumber.DEBUG, "DEBUG"),
    LogLevel.INFO: (otel_logs.SeverityNumber.INFO, "INFO"),
    LogLevel.WARN: (otel_logs.SeverityNumber.WARN, "WARN"),
    LogLevel.ERROR: (otel_logs.SeverityNumber.ERROR, "ERROR"),
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (exact: no float rounding)."""
    return (moment - _EPOCH) // _MICROSECOND * 1000


def _after(moment: datetime, duration_ms: float | None) -> datetime:
    return moment + timedelta(milliseconds=duration_ms or 0.0)


def _hex_id(text: Any, digits: int) -> int | None:
    """A W3C id from hex text of at most `digits` digits; None when invalid or zero."""
    if not isinstance(text, str) or not 0 < len(text) <= digits:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value or None


@dataclass(slots=True)
class _Event:
    info: EventInfo
    detection_ms: float | None = None
    detected: bool = False
    detection_error: BaseException | None = None
    handler_started: datetime | None = None
    handler_ms: float | None = None
    handler_error: BaseException | None = None
    jobs: list[tuple[JobInfo, JobResult]] = field(default_factory=list)


@dataclass(slots=True)
class _Invocation:
    info: InvocationInfo
    events: dict[str, _Event] = field(default_factory=dict)
    logs: list[CapturedLog] = field(default_factory=list)
    logs_dropped: int = 0


class OpenTelemetryPlugin(Plugin):
    """Exports each invocation as an OpenTelemetry trace, and its log lines as log records.

    `tracer_provider` / `logger_provider` default to the global ones (set by the
    application's SDK). `root_span_kind` is CONSUMER by default (SERVER for a webhook).
    `capture_logs=False` exports no log records (errors are still span statuses);
    `max_logs_per_invocation` bounds what is held until the invocation ends (the rest are
    counted in `event_detector.logs_dropped` on the root span). `redact_keys` are the
    deny-list words applied to log `data` (the observability plugin's list by default).
    `flush_on_end=True` makes the end of each invocation wait for the providers'
    `force_flush` (serverless: the process may freeze after the response).
    """

    name = "opentelemetry"

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        logger_provider: otel_logs.LoggerProvider | None = None,
        *,
        root_span_kind: SpanKind = SpanKind.CONSUMER,
        capture_logs: bool = True,
        max_logs_per_invocation: int = DEFAULT_MAX_LOGS_PER_INVOCATION,
        redact_keys: tuple[str, ...] = DEFAULT_REDACT_KEYS,
        flush_on_end: bool = False,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.logger_provider = logger_provider
        if tracer_provider is not None:
            self.tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION)
        else:
            self.tracer = trace.get_tracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION)
        if logger_provider is not None:
            self.logger = logger_provider.get_logger(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION)
        else:
            self.logger = otel_logs.get_logger(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION)
        self.root_span_kind = root_span_kind
        self.capture_logs = capture_logs
        self.max_logs_per_invocation = max_logs_per_invocation
        self.flush_on_end = flush_on_end
        self._sanitizer = Sanitizer(redact_keys=redact_keys, max_value_bytes=8 * 1024)
        self._lock = threading.Lock()
        self._invocations: dict[str, _Invocation] = {}

    # -- hooks: note what happened (cheap) -------------------------------------------

    async def on_invocation_start(self, invocation: InvocationInfo) -> None:
        with self._lock:
            self._invocations[invocation.invocation_id] = _Invocation(invocation)

    async def on_detection_start(self, event: EventInfo) -> None:
        state = self._invocations.get(event.invocation.invocation_id)
        if state is not None:
            state.events[event.event_execution_id] = _Event(event)

    async def on_detection_end(
        self, event: EventInfo, detected: bool, duration_ms: float, error: BaseException | None
    ) -> None:
        one = self._event(event)
        if one is not None:
            one.detection_ms = duration_ms
            one.detected = detected
            one.detection_error = error

    async def on_handler_start(self, event: EventInfo) -> None:
        one = self._event(event)
        if one is not None:
            one.handler_started = datetime.now(event.started_at.tzinfo)

    async def on_handler_end(
        self,
        event: EventInfo,
        jobs: list[JobResult],
        duration_ms: float,
        error: BaseException | None,
    ) -> None:
        one = self._event(event)
        if one is not None:
            one.handler_ms = duration_ms
            one.handler_error = error

    async def on_job_end(self, job: JobInfo, result: JobResult) -> None:
        one = self._event(job.event)
        if one is not None:
            one.jobs.append((job, result))

    def on_log(self, record: CapturedLog) -> None:  # type: ignore[override]
        """Hold the line until the invocation ends (plain method: called from any thread)."""
        if not self.capture_logs:
            return
        with self._lock:
            state = self._invocations.get(record.invocation_id)
            if state is None:
                return
            if len(state.logs) >= self.max_logs_per_invocation:
                state.logs_dropped += 1
                return
            state.logs.append(record)

    async def on_invocation_end(self, invocation: InvocationInfo, result: ListenResult) -> None:
        with self._lock:
            state = self._invocations.pop(invocation.invocation_id, None)
        if state is None:
            return
        self._export(state, result)

    async def flush(self) -> None:
        if not self.flush_on_end:
            return
        import asyncio

        providers = (
            self.tracer_provider or trace.get_tracer_provider(),
            self.logger_provider or otel_logs.get_logger_provider(),
        )
        for provider in providers:
            force_flush = getattr(provider, "force_flush", None)
            if callable(force_flush):
                await asyncio.to_thread(force_flush)

    def _event(self, event: EventInfo) -> _Event | None:
        state = self._invocations.get(event.invocation.invocation_id)
        return None if state is None else state.events.get(event.event_execution_id)

    # -- export: build the trace with the measured times -----------------------------

    def _export(self, state: _Invocation, result: ListenResult) -> None:
        info = state.info
        start = info.received_at
        end = _after(start, result.duration_ms)
        root = self.tracer.start_span(
            info.source_function or "event-detector",
            context=self._parent_context(info),
            kind=self.root_span_kind,
            attributes=self._invocation_attributes(info, result, state),
            start_time=_ns(start),
        )
        status = result.status.value if hasattr(result.status, "value") else str(result.status)
        if status != "completed":
            error_type = type(info.error).__name__ if info.error is not None else status
            root.set_attribute("error.type", error_type)
            root.set_status(Status(StatusCode.ERROR, result.error or status))
            if info.error is not None:
                self._emit_exception(info.error, root, start)
        spans: dict[str, trace.Span] = {}
        for one in state.events.values():
            self._export_event(one, root, spans)
        for record in state.logs:
            span = spans.get(record.job_execution_id or "") or spans.get(
                record.event_execution_id or ""
            )
            self._emit_log(record, span or root)
        root.end(end_time=max(_ns(end), _ns(start)))

    def _export_event(self, one: _Event, root: trace.Span, spans: dict[str, trace.Span]) -> None:
        info = one.info
        start = info.started_at
        detect_end = _after(start, one.detection_ms)
        end = detect_end
        if one.handler_started is not None:
            end = max(end, _after(one.handler_started, one.handler_ms))
        for _, job_result in one.jobs:
            if job_result.ended_at is not None:
                end = max(end, job_result.ended_at)
        attributes = {
            "event_detector.event.name": info.name,
            "event_detector.event_execution_id": info.event_execution_id,
            "event_detector.event.detected": bool(one.detected),
        }
        if info.module_path:
            attributes["code.file.path"] = info.module_path
        event_span = self.tracer.start_span(
            info.name,
            context=trace.set_span_in_context(root),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_ns(start),
        )
        spans[info.event_execution_id] = event_span
        parent = trace.set_span_in_context(event_span)

        detect = self.tracer.start_span(
            f"detect {info.name}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes={"event_detector.event.detected": bool(one.detected)},
            start_time=_ns(start),
        )
        if one.detection_error is not None:
            self._fail(detect, one.detection_error, detect_end)
            self._fail(event_span, one.detection_error, None)
        detect.end(end_time=_ns(detect_end))

        if one.handler_started is not None:
            handler_end = _after(one.handler_started, one.handler_ms)
            handle = self.tracer.start_span(
                f"handle {info.name}",
                context=parent,
                kind=SpanKind.INTERNAL,
                attributes={"event_detector.jobs.count": len(one.jobs)},
                start_time=_ns(one.handler_started),
            )
            if one.handler_error is not None:
                self._fail(handle, one.handler_error, handler_end)
                self._fail(event_span, one.handler_error, None)
            job_parent = trace.set_span_in_context(handle)
            for job, job_result in one.jobs:
                spans[job.job_execution_id] = self._export_job(job, job_result, job_parent)
            handle.end(end_time=max(_ns(handler_end), _ns(one.handler_started)))
        event_span.end(end_time=_ns(end))

    def _export_job(self, job: JobInfo, result: JobResult, parent: Any) -> trace.Span:
        start = result.started_at or job.started_at
        end = result.ended_at or _after(start, result.duration_ms)
        status = result.status.value if hasattr(result.status, "value") else str(result.status)
        attributes: dict[str, Any] = {
            "event_detector.job.name": job.name,
            "event_detector.job_execution_id": job.job_execution_id,
            "event_detector.job.status": status,
            "event_detector.job.attempts": result.attempts,
        }
        if job.function_name:
            attributes["code.function.name"] = job.function_name
        if job.timeout is not None:
            attributes["event_detector.job.timeout_s"] = float(job.timeout)
        if job.retries:
            attributes["event_detector.job.retries"] = job.retries
        span = self.tracer.start_span(
            f"job {job.name}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_ns(start),
        )
        if status != "completed":
            span.set_attribute("error.type", result.error_type or status)
            span.set_status(Status(StatusCode.ERROR, result.error or status))
            if result.exception is not None:
                self._emit_exception(result.exception, span, end)
        span.end(end_time=max(_ns(end), _ns(start)))
        return span

    def _parent_context(self, info: InvocationInfo) -> Any:
        """Hasura's trace as the parent, when the payload carries a valid one."""
        event = info.event
        context = event.trace_context if event is not None else None
        if context is None:
            return None
        trace_id = _hex_id(context.trace_id, 32)
        span_id = _hex_id(context.span_id, 16)
        if trace_id is None or span_id is None:
            return None
        sampled = (context.sampling_state or "1").strip() not in ("0", "false")
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        parent = SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)
        return trace.set_span_in_context(NonRecordingSpan(parent))

    def _invocation_attributes(
        self, info: InvocationInfo, result: ListenResult, state: _Invocation
    ) -> dict[str, Any]:
        status = result.status.value if hasattr(result.status, "value") else str(result.status)
        attributes: dict[str, Any] = {
            "faas.trigger": "datasource",
            "faas.invocation_id": info.invocation_id,
            "faas.name": info.source_function,
            "event_detector.invocation_id": info.invocation_id,
            "event_detector.correlation_id": info.correlation_id,
            "event_detector.source_function": info.source_function,
            "event_detector.delivery_attempt": info.delivery_attempt,
            "event_detector.status": status,
            "event_detector.timed_out": bool(result.timed_out),
            "event_detector.events_detected": sum(1 for e in result.events if e.detected),
            "event_detector.jobs.run": len(result.jobs),
            "event_detector.jobs.failed": sum(1 for j in result.jobs if not j.completed),
        }
        if info.source_job_id:
            attributes["event_detector.source_job_id"] = info.source_job_id
        if state.logs_dropped:
            attributes["event_detector.logs_dropped"] = state.logs_dropped
        event = info.event
        if event is not None:
            op = event.op.value if hasattr(event.op, "value") else str(event.op)
            attributes["event_detector.operation"] = op
            if op in _DOCUMENT_OPERATION:
                attributes["faas.document.operation"] = _DOCUMENT_OPERATION[op]
            if event.table is not None:
                attributes["faas.document.collection"] = event.table.schema
                attributes["faas.document.name"] = event.table.name
            if event.created_at is not None:
                attributes["faas.document.time"] = event.created_at.isoformat()
            if event.id is not None:
                attributes["messaging.message.id"] = str(event.id)
            if event.trigger_name:
                attributes["event_detector.trigger_name"] = event.trigger_name
        return attributes

    def _fail(self, span: trace.Span, error: BaseException, at: datetime | None) -> None:
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__name__))
        if at is not None:
            self._emit_exception(error, span, at)

    def _emit_exception(self, error: BaseException, span: trace.Span, at: datetime) -> None:
        self.logger.emit(
            otel_logs.LogRecord(
                timestamp=_ns(at),
                observed_timestamp=time.time_ns(),
                context=trace.set_span_in_context(span),
                severity_number=otel_logs.SeverityNumber.ERROR,
                severity_text="ERROR",
                body=str(error) or type(error).__name__,
                attributes={"error.type": type(error).__name__},
                event_name="exception",
                exception=error,
            )
        )

    def _emit_log(self, record: CapturedLog, span: trace.Span) -> None:
        level = record.level if isinstance(record.level, LogLevel) else LogLevel(record.level)
        number, text = _SEVERITY.get(level, (otel_logs.SeverityNumber.INFO, "INFO"))
        attributes: dict[str, Any] = {
            "event_detector.invocation_id": record.invocation_id,
            "event_detector.log.seq": record.seq,
        }
        if record.source:
            attributes["event_detector.log.source"] = record.source
        if record.line_number is not None:
            attributes["code.line.number"] = record.line_number
        if record.job_execution_id:
            attributes["event_detector.job_execution_id"] = record.job_execution_id
        if record.event_execution_id:
            attributes["event_detector.event_execution_id"] = record.event_execution_id
        if record.data:
            attributes["event_detector.log.data"] = json.dumps(
                self._sanitizer.clean(record.data), separators=(",", ":")
            )
        self.logger.emit(
            otel_logs.LogRecord(
                timestamp=_ns(record.created_at),
                observed_timestamp=time.time_ns(),
                context=trace.set_span_in_context(span),
                severity_number=number,
                severity_text=text,
                body=record.message,
                attributes=attributes,
            )
        )
