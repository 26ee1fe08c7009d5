"""Reliability under real faults: the store goes away, slows down, or drops connections,
and the process is stopped, while hosts run jobs and the service takes deliveries.

Faults are real: a TCP proxy (`tests/support/proxy.py`) between the plugin (and the
service) and the test PostgreSQL server refuses, stalls, delays or cuts connections; the
service runs as a real `event-detector serve` process that gets a real SIGTERM. After
each fault, the conservation check (`tests/support/conservation.py`) proves that every
record the host produced reached the store, or was counted as a designed drop.
The longer soak (minutes of outage) is `bench/soak.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from detector import listen_to, listen_to_sync
from detector.observability import ObservabilityPlugin
from detector.observability.buffer import BODY_DROPPED
from service.settings import Settings
from tests.support import db
from tests.support.conservation import Ledger
from tests.support.faults import (
    DELIVERIES,
    Host,
    deliver,
    example,
    modules,
    order,
    through,
)
from tests.support.observability import rows
from tests.support.pgserver import free_port
from tests.support.proxy import FaultProxy
from tests.support.runtime import EXAMPLES_EVENTS, database_for
from tests.support.server import serving

ROOT = Path(__file__).resolve().parents[1]
SECRET = "reliability-secret"
HEADERS = {"x-event-detector-secret": SECRET}
# Fast retries, so that a recovered store is written to within a second.
RETRY = {"retry_initial_delay": 0.05, "retry_max_delay": 0.5, "handle_sigterm": False}


@pytest.fixture(scope="module")
def proxy(postgres_admin_url: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the suite's PostgreSQL server."""
    parts = urlsplit(postgres_admin_url)
    with FaultProxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as running:
        yield running


@pytest.fixture
def store(postgres_admin_url: str, proxy: FaultProxy) -> Iterator[str]:
    """A migrated database, reached through the (healthy) proxy."""
    proxy.up()
    proxy.latency = 0.0
    url = db.run(db.create_postgres_database(postgres_admin_url))
    db.run(db.prepare_database(url))
    try:
        yield through(proxy, url)
    finally:
        proxy.up()
        proxy.latency = 0.0
        db.run(db.drop_postgres_database(postgres_admin_url, url))


def _wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# -- store down for twenty seconds, with the service and a host running ----------------


def test_store_down_for_twenty_seconds_with_the_service_and_a_host_running_loses_nothing(
    request: pytest.FixtureRequest,
    postgres_admin_url: str,
    proxy: FaultProxy,
    store: str,
    tmp_path: Path,
) -> None:
    # The service gets its own database on the same server (so each ledger is compared
    # with its own rows), and starts while the store is already down.
    service_db = db.run(db.create_postgres_database(postgres_admin_url))
    db.run(db.prepare_database(service_db))
    proxy.down()
    settings = Settings(
        database_url=through(proxy, service_db),
        events_dir=EXAMPLES_EVENTS,
        webhook_functions=["outage", "shutdown"],
        webhook_secret=SECRET,
        rollup_interval=0.5,
        observability_environ={
            "OBSERVABILITY_RETRY_INITIAL_DELAY": "0.05",
            "OBSERVABILITY_RETRY_MAX_DELAY": "0.5",
        },
    )
    plugin = ObservabilityPlugin(store, flush_interval=0.2, **RETRY)
    host = Host(plugin)
    service_ledger = Ledger()
    try:
        with serving(settings) as server:
            host.start()
            outage_started = time.monotonic()
            answers = []
            while time.monotonic() - outage_started < 20:
                batch = [example(DELIVERIES[i % len(DELIVERIES)]) for i in range(4)]
                answers += deliver(server.base_url, batch, HEADERS, "outage")
                time.sleep(0.5)
            # Down all along: the webhook answered every delivery, GraphQL says the
            # database is unreachable (without hanging), the metrics show the backlog.
            assert [a.status_code for a in answers] == [200] * len(answers)
            for answer in answers:
                service_ledger.add_result(answer.json())
            started = time.monotonic()
            body = server.post("{ invocations_aggregate { aggregate { count } } }")
            assert time.monotonic() - started < 15
            assert "data" not in body and body["errors"][0]["extensions"]["code"]
            assert server.client.get("/healthz").status_code == 200
            metrics = server.client.get("/metrics").text
            webhook_plugin = server.app.state.runtime.observability
            assert webhook_plugin.stats()["failed_flushes"] > 0
            # The backlog sits in the buffer, or in the batch a write attempt holds.
            stats = webhook_plugin.stats()
            assert stats["buffered_records"] + stats["in_flight_records"] > 0, stats
            assert "event_detector_plugin_failed_flushes_total" in metrics
            assert plugin.stats()["failed_flushes"] > 0 and plugin.stats()["last_error"]

            proxy.up()
            time.sleep(1.0)  # the host keeps running while the backlog is written
            host.stop()
            assert plugin.force_flush(30)
            assert webhook_plugin.force_flush(30)
            # GraphQL answers again once the store is back.
            assert _wait_until(
                lambda: "data" in server.post("{ invocations_aggregate { aggregate { count } } }"),
                15,
            )
            service_stats = webhook_plugin.stats()
        assert not host.errors, host.errors[:3]
        assert len(host.ledger.invocations) > 100
        assert len(service_ledger.invocations) == len(answers) > 20
        host_report = host.ledger.check(store, plugin.stats())
        host_report.assert_conserved()
        assert host_report.dropped == {}, "the default memory bound holds a 20 s outage"
        service_report = service_ledger.check(through(proxy, service_db), service_stats)
        service_report.assert_conserved()
        assert service_report.dropped == {}
    finally:
        host.stop()
        plugin.shutdown_sync(5)
        proxy.up()
        db.run(db.drop_postgres_database(postgres_admin_url, service_db))


