"""What the library itself costs: per invocation, per job, per plugin hook, per captured line."""

from __future__ import annotations

import statistics
import time
from typing import Any

from detector import CapturedLog, EventModule, Plugin, job, listen_to
from detector import run as run_jobs

from .report import Section

TITLE = "Library overhead (no observability plugin)"

PAYLOAD = {
    "id": "5c2d4f4e-9a5b-4bb0-9d35-1b1c7c0e2a10",
    "trigger": {"name": "orders_events"},
    "table": {"schema": "public", "name": "orders"},
    "event": {
        "op": "UPDATE",
        "session_variables": {"x-hasura-role": "user"},
        "data": {"old": {"id": 1, "status": "packed"}, "new": {"id": 1, "status": "shipped"}},
    },
}


class EveryHook(Plugin):
    """Implements every hook with nothing inside: the dispatch cost alone."""

    async def on_invocation_start(self, invocation: Any) -> None:
        pass

    async def on_detection_start(self, event: Any) -> None:
        pass

    async def on_detection_end(
        self, event: Any, detected: Any, duration_ms: Any, error: Any
    ) -> None:
        pass

    async def on_handler_start(self, event: Any) -> None:
        pass

    async def on_handler_end(self, event: Any, jobs: Any, duration_ms: Any, error: Any) -> None:
        pass

    async def on_job_start(self, job: Any) -> None:
        pass

    async def on_job_end(self, job: Any, result: Any) -> None:
        pass

    def on_log(self, record: CapturedLog) -> None:
        pass

    async def on_invocation_end(self, invocation: Any, result: Any) -> None:
        pass

    async def flush(self) -> None:
        pass


async def noop(event_name: str, event: Any, options: dict[str, Any]) -> None:
    return None


def sync_noop(event_name: str, event: Any, options: dict[str, Any]) -> None:
    return None


async def logs_ten(event_name: str, event: Any, options: dict[str, Any]) -> None:
    for number in range(10):
        options["logger"].info("line %d", number)


def modules(fn: Any, jobs: int) -> list[EventModule]:
    async def detector(event_name: str, event: Any) -> bool:
        return True

    async def handler(event_name: str, event: Any) -> Any:
        return await run_jobs(event_name, event, [job(fn) for _ in range(jobs)])

    return [EventModule("orders.shipped", detector, handler)]


async def per_invocation_us(fn: Any, jobs: int, plugins: list[Plugin], rounds: int) -> float:
    chosen = modules(fn, jobs)
    for _ in range(20):  # warm up
        await listen_to(PAYLOAD, modules=chosen, plugins=plugins)
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            await listen_to(PAYLOAD, modules=chosen, plugins=plugins)
        samples.append((time.perf_counter() - started) / rounds * 1e6)
    return statistics.median(samples)


async def run_bench(quick: bool) -> Section:
    rounds = 50 if quick else 300
    empty = await per_invocation_us(noop, 0, [], rounds)
    ten_async = await per_invocation_us(noop, 10, [], rounds)
    ten_sync = await per_invocation_us(sync_noop, 10, [], rounds)
    hooked = await per_invocation_us(noop, 10, [EveryHook()], rounds)
    logging_off = await per_invocation_us(logs_ten, 1, [], rounds)
    logging_on = await per_invocation_us(logs_ten, 1, [EveryHook()], rounds)
    per_async_job = (ten_async - empty) / 10
    per_sync_job = (ten_sync - empty) / 10
    per_hooked_job = (hooked - ten_async) / 10
    per_line = (logging_on - logging_off) / 10
    body = f"""
One event (async detector and handler), jobs that do nothing, median of 5 x {rounds}
invocations through `listen_to`, `plugins=[]` unless noted.

| measurement | µs |
|---|---|
| invocation with a detected event and no jobs | {empty:.0f} |
| per async job (10 jobs) | {per_async_job:.1f} |
| per sync job (10 jobs, worker-thread hop) | {per_sync_job:.1f} |
| per job, extra for a plugin implementing every hook | {per_hooked_job:.1f} |
| per captured log line delivered to a plain `on_log` | {per_line:.1f} |
"""
    return Section(key="library", title=TITLE, body=body)


def run(quick: bool) -> Any:
    """Entry point of the bench harness (`python -m bench library`)."""
    return run_bench(quick)
