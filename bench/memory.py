"""Memory under sustained load: does resident memory stay flat?

Two long-running processes, each sampled once a second (`VmRSS` from /proc):

- **the service**: `event-detector serve` on PostgreSQL with the webhook mounted, taking
  a steady mix of GraphQL requests (the dashboard's and the invocation list's queries)
  and Hasura deliveries (the example payloads, each running its jobs and recorded by the
  webhook's observability plugin);
- **the plugin**: a host process calling `listen_to` in a loop (three jobs that log,
  per invocation) with `ObservabilityPlugin` writing to PostgreSQL, at a rate its writer
  keeps up with; and, side by side, the same host without the plugin (the baseline).

PostgreSQL rather than SQLite: SQLite's page cache lives in the process and fills as the
file grows (bounded, but it would read as growth in a run of minutes).

Flat, the criterion: after the first third of the run (warm-up: caches, pools, the
allocator's arenas), the median RSS of the last third exceeds the median of the middle
third by at most 2 MB. A leak keeps growing from one third to the next; a warmed-up
process does not. Also reported: start (after warm-up), end, peak and the fitted slope.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ._service_process import wait_for_health
from .report import Section, Target

TITLE = "Memory: service and plugin RSS under sustained load"
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FLAT_MB = 2.0


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class Trace:
    """RSS samples (seconds since start, MB) of one process, and what it did meanwhile."""

    samples: list[tuple[float, float]]
    work: int  # requests answered, or invocations recorded

    def thirds(self) -> tuple[list[float], list[float], list[float]]:
        values = [mb for _, mb in self.samples]
        third = max(1, len(values) // 3)
        return values[:third], values[third : 2 * third], values[2 * third :]

    @property
    def start(self) -> float:
        return statistics.median(self.thirds()[1][:3])

    @property
    def end(self) -> float:
        return statistics.median(mb for _, mb in self.samples[-3:])

    @property
    def peak(self) -> float:
        return max(mb for _, mb in self.samples)

    @property
    def growth(self) -> float:
        """Median of the last third minus median of the middle third, MB."""
        _, middle, last = self.thirds()
        return statistics.median(last) - statistics.median(middle)

    @property
    def slope(self) -> float:
        """Least-squares MB per minute over the samples after the first third."""
        points = self.samples[len(self.samples) // 3 :]
        if len(points) < 2:
            return 0.0
        ts = [t for t, _ in points]
        ms = [m for _, m in points]
        mean_t, mean_m = statistics.fmean(ts), statistics.fmean(ms)
        den = sum((t - mean_t) ** 2 for t in ts) or 1.0
        return sum((t - mean_t) * (m - mean_m) for t, m in points) / den * 60

    @property
    def flat(self) -> bool:
        return self.growth <= FLAT_MB

    def row(self, name: str, unit: str) -> str:
        seconds = self.samples[-1][0] if self.samples else 0
        return (
            f"| {name} | {seconds:.0f} s | {self.work:,} {unit} | {self.start:.1f} | "
            f"{self.end:.1f} | {self.peak:.1f} | {self.growth:+.1f} | {self.slope:+.2f} | "
            f"{'yes' if self.flat else 'no'} |"
        )


# -- the service ------------------------------------------------------------------------

DASHBOARD = """query ($since: timestamptz!) {
  invocations(where: {created_at: {_gte: $since}}, order_by: {created_at: desc}, limit: 50) {
    id created_at source_function status total_duration_ms total_jobs_run total_jobs_failed
    event_executions(where: {detected: {_eq: true}}) { id event_name }
  }
  invocations_aggregate(where: {created_at: {_gte: $since}}) {
    aggregate { count avg { total_duration_ms } }
  }
  dashboard_stats(order_by: {hour_bucket: asc}) { hour_bucket total_invocations }
}"""
DELIVERIES = [
    "orders.created.insert.json",
    "orders.shipped.update.json",
    "orders.cancelled.update.json",
    "users.signed_up.insert.json",
    "users.email_changed.update.json",
]


async def _load(base: str, seconds: float, pid: int, graphql_rate: float, hook_rate: float):
    payloads = [json.loads((EXAMPLES / "payloads" / name).read_text()) for name in DELIVERIES]
    samples: list[tuple[float, float]] = []
    answered = failed = 0
    started = time.monotonic()

    async def sample() -> None:
        while time.monotonic() - started < seconds:
            samples.append((time.monotonic() - started, rss_mb(pid)))
            await asyncio.sleep(1.0)

    async def steady(rate: float, send: Any) -> None:
        nonlocal answered, failed
        n = 0
        while time.monotonic() - started < seconds:
            n += 1
            try:
                ok = await send(n)
            except httpx.HTTPError:
                ok = False
            answered += ok
            failed += not ok
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def query(n: int) -> bool:
            since = "2000-01-01T00:00:00Z"
            answer = await client.post("/v1/graphql", json={"query": DASHBOARD,
                                                             "variables": {"since": since}})  # fmt: skip
            return answer.status_code == 200 and "errors" not in answer.json()

        async def deliver(n: int) -> bool:
            payload = dict(payloads[n % len(payloads)], id=str(uuid.uuid4()))
            answer = await client.post("/hooks/memory", json=payload)
            return answer.status_code == 200

        await asyncio.gather(
            sample(),
            steady(graphql_rate, query),
            steady(hook_rate, deliver),
        )
    return samples, answered, failed


def _service(url: str, seconds: float) -> tuple[Trace, dict[str, Any]]:
    from tests.support.pgserver import free_port

    port = free_port()
    env = {
        **os.environ,
        "EVENT_DETECTOR_ROLLUP_INTERVAL": "10",
        "EVENT_DETECTOR_WEBHOOK_FUNCTIONS": "memory",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--db", url, "--port", str(port),
         "--events-dir", str(EXAMPLES / "events"), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(process, base)
        samples, answered, failed = asyncio.run(_load(base, seconds, process.pid, 20.0, 10.0))
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        buffered = [
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("event_detector_plugin_buffer_records{")
        ]
        return Trace(samples, answered), {"failed": failed, "buffered_at_end": buffered}
    finally:
        process.terminate()
        process.wait(30)


# -- the plugin in a host process ----------------------------------------------------------

HOST = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from detector import EventModule, job, listen_to, run

    url, seconds, rate, with_plugin = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "on"

    def rss():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    async def work(name, event, options):
        options["logger"].info("order %s", event.new["id"])
        return {"order": event.new["id"], "token": "secret"}

    async def detector(name, event):
        return True

    async def handler(name, event):
        return await run(name, event, [job(work, name=f"job{n}", attempt=n) for n in range(3)])

    async def main():
        plugins = []
        before_plugin = rss()
        if with_plugin:
            from detector.observability import ObservabilityPlugin
            plugins = [ObservabilityPlugin(url, flush_interval=0.5, handle_sigterm=False)]
        plugin_created = rss()
        modules = [EventModule("orders.shipped", detector, handler)]
        samples, n, started = [], 0, time.monotonic()
        next_sample = started
        while time.monotonic() - started < seconds:
            n += 1
            payload = {"id": str(n), "table": {"schema": "public", "name": "orders"},
                       "trigger": {"name": "orders"},
                       "event": {"op": "UPDATE", "data": {"old": {"id": n, "status": "packed"},
                                 "new": {"id": n, "status": "shipped", "note": "x" * 200}}}}
            await listen_to(payload, modules=modules, plugins=plugins)
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - started, rss()))
                next_sample += 1.0
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        stats = plugins[0].stats() if plugins else {}
        if plugins:
            plugins[0].shutdown_sync(30)
        print(json.dumps({"samples": samples, "invocations": n,
                          "dropped": stats.get("dropped_total", 0),
                          "buffered": stats.get("buffered_records", 0),
                          "absorbed": stats.get("absorbed_by_host", 0),
                          "import_mb": plugin_created - before_plugin}))

    asyncio.run(main())
    """
)