# -- connections cut again and again while writing --------------------------------------


def test_connections_cut_mid_write_neither_lose_nor_duplicate_records(
    proxy: FaultProxy, store: str
) -> None:
    plugin = ObservabilityPlugin(store, flush_interval=0.05, batch_size=50, **RETRY)
    host = Host(plugin, rate=200)
    try:
        # A write takes one round trip: with 30 ms each way most cuts land in the middle
        # of one (a cut between writes is healed within the flush, unseen).
        proxy.latency = 0.03
        host.start()
        # Cut for at least 4 s, and until some cuts have landed in the middle of a write:
        # whatever the writer was doing, connect, COPY, commit, report.
        started = time.monotonic()
        while time.monotonic() - started < 4 or (
            plugin.stats()["failed_flushes"] < 3 and time.monotonic() - started < 60
        ):
            time.sleep(0.07)
            proxy.cut()
        host.stop()
        assert plugin.force_flush(30)
        assert plugin.stats()["failed_flushes"] >= 3, repr(plugin.stats())
        assert proxy.connections > 10
        report = host.ledger.check(store, plugin.stats())
        report.assert_conserved()
        assert report.dropped == {} and plugin.stats()["quarantined"] == 0
    finally:
        host.stop()
        plugin.shutdown_sync(5)


# -- a slow or hung store never slows the host ----------------------------------------


def test_a_hung_store_does_not_slow_the_hosts_jobs(proxy: FaultProxy, store: str) -> None:
    # Every job sleeps 20 ms. With the store hung (connections open, nothing answered)
    # for longer than every invocation takes together, an invocation that waited on
    # the store even once would take seconds.
    plugin = ObservabilityPlugin(store, flush_interval=0.05, batch_size=20, **RETRY)
    hosted = modules(jobs=3, sleep=0.02)
    ledger = Ledger()
    try:
        ledger.add_result(
            listen_to_sync(order(0), modules=hosted, plugins=[plugin]), lines_per_job=1
        )
        assert plugin.force_flush(10)  # connected: the writer now holds open connections
        proxy.stall()
        durations = []
        stalled_at = time.monotonic()
        for n in range(1, 61):
            started = time.perf_counter()
            result = listen_to_sync(order(n), modules=hosted, plugins=[plugin])
            durations.append(time.perf_counter() - started)
            ledger.add_result(result, lines_per_job=1)
        stats = plugin.stats()
        assert stats["buffered_records"] + stats["in_flight_records"] > 0, stats
        assert time.monotonic() - stalled_at < 30
        assert max(durations) < 1.0, sorted(durations)[-5:]
        proxy.up()
        proxy.cut()  # the stuck writes fail; the writer reconnects and writes them again
        assert plugin.force_flush(45)
        report = ledger.check(store, plugin.stats())
        report.assert_conserved()
    finally:
        proxy.up()
        plugin.shutdown_sync(5)


