"""Reliability: the store goes away and comes back; the buffer fills; the process exits.

The host never sees an exception, every execution record reaches the store once it is
back, and drops happen only as designed and are counted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from detector.observability import ObservabilityPlugin
from detector.observability.buffer import BODY_DROPPED, BoundedBuffer
from detector.status import JobStatus
from tests.support import db
from tests.support.observability import InvocationDriver, rows
from tests.support.pgserver import StoppablePostgres

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def flaky_server() -> Iterator[StoppablePostgres]:
    server = StoppablePostgres()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def flaky_url(flaky_server: StoppablePostgres) -> Iterator[str]:
    flaky_server.start() if not _up(flaky_server) else None
    url = db.run(db.create_postgres_database(flaky_server.url()))
    db.run(db.prepare_database(url))
    yield url
    if not _up(flaky_server):
        flaky_server.start()
    db.run(db.drop_postgres_database(flaky_server.url(), url))


def _up(server: StoppablePostgres) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", server.port), 0.5).close()
        return True
    except OSError:
        return False


async def _one_invocation(plugin: Any, jobs: int = 2) -> InvocationDriver:
    run = InvocationDriver(plugin)
    await run.start()
    event = await run.event("orders.shipped")
    await run.detected(event, True)
    started = [await run.job_start(event, f"job{n}") for n in range(jobs)]
    await run.log("working", event=event)
    await run.handler_end(event, [await run.job_end(j, JobStatus.COMPLETED) for j in started])
    await run.end()
    return run


def _wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


async def test_store_down_at_start_then_mid_run_then_back(
    flaky_server: StoppablePostgres, flaky_url: str
) -> None:
    flaky_server.stop()  # down before the plugin ever connects
    plugin = ObservabilityPlugin(
        flaky_url, flush_interval=0.1, retry_initial_delay=0.05, retry_max_delay=0.3
    )
    try:
        early = [await _one_invocation(plugin) for _ in range(3)]
        assert _wait_until(lambda: plugin.stats()["failed_flushes"] >= 2, 10)
        assert plugin.stats()["last_error"]

        flaky_server.start()
        assert _wait_until(lambda: plugin.stats()["buffered_records"] == 0, 20)

        flaky_server.stop()  # down mid-run, with a connection the writer had open
        middle = [await _one_invocation(plugin) for _ in range(3)]
        assert not plugin.force_flush(0.5)  # nothing can be written now, and no exception

        flaky_server.start()
        assert plugin.force_flush(20)
        stored = {r["id"]: r for r in await rows(flaky_url, "invocations")}
        expected = {run.info.invocation_id for run in early + middle}
        assert set(stored) == expected
        assert all(r["status"] == "completed" for r in stored.values())
        assert len(await rows(flaky_url, "job_executions")) == 12
        assert len(await rows(flaky_url, "job_logs")) == 6
        stats = plugin.stats()
        assert stats["dropped_total"] == 0 and stats["quarantined"] == 0
        assert stats["written"]["job_executions"] == 12
    finally:
        plugin.shutdown_sync(2)


def test_over_the_bound_logs_go_first_then_bodies_then_records() -> None:
    buffer = BoundedBuffer(max_bytes=40_000)
    for n in range(10):
        buffer.add_execution(
            "invocations", f"i{n}", {"id": f"i{n}", "source_event_payload": "x" * 1000}
        )
    for n in range(10):
        buffer.add_log(f"l{n}", {"id": f"l{n}", "message": "m" * 100})
    assert dict(buffer.dropped) == {}

    buffer.add_execution("invocations", "big", {"id": "big", "source_event_payload": "y" * 9000})
    assert buffer.dropped["log_lines_buffer_full"] > 0  # oldest log lines first
    assert buffer.dropped.get("payload_bodies_buffer_full", 0) == 0

    for n in range(5):
        buffer.add_execution("job_executions", f"j{n}", {"id": f"j{n}", "result": "r" * 3000})
    assert buffer.dropped["log_lines_buffer_full"] == 10
    assert buffer.dropped["payload_bodies_buffer_full"] > 0
    batch = buffer.take(100)
    first = batch.executions[0]
    assert first.id == "i0" and first.values["source_event_payload"] == BODY_DROPPED
    assert buffer.nbytes == 0

    tiny = BoundedBuffer(max_bytes=5_000)
    for n in range(10):
        tiny.add_execution("invocations", f"i{n}", {"id": f"i{n}"})
    assert tiny.dropped["execution_records_buffer_full"] > 0
    kept = [p.id for p in tiny.take(100).executions]
    assert kept[-1] == "i9" and "i0" not in kept  # oldest records go first
    assert tiny.nbytes == 0


def test_requeued_records_merge_under_newer_patches() -> None:
    buffer = BoundedBuffer(max_bytes=10**6)
    buffer.add_execution("job_executions", "j", {"id": "j", "status": "running", "job_name": "a"})
    failed = buffer.take(10)
    buffer.add_execution("job_executions", "j", {"id": "j", "status": "completed"})
    buffer.requeue(failed)
    [patch] = buffer.take(10).executions
    assert patch.values == {"id": "j", "status": "completed", "job_name": "a"}


EXIT_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys, time
    sys.path.insert(0, {root!r})
    from detector.observability import ObservabilityPlugin
    from tests.support.observability import InvocationDriver

    async def main():
        plugin = ObservabilityPlugin({url!r}, flush_interval=3600)
        for _ in range(5):
            await InvocationDriver(plugin).start()
        print("recorded", flush=True)
        if {mode!r} == "sigterm":
            time.sleep(60)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("mode", ["exit", "sigterm"])
def test_interpreter_exit_and_sigterm_flush_the_buffer(mode: str, db_url: str) -> None:
    script = EXIT_SCRIPT.format(root=str(ROOT), url=db_url, mode=mode)
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "recorded"
    if mode == "sigterm":
        os.kill(process.pid, signal.SIGTERM)
    code = process.wait(30)
    assert code == (143 if mode == "sigterm" else 0), (
        process.stderr.read() if process.stderr else ""
    )
    assert len(db.run(rows(db_url, "invocations"))) == 5


def test_an_inbox_over_its_share_is_converted_by_the_poster_in_order() -> None:
    converted: list[int] = []

    def convert(entry: int) -> None:
        converted.append(entry)
        buffer.add_log(f"l{entry}", {"id": f"l{entry}", "message": "m" * 50})

    buffer = BoundedBuffer(max_bytes=40_000, converter=convert)
    for n in range(30):  # 30 entries x 1,000 bytes: over the inbox's 10,000-byte share
        buffer.post(n, 1_000)
    assert buffer.absorbed_by_posters >= 2  # the host paid: the writer was not there
    assert converted == list(range(len(converted))) and len(converted) >= 20
    assert buffer.inbox_depth == len(buffer) - len(converted)
    batch = buffer.take(100)  # taking converts the rest first, still in posting order
    assert converted == list(range(30))
    assert [patch.id for patch in batch.logs] == [f"l{n}" for n in range(30)]
    assert buffer.nbytes == 0


async def test_a_record_that_cannot_be_converted_is_counted_and_the_rest_written(
    tmp_path: Path,
) -> None:
    plugin = ObservabilityPlugin(
        f"sqlite:///{tmp_path / 'o.db'}", flush_interval=60, handle_sigterm=False
    )
    try:
        plugin.buffer.post((99, "an entry kind nobody knows"))
        run = await _one_invocation(plugin)
        assert plugin.force_flush(10)
        assert plugin.stats()["conversion_errors"] == 1
        [row] = await rows(f"sqlite:///{tmp_path / 'o.db'}", "invocations")
        assert row["id"] == run.info.invocation_id and row["status"] == "completed"
    finally:
        plugin.shutdown_sync()


# -- one operation at a time; only connection failures close connections ---------------


async def _eventually(check: Any, seconds: float = 15.0) -> bool:
    """Whether `check()` (awaited if need be) gives something true within `seconds`
    (polled: what it watches, the server or the wire, cannot signal this process)."""
    import asyncio
    import inspect

    for _ in range(int(seconds / 0.01)):
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_health_report_waits_for_the_write_in_progress_instead_of_sharing_it(
    postgres_url: str,
) -> None:
    import asyncio

    import asyncpg

    from detector.observability.writers.postgres import PostgresWriter

    await db.prepare_database(postgres_url)
    plugin = ObservabilityPlugin(postgres_url, flush_interval=3600, handle_sigterm=False)
    writer = PostgresWriter(postgres_url)
    locker = await asyncpg.connect(postgres_url)
    watcher = await asyncpg.connect(postgres_url)  # activity is a snapshot per transaction
    try:
        run = await _one_invocation(plugin)
        plugin.buffer.absorb()
        batch = plugin.buffer.take(1000)
        locking = locker.transaction()
        await locking.start()
        await locker.execute(
            "LOCK TABLE event_detector_observability.job_logs IN ACCESS EXCLUSIVE MODE"
        )
        write = asyncio.ensure_future(writer.write(batch))
        assert await _eventually(
            lambda: watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name = 'event-detector-observability'"
            )
        )
        report = asyncio.ensure_future(writer.write_instance(plugin.flusher.instance_row()))
        for _ in range(20):  # every chance to run: it waits for the write, it does not fail
            await asyncio.sleep(0)
        assert not report.done() and not write.done()
        await locking.rollback()
        await asyncio.gather(write, report)
        assert [r["id"] for r in await rows(postgres_url, "invocations")] == [
            run.info.invocation_id
        ]
        assert len(await rows(postgres_url, "plugin_instances")) == 1
    finally:
        await locker.close()
        await watcher.close()
        await writer.close()
        plugin.shutdown_sync(2)


async def test_only_connection_failures_count_as_the_store_being_unavailable(
    postgres_admin_url: str,
) -> None:
    import asyncio
    from urllib.parse import urlsplit

    import asyncpg

    from detector.observability.writers.postgres import is_connection_failure
    from tests.support.faults import through
    from tests.support.proxy import FaultProxy

    async def error_of(work: Any) -> BaseException:
        try:
            await work
        except BaseException as exc:
            return exc
        raise AssertionError("no error")

    parts = urlsplit(postgres_admin_url)
    with FaultProxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as proxy:
        conn = await asyncpg.connect(through(proxy, postgres_admin_url))
        busy = asyncio.ensure_future(conn.execute("SELECT pg_sleep(0.2)"))
        await asyncio.sleep(0)
        usage = await error_of(conn.execute("SELECT 1"))  # another operation is in progress
        await busy
        syntax = await error_of(conn.execute("SELEC 1"))
        assert isinstance(usage, asyncpg.InterfaceError)
        assert not is_connection_failure(usage, conn) and not conn.is_closed()
        assert not is_connection_failure(syntax, conn) and await conn.fetchval("SELECT 1") == 1

        sleeping = asyncio.ensure_future(conn.execute("SELECT pg_sleep(5)"))
        # Sent once the proxy counts it: startup, the two statements before, and this one.
        assert await _eventually(lambda: proxy.round_trips >= 4)
        proxy.cut()
        cut = await error_of(sleeping)
        assert is_connection_failure(cut, conn)
        proxy.down()
        refused = await error_of(asyncpg.connect(through(proxy, postgres_admin_url)))
        assert is_connection_failure(refused)


def test_shutdown_gives_up_on_a_writer_stuck_in_an_sqlite_busy_wait_within_its_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3
    import threading

    url = f"sqlite:///{tmp_path / 'o.db'}"
    plugin = ObservabilityPlugin(url, flush_interval=3600, handle_sigterm=False)
    db.run(_one_invocation(plugin))
    assert plugin.force_flush(10)
    blocker = sqlite3.connect(tmp_path / "o.db", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # the write lock: the writer waits (busy timeout)
        db.run(_one_invocation(plugin))
        threading.Thread(target=plugin.force_flush, args=(30,), daemon=True).start()
        deadline = time.monotonic() + 10
        while plugin.stats()["in_flight_records"] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        held = plugin.stats()["in_flight_records"]
        started = time.monotonic()
        assert not plugin.shutdown_sync(0.5)
        assert time.monotonic() - started < 0.5 + 0.5
        stats = plugin.stats()
        assert held > 0 and stats["dropped"]["shutdown_timeout"] == held  # the stuck write's
        assert [r.levelname for r in caplog.records if "shutdown_timeout" in r.getMessage()] == [
            "WARNING"
        ]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # The stuck write goes on once the lock is free: stored and counted, never put back
    # to be counted twice.
    plugin.shutdown_sync(5)
    assert plugin.stats()["dropped"]["shutdown_timeout"] == held
    assert plugin.stats()["buffered_records"] == 0
