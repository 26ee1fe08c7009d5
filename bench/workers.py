"""Throughput with one and with two worker processes (`serve --workers N`), PostgreSQL.

The service runs as `event-detector serve --workers N` on a store of 20,000 invocations;
`wrk` (a C load generator, so the client takes little of the machine's two cores) keeps
8 requests in flight for a fixed time, each a console operation with its own variables
(the invocation detail of a random invocation; the first page of the invocation list
with 24-hour filters). Every answer is checked for GraphQL errors.

Target (issue 17): with two workers on this 2-core machine, requests per second at
concurrency 8 ≥ 1.6x one worker's.
"""

from __future__ import annotations

import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench._service_process import ROOT, wait_for_health
from bench.graphql_latency import DAYS, fill, operations_for, sample_ids
from bench.report import Section, Target
from tests.graphql_helpers import with_typename
from tests.support import db
from tests.support.pgserver import free_port, running_postgres

TITLE = "Throughput: one and two worker processes at concurrency 8 (PostgreSQL)"
KEY = "workers"
INVOCATIONS = 20_000
CONCURRENCY = 8
OPERATIONS = {
    "InvocationDetail (random invocation)": "by-pk nested",
    "InvocationsList (page 1 of 50, 24 h filters)": "filtered list",
}

# Random bodies per request; errors counted over every thread (wrk's Lua states are per thread).
WRK_SCRIPT = """
bodies = {BODIES}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
errors = 0
threads = {}
function setup(thread) table.insert(threads, thread) end
request = function() return wrk.format(nil, nil, nil, bodies[math.random(#bodies)]) end
response = function(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then errors = errors + 1 end
end
done = function(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("errors") end
  io.write(string.format("graphql-errors: %d\\n", total))
end
"""


def _lua_bodies(bodies: list[bytes]) -> str:
    return "{" + ",".join(f"[==[{body.decode()}]==]" for body in bodies) + "}"


def _serve(url: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--db",
            url,
            "--no-migrate",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ],
        env={**os.environ, "EVENT_DETECTOR_ROLLUP_INTERVAL": "0"},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(process, base, timeout=120)
    except RuntimeError:
        process.terminate()
        raise
    return process, base


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, float]]:
    """Every process: pid → (parent pid, command name, CPU seconds used so far by it and
    by its children that exited: PostgreSQL's backends come and go as the service's pool
    opens and closes its overflow connections, and a backend's time stays counted in its
    postmaster's once it is gone)."""
    table: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        # After the name: state, ppid, …; utime, stime, cutime and cstime are fields 14
        # to 17 of stat.
        table[int(entry.name)] = (
            int(fields[1]),
            name,
            sum(int(value) for value in fields[11:15]) / CLOCK_TICKS,
        )
    return table


