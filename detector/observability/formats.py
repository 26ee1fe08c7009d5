"""How values are stored as text on SQLite, and read back: uuids, timestamps, JSON.

- `uuid`: lower-case hyphenated text (36 characters);
- `timestamptz`: UTC ISO-8601 text with exactly six fractional digits and a `+00:00`
  offset (`2026-11-24T18:01:43.123456+00:00`), so that text comparison and ordering are
  time comparison and ordering;
- `jsonb`: compact JSON text.

Standard library only: the plugin's SQLite writer stores values with these functions
without loading SQLAlchemy; `sqltypes` (the column types of the models) uses them too,
so every row reads back the same whichever path wrote it.
"""

from __future__ import annotations

import json
import uuid as _uuid
from datetime import UTC, datetime
from typing import Any

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
