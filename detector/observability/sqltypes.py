"""Column types that mean the same thing on PostgreSQL and SQLite.

PostgreSQL gets its native types (`uuid`, `timestamptz`, `jsonb`). SQLite stores:

- `uuid` as lower-case hyphenated text (36 characters);
- `timestamptz` as UTC ISO-8601 text with exactly six fractional digits and a
  `+00:00` offset (`2026-11-24T18:01:43.123456+00:00`), so that text comparison
  and ordering are time comparison and ordering;
- `jsonb` as compact JSON text.

The storage formats themselves live in `formats` (standard library only), which writers
that bypass SQLAlchemy (the plugin's bulk SQLite writer) use too, so every row reads
back the same whichever path wrote it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from .formats import (
    SQLITE_TIMESTAMP_FORMAT,
    json_to_text,
    jsonb_order,
    parse_timestamp,
    timestamp_to_sqlite,
    uuid_to_text,
)

__all__ = [
    "JSONB",
    "SQLITE_TIMESTAMP_FORMAT",
    "UUID",
    "Timestamptz",
    "json_to_text",
    "jsonb_order",
    "new_uuid",
    "parse_timestamp",
    "pg_type_name",
    "timestamp_to_sqlite",
    "utcnow",
    "uuid_to_text",
]


class UUID(sa.types.TypeDecorator[str]):
    """`uuid` on PostgreSQL, canonical text on SQLite; Python side is `str`."""

    impl = sa.String(36)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.UUID(as_uuid=False))
        return dialect.type_descriptor(sa.String(36))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else uuid_to_text(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else str(value)


class Timestamptz(sa.types.TypeDecorator[datetime]):
    """`timestamptz` on PostgreSQL, fixed-width UTC text on SQLite; aware datetimes in Python."""

    impl = sa.String(32)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.String(32))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return parse_timestamp(value)
        return timestamp_to_sqlite(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else parse_timestamp(value)


class JSONB(sa.types.TypeDecorator[Any]):
    """`jsonb` on PostgreSQL, JSON text on SQLite. SQL NULL is Python `None`."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json_to_text(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return value
        return jsonb_order(json.loads(value))


def pg_type_name(column_type: sa.types.TypeEngine[Any]) -> str:
    """The PostgreSQL type name of a SQLAlchemy column type (`uuid`, `bigint`, `text`, ...).

    The one mapping the writers (casts) and the GraphQL engine (scalar names) derive from.
    Raises `TypeError` for a type it does not know, naming it.
    """
    # Subclasses before their bases: BigInteger is an Integer, Text a String.
    if isinstance(column_type, UUID):
        return "uuid"
    if isinstance(column_type, Timestamptz):
        return "timestamptz"
    if isinstance(column_type, JSONB):
        return "jsonb"
    if isinstance(column_type, sa.Boolean):
        return "boolean"
    if isinstance(column_type, sa.BigInteger):
        return "bigint"
    if isinstance(column_type, sa.Integer):
        return "integer"
    if isinstance(column_type, sa.Float):
        return "float8"
    if isinstance(column_type, sa.Numeric):
        return "numeric"
    if isinstance(column_type, sa.String):
        return "text"
    raise TypeError(f"no PostgreSQL type name for column type {column_type!r}")


class utcnow(FunctionElement[datetime]):
    """`now()` that renders as each backend's storage format of `Timestamptz`."""

    type = Timestamptz()
    inherit_cache = True


@compiles(utcnow, "postgresql")
def _utcnow_postgresql(element: utcnow, compiler: Any, **kw: Any) -> str:
    return "now()"


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element: utcnow, compiler: Any, **kw: Any) -> str:
    # %f gives milliseconds; pad to the six digits of the stored format.
    return "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00')"


class new_uuid(FunctionElement[str]):
    """A random (version 4) UUID generated by the database."""

    type = UUID()
    inherit_cache = True


@compiles(new_uuid, "postgresql")
def _new_uuid_postgresql(element: new_uuid, compiler: Any, **kw: Any) -> str:
    return "gen_random_uuid()"


@compiles(new_uuid, "sqlite")
def _new_uuid_sqlite(element: new_uuid, compiler: Any, **kw: Any) -> str:
    return (
        "(lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
        "substr(lower(hex(randomblob(2))), 2) || '-' || "
        "substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || "
        "'-' || lower(hex(randomblob(6))))"
    )
