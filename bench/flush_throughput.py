"""Flush throughput: rows/s the plugin's writers put into PostgreSQL and SQLite.

Half the rows are job executions (jobs started and finished since the last flush: one
coalesced row each, marked new as the plugin marks them), half are log lines, written in
the plugin's batches (its default `batch_size`) by `PostgresWriter` (binary COPY; executions and
log lines concurrently on two connections) and `SQLiteWriter` (executemany upserts).
Baseline in the same run: a naive ORM writer (`session.add_all` of model objects, one
commit per batch). Also shown: the same rows through the whole plugin (hooks, then the
writer thread's conversion and writes).
Targets (SPEC §6): PostgreSQL ≥ 50,000 rows/s, SQLite ≥ 20,000 rows/s.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detector.observability.buffer import Batch, Patch
from detector.observability.config import ObservabilityConfig

from .report import Section, Target

TITLE = "Flush throughput into PostgreSQL and SQLite (plugin writers vs naive ORM)"
# The plugin's batches, as it writes them.
BATCH = ObservabilityConfig().batch_size


def _patches(n: int, invocation_id: str, event_id: str) -> list[Batch]:
    now = datetime.now(UTC)
    jobs, logs = [], []
    for i in range(n // 2):
        job_id = str(uuid.uuid4())
        jobs.append(
            Patch(
                "job_executions",
                job_id,
                {
                    "id": job_id,
                    "invocation_id": invocation_id,
                    "event_execution_id": event_id,
                    "created_at": now,
                    "correlation_id": "bench",
                    "job_name": "send_email",
                    "job_function_name": "send_email",
                    "job_options": '{"to":"a@b.c"}',
                    "started_at": now,
                    "attempts": 1,
                    "status": "completed",
                    "ended_at": now,
                    "duration_ms": 12,
                    "result": '{"sent":true}',
                    "error_type": None,
                    "error_message": None,
                },
                # Started and finished since the last flush, as the plugin marks them.
                new=True,
            )
        )
        log_id = str(uuid.uuid4())
        logs.append(
            Patch(
                "job_logs",
                log_id,
                {
                    "id": log_id,
                    "invocation_id": invocation_id,
                    "event_execution_id": event_id,
                    "job_execution_id": job_id,
                    "created_at": now,
                    "seq": i,
                    "level": "info",
                    "message": f"sending email {i}",
                    "data": None,
                    "source": "bench",
                    "line_number": 1,
                },
            )
        )
    half = BATCH // 2
    return [Batch(jobs[i : i + half], logs[i : i + half]) for i in range(0, len(jobs), half)]


def _parent_patches(invocation_id: str, event_id: str) -> list[Patch]:
    """An invocation and one event execution of it, new since the last flush."""
    now = datetime.now(UTC)
    return [
        Patch(
            "invocations",
            invocation_id,
            {"id": invocation_id, "created_at": now, "source_function": "bench"},
            new=True,
        ),
        Patch(
            "event_executions",
            event_id,
            {
                "id": event_id,
                "invocation_id": invocation_id,
                "created_at": now,
                "event_name": "bench",
            },
            new=True,
        ),
    ]


async def _parents(writer: Any) -> tuple[str, str]:
    invocation_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    await writer.write(Batch(_parent_patches(invocation_id, event_id), []))
    return invocation_id, event_id


async def _writer_rate(writer: Any, n: int) -> float:
    invocation_id, event_id = await _parents(writer)
    batches = _patches(n, invocation_id, event_id)
    started = time.perf_counter()
    for batch in batches:
        await writer.write(batch)
    return n / (time.perf_counter() - started)


def _plugin_rate(url: str, n: int) -> float:
    """Rows/s through the whole plugin: `n` rows recorded by its hooks (half job
    executions, half log lines), then written by its writer thread, timed from the
    flush request until everything is in the store (conversion: redaction, caps, JSON;
    then the writes)."""
    from detector.observability import ObservabilityPlugin

    from .plugin_cost import _fixtures

    jobs, results, logs = _fixtures(n // 2)
    plugin = ObservabilityPlugin(
        url,
        flush_interval=3600,
        batch_size=BATCH,
        max_buffer_bytes=2**31,  # everything fits: no drops, no conversion by the host
        handle_sigterm=False,
        auto_migrate=False,
    )
    try:
        event = jobs[0].event
        plugin.on_invocation_start(event.invocation)
        plugin.on_detection_start(event)
        assert plugin.force_flush(60), "the store did not take the parents"
        for job, result, line in zip(jobs, results, logs, strict=True):
            plugin.on_job_start(job)
            plugin.on_log(line)
            plugin.on_job_end(job, result)
        started = time.perf_counter()
        assert plugin.force_flush(600), plugin.stats()["last_error"]
        elapsed = time.perf_counter() - started
        stats = plugin.stats()
        assert stats["dropped_total"] == 0 and stats["absorbed_by_host"] == 0, stats
        return n / elapsed
    finally:
        plugin.shutdown_sync(10)


async def _orm_rate(url: str, n: int) -> float:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from detector.observability.models import POSTGRES_SCHEMA, JobExecution, JobLog
    from tests.support.db import async_url

    engine = create_async_engine(async_url(url))
    options = {"schema_translate_map": {None: POSTGRES_SCHEMA}} if "postgresql" in url else {}
    engine = engine.execution_options(**options)
    from detector.observability.writers import writer_for

    parent_writer = writer_for(url, None)
    invocation_id, event_id = await _parents(parent_writer)
    await parent_writer.close()
    now = datetime.now(UTC)
    started = time.perf_counter()
    async with AsyncSession(engine) as session:
        for start in range(0, n // 2, BATCH // 2):
            objects: list[Any] = []
            for i in range(start, min(start + BATCH // 2, n // 2)):
                job_id = str(uuid.uuid4())
                objects.append(
                    JobExecution(
                        id=job_id,
                        invocation_id=invocation_id,
                        event_execution_id=event_id,
                        created_at=now,
                        updated_at=now,
                        job_name="send_email",
                        job_options={"to": "a@b.c"},
                        status="completed",
                        result={"sent": True},
                        duration_ms=12,
                    )
                )
                objects.append(
                    JobLog(
                        id=str(uuid.uuid4()),
                        invocation_id=invocation_id,
                        job_execution_id=job_id,
                        created_at=now,
                        seq=i,
                        message=f"sending email {i}",
                        level="info",
                    )
                )
            session.add_all(objects)
            await session.commit()
    rate = n / (time.perf_counter() - started)
    await engine.dispose()
    return rate


async def run(quick: bool) -> Section:
    from detector.observability.migrate import upgrade, upgrade_async
    from detector.observability.writers.postgres import PostgresWriter
    from detector.observability.writers.sqlite import SQLiteWriter
    from tests.support.db import create_postgres_database
    from tests.support.pgserver import running_postgres

    n = 30_000 if quick else 200_000
    results: dict[str, float] = {}
    with running_postgres() as server:
        url = await create_postgres_database(server.url())
        await upgrade_async(url)
        writer = PostgresWriter(url)
        results["pg_writer"] = await _writer_rate(writer, n)
        await writer.close()
        results["pg_orm"] = await _orm_rate(url, n // 4)
        plugin_url = await create_postgres_database(server.url())
        await upgrade_async(plugin_url)
        results["pg_plugin"] = await asyncio.to_thread(_plugin_rate, plugin_url, n)
    directory = Path(tempfile.mkdtemp(prefix="bench-flush-"))
    sqlite_url = f"sqlite:///{directory / 'bench.db'}"
    writer = SQLiteWriter(sqlite_url)
    results["sqlite_writer"] = await _writer_rate(writer, n)
    await writer.close()
    results["sqlite_orm"] = await _orm_rate(sqlite_url, n // 4)
    plugin_sqlite = f"sqlite:///{directory / 'plugin.db'}"
    upgrade(plugin_sqlite)
    results["sqlite_plugin"] = await asyncio.to_thread(_plugin_rate, plugin_sqlite, n)

    body = "\n".join(
        [
            f"{n:,} rows per run (half job executions, half log lines; ORM baseline "
            f"{n // 4:,} rows), batches of {BATCH}, one transaction per batch, loopback "
            "PostgreSQL with fsync off (the test server), SQLite in WAL mode. The targets "
            "are measured on the writers (rows the plugin has converted, written as the "
            "plugin's flush writes them). The last column runs the same rows through the "
            "whole plugin: recorded by its hooks, then converted (redaction, caps, JSON) "
            "and written by its writer thread.",
            "",
            "| store | plugin writer rows/s | naive ORM `add_all` rows/s | ratio | "
            "whole plugin (convert + write) rows/s |",
            "|---|---|---|---|---|",
            f"| PostgreSQL (asyncpg: COPY, executions and logs on two connections) | "
            f"{results['pg_writer']:,.0f} | {results['pg_orm']:,.0f} | "
            f"{results['pg_writer'] / results['pg_orm']:.1f}x | {results['pg_plugin']:,.0f} |",
            f"| SQLite (executemany upserts) | {results['sqlite_writer']:,.0f} | "
            f"{results['sqlite_orm']:,.0f} | "
            f"{results['sqlite_writer'] / results['sqlite_orm']:.1f}x | "
            f"{results['sqlite_plugin']:,.0f} |",
        ]
    )
    targets = [
        Target(
            "PostgreSQL flush",
            "≥ 50,000 rows/s",
            f"{results['pg_writer']:,.0f} rows/s",
            results["pg_writer"] >= 50_000,
        ),
        Target(
            "SQLite flush",
            "≥ 20,000 rows/s",
            f"{results['sqlite_writer']:,.0f} rows/s",
            results["sqlite_writer"] >= 20_000,
        ),
    ]
    return Section("flush_throughput", TITLE, body, targets)


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(asyncio.run(run(True)).render()))
