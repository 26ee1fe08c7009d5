"""Live queries and streams against a real uvicorn server, on SQLite and PostgreSQL.

Real clients: `gql` over both protocols and the JavaScript `graphql-ws` client. Writes
come through the service's own mutations, through other connections and from another
OS process running the detector with its observability plugin.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.settings import Settings
from tests.support.db import prepare_database, run
from tests.support.live import (
    LEGACY,
    PROTOCOLS,
    REPO_ROOT,
    TRANSPORT_WS,
    insert_rows,
    run_detector_process,
    subscribed,
    wait_until,
)
from tests.support.metadata import metadata_with_function_filter
from tests.support.server import RunningServer, serving

COUNT_BY_FUNCTION = """
subscription Count($fn: String!) {
  invocations_aggregate(where: {source_function: {_eq: $fn}}) { aggregate { count } }
}"""

INSERT_INVOCATIONS = """
mutation Insert($rows: [invocations_insert_input!]!) {
  insert_invocations(objects: $rows) { affected_rows }
}"""


@pytest.fixture(scope="module")
def server(module_db_url: str) -> Iterator[RunningServer]:
    # No background rollup: the only database work is what the tests cause.
    with serving(Settings(database_url=module_db_url, rollup_interval=0)) as running:
        yield running


def live_stats(server: RunningServer) -> Any:
    return server.app.state.live.stats()


def count_of(result: dict[str, Any]) -> int:
    return int(result["invocations_aggregate"]["aggregate"]["count"])


async def insert_invocations(
    server: RunningServer, function: str, count: int = 1, **columns: Any
) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    rows = [{"id": i, "source_function": function, "status": "completed", **columns} for i in ids]
    body = await asyncio.to_thread(server.post, INSERT_INVOCATIONS, {"rows": rows})
    assert "errors" not in body, body
    return ids


def new_function() -> str:
    return f"fn-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_live_query_redelivers_after_a_write_by_another_process(
    server: RunningServer, module_db_url: str, protocol: str
) -> None:
    function = new_function()
    async with subscribed(
        server.websocket_url, COUNT_BY_FUNCTION, {"fn": function}, protocol=protocol
    ) as subscription:
        assert count_of(await subscription.next()) == 0
        # The detector in another OS process writes straight to the database.
        ids = await run_detector_process(module_db_url, function, invocations=2)
        assert len(ids) == 2
        result = await subscription.until(lambda r: count_of(r) == 2, seconds=20)
        assert count_of(result) == 2


async def test_identical_subscriptions_share_one_execution(
    server: RunningServer, module_db_url: str
) -> None:
    function = new_function()
    variables = {"fn": function}
    async with (
        subscribed(server.websocket_url, COUNT_BY_FUNCTION, variables, protocol=LEGACY) as a,
        subscribed(server.websocket_url, COUNT_BY_FUNCTION, variables, protocol=LEGACY) as b,
        subscribed(server.websocket_url, COUNT_BY_FUNCTION, variables, protocol=TRANSPORT_WS) as c,
        subscribed(server.websocket_url, COUNT_BY_FUNCTION, variables, protocol=TRANSPORT_WS) as d,
    ):
        subscribers = (a, b, c, d)
        assert [count_of(await s.next()) for s in subscribers] == [0, 0, 0, 0]
        before = live_stats(server)
        statements = server.statements_executed
        rows = [{"source_function": function, "status": "completed"} for _ in range(3)]
        await insert_rows(module_db_url, "invocations", rows)
        assert [count_of(await s.next()) for s in subscribers] == [3, 3, 3, 3]
        after = live_stats(server)
        # One cohort, one run for the four of them, one SQL statement for that run.
        assert after.executions - before.executions == 1
        assert server.statements_executed - statements == 1
        assert sum(1 for s in subscribers if s.pending()) == 0


async def test_no_database_work_while_nothing_changes(server: RunningServer) -> None:
    async with (
        subscribed(
            server.websocket_url, COUNT_BY_FUNCTION, {"fn": new_function()}, protocol=LEGACY
        ) as live,
        subscribed(
            server.websocket_url,
            "subscription { invocations(limit: 5, order_by: {created_at: desc}) { id } }",
            protocol=TRANSPORT_WS,
        ) as latest,
        subscribed(
            server.websocket_url,
            "subscription ($c: timestamptz) { invocations_stream(batch_size: 10, "
            "cursor: {initial_value: {created_at: $c}}) { id } }",
            {"c": datetime.now(UTC).isoformat()},
            protocol=TRANSPORT_WS,
        ),
    ):
        await live.next()
        await latest.next()
        await asyncio.sleep(0.5)  # let first runs (and any stream catch-up) settle
        before, statements = live_stats(server), server.statements_executed
        await asyncio.sleep(3)
        after = live_stats(server)
        assert after.subscriptions >= 3
        assert server.statements_executed - statements == 0
        assert after.executions - before.executions == 0


async def test_a_result_is_sent_only_when_it_changed(server: RunningServer) -> None:
    function = new_function()
    other = new_function()
    async with subscribed(
        server.websocket_url, COUNT_BY_FUNCTION, {"fn": function}, protocol=TRANSPORT_WS
    ) as subscription:
        assert count_of(await subscription.next()) == 0
        before = live_stats(server).executions
        # Same table, other rows: the query runs again, its result is the same.
        await insert_invocations(server, other, 2)
        await wait_until(lambda: live_stats(server).executions > before)
        await asyncio.sleep(0.5)
        assert subscription.pending() == 0
        await insert_invocations(server, function, 1)
        assert count_of(await subscription.next()) == 1


async def test_a_live_query_reruns_only_when_a_table_it_reads_changed(
    server: RunningServer, module_db_url: str
) -> None:
    async with subscribed(
        server.websocket_url, COUNT_BY_FUNCTION, {"fn": new_function()}, protocol=LEGACY
    ) as subscription:
        await subscription.next()
        before = live_stats(server)
        invocation = (await insert_invocations(server, new_function()))[0]
        await wait_until(lambda: live_stats(server).executions > before.executions)
        runs = live_stats(server).executions
        signals = live_stats(server).change_signals
        # Another connection writes log lines only: the count of invocations is not re-run.
        await insert_rows(
            module_db_url, "job_logs", [{"invocation_id": invocation, "message": "hi", "seq": 1}]
        )
        await wait_until(lambda: live_stats(server).change_signals > signals)
        await asyncio.sleep(0.5)
        assert live_stats(server).executions == runs


async def test_stream_delivers_every_row_once_in_order_under_concurrent_inserts(
    server: RunningServer,
) -> None:
    invocation, noise = str(uuid.uuid4()), str(uuid.uuid4())
    for invocation_id in (invocation, noise):
        await asyncio.to_thread(
            server.post,
            "mutation ($i: invocations_insert_input!) { insert_invocations_one(object: $i) { id } }",
            {"i": {"id": invocation_id, "source_function": new_function(), "status": "running"}},
        )
    stream = """
    subscription Logs($inv: uuid!, $size: Int!) {
      job_logs_stream(batch_size: $size, cursor: {initial_value: {seq: 0}, ordering: ASC},
                      where: {invocation_id: {_eq: $inv}}) { seq message }
    }"""
    total = 40

    async def write(invocation_id: str) -> None:
        # One commit per line, seq increasing: the cursor is monotonic at commit.
        for seq in range(1, total + 1):
            body = await asyncio.to_thread(
                server.post,
                "mutation ($l: job_logs_insert_input!) { insert_job_logs_one(object: $l) { id } }",
                {"l": {"invocation_id": invocation_id, "seq": seq, "message": f"line {seq}"}},
            )
            assert "errors" not in body, body

    async def read(subscription: Any, size: int) -> list[int]:
        seen: list[int] = []
        while len(seen) < total:
            batch = (await subscription.next(seconds=20))["job_logs_stream"]
            assert 0 < len(batch) <= size
            seen += [row["seq"] for row in batch]
        return seen

    url = server.websocket_url
    async with (
        subscribed(url, stream, {"inv": invocation, "size": 1}, protocol=LEGACY) as one,
        subscribed(url, stream, {"inv": invocation, "size": 4}, protocol=TRANSPORT_WS) as four,
        subscribed(url, stream, {"inv": invocation, "size": 4}, protocol=LEGACY) as four_again,
    ):
        readers = asyncio.gather(read(one, 1), read(four, 4), read(four_again, 4))
        await asyncio.gather(write(invocation), write(noise))
        results = await asyncio.wait_for(readers, 60)
        await asyncio.sleep(0.3)
        assert one.pending() == four.pending() == four_again.pending() == 0
    expected = list(range(1, total + 1))
    assert results == [expected, expected, expected]


async def test_stream_on_created_at_follows_inserts_committed_in_order(
    server: RunningServer,
) -> None:
    function = new_function()
    start = datetime.now(UTC) - timedelta(hours=1)
    earlier = await insert_invocations(server, function, 1, created_at=start.isoformat())
    stream = """
    subscription ($fn: String!, $c: timestamptz!) {
      invocations_stream(batch_size: 2, cursor: {initial_value: {created_at: $c}},
                         where: {source_function: {_eq: $fn}}) { id created_at }
    }"""
    since = (start - timedelta(seconds=1)).isoformat()
    async with subscribed(
        server.websocket_url, stream, {"fn": function, "c": since}, protocol=TRANSPORT_WS
    ) as subscription:
        first = await subscription.next()
        assert [row["id"] for row in first["invocations_stream"]] == earlier
        later: list[str] = []
        for step in range(1, 6):
            stamp = (start + timedelta(seconds=step)).isoformat()
            later += await insert_invocations(server, function, 1, created_at=stamp)
        seen: list[str] = []
        while len(seen) < len(later):
            seen += [row["id"] for row in (await subscription.next())["invocations_stream"]]
        assert seen == later


async def test_queries_and_mutations_run_over_the_socket(server: RunningServer) -> None:
    function = new_function()
    for protocol in PROTOCOLS:
        ids = [str(uuid.uuid4())]
        async with subscribed(
            server.websocket_url,
            "mutation ($o: invocations_insert_input!) { insert_invocations_one(object: $o) { id } }",
            {"o": {"id": ids[0], "source_function": function, "status": "completed"}},
            protocol=protocol,
        ) as mutation:
            assert (await mutation.next()) == {"insert_invocations_one": {"id": ids[0]}}
        async with subscribed(
            server.websocket_url,
            "query ($fn: String!) { invocations(where: {source_function: {_eq: $fn}}) { id } }",
            {"fn": function},
            protocol=protocol,
        ) as query:
            result = await query.next()
            assert ids[0] in [row["id"] for row in result["invocations"]]


async def test_javascript_graphql_ws_client_receives_live_updates(server: RunningServer) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the graphql-ws client test"
    function = new_function()
    options = {
        "url": server.websocket_url,
        "query": COUNT_BY_FUNCTION,
        "variables": {"fn": function},
        "count": 2,
    }
    process = await asyncio.create_subprocess_exec(
        node,
        "--experimental-websocket",
        str(REPO_ROOT / "tests" / "js" / "graphql_ws_client.mjs"),
        json.dumps(options),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        first = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        assert first == {
            "event": "next",
            "payload": {"data": {"invocations_aggregate": {"aggregate": {"count": 0}}}},
        }
        await insert_invocations(server, function, 2)
        second = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        assert second["payload"]["data"]["invocations_aggregate"]["aggregate"]["count"] == 2
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_settings_default_to_hasuras_websocket_timings() -> None:
    settings = Settings()
    assert settings.websocket_keepalive == 5.0
    assert settings.websocket_connection_init_timeout == 3.0
    assert 0.1 <= settings.live_min_interval <= 0.25
    assert 0.025 <= settings.live_debounce <= 0.05
    assert 30 <= settings.live_safety_poll_interval <= 60


async def test_metrics_count_live_subscriptions_and_cohorts(server: RunningServer) -> None:
    def metric(name: str) -> float:
        text = server.client.get("/metrics").text
        values = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
        return float(values[0])

    variables = {"fn": new_function()}
    async with (
        subscribed(server.websocket_url, COUNT_BY_FUNCTION, variables, protocol=LEGACY) as a,
        subscribed(server.websocket_url, COUNT_BY_FUNCTION, variables, protocol=TRANSPORT_WS) as b,
    ):
        await a.next()
        await b.next()
        stats = live_stats(server)
        subscriptions = await asyncio.to_thread(metric, "event_detector_live_subscriptions")
        cohorts = await asyncio.to_thread(metric, "event_detector_live_cohorts")
        assert subscriptions == stats.subscriptions >= 2
        assert cohorts == stats.cohorts >= 1
        assert stats.cohorts < stats.subscriptions  # the two identical ones share a cohort
    await wait_until(lambda: live_stats(server).subscriptions == stats.subscriptions - 2)


@pytest.fixture(scope="module")
def viewer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """SQLite, with `viewer` seeing only the invocations of its `X-Hasura-Function`."""
    root = tmp_path_factory.mktemp("viewer")
    metadata = metadata_with_function_filter(root / "metadata")
    url = f"sqlite:///{root / 'observability.db'}"
    run(prepare_database(url))
    settings = Settings(
        database_url=url, admin_secret="s", hasura_metadata_dir=metadata, rollup_interval=0
    )
    with serving(settings) as running:
        yield running


async def test_session_variables_used_by_permissions_separate_cohorts(
    viewer_server: RunningServer,
) -> None:
    server = viewer_server
    count = "subscription { invocations_aggregate { aggregate { count } } }"

    def viewer(function: str) -> dict[str, str]:
        return {
            "x-hasura-admin-secret": "s",
            "x-hasura-role": "viewer",
            "x-hasura-function": function,
        }

    body = await asyncio.to_thread(
        server.post,
        INSERT_INVOCATIONS,
        {
            "rows": [{"source_function": "a", "status": "completed"}] * 2
            + [{"source_function": "b", "status": "completed"}]
        },
        headers={"x-hasura-admin-secret": "s"},
    )
    assert "errors" not in body, body
    url = server.websocket_url
    async with (
        subscribed(url, count, headers=viewer("a"), protocol=TRANSPORT_WS) as a1,
        subscribed(url, count, headers=viewer("a"), protocol=LEGACY) as a2,
        subscribed(url, count, headers=viewer("b"), protocol=TRANSPORT_WS) as b,
    ):
        assert [count_of(await s.next()) for s in (a1, a2, b)] == [2, 2, 1]
        assert live_stats(server).cohorts == 2
        await asyncio.to_thread(
            server.post,
            INSERT_INVOCATIONS,
            {"rows": [{"source_function": "b", "status": "completed"}]},
            headers={"x-hasura-admin-secret": "s"},
        )
        assert count_of(await b.next()) == 2
        await asyncio.sleep(0.5)
        assert a1.pending() == a2.pending() == 0