async def test_a_high_latency_store_is_written_in_full_and_the_host_is_not_slowed(
    proxy: FaultProxy, store: str
) -> None:
    proxy.latency = 0.02  # every chunk, each way: a store across a slow network
    plugin = ObservabilityPlugin(store, flush_interval=0.05, **RETRY)
    hosted = modules(jobs=3, sleep=0.02)
    ledger = Ledger()
    try:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                listen_to(
                    order(n),
                    modules=hosted,
                    plugins=[plugin],
                )
                for n in range(100)
            )
        )
        elapsed = time.perf_counter() - started
        # The host's time is its jobs' (20 ms, concurrent), not the store's round trips
        # (the hung-store test above proves it strictly).
        assert elapsed < 5, elapsed
        for result in results:
            ledger.add_result(result, lines_per_job=1)
        assert await asyncio.to_thread(plugin.force_flush, 60)
        report = await asyncio.to_thread(ledger.check, store, plugin.stats())
        report.assert_conserved()
    finally:
        proxy.latency = 0.0
        await plugin.shutdown()


# -- the memory bound: drops only as designed, and all counted ---------------------------


def test_an_outage_past_the_memory_bound_drops_log_lines_then_bodies_and_counts_them(
    proxy: FaultProxy, store: str
) -> None:
    plugin = ObservabilityPlugin(store, flush_interval=0.05, max_buffer_bytes=400_000, **RETRY)
    ledger = Ledger()
    hosted = modules(jobs=2)
    try:
        proxy.down()
        # 40 invocations of 4 execution records each fit in the bound without their
        # bodies (20 kB payloads) and log lines, not with them.
        for n in range(40):
            ledger.add_result(
                listen_to_sync(order(n, note="x" * 20_000), modules=hosted, plugins=[plugin]),
                lines_per_job=1,
            )
        dropped = plugin.stats()["dropped"]
        assert dropped.get("log_lines_buffer_full", 0) > 40, dropped
        assert dropped.get("payload_bodies_buffer_full", 0) > 20, dropped
        assert dropped.get("execution_records_buffer_full", 0) == 0, dropped
        proxy.up()
        assert plugin.force_flush(30)
        report = ledger.check(store, plugin.stats())
        report.assert_conserved()  # every execution record is there, complete
        dropped = report.dropped
        assert report.stored["job_logs"] + dropped["log_lines_buffer_full"] == 80
        payloads = db.run(rows(store, "invocations"))
        stripped = [r for r in payloads if r["source_event_payload"] == json.loads(BODY_DROPPED)]
        # Only payloads are large enough to strip here: one stripped body per count.
        assert len(stripped) == dropped["payload_bodies_buffer_full"]
    finally:
        proxy.up()
        plugin.shutdown_sync(5)


# -- shutdown against a slow store: the timeout kept, nothing lost uncounted ------------

# What `shutdown_sync` may take beyond its timeout (thread hand-offs on a busy machine).
SHUTDOWN_TOLERANCE = 0.5


def _direct(admin_url: str, proxied: str) -> str:
    """The URL of `proxied`'s database without the proxy (to watch the server itself)."""
    return admin_url.rsplit("/", 1)[0] + "/" + proxied.rsplit("/", 1)[1]


def _record(plugin: ObservabilityPlugin, ledger: Ledger, first: int, count: int) -> None:
    hosted = modules(jobs=2)
    for n in range(first, first + count):
        ledger.add_result(listen_to_sync(order(n), modules=hosted, plugins=[plugin]), 1)


def _shutdown_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "shutdown_timeout" in r.getMessage()]


def test_shutdown_during_a_slow_write_keeps_its_timeout_and_counts_what_it_could_not_write(
    proxy: FaultProxy, store: str, caplog: pytest.LogCaptureFixture
) -> None:
    # 200 ms each way, as a store in another region: every round trip takes 0.4 s.
    proxy.latency = 0.2
    # Nothing is written but on request or when 40 records are waiting.
    plugin = ObservabilityPlugin(store, flush_interval=3600, batch_size=40, **RETRY)
    ledger = Ledger()
    try:
        _record(plugin, ledger, 0, 3)
        assert plugin.force_flush(30)  # through the slow store: these are stored
        written = sum(plugin.stats()["written"].values())

        _record(plugin, ledger, 3, 10)  # ~100 records: the writer wakes and writes
        assert _wait_until(lambda: plugin.stats()["in_flight_records"] > 0, 10, 0.005)
        started = time.monotonic()
        assert not plugin.shutdown_sync(0.3)
        elapsed = time.monotonic() - started

        # The write under way needs a round trip (0.4 s) from its start: it could not
        # finish by the shutdown's deadline and was aborted, not waited for.
        assert elapsed < 0.3 + SHUTDOWN_TOLERANCE, elapsed
        stats = plugin.stats()
        dropped = stats["dropped"]["shutdown_timeout"]
        assert dropped > 0 and stats["buffered_records"] == stats["in_flight_records"] == 0
        assert sum(stats["written"].values()) >= written
        [warning] = _shutdown_warnings(caplog)  # said once, with the count
        assert f"{dropped} records not written" in warning
        proxy.latency = 0.0
        report = ledger.check(store, stats)
        report.assert_conserved()  # every invocation stored, or counted as dropped
        assert report.stored["invocations"] >= 3
    finally:
        proxy.latency = 0.0
        plugin.shutdown_sync(5)


