"""`event-detector init` and `create`: new events directories and event modules.

Nothing here overwrites a file: an existing target is an error naming it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

# Dots separate parts (`orders.shipped`); each part is letters, digits, `_` or `-`. A
# leading `_` would make the loader skip the file (helpers start with `_`).
EVENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)*$")
MAX_EVENT_NAME = 120


class ScaffoldError(Exception):
    """A name or path that cannot be used; the message says why and what to do."""


class InvalidEventName(ScaffoldError):
    """The name cannot be an event module's name (bad input, as opposed to a file in the way)."""


@dataclass(frozen=True, slots=True)
class Created:
    """Files written by `init`."""

    events_dir: Path
    module: Path
    payload: Path


def check_event_name(name: str) -> str:
    """Return `name` if it can be an event module's name; raises InvalidEventName otherwise."""
    if not name:
        raise InvalidEventName("the event name is empty")
    if name.startswith("_"):
        raise InvalidEventName(
            f"event name {name!r} starts with `_`: such files are helpers, never loaded as "
            "events; drop the underscore"
        )
    if len(name) > MAX_EVENT_NAME or not EVENT_NAME.match(name):
        raise InvalidEventName(
            f"invalid event name {name!r}: use letters, digits, `_` and `-`, with dots "
            "between parts (e.g. orders.shipped)"
        )
    return name


MODULE_TEMPLATE = '''"""{title}: TODO say which row change this event stands for."""

from __future__ import annotations

from detector import HasuraEvent, column_has_changed, job, run


def detector(event_name: str, event: HasuraEvent) -> bool:
    """True when the business event happened (here: `status` changed)."""
    return column_has_changed("status", event)


async def notify(event_name: str, event: HasuraEvent, options: dict) -> dict:
    """A job: its logs and result are recorded under this event."""
    row = event.row or {{}}
    options["logger"].info("%s: row %s is now %s", event_name, row.get("id"), row.get("status"))
    return {{"notified": True}}


async def handler(event_name: str, event: HasuraEvent) -> list:
    return await run(event_name, event, [job(notify, timeout=10)])
'''

INIT_MODULE_NAME = "orders.shipped"
INIT_MODULE = '''"""An order left the warehouse: `status` went `packed` → `shipped`."""

from __future__ import annotations

from detector import HasuraEvent, column_has_changed, job, run


def detector(event_name: str, event: HasuraEvent) -> bool:
    return (
        column_has_changed("status", event)
        and event.old["status"] == "packed"
        and event.new["status"] == "shipped"
    )


async def send_shipping_email(event_name: str, event: HasuraEvent, options: dict) -> dict:
    options["logger"].info("shipping email for order %s", event.new["id"])
    return {"sent_to": event.new["customer_email"]}


def update_ledger(event_name: str, event: HasuraEvent, options: dict) -> dict:
    # Sync jobs run in worker threads; print() output is captured too.
    print(f"ledger: order {event.new['id']} shipped")
    return {"booked_cents": event.new["total_cents"]}


async def handler(event_name: str, event: HasuraEvent) -> list:
    return await run(
        event_name,
        event,
        [job(send_shipping_email, timeout=10, retries=2), job(update_ledger)],
    )
'''

INIT_PAYLOAD = {
    "id": "5c2d4f4e-9a5b-4bb0-9d35-1b1c7c0e2a10",
    "created_at": "2026-03-04T08:05:42.900113",
    "trigger": {"name": "orders_events"},
    "table": {"schema": "public", "name": "orders"},
    "delivery_info": {"current_retry": 0, "max_retries": 3},
    "event": {
        "op": "UPDATE",
        "session_variables": {"x-hasura-role": "user", "x-hasura-user-id": "42"},
        "data": {
            "old": {
                "id": "ord_1001",
                "status": "packed",
                "customer_email": "ana@example.com",
                "total_cents": 1999,
            },
            "new": {
                "id": "ord_1001",
                "status": "shipped",
                "customer_email": "ana@example.com",
                "total_cents": 1999,
            },
        },
    },
}


def init_project(events_dir: Path, payloads_dir: Path | None = None) -> Created:
    """Create `events_dir` with an example module and `payloads_dir` (default: a
    `payloads` directory beside it) with a payload that module detects.

    Raises ScaffoldError when either file already exists (nothing is written then).
    """
    payloads_dir = payloads_dir or events_dir.parent / "payloads"
    module = events_dir / f"{INIT_MODULE_NAME}.py"
    payload = payloads_dir / f"{INIT_MODULE_NAME}.json"
    for path in (module, payload):
        if path.exists():
            raise ScaffoldError(f"{path} already exists: init never overwrites files")
    events_dir.mkdir(parents=True, exist_ok=True)
    payloads_dir.mkdir(parents=True, exist_ok=True)
    module.write_text(INIT_MODULE, encoding="utf-8")
    payload.write_text(json.dumps(INIT_PAYLOAD, indent=2) + "\n", encoding="utf-8")
    return Created(events_dir, module, payload)


def create_module(name: str, events_dir: Path) -> Path:
    """Write `<events_dir>/<name>.py` from the template; returns its path.

    Raises ScaffoldError for an invalid name or when the file exists.
    """
    check_event_name(name)
    path = events_dir / f"{name}.py"
    if path.exists():
        raise ScaffoldError(f"{path} already exists: choose another name or edit that file")
    events_dir.mkdir(parents=True, exist_ok=True)
    title = name.replace(".", " ").replace("_", " ").replace("-", " ").capitalize()
    # Exclusive creation: two concurrent `create` runs cannot both write the file.
    with path.open("x", encoding="utf-8") as handle:
        handle.write(MODULE_TEMPLATE.format(title=title))
    return path
