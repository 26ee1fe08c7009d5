"""The cost curve: dashboard and invocation list as the store grows to 1M invocations.

One PostgreSQL store grows in steps: 100,000 invocations, then 300,000, then 1,000,000
(10,000,000 job executions), filled with `generate_series` (the statements of
`graphql_latency`). The store grows the way one does in use: the same daily volume
(100,000 invocations a month, ~3,300 a day) over a longer history (30, 90 and 300
days), so the console's 24-hour window holds the same rows at every size and what
grows is everything around it (indexes, tables, the cache they compete for). At each
size the service (one uvicorn process) answers the console's dashboard and invocation
list, one request at a time over loopback HTTP.

Targets (issue 17): at 1M invocations dashboard and list p95 ≤ 50 ms, and p95 at 1M ≤
1.5x p95 at 100k. Quick mode grows 10,000 → 30,000 (no target judged); `make bench-quick`
and `make test` never fill the 1M store.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

from bench._service_process import start_service
from bench.graphql_latency import DAYS, _time, fill, operations_for, sample_ids
from bench.report import Section, Target, percentile
from tests.support import db
from tests.support.pgserver import running_postgres

TITLE = "Cost curve: dashboard and invocation list at 100k, 300k and 1M invocations (PostgreSQL)"
KEY = "cost_curve"
PER_DAY = 100_000 / DAYS
SIZES = (100_000, 300_000, 1_000_000)
QUICK_SIZES = (10_000, 30_000)
TIMED = (
    "OverviewDashboard (last 24 h)",
    "InvocationsList (page 1 of 50, 24 h filters)",
    "InvocationsList (page 20 of 50, 24 h filters)",
)
"""The operations with targets (the detail page is timed for context)."""


async def run(quick: bool) -> Section:
    sizes = QUICK_SIZES if quick else SIZES
    runs = 50 if quick else 200
    random.seed(11)
    steps: list[dict[str, Any]] = []
    with running_postgres() as server:
        url = await db.create_postgres_database(server.url())
        await db.prepare_database(url)
        filled = 0
        for size in sizes:
            started = time.perf_counter()
            counts = await fill(url, filled + 1, size, PER_DAY)
            seconds = time.perf_counter() - started
            filled = size
            print(f"   {size:,} invocations: filled in {seconds:.0f} s", flush=True)
            operations = operations_for(datetime.now(UTC), await sample_ids(url))
            process, base = start_service(url, {"EVENT_DETECTOR_ROLLUP_INTERVAL": "0"})
            try:
                [timings] = await _time([base], operations, runs)
            finally:
                process.terminate()
                process.wait(timeout=30)
            steps.append({"size": size, "counts": counts, "fill": seconds, "timings": timings})
    names = list(steps[0]["timings"])
    header = "| operation | " + " | ".join(f"{s['size']:,} p50 / p95 ms" for s in steps)
    lines = [
        "Store sizes (after each step): "
        + "; ".join(
            f"{s['counts']['invocations']:,} invocations, {s['counts']['event_executions']:,} "
            f"event executions, {s['counts']['job_executions']:,} job executions "
            f"(added in {s['fill']:.0f} s)"
            for s in steps
        )
        + f". {runs} timed requests per operation and size after 10 warm-up requests.",
        "",
        header + " | p95 growth, largest / smallest |",
        "|---|" + "---|" * len(steps) + "---|",
    ]
    targets: list[Target] = []
    for name in names:
        figures = [
            (percentile(s["timings"][name], 50), percentile(s["timings"][name], 95)) for s in steps
        ]
        growth = figures[-1][1] / figures[0][1]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{p50:.1f} / {p95:.1f}" for p50, p95 in figures)
            + f" | {growth:.2f}x |"
        )
        if name not in TIMED:
            continue
        largest = steps[-1]["size"]
        p95 = figures[-1][1]
        targets.append(
            Target(
                f"{name} at {largest:,} invocations: p95",
                "≤ 50 ms",
                f"{p95:.1f} ms",
                None if quick else p95 <= 50,
            )
        )
        targets.append(
            Target(
                f"{name}: p95 at {largest:,} / p95 at {steps[0]['size']:,}",
                "≤ 1.5x",
                f"{growth:.2f}x ({figures[0][1]:.1f} → {p95:.1f} ms)",
                None if quick else growth <= 1.5,
            )
        )
    lines += [
        "",
        "Each step keeps the daily volume and lengthens the history (30, 90, 300 days), so the "
        "24-hour window the console asks for holds the same rows at every size; a store that "
        "grew ten times denser instead would return ten times the rows from the same window.",
    ]
    return Section(key=KEY, title=TITLE, body="\n".join(lines), targets=targets, quick=quick)
