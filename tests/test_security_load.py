"""No anonymous request can stall or exhaust the service (issue 14).

Each finding of the audit is reproduced against a real server (uvicorn over sockets) on
both backends, with an admin secret and `viewer` as the unauthorized role, on the demo's
data (the audit's 845 log lines): pattern operators that backtrack, response
amplification through aliases and nested relationships, a statement that runs away,
label values a caller can invent, bodies too large or nested too deep, and connections
that never send their headers. Each attack must be refused or bounded; while it runs, a
second client's cheap query is answered. Concurrency is shown by ordering (the attack
has reached the database before the second client asks), never by timings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

import service.endpoints.webhook
from detector.observability.models import metadata as observability_tables
from service.graphql.config import EngineConfig
from service.operations.demo import populate_demo
from service.settings import Settings
from service.storage.database import Database
from service.storage.maintenance import open_engine
from tests.support.console_operations import (
    ANALYTICS_BASE,
    ANALYTICS_PERFORMANCE,
    CORRELATION_SEARCH,
    INVOCATION_DETAIL,
    INVOCATION_TREE_FLOW,
    INVOCATIONS_LIST,
    OVERVIEW_DASHBOARD,
)
from tests.support.db import database_for, run
from tests.support.runtime import EXAMPLES_EVENTS
from tests.support.server import RunningServer, serving

SECRET = "adm1n-s3cret-for-the-load-tests"
WEBHOOK_SECRET = "w3bhook-s3cret-for-the-load-tests"
ADMIN = {"x-hasura-admin-secret": SECRET}
CHEAP = "{ invocations(limit: 1) { id } }"
DEFAULT_BUDGET = EngineConfig.max_response_nodes
assert DEFAULT_BUDGET is not None


@pytest.fixture(scope="module")
def server(
    module_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The service with default limits over the demo's data, as the audit ran it."""
    with database_for(module_backend, request, tmp_path_factory.mktemp("load")) as url:
        populate_demo(url)
        settings = Settings(
            database_url=url,
            admin_secret=SECRET,
            unauthorized_role="viewer",
            events_dir=EXAMPLES_EVENTS,
            webhook_functions=["orders"],
            webhook_secret=WEBHOOK_SECRET,
            rollup_interval=0,
        )
        with serving(settings) as running:
            yield running


def while_attacking(
    server: RunningServer,
    attack: Callable[[httpx.Client], httpx.Response],
    reached: Callable[[], bool] | None = None,
) -> tuple[httpx.Response, dict[str, Any]]:
    """Send `attack` on its own connection; once it has `reached` the server (default:
    it has sent a statement to the database), a second, anonymous client asks a cheap
    query. Returns the attack's answer and the cheap query's answer."""
    before = server.statements_executed

    def started() -> bool:
        return server.statements_executed > before

    reached = reached or started
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=server.base_url, timeout=60) as own:
        answer = pool.submit(attack, own)
        while not reached() and not answer.done():
            time.sleep(0.002)
        assert not answer.done() or answer.result().status_code >= 400 or reached(), (
            "the attack ended before it reached the server"
        )
        cheap = server.post(CHEAP)
        return answer.result(), cheap


def served(cheap: dict[str, Any]) -> None:
    assert "errors" not in cheap, cheap
    assert len(cheap["data"]["invocations"]) == 1


def graphql(query: str, variables: dict[str, Any] | None = None) -> Callable[..., httpx.Response]:
    def send(client: httpx.Client) -> httpx.Response:
        return client.post("/v1/graphql", json={"query": query, "variables": variables or {}})

    return send