def _cpu_split(service_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the service (its process and every descendant) and by
    PostgreSQL (every process named `postgres`: the bench's server is the only one)."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    service, stack = 0.0, [service_pid]
    while stack:
        pid = stack.pop()
        if pid in table:
            service += table[pid][2]
        stack.extend(children.get(pid, ()))
    postgres = sum(cpu for _, name, cpu in table.values() if name == "postgres")
    return {"service": service, "postgres": postgres}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk(base: str, script: Path, seconds: float) -> tuple[float, int, int]:
    """Requests per second, requests made and answers that were errors."""
    finished = subprocess.run(
        [
            shutil.which("wrk") or "wrk",
            "-t2",
            f"-c{CONCURRENCY}",
            f"-d{seconds:.0f}s",
            "-s",
            str(script),
            f"{base}/v1/graphql",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    output = finished.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    made = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = int(re.search(r"graphql-errors: (\d+)", output).group(1))  # type: ignore[union-attr]
    return rate, made, errors


def _measure(
    url: str,
    workers: int,
    operations: dict[str, Any],
    scripts: dict[str, Path],
    seconds: float,
    loads: list[float],
    cpu: dict[tuple[str, int], dict[str, float]],
) -> dict[tuple[str, int], tuple[float, int, int]]:
    """wrk's figures for each operation against `serve --workers <workers>`; the CPU
    seconds the service, PostgreSQL and wrk used during each timed run go to `cpu`."""
    results: dict[tuple[str, int], tuple[float, int, int]] = {}
    process, base = _serve(url, workers)
    try:
        for name in OPERATIONS:
            # Every answer must be data: one checked here, all counted by wrk.
            query, variables = operations[name]
            answer = httpx.post(
                f"{base}/v1/graphql",
                json={"query": with_typename(query), "variables": variables()},
                timeout=60,
            ).json()
            assert "errors" not in answer, answer
            _wrk(base, scripts[name], 3)  # warm-up: every worker's caches
            loads.append(os.getloadavg()[0])
            before, wrk_before = _cpu_split(process.pid), _children_cpu()
            results[(name, workers)] = _wrk(base, scripts[name], seconds)
            after, wrk_after = _cpu_split(process.pid), _children_cpu()
            cpu[(name, workers)] = {
                **{part: after[part] - before[part] for part in after},
                "wrk": wrk_after - wrk_before,
            }
            time.sleep(1)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return results


async def run(quick: bool) -> Section:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk not found: run scripts/ensure-system-deps (make bench does)")
    seconds = 5.0 if quick else 20.0
    random.seed(5)
    results: dict[tuple[str, int], tuple[float, int, int]] = {}
    loads: list[float] = []
    cpu: dict[tuple[str, int], dict[str, float]] = {}
    with running_postgres() as server, tempfile.TemporaryDirectory() as scratch:
        url = await db.create_postgres_database(server.url())
        await db.prepare_database(url)
        await fill(url, 1, INVOCATIONS, INVOCATIONS / DAYS)
        operations = operations_for(datetime.now(UTC), await sample_ids(url))
        scripts: dict[str, Path] = {}
        for name in OPERATIONS:
            query, variables = operations[name]
            document = with_typename(query)
            bodies = [
                orjson.dumps({"query": document, "variables": variables()}) for _ in range(200)
            ]
            scripts[name] = Path(scratch) / f"{len(scripts)}.lua"
            scripts[name].write_text(WRK_SCRIPT.replace("{BODIES}", _lua_bodies(bodies)))
        for workers in (1, 2):
            results.update(_measure(url, workers, operations, scripts, seconds, loads, cpu))
    lines = [
        f"Store: {INVOCATIONS:,} invocations over {DAYS} days. Service: `event-detector serve "
        f"--workers N` (uvicorn workers) on PostgreSQL 15, over loopback; load: wrk, 2 threads, "
        f"{CONCURRENCY} connections, {seconds:.0f} s per operation after 3 s of warm-up, each "
        "request a random one of 200 prepared bodies. The machine has 2 cores, shared by the "
        "workers, PostgreSQL and wrk (and other work: 1-minute load average "
        f"{min(loads):.1f} to {max(loads):.1f} at the starts of the timed runs).",
        "",
        "| operation | 1 worker req/s | 2 workers req/s | ratio | requests | errors |",
        "|---|---|---|---|---|---|",
    ]
    targets: list[Target] = []
    cpu_lines = [
        "",
        "Where the two cores went during each timed run (CPU time from /proc and wrk's "
        "rusage, per request), and what that allows: with one worker's cost per request, "
        "two fully busy cores serve at most 2 s / (CPU per request) a second.",
        "",
        "| operation | workers | service ms | PostgreSQL ms | wrk ms | cores busy | "
        "ceiling on 2 cores, vs 1 worker |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in OPERATIONS:
        for workers in (1, 2):
            rate, made, _ = results[(name, workers)]
            parts = cpu[(name, workers)]
            per_request = {part: used / made * 1000 for part, used in parts.items()}
            busy = sum(parts.values()) / seconds
            ceiling = ""
            if workers == 1:
                most = 2000 / sum(per_request.values())
                ceiling = f"{most:,.0f} req/s ({most / rate:.2f}x)"
            cpu_lines.append(
                f"| {name} | {workers} | {per_request['service']:.2f} | "
                f"{per_request['postgres']:.2f} | {per_request['wrk']:.2f} | {busy:.2f} | "
                f"{ceiling} |"
            )
    for name, label in OPERATIONS.items():
        one, two = results[(name, 1)], results[(name, 2)]
        ratio = two[0] / one[0]
        lines.append(
            f"| {name} | {one[0]:,.0f} | {two[0]:,.0f} | {ratio:.2f}x | "
            f"{one[1]:,} + {two[1]:,} | {one[2] + two[2]} |"
        )
        targets.append(
            Target(
                f"{label}: requests/s with 2 workers vs 1 (concurrency {CONCURRENCY})",
                "≥ 1.6x",
                f"{two[0]:,.0f} vs {one[0]:,.0f} req/s ({ratio:.2f}x), {one[2] + two[2]} errors",
                None if quick else ratio >= 1.6 and one[2] + two[2] == 0,
            )
        )
    lines += cpu_lines
    return Section(key=KEY, title=TITLE, body="\n".join(lines), targets=targets, quick=quick)
