"""One cold start, in this fresh process: `python bench/_cold_start_child.py SUBJECT CONFIG`.

Run by `bench/cold_start.py`; prints one JSON line. Subjects:

- `library`: the library alone (no plugin);
- `plugin`: the library and `ObservabilityPlugin(**CONFIG, serverless=True)`;
- `otel`: the library and the OpenTelemetry SDK: `TracerProvider` + `BatchSpanProcessor`
  + OTLP/HTTP span exporter (to CONFIG's endpoint), with `detector.otel`'s plugin
  flushing at the end of each invocation (its serverless mode).

Phases, timed from the top of this script (the interpreter's own start is the same for
every subject and is reported by the parent): `setup` (imports and construction, what a
function pays before its first event) and `first` (one invocation recorded and flushed).
RSS is read from /proc after each phase.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "pydantic", "asyncpg", "httpx", "google")


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def loaded() -> list[str]:
    return sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))


def main(subject: str, config: dict) -> dict:
    from detector import EventModule, job, listen_to_sync, run

    plugins: list = []
    provider = None
    if subject == "plugin":
        from detector.observability import ObservabilityPlugin

        plugins = [ObservabilityPlugin(**config, serverless=True, handle_sigterm=False)]
    elif subject == "otel":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from detector.otel import OpenTelemetryPlugin

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(**config)))
        plugins = [OpenTelemetryPlugin(tracer_provider=provider, flush_on_end=True)]
    setup = time.perf_counter() - STARTED
    setup_rss, setup_loaded = rss_mb(), loaded()

    def send(name: str, event: object, options: dict) -> dict:
        options["logger"].info("sending")
        return {"sent": True}

    async def handler(name: str, event: object) -> list:
        return await run(name, event, [job(send, name="email"), job(send, name="sms")])

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.library import hasura_payload  # the library only (loaded already)

    modules = [EventModule("orders.shipped", lambda name, event: True, handler)]
    before = time.perf_counter()
    result = listen_to_sync(hasura_payload(), modules=modules, plugins=plugins)
    first = time.perf_counter() - before
    assert result.error is None and all(job.completed for job in result.jobs), result
    outcome = {
        "setup_ms": setup * 1000,
        "setup_rss_mb": setup_rss,
        "setup_loaded": setup_loaded,
        "first_ms": first * 1000,
        "first_rss_mb": rss_mb(),
        "first_loaded": loaded(),
    }
    if subject == "plugin":
        stats = plugins[0].stats()
        written = sum(stats["written"].values())
        assert written >= 5 and stats["buffered_records"] == 0, stats  # flushed, not buffered
        outcome["written"] = written
        plugins[0].shutdown_sync(5)
    if provider is not None:
        provider.shutdown()
    return outcome


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))), flush=True)
