"""Shared pieces of the writers: errors, and the column kinds of the light table
description (`tables`: no SQLAlchemy on a writer's path)."""

from __future__ import annotations

from collections.abc import Iterable

from ..buffer import Patch
from ..tables import COLUMNS, TABLES_WITH_UPDATED_AT


class WriteError(Exception):
    """A write failed; the message is short and holds no record values."""


class StoreUnavailable(WriteError):
    """The store cannot be reached or used now; retry later."""


class SchemaMissing(StoreUnavailable):
    """The observability tables are not there; the message says how to create them."""


class RecordsRejected(WriteError):
    """The store refused some of the records (constraint, type): isolate and quarantine."""


COLUMN_KINDS = COLUMNS
"""table → column → PostgreSQL type name (`tables.COLUMNS`, checked against the models)."""

__all__ = [
    "COLUMN_KINDS",
    "NEVER_UPDATED",
    "TABLES_WITH_UPDATED_AT",
    "RecordsRejected",
    "SchemaMissing",
    "StoreUnavailable",
    "WriteError",
    "group_by_columns",
    "short_error",
]

# Columns an upsert never changes once the row exists.
NEVER_UPDATED = frozenset({"id", "created_at"})


def group_by_columns(patches: Iterable[Patch]) -> dict[tuple[str, tuple[str, ...]], list[Patch]]:
    """Patches grouped by (table, column names): one statement per group.

    An upsert must name the same columns for every row it carries, and must only update
    the columns a patch really has (others keep their stored values).
    """
    groups: dict[tuple[str, tuple[str, ...]], list[Patch]] = {}
    for patch in patches:
        # Insertion order, not sorted: hooks build their columns in a fixed order, so
        # equal column sets share a group without the cost of sorting every patch.
        key = (patch.table, tuple(patch.values))
        groups.setdefault(key, []).append(patch)
    return groups


def short_error(exc: BaseException, table: str | None = None) -> str:
    """A one-line description of a write error without any record values."""
    parts = [type(exc).__name__]
    for attribute in ("sqlstate", "constraint_name", "column_name", "table_name"):
        value = getattr(exc, attribute, None)
        if value:
            parts.append(f"{attribute}={value}")
    where = f"{table}: " if table else ""
    return (where + " ".join(parts))[:300]