def test_shutdown_after_the_connection_is_cut_mid_commit_loses_nothing_uncounted(
    postgres_admin_url: str, proxy: FaultProxy, store: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A health report with every write: both flushes below send the same statement, which
    # the first prepares, so that the second is one message the server can commit at once.
    plugin = ObservabilityPlugin(store, flush_interval=3600, instance_report_interval=0.0, **RETRY)
    ledger = Ledger()
    direct = _direct(postgres_admin_url, store)
    try:
        _record(plugin, ledger, 0, 2)
        assert plugin.force_flush(30)
        stored_before = len(db.run(rows(direct, "invocations")))

        _record(plugin, ledger, 2, 5)
        proxy.hold_replies()  # the server gets the write; the plugin never hears back
        flushing = threading.Thread(target=plugin.force_flush, args=(30,), daemon=True)
        flushing.start()
        # The write is committed on the server while the plugin still waits for its answer.
        assert _wait_until(lambda: len(db.run(rows(direct, "invocations"))) == 7, 15)
        assert stored_before == 2 and plugin.stats()["in_flight_records"] > 0
        proxy.cut()  # ... and then the connection drops: the plugin cannot know it committed
        started = time.monotonic()
        assert not plugin.shutdown_sync(1.0)  # replies still held: nothing can be written
        elapsed = time.monotonic() - started
        flushing.join(5)

        assert elapsed < 1.0 + SHUTDOWN_TOLERANCE, elapsed
        stats = plugin.stats()
        # The cut batch was put back, then counted: stored and counted, never neither.
        assert stats["dropped"]["shutdown_timeout"] > 0
        assert len(_shutdown_warnings(caplog)) == 1
        proxy.up()
        report = ledger.check(store, stats)
        report.assert_conserved()
        assert report.missing == {name: [] for name in report.missing}  # all committed
    finally:
        proxy.up()
        plugin.shutdown_sync(5)


def test_records_a_shutdown_could_not_write_are_in_the_health_row_when_the_store_answers(
    postgres_admin_url: str, store: str, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncpg

    plugin = ObservabilityPlugin(store, flush_interval=3600, instance_report_interval=3600, **RETRY)
    ledger = Ledger()
    direct = _direct(postgres_admin_url, store)

    async def hold_lock_until(released: threading.Event, locked: threading.Event) -> None:
        conn = await asyncpg.connect(direct)
        try:
            async with conn.transaction():
                await conn.execute(
                    "LOCK TABLE event_detector_observability.job_logs IN ACCESS EXCLUSIVE MODE"
                )
                locked.set()
                await asyncio.to_thread(released.wait, 60)
        finally:
            await conn.close()

    async def waiting_on_the_lock() -> bool:
        conn = await asyncpg.connect(direct)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND application_name = 'event-detector-observability'"
                )
            )
        finally:
            await conn.close()

    released, locked = threading.Event(), threading.Event()
    holder = threading.Thread(target=asyncio.run, args=(hold_lock_until(released, locked),))
    try:
        _record(plugin, ledger, 0, 2)
        assert plugin.force_flush(30)
        holder.start()
        assert locked.wait(10)
        _record(plugin, ledger, 2, 3)  # their log lines cannot be written while locked
        threading.Thread(target=plugin.force_flush, args=(30,), daemon=True).start()
        assert _wait_until(lambda: db.run(waiting_on_the_lock()), 15)

        started = time.monotonic()
        assert not plugin.shutdown_sync(1.0)
        assert time.monotonic() - started < 1.0 + SHUTDOWN_TOLERANCE
        dropped = plugin.stats()["dropped"]["shutdown_timeout"]
        assert dropped > 0 and len(_shutdown_warnings(caplog)) == 1
        # The store answered (only a table was locked): the health row says what was lost.
        [instance] = db.run(rows(direct, "plugin_instances"))
        assert instance["dropped_by_reason"] == {"shutdown_timeout": dropped}
        assert instance["records_dropped"] == dropped
    finally:
        released.set()
        holder.join(10) if holder.is_alive() else None
        plugin.shutdown_sync(5)
    # Once the lock is gone the aborted statement's server side may still commit: the
    # records are then stored and counted, never neither.
    ledger.check(store, plugin.stats()).assert_conserved()


