"""Hostile requests: what a refused attack and the largest allowed response cost.

Serves the demo's data (the audit's ~845 log lines) with default limits under uvicorn,
on SQLite and on PostgreSQL, and times over loopback HTTP, as an anonymous `viewer`:

- pattern attacks (issue 14): `^(.|.){0,60}X` as `_regex` over every log line (answered,
  on RE2 for SQLite), and a back-reference `_regex` (refused on SQLite by name, run by
  PostgreSQL's engine); for scale, what Python's backtracking `re` (the engine before
  RE2) takes on one log line at the audit's bound and two steps below it;
- the audit's amplification query (4 aliases x 11 levels, 454 MB unbounded), refused by
  the response budget;
- the largest allowed response: aliases of `job_logs { … invocation { … } }` adding up to
  just under the default budget (`EVENT_DETECTOR_MAX_RESPONSE_NODES`), with its size and
  the peak of the memory allocated while it is answered.

No SPEC §6 target: the figures bound what one request can cost.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx

from bench.report import Section
from service.graphql.config import EngineConfig
from service.operations.demo import populate_demo
from service.settings import Settings
from tests.support import db
from tests.support.pgserver import running_postgres
from tests.support.server import serving

TITLE = "Hostile requests: refused patterns and amplification, the largest allowed response"
KEY = "hostile"
BUDGET = EngineConfig.max_response_nodes or 0
LOG_FIELDS = "id level message created_at seq"


def _amplifier() -> str:
    inner = "id"
    for level in range(10, 0, -1):
        inner = f"id {'invocation' if level % 2 else 'logs'} {{ {inner} }}"
    return "{ " + " ".join(f"a{n}: job_logs {{ {inner} }}" for n in range(4)) + " }"


def _largest(log_lines: int) -> str:
    """Aliases of one shape whose rows add up to just under the budget."""
    per_alias = 2 * log_lines  # each log line and its invocation
    aliases = max(1, BUDGET // per_alias)
    return (
        "{ "
        + " ".join(
            f"a{n}: job_logs {{ {LOG_FIELDS} invocation {{ id status }} }}" for n in range(aliases)
        )
        + " }"
    )


def _time(client: httpx.Client, query: str, runs: int) -> tuple[list[float], httpx.Response]:
    samples: list[float] = []
    answer: httpx.Response | None = None
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.post("/v1/graphql", json={"query": query})
        samples.append((time.perf_counter() - started) * 1000)
    assert answer is not None
    return samples, answer


def _peak_mb(client: httpx.Client, query: str) -> float:
    """Peak Python memory allocated while one request is answered (server and client
    share the process; traced, so this request runs slower than the timed ones)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        client.post("/v1/graphql", json={"query": query})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - base) / 2**20


def _outcome(answer: httpx.Response) -> str:
    body = answer.json()
    if "errors" in body:
        return f"refused ({body['errors'][0]['extensions']['code']})"
    return "answered"


def _backtracking_ms(message: str, bound: int) -> float:
    """Best of 3: Python's `re` searching `message` for `^(.|.){0,bound}X`."""
    pattern = re.compile(f"^(.|.){{0,{bound}}}X")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        pattern.search(message)
        best = min(best, (time.perf_counter() - started) * 1000)
    return best


def _measure(url: str, runs: int) -> tuple[list[str], int]:
    populate_demo(url)
    settings = Settings(
        database_url=url, admin_secret="bench", unauthorized_role="viewer", rollup_interval=0
    )
    rows: list[str] = []
    with serving(settings) as server, httpx.Client(base_url=server.base_url, timeout=120) as client:
        backend = server.app.state.database.dialect
        log_lines = len(server.post("{ job_logs { id } }")["data"]["job_logs"])
        cases: list[tuple[str, str, int]] = [
            ("cheap query (1 invocation)", "{ invocations(limit: 1) { id } }", runs),
            (
                "_regex `^(.|.){0,60}X` over every log line",
                '{ job_logs(where: {message: {_regex: "^(.|.){0,60}X"}}) { id } }',
                runs,
            ),
            (
                "_regex with a back-reference `(a)\\1`",
                '{ job_logs(where: {message: {_regex: "(a)\\\\1"}}) { id } }',
                runs,
            ),
            ("amplification: 4 aliases x 11 levels", _amplifier(), max(3, runs // 5)),
        ]
        for name, query, count in cases:
            samples, answer = _time(client, query, count)
            rows.append(_row(backend, name, _outcome(answer), samples, answer))
        largest = _largest(log_lines)
        samples, answer = _time(client, largest, max(3, runs // 5))
        name = f"largest allowed response (just under {BUDGET:,} rows)"
        peak = f"{_peak_mb(client, largest):.0f} MB"
        rows.append(_row(backend, name, _outcome(answer), samples, answer, peak))
    return rows, log_lines


def _row(
    backend: str,
    name: str,
    outcome: str,
    samples: list[float],
    answer: httpx.Response,
    memory: str = "",
) -> str:
    return (
        f"| {backend} | {name} | {outcome} | {statistics.median(samples):.1f} | "
        f"{max(samples):.1f} | {len(answer.content):,} | {memory} |"
    )


def run(quick: bool) -> Section:
    """Entry point of the bench harness (`python -m bench hostile`)."""
    runs = 5 if quick else 20
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as directory:
        rows, log_lines = _measure(f"sqlite:///{Path(directory) / 'hostile.db'}", runs)
        lines += rows
    with running_postgres() as server:
        url = db.run(db.create_postgres_database(server.url()))
        db.run(db.prepare_database(url))
        rows, _ = _measure(url, runs)
        lines += rows
    message = "job 42 reserved 3 items for order ord_10482 and notified the warehouse"
    backtracking = _backtracking_times(message)
    body = "\n".join(
        [
            f"The demo's data ({log_lines:,} log lines), default limits, requests one at a time "
            f"as the anonymous `viewer` over loopback HTTP; median and max of {runs} requests "
            "(amplification and largest response: fewer). Peak memory: Python allocations at "
            "their peak while the largest response is built, encoded, sent and decoded "
            "(server and client share the process, so both sides count).",
            "",
            "| backend | request | outcome | p50 ms | max ms | response bytes | peak memory |",
            "|---|---|---|---|---|---|---|",
            *lines,
            "",
            "Before RE2, SQLite ran patterns on Python's backtracking `re`, holding the GIL "
            f"(so every other client waited): one {len(message)}-character log line against "
            "`^(.|.){0,N}X` took " + ", ".join(backtracking) + " (x4 per +2 in the bound; the "
            "audit's {0,26} took about 4 s a row).",
        ]
    )
    return Section(key=KEY, title=TITLE, body=body)


def _backtracking_times(message: str) -> list[str]:
    times: list[str] = []
    for bound in (16, 18, 20):
        times.append(f"{_backtracking_ms(message, bound):,.0f} ms at N={bound}")
    return times