def _host(url: str, seconds: float, rate: float, plugin: bool) -> tuple[Trace, dict[str, Any]]:
    finished = subprocess.run(
        [sys.executable, "-c", HOST, url, str(seconds), str(rate), "on" if plugin else "off"],
        cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120, check=False,
    )  # fmt: skip
    if finished.returncode != 0:
        raise RuntimeError(f"the host failed: {finished.stderr[-2000:]}")
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    return Trace([tuple(s) for s in result["samples"]], result["invocations"]), result


def run(quick: bool) -> Section:
    from tests.support import db
    from tests.support.pgserver import running_postgres

    # The host's RSS climbs for ~20 s (pools, statement caches, the allocator's arenas)
    # before it levels off: quick runs are too short to judge, and say so.
    service_seconds = 6.0 if quick else 120.0
    host_seconds = 4.0 if quick else 60.0
    baseline_seconds = 4.0 if quick else 30.0
    rate = 200.0  # invocations/s: 8 rows each, 1,600 rows/s, well within the writer's pace
    with running_postgres() as server:
        service_url = db.run(db.create_postgres_database(server.url()))
        db.run(db.prepare_database(service_url))
        plugin_url = db.run(db.create_postgres_database(server.url()))
        db.run(db.prepare_database(plugin_url))
        service, service_info = _service(service_url, service_seconds)
        host_on, on_info = _host(plugin_url, host_seconds, rate, True)
        host_off, _ = _host(plugin_url, baseline_seconds, rate, False)
    body = "\n".join(
        [
            f"Service: `event-detector serve` on PostgreSQL, 20 GraphQL requests/s (dashboard "
            f"query over every invocation so far) and 10 webhook deliveries/s (example "
            f"payloads, jobs run and recorded) for {service_seconds:.0f} s; "
            f"{service_info['failed']} requests failed; webhook plugin buffer at the end: "
            f"{service_info['buffered_at_end']} records. Plugin: a host calling `listen_to` "
            f"{rate:.0f} times/s (3 jobs that log each: 8 rows per invocation) for "
            f"{host_seconds:.0f} s, recording into PostgreSQL, and the same host without the "
            f"plugin ({baseline_seconds:.0f} s); with it: {on_info['dropped']} records dropped, "
            f"{on_info['buffered']} buffered at the end, host conversions (backpressure) "
            f"{on_info['absorbed']}.",
            "",
            f"Flat: the median RSS of the last third of the run is at most {FLAT_MB:.0f} MB "
            "above the median of the middle third (the first third is warm-up). "
            "Start = after warm-up.",
            "",
            "| process | run | work | start MB | end MB | peak MB | growth MB (last - middle third) "
            "| slope MB/min (after warm-up) | flat |",
            "|---|---|---|---|---|---|---|---|---|",
            service.row("service (GraphQL + webhook)", "requests"),
            host_on.row("host with ObservabilityPlugin", "invocations"),
            host_off.row("host without the plugin (baseline)", "invocations"),
            "",
            f"The plugin's own share at the end: {host_on.end - host_off.end:+.1f} MB over the "
            f"baseline host, of which {on_info['import_mb']:.1f} MB is importing and creating "
            "it (SQLAlchemy models, asyncpg) before anything is recorded."
            + (" Quick mode runs are too short to judge a slow leak." if quick else ""),
        ]
    )
    targets = [
        Target(
            "service RSS flat under sustained load",
            f"growth ≤ {FLAT_MB:.0f} MB",
            f"{service.growth:+.1f} MB ({service.start:.0f} → {service.end:.0f} MB, "
            f"{service.slope:+.2f} MB/min)",
            None if quick else service.flat and service_info["failed"] == 0,
        ),
        Target(
            "plugin RSS flat under sustained recording",
            f"growth ≤ {FLAT_MB:.0f} MB, 0 dropped",
            f"{host_on.growth:+.1f} MB ({host_on.start:.0f} → {host_on.end:.0f} MB, "
            f"{host_on.slope:+.2f} MB/min), {on_info['dropped']} dropped",
            None if quick else host_on.flat and on_info["dropped"] == 0,
        ),
    ]
    return Section("memory", TITLE, body, targets)
