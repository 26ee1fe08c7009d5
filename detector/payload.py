"""Hasura event payloads: validation, the typed `HasuraEvent` view, and row helpers.

A Hasura event trigger POSTs::

    {"id": "…", "created_at": "…", "trigger": {"name": "…"},
     "table": {"schema": "public", "name": "orders"},
     "delivery_info": {"current_retry": 0, "max_retries": 3},
     "event": {"op": "UPDATE", "session_variables": {"x-hasura-role": "user", …},
               "data": {"old": {…} | null, "new": {…} | null},
               "trace_context": {"trace_id": "…", "span_id": "…"}}}

`parse_hasura_event` checks that shape and raises `InvalidEventPayload` naming the first
offending field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidEventPayload
from .status import Operation

_OPS = {op.value for op in Operation}
# Which rows each operation must carry (Hasura always sends both keys, one may be null).
_REQUIRED_ROWS = {
    Operation.INSERT: ("new",),
    Operation.UPDATE: ("old", "new"),
    Operation.DELETE: ("old",),
    Operation.MANUAL: ("new",),
}


@dataclass(frozen=True, slots=True)
class TableRef:
    """The table whose row changed."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    """Hasura's retry counters: `current_retry` is 0 on the first delivery."""

    current_retry: int = 0
    max_retries: int = 0

    @property
    def attempt(self) -> int:
        """1 for the first delivery, 2 for the first retry, …"""
        return self.current_retry + 1


@dataclass(frozen=True, slots=True)
class TraceContext:
    """W3C trace context Hasura attaches when tracing is on."""

    trace_id: str | None = None
    span_id: str | None = None
    sampling_state: str | None = None