def test_a_connection_that_died_while_idle_is_replaced_within_the_same_flush(
    proxy: FaultProxy, store: str
) -> None:
    # A serverless function: each invocation waits for its flush. Between two of them the
    # connection dies unnoticed (a pooler's idle timeout, an instance frozen and thawed).
    plugin = ObservabilityPlugin(store, serverless=True, flush_interval=3600, **RETRY)
    ledger = Ledger()
    try:
        _record(plugin, ledger, 0, 1)
        connections = proxy.connections
        proxy.cut()
        _record(plugin, ledger, 1, 1)
        stats = plugin.stats()
        # Written by the invocation's own flush, on a new connection, without a failure
        # and its backoff.
        assert stats["buffered_records"] == 0 and stats["failed_flushes"] == 0, stats
        assert proxy.connections == connections + 1
        ledger.check(store, stats).assert_conserved()
    finally:
        plugin.shutdown_sync(5)


# -- SIGTERM to a real `event-detector serve` while deliveries arrive -------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigterm_to_the_service_flushes_every_answered_delivery(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with database_for(backend, request, tmp_path) as url:
        port = free_port()
        env = {
            **os.environ,
            "EVENT_DETECTOR_WEBHOOK_SECRET": SECRET,
            "EVENT_DETECTOR_WEBHOOK_FUNCTIONS": "shutdown",
            "EVENT_DETECTOR_ROLLUP_INTERVAL": "0",
            # Nothing is written before shutdown: SIGTERM alone must flush the buffer.
            "OBSERVABILITY_FLUSH_INTERVAL": "3600",
            "OBSERVABILITY_BATCH_SIZE": "100000",
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--db",
                url,
                "--port",
                str(port),
                "--events-dir",
                str(EXAMPLES_EVENTS),
                "--no-migrate",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            assert _wait_until(lambda: _healthy(base), 30), "the service did not start"
            answered: list[dict[str, Any]] = []
            stop = threading.Event()

            def keep_delivering() -> None:
                # Concurrent deliveries until the server goes away.
                with httpx.Client(base_url=base, timeout=30) as client:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        try:
                            answer = client.post(
                                "/hooks/shutdown",
                                json=example(DELIVERIES[n % len(DELIVERIES)]),
                                headers=HEADERS,
                            )
                        except httpx.HTTPError:
                            return
                        if answer.status_code == 200:
                            answered.append(answer.json())

            senders = [threading.Thread(target=keep_delivering) for _ in range(4)]
            for sender in senders:
                sender.start()
            assert _wait_until(lambda: len(answered) >= 12, 30)
            process.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal: exit by SIGTERM.
            code = process.wait(30)
            assert code in (0, -signal.SIGTERM), process.stderr.read() if process.stderr else ""
            stop.set()
            for sender in senders:
                sender.join(30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        ledger = Ledger()
        for body in answered:
            ledger.add_result(body)
        # The plugin's counters died with the process: lines are not compared by count.
        report = ledger.check(url, {"dropped": {}})
        report.assert_conserved()
        assert report.stored["invocations"] == len(answered)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_process_exiting_while_the_store_is_down_stops_within_its_shutdown_timeout(
    proxy: FaultProxy, store: str
) -> None:
    script = (
        "from detector import EventModule, job, listen_to_sync, run\n"
        "from detector.observability import ObservabilityPlugin\n"
        "from tests.support.library import hasura_payload\n"
        "def work(name, event, options):\n"
        "    print('working')\n"
        "async def handler(name, event):\n"
        "    return await run(name, event, [job(work), job(work)])\n"
        "hosted = [EventModule('orders.shipped', lambda name, event: True, handler)]\n"
        f"plugin = ObservabilityPlugin({store!r}, shutdown_timeout=1.5, flush_interval=0.05)\n"
        "for _ in range(5):\n"
        "    listen_to_sync(hasura_payload(), modules=hosted, plugins=[plugin])\n"
        "print(plugin.stats()['buffered_records'] > 0, flush=True)\n"
    )
    proxy.down()
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - started
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip().endswith("True")  # there was something left to flush
    # The exit flush gives up after shutdown_timeout (1.5 s) instead of hanging.
    assert elapsed < 15, elapsed
