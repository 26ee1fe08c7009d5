"""GraphQL latency of the web dashboard and invocation list over a large PostgreSQL store.

Builds 100,000 invocations (300,000 event executions, ~1,000,000 job executions) with
`generate_series` on a throw-away PostgreSQL server (10,000 in quick mode), serves them
with the real app under uvicorn in a separate process, and times the console's
operations (upstream §6.1: OverviewDashboard, InvocationsList, InvocationDetail, sent as
Apollo sends them, with `__typename`) over HTTP, one request at a time. SQL statements
per request are counted in-process on the same database.

Target (SPEC §6): p95 ≤ 50 ms for dashboard and invocation-list queries.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench._service_process import start_service
from bench.report import Section, Target, percentile
from detector.observability.models import POSTGRES_SCHEMA
from service.app import engine_config
from service.graphql import GraphQLEngine
from service.settings import Settings
from service.storage.database import Database
from tests.graphql_helpers import with_typename
from tests.support import db
from tests.support.console_operations import INVOCATION_DETAIL, INVOCATIONS_LIST, OVERVIEW_DASHBOARD
from tests.support.pgserver import running_postgres

TITLE = "GraphQL latency: dashboard and invocation list over 100,000 invocations (PostgreSQL)"
KEY = "graphql_latency"
DAYS = 30
S = POSTGRES_SCHEMA
JOBS_PER_EVENT = 5


def _fill_sql(invocations: int) -> list[str]:
    """Statements that fill the store: ~3 events per invocation, 2 detected, 5 jobs each."""
    span = f"interval '{DAYS} days'"
    return [
        f"""INSERT INTO {S}.invocations (id, created_at, updated_at, correlation_id, source_function,
              source_table, source_operation, source_system, source_event_id, source_event_payload,
              source_user_email, source_user_role, source_job_id, total_duration_ms, events_detected_count,
              total_jobs_run, total_jobs_succeeded, total_jobs_failed, status, error_message, context_data)
            SELECT md5('inv' || g)::uuid,
                   now() - (g::float / {invocations}) * {span},
                   now() - (g::float / {invocations}) * {span} + interval '2 seconds',
                   'corr-' || (g / 3),
                   (ARRAY['orders_handler','users_handler','payments_handler'])[1 + g % 3],
                   CASE WHEN g % 2 = 0 THEN 'public.orders' ELSE 'public.users' END,
                   CASE WHEN g % 2 = 0 THEN 'UPDATE' ELSE 'INSERT' END,
                   'hasura', 'evt-' || g,
                   jsonb_build_object('op', 'UPDATE', 'data', jsonb_build_object(
                       'old', jsonb_build_object('id', g, 'status', 'packed'),
                       'new', jsonb_build_object('id', g, 'status', 'shipped', 'total', g % 1000))),
                   'user' || (g % 50) || '@example.com', 'user',
                   CASE WHEN g % 10 = 0 THEN md5('job' || (g - 1) || '-1-0')::uuid END,
                   50 + (g * 37) % 2000, 2, {2 * JOBS_PER_EVENT},
                   {2 * JOBS_PER_EVENT} - (CASE WHEN g % 7 = 0 THEN 1 ELSE 0 END),
                   CASE WHEN g % 7 = 0 THEN 1 ELSE 0 END,
                   CASE WHEN g % 7 = 0 THEN 'failed' ELSE 'completed' END,
                   CASE WHEN g % 7 = 0 THEN 'a job failed' END,
                   jsonb_build_object('region', CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END)
            FROM generate_series(1, {invocations}) g""",
        f"""INSERT INTO {S}.event_executions (id, invocation_id, created_at, updated_at, correlation_id,
              event_name, event_module_path, detected, detection_duration_ms, handler_duration_ms,
              jobs_count, jobs_succeeded, jobs_failed, status)
            SELECT md5('ev' || g || '-' || e)::uuid, md5('inv' || g)::uuid,
                   i.created_at + e * interval '1 millisecond', i.created_at + interval '1 second',
                   i.correlation_id,
                   (ARRAY['orders.shipped','users.created','payments.failed'])[1 + e],
                   './events/e' || e || '.py', e > 0, 1 + (g + e) % 20,
                   CASE WHEN e > 0 THEN 5 + (g + e) % 40 END,
                   CASE WHEN e > 0 THEN {JOBS_PER_EVENT} ELSE 0 END,
                   CASE WHEN e > 0 THEN {JOBS_PER_EVENT} ELSE 0 END, 0,
                   CASE WHEN e > 0 THEN 'completed' ELSE 'not_detected' END
            FROM generate_series(1, {invocations}) g
            JOIN {S}.invocations i ON i.id = md5('inv' || g)::uuid
            CROSS JOIN generate_series(0, 2) e""",
        f"""INSERT INTO {S}.job_executions (id, invocation_id, event_execution_id, created_at, updated_at,
              correlation_id, job_name, job_function_name, job_options, started_at, ended_at, duration_ms,
              attempts, status, result, error_message)
            SELECT md5('job' || g || '-' || e || '-' || j)::uuid, md5('inv' || g)::uuid,
                   md5('ev' || g || '-' || e)::uuid,
                   i.created_at + (10 + j) * interval '1 millisecond', i.created_at + interval '1 second',
                   i.correlation_id,
                   (ARRAY['send_email','update_ledger','notify_slack','sync_crm','audit'])[1 + j],
                   'job_' || j, jsonb_build_object('retries', j), i.created_at, i.created_at,
                   10 + (g * 13 + j) % 500, 1,
                   CASE WHEN g % 7 = 0 AND e = 1 AND j = 0 THEN 'failed' ELSE 'completed' END,
                   jsonb_build_object('ok', true, 'n', j),
                   CASE WHEN g % 7 = 0 AND e = 1 AND j = 0 THEN 'boom' END
            FROM generate_series(1, {invocations}) g
            JOIN {S}.invocations i ON i.id = md5('inv' || g)::uuid
            CROSS JOIN generate_series(1, 2) e
            CROSS JOIN generate_series(0, {JOBS_PER_EVENT - 1}) j""",
        f"REFRESH MATERIALIZED VIEW {S}.dashboard_stats",
        "ANALYZE",
    ]


async def _fill(url: str, invocations: int) -> dict[str, int]:
    connection = await asyncpg.connect(url)
    try:
        for statement in _fill_sql(invocations):
            await connection.execute(statement)
        counts = {}
        for table in ("invocations", "event_executions", "job_executions", "dashboard_stats"):
            counts[table] = await connection.fetchval(f"SELECT count(*) FROM {S}.{table}")
        return counts
    finally:
        await connection.close()


def _operations(now: datetime, ids: list[str]) -> dict[str, tuple[str, Any]]:
    day = {"timeRange": (now - timedelta(days=1)).isoformat(), "timeRangeEnd": now.isoformat()}
    where = {
        "_and": [
            {"created_at": {"_gte": day["timeRange"], "_lte": day["timeRangeEnd"]}},
            {"events_detected_count": {"_gt": 0}},
            {"source_job_id": {"_is_null": True}},
        ]
    }
    order = [{"created_at": "desc"}]
    return {
        "OverviewDashboard (last 24 h)": (OVERVIEW_DASHBOARD, lambda: day),
        "InvocationsList (page 1 of 50, 24 h filters)": (
            INVOCATIONS_LIST,
            lambda: {"limit": 50, "offset": 0, "where": where, "order_by": order},
        ),
        "InvocationsList (page 20 of 50, 24 h filters)": (
            INVOCATIONS_LIST,
            lambda: {"limit": 50, "offset": 950, "where": where, "order_by": order},
        ),
        "InvocationDetail (random invocation)": (
            INVOCATION_DETAIL,
            lambda: {"id": random.choice(ids)},
        ),
    }


async def _statements_per_request(
    url: str, operations: dict[str, tuple[str, Any]]
) -> dict[str, int]:
    database = Database(url)
    engine = GraphQLEngine(engine_config(Settings(database_url=url)), database)
    counts = {}
    try:
        for name, (query, variables) in operations.items():
            before = database.statements_executed
            result = await engine.execute(with_typename(query), variables())
            assert result.errors is None, result.errors
            counts[name] = database.statements_executed - before
    finally:
        await database.dispose()
    return counts


def _serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    # No background rollup: its refresh would compete with the requests being timed.
    return start_service(url, {"EVENT_DETECTOR_ROLLUP_INTERVAL": "0"})


async def _time(
    base: str, operations: dict[str, tuple[str, Any]], runs: int
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in operations}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for name, (query, variables) in operations.items():
            document = with_typename(query)
            for index in range(runs + 10):
                body = {"query": document, "variables": variables()}
                started = time.perf_counter()
                response = await client.post("/v1/graphql", json=body)
                elapsed = (time.perf_counter() - started) * 1000
                payload = response.json()
                if "errors" in payload:
                    raise RuntimeError(f"{name}: {payload['errors']}")
                if index >= 10:  # warm-up requests are not counted
                    timings[name].append(elapsed)
    return timings


async def run(quick: bool) -> Section:
    invocations = 10_000 if quick else 100_000
    runs = 50 if quick else 200
    random.seed(7)
    with running_postgres() as server:
        url = await db.create_postgres_database(server.url())
        await db.prepare_database(url)
        started = time.perf_counter()
        counts = await _fill(url, invocations)
        fill_seconds = time.perf_counter() - started
        ids = [f"{row}" for row in await _sample_ids(url)]
        operations = _operations(datetime.now(UTC), ids)
        statements = await _statements_per_request(url, operations)
        process, base = _serve(url)
        load_before = os.getloadavg()[0]
        try:
            timings = await _time(base, operations, runs)
            rows = await _rows_returned(base, operations)
            load_after = os.getloadavg()[0]
        finally:
            process.terminate()
            process.wait(timeout=30)
    lines = [
        f"Store: {counts['invocations']:,} invocations, {counts['event_executions']:,} event executions, "
        f"{counts['job_executions']:,} job executions, {counts['dashboard_stats']:,} dashboard_stats rows "
        f"over {DAYS} days (filled with generate_series in {fill_seconds:.0f} s). "
        f"Service: uvicorn (one process) on PostgreSQL 15, requests one at a time over loopback HTTP, "
        f"{runs} timed requests per operation after 10 warm-up requests; queries sent as Apollo sends "
        "them (with `__typename`). The machine is shared: 1-minute load average "
        f"{load_before:.1f} before and {load_after:.1f} after the timed requests.",
        "",
        "| operation | p50 ms | p95 ms | max ms | SQL statements / request | rows in response |",
        "|---|---|---|---|---|---|",
    ]
    targets = []
    for name, values in timings.items():
        p50, p95 = percentile(values, 50), percentile(values, 95)
        lines.append(
            f"| {name} | {p50:.1f} | {p95:.1f} | {max(values):.1f} | {statements[name]} | {rows[name]:,} |"
        )
        targets.append(Target(f"{name} p95", "≤ 50 ms", f"{p95:.1f} ms", p95 <= 50))
    lines += [
        "",
        "Statements per request depend on the query's shape only (one per root field, one per "
        "relationship level or aggregate block), never on the rows returned.",
    ]
    return Section(key=KEY, title=TITLE, body="\n".join(lines), targets=targets)


async def _sample_ids(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            f"SELECT id FROM {S}.invocations TABLESAMPLE SYSTEM (5) LIMIT 500"
        )
        return [str(row["id"]) for row in rows]
    finally:
        await connection.close()


async def _rows_returned(base: str, operations: dict[str, tuple[str, Any]]) -> dict[str, int]:
    def count(value: Any) -> int:
        if isinstance(value, list):
            return len(value) + sum(count(item) for item in value)
        if isinstance(value, dict):
            return sum(count(item) for item in value.values())
        return 0

    result = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for name, (query, variables) in operations.items():
            response = await client.post(
                "/v1/graphql", json={"query": query, "variables": variables()}
            )
            result[name] = count(response.json()["data"])
    return result


if __name__ == "__main__":  # pragma: no cover
    section = asyncio.run(run("--quick" in sys.argv))
    print(section.render())
