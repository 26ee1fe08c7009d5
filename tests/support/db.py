"""Fresh observability databases for tests, on either backend."""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from detector.observability.models import POSTGRES_SCHEMA, metadata


def async_url(url: str) -> str:
    """SQLAlchemy async URL for a `sqlite:///…` or `postgresql://…` URL."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    raise ValueError(f"unsupported database URL: {url}")


async def prepare_database(url: str) -> None:
    """Create the current observability schema in an empty database.

    TODO(storage): replace with the migrations once they exist, so every test runs on a
    migrated database.
    """
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            if url.startswith("postgresql"):
                await conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {POSTGRES_SCHEMA}"))
                conn = await conn.execution_options(
                    schema_translate_map={None: POSTGRES_SCHEMA}
                )
            await conn.run_sync(metadata.create_all)
    finally:
        await engine.dispose()


async def create_postgres_database(admin_url: str) -> str:
    """Create an empty database on the server of `admin_url`; returns its URL."""
    import asyncpg

    name = f"test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


async def drop_postgres_database(admin_url: str, url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def run(coro):  # noqa: ANN001, ANN201 - tiny sync bridge for sync fixtures
    return asyncio.run(coro)
