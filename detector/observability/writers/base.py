"""Shared pieces of the writers: errors and the column kinds read from the models."""

from __future__ import annotations

from collections.abc import Iterable

from ..buffer import Patch
from ..models import metadata
from ..sqltypes import pg_type_name


class WriteError(Exception):
    """A write failed; the message is short and holds no record values."""


class StoreUnavailable(WriteError):
    """The store cannot be reached or used now; retry later."""


class SchemaMissing(StoreUnavailable):
    """The observability tables are not there; the message says how to create them."""


class RecordsRejected(WriteError):
    """The store refused some of the records (constraint, type): isolate and quarantine."""


COLUMN_KINDS: dict[str, dict[str, str]] = {
    table.name: {column.name: pg_type_name(column.type) for column in table.columns}
    for table in metadata.sorted_tables
}
"""table → column → PostgreSQL type name, derived from the models (one source of truth)."""

TABLES_WITH_UPDATED_AT = frozenset(
    t for t, columns in COLUMN_KINDS.items() if "updated_at" in columns
)
"""Tables whose upserts stamp `updated_at` when a patch does not set it."""

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