def error_of(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "data" not in body, str(body)[:300]
    [error] = body["errors"]
    return error


# -- pattern operators --------------------------------------------------------------------------


def test_backtracking_patterns_are_answered_in_linear_time_while_others_are_served(
    server: RunningServer,
) -> None:
    # Bounds far past the audit's {0,26} (4 s a row for Python's `re`, x4 per +2): a
    # backtracking engine would not finish; RE2 answers over every log line, as PostgreSQL.
    messages = server.post("{ job_logs { id message } }")["data"]["job_logs"]
    assert len(messages) > 800
    expected = sorted(row["id"] for row in messages if "X" in row["message"][:61])
    folded = sorted(row["id"] for row in messages if "x" in row["message"][:61].lower())
    attacks = [
        ("_regex", "^(.|.){0,60}X", expected),
        ("_iregex", "^(.|.){0,60}x", folded),
        ("_similar", "(_|_){0,60}X%", expected),
    ]
    for operator, pattern, wanted in attacks:
        query = (
            f"query ($p: String!) {{ job_logs(where: {{message: {{{operator}: $p}}}}) {{ id }} }}"
        )
        answer, cheap = while_attacking(server, graphql(query, {"p": pattern}))
        served(cheap)
        assert answer.status_code == 200
        found = sorted(row["id"] for row in answer.json()["data"]["job_logs"])
        assert found == wanted, operator


def test_patterns_only_a_backtracking_engine_runs_are_refused_on_sqlite_by_operator(
    server: RunningServer,
) -> None:
    backend = server.app.state.database.dialect
    for operator, pattern, construct in (
        ("_regex", "(a)\\1", "back-reference"),
        ("_niregex", "a(?=b)", "look-around"),
    ):
        query = (
            f'{{ job_logs(where: {{message: {{{operator}: "{pattern}"}}}}, limit: 1) {{ id }} }}'
        )
        body = server.post(query.replace("\\", "\\\\"))
        if backend == "postgresql":
            assert "errors" not in body, body  # PostgreSQL's own engine takes them
            continue
        [error] = body["errors"]
        assert error["extensions"]["code"] == "validation-failed", error
        assert f"'{operator}'" in error["message"] and construct in error["message"]
        assert error["extensions"]["path"].endswith(f"message.{operator}"), error


# -- the statement time limit -----------------------------------------------------------------


def test_a_statement_past_the_time_limit_is_cancelled_while_others_are_served(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # The runaway: on SQLite, matching every one of many rows (far longer than the
    # limit); on PostgreSQL, waiting for a lock another connection holds (the limit
    # covers waiting, as it covers a runaway join).
    log_lines = 300_000 if backend == "sqlite" else 1
    with database_for(backend, request, tmp_path) as url:
        run(_seed(url, log_lines))
        settings = Settings(
            database_url=url,
            admin_secret=SECRET,
            unauthorized_role="viewer",
            rollup_interval=0,
            statement_timeout=0.2 if backend == "sqlite" else 0.5,
        )
        with serving(settings) as running:
            if backend == "sqlite":
                query = '{ job_logs_aggregate(where: {message: {_iregex: "needle"}}) { aggregate { count } } }'
                answer, cheap = while_attacking(running, graphql(query))
            else:
                with _LockHolder(url, "job_logs") as lock:
                    query = "{ job_logs(limit: 1) { id } }"
                    answer, cheap = while_attacking(running, graphql(query), lock.someone_waits)
    served(cheap)
    error = error_of(answer)
    assert error["extensions"]["code"] == "timeout", error
    assert "statement_timeout" in error["message"] and "cancelled" in error["message"]


async def _seed(url: str, log_lines: int) -> None:
    """One invocation with `log_lines` log lines (all but the first copied in SQL)."""
    invocations, job_logs = (
        observability_tables.tables["invocations"],
        observability_tables.tables["job_logs"],
    )
    invocation = "00000000-0000-4000-8000-000000000001"
    now = datetime.now(UTC)
    engine = open_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(invocations).values(
                    id=invocation, source_function="f", status="completed"
                )
            )
            await conn.execute(sa.insert(job_logs).values(
                id="00000000-0000-4000-8000-000000000002", invocation_id=invocation,
                created_at=now, seq=0, level="info", message="job 0 reserved 3 items", source="detector",
            ))  # fmt: skip
            if log_lines > 1:
                await conn.execute(
                    sa.text(
                        "INSERT INTO job_logs (id, invocation_id, created_at, seq, level, message, source) "
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
                        "SELECT printf('10000000-0000-4000-8000-%012d', i), t.invocation_id, t.created_at, "
                        "i, t.level, 'job ' || i || ' reserved 3 items for order ord_' || i, t.source "
                        "FROM n, (SELECT * FROM job_logs LIMIT 1) AS t"
                    ),
                    {"rows": log_lines - 1},
                )
    finally:
        await engine.dispose()


class _LockHolder:
    """A PostgreSQL connection holding an exclusive lock on a table until the block ends
    (its own event loop in a thread, beside the server's)."""

    def __init__(self, url: str, table: str) -> None:
        self.url, self.table = url, table
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def _call(self, awaitable: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(awaitable, self.loop).result(30)

    def __enter__(self) -> _LockHolder:
        self.thread.start()
        self.holder = self._call(asyncpg.connect(self.url))
        self.watcher = self._call(asyncpg.connect(self.url))
        self._call(self.holder.execute(
            f"BEGIN; LOCK TABLE event_detector_observability.{self.table} IN ACCESS EXCLUSIVE MODE"
        ))  # fmt: skip
        return self

    def someone_waits(self) -> bool:
        """Whether a statement of this database waits for a lock (the attack has arrived)."""
        return bool(self._call(self.watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )))  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        self._call(self.holder.close())
        self._call(self.watcher.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_the_sqlite_progress_handler_interrupts_only_the_statement_past_its_deadline(
    tmp_path: Path,
) -> None:
    # The mechanism alone: a statement that never ends stops at the limit, and the
    # connection then serves the next statement (nothing is left interrupted).
    database = Database(f"sqlite:///{tmp_path / 'clock.db'}", statement_timeout=0.2)
    endless = sa.text(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
    )

    async def scenario() -> tuple[str, int]:
        try:
            async with database.read() as conn:
                try:
                    await conn.execute(endless)
                except sa.exc.OperationalError as error:
                    outcome = str(error.orig)
                else:
                    outcome = "finished"
                after = (await conn.execute(sa.text("SELECT 7"))).scalar_one()
            return outcome, after
        finally:
            await database.dispose()

    outcome, after = run(scenario())
    assert outcome == "interrupted" and after == 7


# -- response amplification -------------------------------------------------------------------


def _nested(levels: int) -> str:
    """The audit's shape: job_logs → invocation → logs → invocation → … `levels` deep."""
    inner = "id"
    for level in range(levels, 0, -1):
        field = "invocation" if level % 2 else "logs"
        inner = f"id {field} {{ {inner} }}"
    return inner


AMPLIFIER = "{ " + " ".join(f"a{n}: job_logs {{ {_nested(10)} }}" for n in range(4)) + " }"


def test_response_amplification_is_refused_naming_the_limit_while_others_are_served(
    server: RunningServer,
) -> None:
    assert len(AMPLIFIER) < 800  # the audit's 728-byte query: 454 MB unbounded
    answer, cheap = while_attacking(server, graphql(AMPLIFIER))
    served(cheap)
    error = error_of(answer)
    assert error["extensions"]["code"] == "validation-failed", error
    assert str(DEFAULT_BUDGET) in error["message"] and "max_response_nodes" in error["message"]
    # Hasura names the field in error paths, not its alias.
    assert error["extensions"]["path"].startswith("$.selectionSet.job_logs"), error
    assert answer.headers["content-length"] and int(answer.headers["content-length"]) < 2000
    # Two levels of the same shape fit, and are answered whole.
    small = server.post("{ job_logs(limit: 5) { id invocation { id logs { id } } } }")
    assert "errors" not in small and len(small["data"]["job_logs"]) == 5


def _objects(value: Any) -> int:
    """JSON objects in an answer: an upper bound of what the budget counts."""
    if isinstance(value, dict):
        return 1 + sum(_objects(item) for item in value.values())
    if isinstance(value, list):
        return sum(_objects(item) for item in value)
    return 0


def test_the_operations_of_a_batch_share_one_budget(server: RunningServer) -> None:
    operation = (
        "{ " + " ".join(f"a{n}: job_logs {{ id invocation {{ id }} }}" for n in range(4)) + " }"
    )
    alone = server.post(operation)
    assert "errors" not in alone
    size = _objects(alone["data"])
    count = DEFAULT_BUDGET // size + 1
    assert size < DEFAULT_BUDGET and count <= 20, (size, count)  # each fits; the batch does not
    response = server.client.post("/v1/graphql", json=[{"query": operation}] * count)
    answers = response.json()
    refused = [a for a in answers if "errors" in a]
    assert refused and all("max_response_nodes" in a["errors"][0]["message"] for a in refused)
    assert sum(_objects(a.get("data")) for a in answers) <= DEFAULT_BUDGET


def test_the_consoles_largest_queries_fit_well_inside_the_default_budget(
    server: RunningServer,
) -> None:
    now = datetime.now(UTC)
    window = {"timeRange": (now - timedelta(days=2)).isoformat(), "timeRangeEnd": now.isoformat()}
    flows = server.post(
        "{ invocations(where: {source_job_id: {_is_null: false}}, limit: 1) { id correlation_id } }"
    )["data"]["invocations"]
    [flow] = flows
    operations = [
        (OVERVIEW_DASHBOARD, window),
        (INVOCATIONS_LIST, {"limit": 100}),
        (INVOCATION_DETAIL, {"id": flow["id"]}),
        (CORRELATION_SEARCH, {"searchTerm": "%ord%"}),
        (INVOCATION_TREE_FLOW, {"invocationId": flow["id"]}),
        (ANALYTICS_PERFORMANCE, window),
        (ANALYTICS_BASE, window),
    ]
    largest = 0
    for query, variables in operations:
        body = server.post(query, variables, headers=ADMIN)
        assert "errors" not in body, (query[:40], body)
        largest = max(largest, _objects(body["data"]))
    assert 0 < largest * 10 <= DEFAULT_BUDGET, largest


# -- bounded inputs ------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(server: RunningServer) -> None:
    limit = server.app.state.settings.max_request_bytes
    declared = server.client.post(
        "/v1/graphql", content=b" " * (limit + 1), headers={"content-type": "application/json"}
    )

    def chunks() -> Iterator[bytes]:
        yield b'{"query": "{ __typename }", "variables": {"v": "'
        for _ in range(limit // 65_536 + 2):
            yield b"x" * 65_536
        yield b'"}}'

    streamed = server.client.post(
        "/v1/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text
        [error] = answer.json()["errors"]
        assert str(limit) in error["message"] and "max_request_bytes" in error["message"]
        assert error["extensions"]["code"] == "parse-failed"
    served(server.post(CHEAP))


def _deep(levels: int) -> str:
    return (
        '{"query": "query ($v: jsonb) { __typename }", "variables": {"v": '
        + "[" * levels
        + "]" * levels
        + "}}"
    )


def test_deeply_nested_json_is_parse_failed_naming_the_depth(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    depth = server.app.state.settings.max_json_depth
    caplog.set_level(logging.ERROR)
    for levels in (depth + 1, 200_000):
        answer = server.client.post(
            "/v1/graphql", content=_deep(levels), headers={"content-type": "application/json"}
        )
        error = error_of(answer)
        assert error["extensions"]["code"] == "parse-failed", error
        assert f"more than {depth} levels" in error["message"], error
    assert "errors" not in server.post("query ($v: jsonb) { __typename }", {"v": [[[1]]]})
    assert not [r for r in caplog.records if r.exc_info], "a refused body logs no traceback"
    payload = json.loads(
        (EXAMPLES_EVENTS.parent / "payloads" / "orders.created.insert.json").read_text()
    )
    payload["event"]["data"]["new"]["note"] = "DEEP"
    body = json.dumps(payload).replace('"DEEP"', "[" * 5000 + "]" * 5000)
    answer = server.client.post(
        "/hooks/orders",
        content=body,
        headers={"x-event-detector-secret": WEBHOOK_SECRET, "content-type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "body" and f"more than {depth} levels" in answer.text


def test_an_unexpected_webhook_error_is_a_logged_500_with_a_short_body(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: Any, request: Any) -> bytes:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(service.endpoints.webhook.WebhookReceiver, "_read_body", broken)
    caplog.set_level(logging.ERROR, logger="service.endpoints.webhook")
    answer = server.client.post(
        "/hooks/orders", json={}, headers={"x-event-detector-secret": WEBHOOK_SECRET}
    )
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal_error" and len(answer.text) < 300
    assert "Traceback" not in answer.text and "on fire" not in answer.text
    assert any(r.exc_info and "on fire" in str(r.exc_info[1]) for r in caplog.records)


# -- metrics labels ------------------------------------------------------------------------------


def _function_labels(text: str) -> set[str]:
    return set(re.findall(r'event_detector_webhook_deliveries_total\{function="([^"]*)"', text))


def test_refused_deliveries_cannot_grow_the_metrics_labels(server: RunningServer) -> None:
    def refused_round(first: int, count: int) -> httpx.Response:
        with httpx.Client(base_url=server.base_url) as stranger:
            for n in range(first, first + count):
                assert stranger.post(f"/hooks/invented-{n}", json={}).status_code == 401
                unknown = stranger.post(
                    f"/hooks/typo-{n}", json={}, headers={"x-event-detector-secret": WEBHOOK_SECRET}
                )
                assert unknown.status_code == 404
        return unknown

    labels_before = _function_labels(server.client.get("/metrics").text)
    refused_round(0, 3)  # the first refusals add their (bounded) series
    before = server.client.get("/metrics").text
    unknown = refused_round(3, 100)
    after = server.client.get("/metrics").text
    listed = unknown.json()["functions"]
    assert "orders" in listed and not [name for name in listed if "-" in name], listed
    assert _function_labels(after) <= labels_before | {"_refused"}
    assert len(after) - len(before) < 200, "100 new names added no series (digits moved only)"
    refused = re.search(
        r'event_detector_webhook_deliveries_total\{function="_refused",outcome="not_found"\} (\S+)',
        after,
    )
    assert refused and float(refused.group(1)) >= 103


def test_a_function_with_recorded_invocations_is_served_from_the_shared_modules(
    server: RunningServer,
) -> None:
    # The demo recorded `orders_events`: known, though neither configured nor a directory.
    payload = json.loads(
        (EXAMPLES_EVENTS.parent / "payloads" / "orders.created.insert.json").read_text()
    )
    headers = {"x-event-detector-secret": WEBHOOK_SECRET}
    answer = server.client.post("/hooks/orders_events", json=payload, headers=headers)
    assert answer.status_code == 200, answer.text
    assert (
        server.client.post("/hooks/orders_evnets", json=payload, headers=headers).status_code == 404
    )
    text = server.client.get("/metrics").text
    assert 'function="orders_events",outcome="completed"' in text
    assert "orders_evnets" not in text


# -- connections -----------------------------------------------------------------------------------


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed `sock` (reads until it does; the socket's timeout fails
    the test if it never does)."""
    while True:
        data = sock.recv(4096)
        if not data:
            return True


def test_connections_that_send_no_headers_are_closed_and_the_connection_limit_holds(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'connections.db'}"
    run(_prepare(url))
    settings = Settings(
        database_url=url, rollup_interval=0, max_connections=4, http_header_timeout=0.5
    )
    with serving(settings) as running:
        host, port = running.base_url.removeprefix("http://").split(":")
        silent = [socket.create_connection((host, int(port)), timeout=30) for _ in range(4)]
        partial = silent[0]
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        with httpx.Client(base_url=running.base_url, timeout=30) as fresh:
            assert fresh.get("/healthz").status_code == 503  # at the limit: refused at once
            assert all(_closed(sock) for sock in silent)  # the header deadline frees them
            assert fresh.get("/healthz").status_code == 200
        for sock in silent:
            sock.close()


async def _prepare(url: str) -> None:
    from tests.support.db import prepare_database

    await prepare_database(url)
