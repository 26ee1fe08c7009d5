"""Column types that mean the same thing on PostgreSQL and SQLite.

PostgreSQL gets its native types (`uuid`, `timestamptz`, `jsonb`). SQLite stores:

- `uuid` as lower-case hyphenated text (36 characters);
- `timestamptz` as UTC ISO-8601 text with exactly six fractional digits and a
  `+00:00` offset (`2026-11-24T18:01:43.123456+00:00`), so that text comparison
  and ordering are time comparison and ordering;
- `jsonb` as compact JSON text.

Writers that bypass SQLAlchemy (the plugin's bulk SQLite writer) must use the
`*_to_sqlite` functions below, so every row reads back the same whichever path wrote it.
"""

from __future__ import annotations

import json
import uuid as _uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

SQLITE_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"


def uuid_to_text(value: Any) -> str:
    """Canonical text of a UUID; raises `ValueError` for anything that is not one."""
    if isinstance(value, _uuid.UUID):
        return str(value)
    return str(_uuid.UUID(str(value)))


def parse_timestamp(value: Any) -> datetime:
    """A timezone-aware UTC datetime from a datetime or an ISO-8601 string.

    Naive values are taken as UTC (Hasura's `created_at` carries no offset).
    Raises `ValueError` for text that is not a timestamp.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def timestamp_to_sqlite(value: Any) -> str:
    """Text form of a timestamp as stored on SQLite (see module docstring)."""
    if isinstance(value, datetime) and value.tzinfo is UTC:
        # Same text as the format below, several times faster (the writer's hot path).
        return value.isoformat(timespec="microseconds")
    return parse_timestamp(value).strftime(SQLITE_TIMESTAMP_FORMAT)


def json_to_text(value: Any) -> str:
    """Compact JSON text, as stored on SQLite."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def jsonb_order(value: Any) -> Any:
    """`value` with object keys in PostgreSQL jsonb order (shorter keys first, then bytewise).

    PostgreSQL returns jsonb objects in this order; SQLite keeps insertion order, so
    values read from SQLite are put in this order to answer the same on both backends.
    """
    if isinstance(value, dict):
        return {
            key: jsonb_order(value[key])
            for key in sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        }
    if isinstance(value, list):
        return [jsonb_order(item) for item in value]
    return value


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
