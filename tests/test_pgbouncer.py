"""The service and the plugin through PgBouncer in transaction pooling mode.

A real PgBouncer (Debian's) sits in front of the test PostgreSQL with a pool of three
server connections, so a client's statements run on different server connections from
one transaction to the next. The service runs with `database_transaction_pooling` (no
prepared statement kept) and a direct URL for what keeps a session (LISTEN, the
rollup's leader lock); the webhook's plugin follows the service's setting, and a
plugin of its own is told by `OBSERVABILITY_TRANSACTION_POOLING`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from service.settings import Settings
from service.storage.database import Database
from tests.support.db import prepare_database, run
from tests.support.live import run_detector_process, subscribed, wait_until
from tests.support.pgbouncer import RunningPgBouncer, running_pgbouncer
from tests.support.server import serving

pytestmark = pytest.mark.postgres

INSERT = """
mutation ($rows: [invocations_insert_input!]!) { insert_invocations(objects: $rows) { affected_rows } }"""
BY_FUNCTION = """
query ($f: String!) { invocations(where: {source_function: {_eq: $f}}) { id source_function } }"""
COUNT = "subscription { invocations_aggregate { aggregate { count } } }"


@pytest.fixture(scope="module")
def pgbouncer(postgres_admin_url: str) -> Iterator[RunningPgBouncer]:
    with running_pgbouncer(postgres_admin_url, pool_size=3) as bouncer:
        yield bouncer


async def test_the_pooler_is_in_transaction_mode(
    pgbouncer: RunningPgBouncer, postgres_url: str
) -> None:
    """The control: a client that keeps prepared statements breaks behind this pooler."""
    url = pgbouncer.url_for(postgres_url)
    connections = [await asyncpg.connect(url) for _ in range(6)]
    failures = 0

    async def work(connection: asyncpg.Connection, number: int) -> None:
        nonlocal failures
        for step in range(40):
            try:
                await connection.fetchval(f"SELECT $1::int + {step % 5}", number)
            except asyncpg.InvalidSQLStatementNameError:
                failures += 1
            except asyncpg.DuplicatePreparedStatementError:
                failures += 1

    try:
        await asyncio.gather(*(work(c, n) for n, c in enumerate(connections)))
    finally:
        for connection in connections:
            await connection.close()
    assert failures > 0


def test_the_service_and_the_plugin_work_through_pgbouncer(
    pgbouncer: RunningPgBouncer, postgres_url: str
) -> None:
    pooled = pgbouncer.url_for(postgres_url)
    run(prepare_database(pooled))  # the migrations too run through the pooler
    settings = Settings(
        database_url=pooled,
        database_transaction_pooling=True,
        database_direct_url=postgres_url,
        rollup_interval=0.5,
        db_pool_size=6,
    )
    with serving(settings) as server:
        admin: dict[str, str] = {}

        async def scenario() -> None:
            async with subscribed(server.websocket_url, COUNT) as live:
                first = await live.next()
                assert first["invocations_aggregate"]["aggregate"]["count"] == 0
                # The plugin in another process, writing (COPY) through the pooler.
                ids = await run_detector_process(
                    pooled,
                    "through_pgbouncer",
                    invocations=5,
                    environ={"OBSERVABILITY_TRANSACTION_POOLING": "true"},
                )
                assert len(ids) == 5
                # LISTEN (on the direct URL) hears of it: the subscription moves.
                await live.until(
                    lambda r: r["invocations_aggregate"]["aggregate"]["count"] == 5, 30
                )

        asyncio.run(scenario())

        def request(number: int) -> dict[str, Any]:
            if number % 5 == 0:
                rows = [{"source_function": f"f{number % 3}", "status": "completed"}]
                return server.post(INSERT, {"rows": rows}, headers=admin)
            return server.post(BY_FUNCTION, {"f": f"f{number % 3}"}, headers=admin)

        # Many requests at once on a pool of six connections sharing three server
        # connections: each statement may land on any of them.
        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(request, range(60)))
        assert all("errors" not in body for body in bodies), [b for b in bodies if "errors" in b]
        rollup = server.app.state.runtime.rollup
        asyncio.run(wait_until(lambda: rollup.runs >= 1, 30))
        assert rollup.last_result is not None


def test_transaction_pooling_needs_a_direct_url_for_sessions() -> None:
    with pytest.raises(ValidationError, match="DIRECT_URL"):
        Settings(database_url="postgresql://u@127.0.0.1:6432/db", database_transaction_pooling=True)
    settings = Settings(
        database_url="postgresql://u@127.0.0.1:6432/db",
        database_transaction_pooling=True,
        database_direct_url="postgresql://u@127.0.0.1:5432/db",
    )
    assert settings.session_database_url == "postgresql://u@127.0.0.1:5432/db"


async def test_the_statement_limit_holds_through_the_pooler(
    pgbouncer: RunningPgBouncer, postgres_url: str
) -> None:
    """Behind the pooler the limit rides in each transaction (`SET LOCAL`), never in a
    session another client would inherit."""
    limited = Database(
        pgbouncer.url_for(postgres_url), transaction_pooling=True, statement_timeout=0.2
    )
    unlimited = Database(pgbouncer.url_for(postgres_url), transaction_pooling=True)
    try:
        async with limited.read() as conn:
            with pytest.raises(sa.exc.DBAPIError, match="statement timeout"):
                await conn.execute(sa.text("SELECT pg_sleep(3)"))
        for _ in range(3):  # whichever server connection it lands on: no limit there
            async with unlimited.read() as conn:
                await conn.execute(sa.text("SELECT pg_sleep(0.3)"))
    finally:
        await limited.dispose()
        await unlimited.dispose()
