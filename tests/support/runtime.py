"""Helpers for the runtime's tests: databases per backend, and reading rows back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from service.storage.maintenance import open_engine
from tests.support.db import database_for as database_for  # re-exported for the tests

EXAMPLES_EVENTS = Path(__file__).resolve().parents[2] / "examples" / "events"


async def _rows(url: str, statement: Any) -> list[dict[str, Any]]:
    engine = open_engine(url)
    try:
        async with engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(statement)]
    finally:
        await engine.dispose()


def rows(url: str, statement: Any) -> list[dict[str, Any]]:
    """Run a SELECT on `url` (bare table names on both backends); rows as dicts."""
    return asyncio.run(_rows(url, statement))


def scalar(url: str, statement: Any) -> Any:
    """The single value of a SELECT."""
    found = rows(url, statement)
    assert len(found) == 1, found
    return next(iter(found[0].values()))


def count(url: str, table: sa.Table, *where: Any) -> int:
    """How many rows of `table` match `where`."""
    return int(scalar(url, sa.select(sa.func.count()).select_from(table).where(*where)))


async def _execute(url: str, statement: Any, parameters: Any = None) -> None:
    engine = open_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(statement, parameters)
    finally:
        await engine.dispose()


def execute(url: str, statement: Any, parameters: Any = None) -> None:
    """Run a write statement (insert/update/delete) in one transaction."""
    asyncio.run(_execute(url, statement, parameters))
