"""Fresh observability databases for tests, on either backend."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.observability.migrate import async_engine_url, upgrade_async


def async_url(url: str) -> str:
    """SQLAlchemy async URL for a `sqlite:///…` or `postgresql://…` URL."""
    return async_engine_url(url)


async def prepare_database(url: str) -> None:
    """Bring an empty (or older) database to the current observability schema.

    Runs the real migrations (`detector.observability.migrate`), so every test runs on a
    database built the way users build theirs.
    """
    await upgrade_async(url)


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


def run(coro):
    return asyncio.run(coro)


@contextlib.contextmanager
def database_for(
    backend: str, request: pytest.FixtureRequest, directory: Path, *, migrate: bool = True
) -> Iterator[str]:
    """A fresh database on `backend` (a file in `directory`, or a new PostgreSQL database)."""
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'runtime.db'}"
        if migrate:
            run(prepare_database(url))
        yield url
        return
    admin_url = str(request.getfixturevalue("postgres_admin_url"))
    url = run(create_postgres_database(admin_url))
    try:
        if migrate:
            run(prepare_database(url))
        yield url
    finally:
        run(drop_postgres_database(admin_url, url))