@dataclass(frozen=True, slots=True)
class HasuraEvent:
    """Typed, read-only view over a validated Hasura event payload.

    `old`/`new` are the row before and after the change (None where Hasura sends null).
    `session_variables` keys are lower-cased (Hasura treats them case-insensitively).
    `raw` is the payload exactly as received.
    """

    op: Operation
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    id: str | None = None
    created_at: datetime | None = None
    trigger_name: str | None = None
    table: TableRef | None = None
    session_variables: dict[str, str] = field(default_factory=dict)
    delivery_info: DeliveryInfo = field(default_factory=DeliveryInfo)
    trace_context: TraceContext | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # The `context` option of `listen_to` (empty outside an invocation).
    context: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def row(self) -> dict[str, Any] | None:
        """The row as it is now: `new`, or `old` for a DELETE."""
        return self.new if self.new is not None else self.old

    @property
    def role(self) -> str | None:
        """The `x-hasura-role` session variable."""
        return self.session_variables.get("x-hasura-role")

    @property
    def user_id(self) -> str | None:
        """The `x-hasura-user-id` session variable."""
        return self.session_variables.get("x-hasura-user-id")

    @property
    def user_email(self) -> str | None:
        """The `x-hasura-user-email` session variable."""
        return self.session_variables.get("x-hasura-user-email")

    @property
    def user(self) -> str | None:
        """Who made the change: email, else user id, else `system` for admin, else None."""
        if self.user_email or self.user_id:
            return self.user_email or self.user_id
        return "system" if self.role == "admin" else None


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidEventPayload(where, f"must be an object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _optional_str(payload: Mapping[str, Any], key: str, where: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEventPayload(where, f"must be a string, got {_kind(value)}")
    return str(value)


def _row(data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidEventPayload(
            f"event.data.{key}", f"must be an object or null, got {_kind(value)}"
        )
    return dict(value)


def _created_at(payload: Mapping[str, Any]) -> datetime | None:
    value = payload.get("created_at")
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEventPayload("created_at", f"must be an ISO-8601 string, got {_kind(value)}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEventPayload(
            "created_at", f"is not an ISO-8601 timestamp: {value[:40]!r}"
        ) from None
    # Hasura sends UTC without an offset.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _table(payload: Mapping[str, Any]) -> TableRef | None:
    value = payload.get("table")
    if value is None:
        return None
    table = _mapping(value, "table")
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidEventPayload("table.name", "must be a non-empty string")
    schema = table.get("schema", "public")
    if not isinstance(schema, str) or not schema:
        raise InvalidEventPayload("table.schema", "must be a non-empty string")
    return TableRef(schema=schema, name=name)


def _trigger_name(payload: Mapping[str, Any]) -> str | None:
    value = payload.get("trigger")
    if value is None:
        return None
    return _optional_str(_mapping(value, "trigger"), "name", "trigger.name")


def _delivery_info(payload: Mapping[str, Any]) -> DeliveryInfo:
    value = payload.get("delivery_info")
    if value is None:
        return DeliveryInfo()
    info = _mapping(value, "delivery_info")
    counters = {}
    for key in ("current_retry", "max_retries"):
        number = info.get(key, 0)
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise InvalidEventPayload(f"delivery_info.{key}", "must be a non-negative integer")
        counters[key] = number
    return DeliveryInfo(**counters)


def _session_variables(event: Mapping[str, Any]) -> dict[str, str]:
    value = event.get("session_variables")
    if value is None:
        return {}
    variables = _mapping(value, "event.session_variables")
    out: dict[str, str] = {}
    for key, item in variables.items():
        if item is None:
            continue
        if not isinstance(item, str | int | float | bool):
            raise InvalidEventPayload(
                f"event.session_variables.{key}", f"must be a string, got {_kind(item)}"
            )
        out[str(key).lower()] = str(item)
    return out


def _trace_context(event: Mapping[str, Any]) -> TraceContext | None:
    value = event.get("trace_context")
    if value is None:
        return None
    context = _mapping(value, "event.trace_context")
    return TraceContext(
        trace_id=_optional_str(context, "trace_id", "event.trace_context.trace_id"),
        span_id=_optional_str(context, "span_id", "event.trace_context.span_id"),
        sampling_state=_optional_str(
            context, "sampling_state", "event.trace_context.sampling_state"
        ),
    )


def parse_hasura_event(payload: Any) -> HasuraEvent:
    """Validate a Hasura event payload and return its typed view.

    Raises `InvalidEventPayload` (a `ValueError`) whose `field` names the first problem:
    a payload that is not an object, no `event`, an unknown `event.op`, no `event.data`,
    `old`/`new` that are not objects or null or are missing for the operation, and
    badly typed optional fields (`created_at`, `table`, `trigger`, `delivery_info`,
    `session_variables`, `trace_context`).
    """
    if isinstance(payload, HasuraEvent):
        return payload
    root = _mapping(payload, "payload")
    if "event" not in root:
        raise InvalidEventPayload("event", "is missing")
    event = _mapping(root["event"], "event")
    op = event.get("op")
    if op is None:
        raise InvalidEventPayload("event.op", "is missing")
    if not isinstance(op, str) or op not in _OPS:
        shown = repr(op[:40]) if isinstance(op, str) else _kind(op)
        raise InvalidEventPayload(
            "event.op", f"must be one of INSERT, UPDATE, DELETE, MANUAL, got {shown}"
        )
    if "data" not in event:
        raise InvalidEventPayload("event.data", "is missing")
    data = _mapping(event["data"], "event.data")
    old, new = _row(data, "old"), _row(data, "new")
    operation = Operation(op)
    for key in _REQUIRED_ROWS[operation]:
        if (old if key == "old" else new) is None:
            article = "an" if op in ("INSERT", "UPDATE") else "a"
            raise InvalidEventPayload(
                f"event.data.{key}", f"must be an object for {article} {op} event"
            )
    return HasuraEvent(
        op=operation,
        old=old,
        new=new,
        id=_optional_str(root, "id", "id"),
        created_at=_created_at(root),
        trigger_name=_trigger_name(root),
        table=_table(root),
        session_variables=_session_variables(event),
        delivery_info=_delivery_info(root),
        trace_context=_trace_context(event),
        raw=root,
    )


def _event(event: HasuraEvent | Mapping[str, Any]) -> HasuraEvent:
    return event if isinstance(event, HasuraEvent) else parse_hasura_event(event)


def _same_value(a: Any, b: Any) -> bool:
    """Equality of JSON values: `true` differs from `1` (Python says `True == 1`)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same_value(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def column_has_changed(column: str, event: HasuraEvent | Mapping[str, Any]) -> bool:
    """True when both rows exist, both have `column`, and its value differs.

    Values are compared as JSON values: nested objects and arrays by content, `1` equals
    `1.0`, but `true` differs from `1`. `null → value` is a change; `null → null` is not;
    names are case-sensitive. A raw payload is validated first (`InvalidEventPayload`).
    """
    parsed = _event(event)
    if parsed.old is None or parsed.new is None:
        return False
    if column not in parsed.old or column not in parsed.new:
        return False
    return not _same_value(parsed.old[column], parsed.new[column])


def changed_columns(event: HasuraEvent | Mapping[str, Any]) -> list[str]:
    """Columns whose value differs between `old` and `new` (empty unless both exist).

    A column present in only one of the rows counts as changed. Order: the new row's
    column order, then columns only in the old row.
    """
    parsed = _event(event)
    if parsed.old is None or parsed.new is None:
        return []
    old, new = parsed.old, parsed.new
    changed = [key for key in new if key not in old or not _same_value(old[key], new[key])]
    changed += [key for key in old if key not in new]
    return changed
