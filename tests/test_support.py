"""The test infrastructure itself: both backends come up with the schema."""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.db import async_url


async def test_database_has_observability_tables(db_url: str) -> None:
    engine = create_async_engine(async_url(db_url))
    try:
        async with engine.connect() as conn:
            if db_url.startswith("postgresql"):
                conn = await conn.execution_options(
                    schema_translate_map={None: "event_detector_observability"}
                )
            count = (
                await conn.scalar(sa.text("SELECT count(*) FROM invocations"))
                if db_url.startswith("sqlite")
                else await conn.scalar(
                    sa.text("SELECT count(*) FROM event_detector_observability.invocations")
                )
            )
    finally:
        await engine.dispose()
    assert count == 0
