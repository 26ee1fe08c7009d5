"""Several service processes on one PostgreSQL: `serve --workers 2` beside a second replica.

Live queries are answered by whichever process holds the subscription, whatever process
the write went through (each has its own LISTEN); the rollup runs in exactly one of
them at a time, and another takes over when that one dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.db import prepare_database, run
from tests.support.live import subscribed
from tests.support.pgserver import free_port

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[1]
COUNT = "subscription { invocations_aggregate { aggregate { count } } }"
INSERT = """
mutation ($rows: [invocations_insert_input!]!) { insert_invocations(objects: $rows) { affected_rows } }"""
LEADERS = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"""


def _serve(url: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "EVENT_DETECTOR_ROLLUP_INTERVAL": "0.5"}
    command = [sys.executable, "-m", "service.cli", "serve", "--db", url, "--no-migrate"]
    command += ["--port", str(port), "--log-level", "warning", *extra]
    return subprocess.Popen(command, env=environment, cwd=ROOT)


def _wait_healthy(process: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"the service at {base} did not start")


def _ours(pid: int, parents: set[int]) -> bool:
    """Whether `pid` is one of the processes this test started (or their workers)."""
    if pid in parents:
        return True
    status = Path(f"/proc/{pid}/status").read_text()
    parent = next(line for line in status.splitlines() if line.startswith("PPid:"))
    return int(parent.split()[1]) in parents


def test_workers_and_replicas_answer_live_queries_and_run_the_rollup_once(
    postgres_url: str,
) -> None:
    run(prepare_database(postgres_url))
    workers_port, replica_port = free_port(), free_port()
    workers = _serve(postgres_url, workers_port, "--workers", "2")
    replica = _serve(postgres_url, replica_port)
    started = {workers.pid, replica.pid}
    try:
        bases = [f"http://127.0.0.1:{port}" for port in (workers_port, replica_port)]
        _wait_healthy(workers, bases[0])
        _wait_healthy(replica, bases[1])

        async def scenario() -> None:
            sockets = [f"{bases[0]}/v1/graphql".replace("http", "ws", 1)] * 6
            sockets += [f"{bases[1]}/v1/graphql".replace("http", "ws", 1)] * 2
            async with contextlib.AsyncExitStack() as stack:
                subscriptions = [
                    await stack.enter_async_context(subscribed(url, COUNT)) for url in sockets
                ]
                for subscription in subscriptions:
                    first = await subscription.next(60)
                    assert first["invocations_aggregate"]["aggregate"]["count"] == 0
                rows = [{"source_function": "replicas", "status": "completed"}] * 3
                async with httpx.AsyncClient(timeout=30) as client:
                    answer = await client.post(
                        f"{bases[1]}/v1/graphql",
                        json={"query": INSERT, "variables": {"rows": rows}},
                    )
                assert "errors" not in answer.json(), answer.text
                for subscription in subscriptions:
                    await subscription.until(
                        lambda r: r["invocations_aggregate"]["aggregate"]["count"] == 3, 60
                    )

            admin = await asyncpg.connect(postgres_url)
            try:
                leaders: list[str] = []

                async def one_leader() -> bool:
                    leaders[:] = [row[0] for row in await admin.fetch(LEADERS)]
                    return len(leaders) == 1

                await _until(one_leader)
                first_pid = int(leaders[0].rsplit(":", 1)[1])
                assert _ours(first_pid, started)
                os.kill(first_pid, signal.SIGKILL)  # the leader dies; its session ends
                await _until(lambda: _new_leader(admin, leaders, first_pid))
            finally:
                await admin.close()

        asyncio.run(scenario())
    finally:
        for process in (workers, replica):
            process.terminate()
        for process in (workers, replica):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


async def _new_leader(admin: asyncpg.Connection, leaders: list[str], old: int) -> bool:
    leaders[:] = [row[0] for row in await admin.fetch(LEADERS)]
    return len(leaders) == 1 and not leaders[0].endswith(f":{old}")


async def _until(condition: Callable[[], Awaitable[bool]], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)
