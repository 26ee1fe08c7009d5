"""Flush throughput: rows/s the plugin's writers put into PostgreSQL and SQLite.

Half the rows are job executions (jobs started and finished since the last flush: one
coalesced row each, marked new as the plugin marks them), half are log lines, written in
the plugin's batches (`batch_size` 2000) by `PostgresWriter` (binary COPY; executions and
log lines concurrently on two connections) and `SQLiteWriter` (executemany upserts). Baseline in the same run: a
naive ORM writer (`session.add_all` of model objects, one commit per batch).
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

from .report import Section, Target

TITLE = "Flush throughput into PostgreSQL and SQLite (plugin writers vs naive ORM)"
BATCH = 2000


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


async def _parents(writer: Any) -> tuple[str, str]:
    invocation_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    await writer.write(
        Batch(
            [
                Patch(
                    "invocations",
                    invocation_id,
                    {"id": invocation_id, "created_at": now, "source_function": "bench"},
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
                ),
            ],
            [],
        )
    )
    return invocation_id, event_id


async def _writer_rate(writer: Any, n: int) -> float:
    invocation_id, event_id = await _parents(writer)
    batches = _patches(n, invocation_id, event_id)
    started = time.perf_counter()
    for batch in batches:
        await writer.write(batch)
    return n / (time.perf_counter() - started)


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
    from detector.observability.migrate import upgrade_async
    from detector.observability.writers.postgres import PostgresWriter
    from detector.observability.writers.sqlite import SQLiteWriter
    from tests.support.db import create_postgres_database
    from tests.support.pgserver import running_postgres

    n = 40_000 if quick else 200_000
    results: dict[str, float] = {}
    with running_postgres() as server:
        url = await create_postgres_database(server.url())
        await upgrade_async(url)
        writer = PostgresWriter(url)
        results["pg_writer"] = await _writer_rate(writer, n)
        await writer.close()
        results["pg_orm"] = await _orm_rate(url, n // 4)
    directory = Path(tempfile.mkdtemp(prefix="bench-flush-"))
    sqlite_url = f"sqlite:///{directory / 'bench.db'}"
    writer = SQLiteWriter(sqlite_url)
    results["sqlite_writer"] = await _writer_rate(writer, n)
    await writer.close()
    results["sqlite_orm"] = await _orm_rate(sqlite_url, n // 4)

    body = "\n".join(
        [
            f"{n:,} rows per writer run (half job executions, half log lines; ORM baseline "
            f"{n // 4:,} rows), batches of {BATCH}, one transaction per batch, loopback "
            "PostgreSQL with fsync off (the test server), SQLite in WAL mode.",
            "",
            "| store | plugin writer rows/s | naive ORM `add_all` rows/s | ratio |",
            "|---|---|---|---|",
            f"| PostgreSQL (asyncpg: COPY, executions and logs on two connections) | {results['pg_writer']:,.0f} | "
            f"{results['pg_orm']:,.0f} | {results['pg_writer'] / results['pg_orm']:.1f}x |",
            f"| SQLite (executemany upserts) | {results['sqlite_writer']:,.0f} | "
            f"{results['sqlite_orm']:,.0f} | {results['sqlite_writer'] / results['sqlite_orm']:.1f}x |",
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
