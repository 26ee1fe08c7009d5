"""Shared helpers of the example event modules (skipped by the loader: it starts with `_`).

Event modules import it relatively: `from ._helpers import status_changed`.
Nothing here does network I/O: "external services" are short sleeps.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from detector import HasuraEvent, column_has_changed


def status_changed(event: HasuraEvent, to: str, *, source: str | None = None) -> bool:
    """True when `status` changed to `to` (and, if given, came from `source`)."""
    if not column_has_changed("status", event) or event.new is None or event.old is None:
        return False
    return event.new["status"] == to and (source is None or event.old["status"] == source)


def money(cents: int, currency: str = "EUR") -> str:
    """`1999` → `19.99 EUR`."""
    return f"{cents / 100:.2f} {currency}"


async def call_service(name: str, seconds: float = 0.02) -> dict[str, Any]:
    """Pretend to call an external service (async)."""
    await asyncio.sleep(seconds)
    return {"service": name, "request_id": str(uuid.uuid4())}


def call_service_blocking(name: str, seconds: float = 0.02) -> dict[str, Any]:
    """Pretend to call an external service with a blocking client (runs in a worker thread)."""
    time.sleep(seconds)
    return {"service": name, "request_id": str(uuid.uuid4())}


def follow_up_update(
    event: HasuraEvent, changes: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    """The Hasura UPDATE payload that writing `changes` into this event's row would trigger.

    The job stamps its tracking token into `updated_by`, so the invocation that handles
    the follow-up shares this flow's correlation id and records this job as its source.
    """
    old = copy.deepcopy(event.new or {})
    new = {**old, **changes, "updated_by": options["tracking_token"]}
    table = event.table
    return {
        "id": str(uuid.uuid4()),
        "created_at": datetime.now(UTC).isoformat(),
        "trigger": {"name": f"{table.name if table else 'rows'}_events"},
        "table": {
            "schema": table.schema if table else "public",
            "name": table.name if table else "rows",
        },
        "delivery_info": {"current_retry": 0, "max_retries": 3},
        "event": {
            "op": "UPDATE",
            "session_variables": {"x-hasura-role": "admin"},
            "data": {"old": old, "new": new},
        },
    }
