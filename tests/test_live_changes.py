"""Change sources of live queries, and the subscriber's latest-wins slot.

- SQLite: the change counters of migration 0002 count rows per table; the watcher
  reports exactly the tables another connection changed, is woken at once by commits
  of this process (the service's pool, an observability plugin's writer thread), and
  falls back to "everything changed" on a database without counters.
- PostgreSQL: the listener hears the schema's NOTIFY, and after its connection is
  killed (`pg_terminate_backend`) it reconnects, reports that everything may have
  changed, and hears notifications again; end to end, a subscriber still gets a write
  made while the listener was down.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from detector.observability import ObservabilityPlugin, migrate
from detector.observability.models import POSTGRES_SCHEMA
from service.graphql.execution.resolvers import Completed
from service.live.changes import PostgresChangeListener, SQLiteChangeWatcher
from service.live.cohorts import Cohort, CohortKey, LiveEvent, Subscriber
from service.settings import Settings
from service.storage.database import Database
from tests.support.db import prepare_database, run
from tests.support.live import TRANSPORT_WS, insert_rows, subscribed, wait_until
from tests.support.observability import InvocationDriver
from tests.support.server import RunningServer, serving


class Recorder:
    """Collects what a change source reports."""

    def __init__(self) -> None:
        self.tables: list[set[str]] = []
        self.everything = 0

    def tables_changed(self, tables: Any) -> None:
        self.tables.append(set(tables))

    def everything_changed(self) -> None:
        self.everything += 1

    def changed(self) -> set[str]:
        return set().union(*self.tables) if self.tables else set()


def counters(path: str) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT table_name, changes FROM change_counters"))


async def test_sqlite_counters_count_the_rows_written_per_table(sqlite_url: str) -> None:
    await prepare_database(sqlite_url)
    path = migrate.sqlite_path(sqlite_url)
    before = counters(path)
    assert set(before) >= {"invocations", "job_logs", "dashboard_stats", "plugin_instances"}
    invocation = str(uuid.uuid4())
    await insert_rows(sqlite_url, "invocations", [{"id": invocation, "source_function": "f"}])
    await insert_rows(
        sqlite_url,
        "job_logs",
        [{"invocation_id": invocation, "message": f"m{i}", "seq": i} for i in range(3)],
    )
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE invocations SET status = 'failed' WHERE id = ?", (invocation,))
        conn.execute("DELETE FROM job_logs WHERE seq = 0")
    after = counters(path)
    moved = {name: after[name] - before[name] for name in after if after[name] != before[name]}
    assert moved == {"invocations": 2, "job_logs": 4}


async def test_sqlite_watcher_reports_the_tables_another_connection_changed(
    sqlite_url: str,
) -> None:
    await prepare_database(sqlite_url)
    database = Database(sqlite_url)
    recorder = Recorder()
    watcher = SQLiteChangeWatcher(
        database,
        interval=3600,  # no polling: the test calls check()
        tables_changed=recorder.tables_changed,
        everything_changed=recorder.everything_changed,
    )
    await watcher.start()
    try:
        await watcher.check()
        assert recorder.tables == [] and recorder.everything == 0
        invocation = str(uuid.uuid4())
        await insert_rows(sqlite_url, "invocations", [{"id": invocation, "source_function": "f"}])
        await insert_rows(sqlite_url, "job_logs", [{"invocation_id": invocation, "message": "m"}])
        await watcher.check()
        assert recorder.tables == [{"invocations", "job_logs"}]
        reads = watcher.counter_reads
        await watcher.check()  # nothing new: data_version is unchanged, no query at all
        assert watcher.counter_reads == reads and len(recorder.tables) == 1
    finally:
        await watcher.stop()
        await database.dispose()


async def test_sqlite_watcher_is_woken_by_commits_of_this_process(sqlite_url: str) -> None:
    await prepare_database(sqlite_url)
    database = Database(sqlite_url)
    recorder = Recorder()
    watcher = SQLiteChangeWatcher(
        database,
        interval=3600,  # only a wake-up can make it look
        tables_changed=recorder.tables_changed,
        everything_changed=recorder.everything_changed,
    )
    await watcher.start()
    plugin = ObservabilityPlugin(database_url=sqlite_url, handle_sigterm=False)
    try:
        # The service's own pool (a mutation's transaction).
        async with database.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO invocations (id, source_function) VALUES (:id, 'f')"),
                {"id": str(uuid.uuid4())},
            )
        await wait_until(lambda: "invocations" in recorder.changed(), seconds=10)
        # An observability plugin writing from its own thread in this process.
        seen = len(recorder.tables)
        await InvocationDriver(plugin).start()
        assert await asyncio.to_thread(plugin.force_flush, 10)
        await wait_until(
            lambda: any("invocations" in tables for tables in recorder.tables[seen:]), seconds=10
        )
    finally:
        plugin.shutdown_sync()
        await watcher.stop()
        await database.dispose()


async def test_sqlite_watcher_without_counters_reports_everything(sqlite_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, sqlite_url, "0001")
    database = Database(sqlite_url)
    recorder = Recorder()
    watcher = SQLiteChangeWatcher(
        database,
        interval=3600,
        tables_changed=recorder.tables_changed,
        everything_changed=recorder.everything_changed,
    )
    await watcher.start()
    try:
        await insert_rows(sqlite_url, "invocations", [{"source_function": "f"}])
        await watcher.check()
        assert recorder.everything == 1 and recorder.tables == []
    finally:
        await watcher.stop()
        await database.dispose()


async def test_postgres_listener_hears_changes_and_recovers_from_a_killed_connection(
    postgres_url: str,
) -> None:
    await prepare_database(postgres_url)
    recorder = Recorder()
    listener = PostgresChangeListener(
        postgres_url,
        tables_changed=recorder.tables_changed,
        everything_changed=recorder.everything_changed,
        ping_interval=0.5,
    )
    await listener.start()
    admin = await asyncpg.connect(postgres_url)
    try:
        assert await listener.wait_connected(10)
        assert recorder.everything == 1  # after connecting: anything before is unknown
        await admin.execute(
            f"INSERT INTO {POSTGRES_SCHEMA}.invocations (id, source_function) "
            "VALUES (gen_random_uuid(), 'f')"
        )
        await wait_until(lambda: "invocations" in recorder.changed())
        pid = listener.backend_pid
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        await wait_until(lambda: listener.connections == 2 and listener.healthy, seconds=20)
        assert listener.backend_pid != pid
        assert recorder.everything == 2
        recorder.tables.clear()
        await admin.execute(
            f"INSERT INTO {POSTGRES_SCHEMA}.job_logs (invocation_id, message) "
            "VALUES (gen_random_uuid(), 'm')"
        )
        await wait_until(lambda: recorder.changed() == {"job_logs"})
    finally:
        await admin.close()
        await listener.stop()
    assert not listener.healthy


@pytest.fixture
def postgres_server(postgres_url: str) -> Iterator[RunningServer]:
    run(prepare_database(postgres_url))
    with serving(Settings(database_url=postgres_url, rollup_interval=0)) as running:
        yield running


async def test_subscribers_get_a_write_made_while_the_listener_was_down(
    postgres_server: RunningServer, postgres_url: str
) -> None:
    server = postgres_server
    listener = server.app.state.live.source
    count = """subscription ($fn: String!) {
      invocations_aggregate(where: {source_function: {_eq: $fn}}) { aggregate { count } }
    }"""

    def counted(result: dict[str, Any]) -> int:
        return int(result["invocations_aggregate"]["aggregate"]["count"])

    async with subscribed(
        server.websocket_url, count, {"fn": "killed"}, protocol=TRANSPORT_WS
    ) as subscription:
        assert counted(await subscription.next()) == 0
        connections, pid = listener.connections, listener.backend_pid
        admin = await asyncpg.connect(postgres_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            await insert_rows(postgres_url, "invocations", [{"source_function": "killed"}])
            assert counted(await subscription.until(lambda r: counted(r) == 1, 20)) == 1
            await wait_until(lambda: listener.connections > connections and listener.healthy)
            await insert_rows(postgres_url, "invocations", [{"source_function": "killed"}])
            assert counted(await subscription.next()) == 2
        finally:
            await admin.close()


async def test_a_write_reaches_the_subscribers_of_every_service_process(
    postgres_server: RunningServer, postgres_url: str
) -> None:
    count = """subscription { invocations_aggregate(where: {source_function: {_eq: "both"}}) {
      aggregate { count } } }"""

    def counted(result: dict[str, Any]) -> int:
        return int(result["invocations_aggregate"]["aggregate"]["count"])

    # A second service on the same database: its own listener, its own cohorts.
    with serving(Settings(database_url=postgres_url, rollup_interval=0)) as other:
        async with (
            subscribed(postgres_server.websocket_url, count, protocol=TRANSPORT_WS) as first,
            subscribed(other.websocket_url, count, protocol=TRANSPORT_WS) as second,
        ):
            assert counted(await first.next()) == counted(await second.next()) == 0
            # Written through the first service: the second hears of it from PostgreSQL.
            body = await asyncio.to_thread(
                postgres_server.post,
                'mutation { insert_invocations_one(object: {source_function: "both"}) { id } }',
            )
            assert "errors" not in body, body
            assert counted(await first.next()) == 1
            assert counted(await second.next()) == 1


def _cohort() -> Cohort:
    key = CohortKey("subscription { x }", None, b"{}", "admin", ())
    return Cohort(key=key, info=None, args={}, session=None, tables=frozenset())  # type: ignore[arg-type]


async def test_a_slow_subscriber_gets_only_the_latest_result() -> None:
    cohort = _cohort()
    released: list[int] = []
    subscriber = Subscriber(cohort, lambda s: None, lambda: released.append(1))
    cohort.subscribers.add(subscriber)
    for value in (1, 2, 3):
        cohort.deliver(LiveEvent.of_value(Completed({"n": value}), ["x"]))
    assert (await anext(subscriber)).value.value == {"n": 3}
    # The same content again is not sent again; new content is.
    cohort.deliver(LiveEvent.of_value(Completed({"n": 3}), ["x"]))
    assert subscriber.pending is None
    cohort.deliver(LiveEvent.of_value(Completed({"n": 4}), ["x"]))
    assert (await anext(subscriber)).value.value == {"n": 4}
    subscriber.close()
    subscriber.close()
    assert released == [1]
    with pytest.raises(StopAsyncIteration):
        await anext(subscriber)
