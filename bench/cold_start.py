"""Cold start of a function that records its work: the plugin per writer vs OpenTelemetry.

A serverless function pays its cold start on every new instance, and its memory is
billed. Each subject runs in fresh processes (`bench/_cold_start_child.py`), rounds
interleaved so that the machine's load falls on all alike:

- the library alone (`import detector`, one invocation, no plugin);
- the library and `ObservabilityPlugin(serverless=True)`, for each writer: SQLite (a
  migrated file), PostgreSQL (the local test server, migrated) and GraphQL (this project's
  service on loopback);
- the library and the OpenTelemetry SDK: `TracerProvider` + `BatchSpanProcessor` + the
  OTLP/HTTP span exporter, posting to a local receiver, with `detector.otel`'s plugin
  flushing at the end of each invocation.

Set-up = imports and construction (everything before the first event, the library's own
import included for every subject); first invocation = one `listen_to_sync` (a detected
event, two jobs that each log a line) recorded and flushed. Bytecode is compiled before
the timed rounds, as an installed wheel has it. Targets (issue 19): set-up ≤ 1.0x the
OpenTelemetry set-up, and RSS after set-up ≤ OpenTelemetry's + 10 MB, for every writer.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .report import Section, Target

TITLE = "Cold start: the plugin per writer vs the OpenTelemetry SDK (fresh processes)"
CHILD = Path(__file__).with_name("_cold_start_child.py")
# What must never load with the plugin (issue 19).
FORBIDDEN = {"sqlalchemy", "sqlmodel", "alembic", "pydantic"}
RSS_ALLOWANCE_MB = 10.0


class _OTLPReceiver(BaseHTTPRequestHandler):
    """Takes OTLP/HTTP exports and answers 200 (an empty ExportTraceServiceResponse)."""

    exports = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).exports += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _run_child(subject: str, config: dict[str, Any], cwd: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, str(CHILD), subject, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(f"{subject} failed: {finished.stderr[-2000:]}")
    outcome = json.loads(finished.stdout.strip().splitlines()[-1])
    outcome["process_ms"] = wall * 1000
    return outcome


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


async def run(quick: bool) -> Section:
    from detector.observability.migrate import upgrade, upgrade_async
    from tests.support.db import create_postgres_database
    from tests.support.pgserver import free_port, running_postgres

    from ._service_process import start_service

    rounds = 3 if quick else 9
    work = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    sqlite_url = f"sqlite:///{work / 'plugin.db'}"
    upgrade(sqlite_url)
    service_url = f"sqlite:///{work / 'service.db'}"
    upgrade(service_url)
    receiver = ThreadingHTTPServer(("127.0.0.1", free_port()), _OTLPReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}/v1/traces"
    with running_postgres() as server:
        pg_url = await create_postgres_database(server.url())
        await upgrade_async(pg_url)
        service, base = start_service(service_url, {})
        try:
            subjects: dict[str, tuple[str, dict[str, Any]]] = {
                "library alone": ("library", {}),
                "OpenTelemetry SDK + BatchSpanProcessor + OTLP/HTTP": (
                    "otel",
                    {"endpoint": endpoint},
                ),
                "plugin, SQLite writer": ("plugin", {"database_url": sqlite_url}),
                "plugin, PostgreSQL writer": ("plugin", {"database_url": pg_url}),
                "plugin, GraphQL writer": ("plugin", {"graphql_url": f"{base}/v1/graphql"}),
            }
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in subjects}
            for round_number in range(rounds + 1):  # round 0 compiles bytecode: not kept
                for name, (subject, config) in subjects.items():
                    outcome = await asyncio.to_thread(_run_child, subject, config, work)
                    if round_number:
                        runs[name].append(outcome)
        finally:
            service.terminate()
            service.wait(10)
    receiver.shutdown()
    assert _OTLPReceiver.exports >= rounds, "the OTLP exporter never exported"

    otel_name = "OpenTelemetry SDK + BatchSpanProcessor + OTLP/HTTP"
    otel_setup = _median(runs[otel_name], "setup_ms")
    otel_rss = _median(runs[otel_name], "setup_rss_mb")
    library = runs["library alone"]
    rows = []
    for name, outcomes in runs.items():
        loaded = sorted(set().union(*(set(o["first_loaded"]) for o in outcomes)))
        rows.append(
            f"| {name} | {_median(outcomes, 'setup_ms'):.0f} | "
            f"{_median(outcomes, 'setup_ms') - _median(library, 'setup_ms'):+.0f} | "
            f"{_median(outcomes, 'setup_rss_mb'):.1f} | "
            f"{_median(outcomes, 'first_ms'):.1f} | {_median(outcomes, 'first_rss_mb'):.1f} | "
            f"{_median(outcomes, 'process_ms'):.0f} | {', '.join(loaded) or '-'} |"
        )
    targets = []
    for name, outcomes in runs.items():
        if not name.startswith("plugin"):
            continue
        setup = _median(outcomes, "setup_ms")
        rss = _median(outcomes, "setup_rss_mb")
        heavy = FORBIDDEN.intersection(*(set(o["first_loaded"]) for o in outcomes))
        targets.append(
            Target(
                f"{name}: import + construction",
                "≤ 1.00x OpenTelemetry set-up",
                f"{setup:.0f} ms vs {otel_setup:.0f} ms ({setup / otel_setup:.2f}x)",
                setup <= otel_setup,
            )
        )
        targets.append(
            Target(
                f"{name}: RSS after set-up",
                f"≤ OpenTelemetry + {RSS_ALLOWANCE_MB:.0f} MB",
                f"{rss:.1f} MB vs {otel_rss:.1f} MB ({rss - otel_rss:+.1f} MB)"
                + (f"; loaded {sorted(heavy)}" if heavy else ""),
                rss <= otel_rss + RSS_ALLOWANCE_MB and not heavy,
            )
        )
    body = "\n".join(
        [
            f"Medians of {rounds} fresh processes per subject, rounds interleaved. Times "
            "from the top of the child script (the interpreter's own start, the same for "
            "all, is in the process column); RSS from /proc after each phase. First "
            "invocation: one `listen_to_sync` (a detected event, two jobs, two log lines) "
            "recorded and flushed before it returns (`serverless=True`; OpenTelemetry: its "
            "plugin's `flush_on_end`, an OTLP/HTTP export to a local receiver). Stores: a "
            "migrated SQLite file, the local test PostgreSQL (migrated), this project's "
            "service over loopback for GraphQL.",
            "",
            "| subject | set-up ms | vs library alone | RSS after set-up MB | first invocation "
            "ms | RSS after it MB | process wall ms | heavy modules loaded by the end |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Heavy modules watched: SQLAlchemy, SQLModel, alembic, pydantic (never with the "
            "plugin), and each writer's own driver (asyncpg, httpx) or protobuf (`google`), "
            "loaded by the first flush, not at set-up. A fresh SQLite file still loads "
            "alembic and SQLAlchemy once, to create its schema.",
        ]
    )
    return Section("cold_start", TITLE, body, targets)
