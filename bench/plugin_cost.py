"""Observability cost per job: plugin off vs on (buffered) vs one OpenTelemetry span.

Each round runs the hooks the library calls for one job (`on_job_start`, one captured log
line, `on_job_end`) N times, awaited as `listen_to` awaits them:

- off: the base `Plugin` (no-op hooks): the cost of calling hooks at all;
- on: `ObservabilityPlugin` writing to SQLite in the background (its writer thread runs
  during the measurement, as in production);
- span: an OpenTelemetry SDK span per job (start, one event, end) with a
  `BatchSpanProcessor` and an exporter that drops everything.

Cost per job = (round time - off time) / N. Target (SPEC §6): ours ≤ the span.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from detector.plugins import CapturedLog, EventInfo, InvocationInfo, JobInfo, ListenOptions, Plugin
from detector.results import JobResult
from detector.status import JobStatus, LogLevel

from .report import Section, Target

TITLE = "Observability cost per job (plugin off / on / OpenTelemetry span)"


def _fixtures(n: int) -> tuple[list[JobInfo], list[JobResult], list[CapturedLog]]:
    now = datetime.now(UTC)
    invocation = InvocationInfo(
        str(uuid.uuid4()), "corr", "bench_fn", {}, None, ListenOptions(), now, now
    )
    event = EventInfo(str(uuid.uuid4()), "orders.shipped", None, invocation, now)
    jobs, results, logs = [], [], []
    for n_ in range(n):
        job = JobInfo(str(uuid.uuid4()), "send_email", "send_email", {"to": "a@b.c"}, event, now)
        jobs.append(job)
        results.append(
            JobResult(
                "send_email",
                True,
                JobStatus.COMPLETED,
                {"sent": True},
                duration_ms=1.0,
                started_at=now,
                ended_at=now,
                job_execution_id=job.job_execution_id,
            )
        )
        logs.append(
            CapturedLog(
                invocation.invocation_id,
                event.event_execution_id,
                job.job_execution_id,
                LogLevel.INFO,
                "sending email",
                now,
                n_,
            )
        )
    return jobs, results, logs


async def _call(hook, *args):
    outcome = hook(*args)
    if asyncio.iscoroutine(outcome):
        await outcome


async def _plugin_round(plugin: Plugin, jobs, results, logs) -> float:
    # The parent rows, as listen_to would have recorded them (not timed).
    event = jobs[0].event
    await _call(plugin.on_invocation_start, event.invocation)
    await _call(plugin.on_detection_start, event)
    started = time.perf_counter()
    for job, result, line in zip(jobs, results, logs, strict=True):
        await _call(plugin.on_job_start, job)
        await _call(plugin.on_log, line)
        await _call(plugin.on_job_end, job, result)
    return time.perf_counter() - started


async def _span_round(tracer, jobs) -> float:
    started = time.perf_counter()
    for job in jobs:
        with tracer.start_as_current_span("job " + job.name) as span:
            span.set_attribute("job.id", job.job_execution_id)
            span.set_attribute("job.name", job.name)
            span.add_event("sending email")
            span.set_attribute("job.status", "completed")
    return time.perf_counter() - started


async def run(quick: bool) -> Section:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from detector.observability import ObservabilityPlugin

    class DropExporter(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    n = 5_000 if quick else 20_000
    rounds = 3 if quick else 7
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    tracer = provider.get_tracer("bench")
    directory = Path(tempfile.mkdtemp(prefix="bench-plugin-cost-"))
    plugin = ObservabilityPlugin(f"sqlite:///{directory / 'bench.db'}", handle_sigterm=False)
    off = Plugin()
    times: dict[str, list[float]] = {"off": [], "on": [], "span": []}
    for _ in range(rounds):
        jobs, results, logs = _fixtures(n)
        times["off"].append(await _plugin_round(off, jobs, results, logs))
        times["on"].append(await _plugin_round(plugin, jobs, results, logs))
        times["span"].append(await _span_round(tracer, jobs))
    plugin.force_flush(60)
    stats = plugin.stats()
    plugin.shutdown_sync()
    provider.shutdown()

    med = {k: statistics.median(v) for k, v in times.items()}
    per_job_us = {k: med[k] / n * 1e6 for k in med}
    ours = per_job_us["on"] - per_job_us["off"]
    span = per_job_us["span"]
    body = "\n".join(
        [
            f"{n:,} jobs per round, {rounds} rounds, median round; each job = on_job_start + "
            "one log line + on_job_end. The plugin's writer thread was writing to SQLite "
            "during the rounds.",
            "",
            "| subject | µs per job |",
            "|---|---|",
            f"| hooks called, plugin off (base `Plugin`) | {per_job_us['off']:.2f} |",
            f"| ObservabilityPlugin on, buffered (total) | {per_job_us['on']:.2f} |",
            f"| **ObservabilityPlugin cost (on - off)** | **{ours:.2f}** |",
            f"| OpenTelemetry SDK span + BatchSpanProcessor (no-op exporter) | {span:.2f} |",
            "",
            f"Ratio ours / span: {ours / span:.2f}. Records written: "
            f"{sum(stats['written'].values()):,}, dropped: {stats['dropped_total']}, "
            f"rows coalesced: {stats['coalesced']:,}.",
        ]
    )
    target = Target(
        "plugin cost per job ≤ one OTel span",
        "≤ 1.00x span",
        f"{ours:.2f} µs vs {span:.2f} µs ({ours / span:.2f}x)",
        ours <= span,
    )
    return Section("plugin_cost", TITLE, body, [target])
