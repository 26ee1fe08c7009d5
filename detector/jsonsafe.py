"""JSON-safe copies of any value: the one set of rules for what JSON cannot hold.

`json_safe(value)` never raises and always returns data `json.dumps` accepts (dicts with
string keys, lists, str, int, float, bool, None):

- circular references become `"[circular reference]"`, nesting beyond `MAX_DEPTH`
  becomes `"[max depth reached]"`;
- datetimes, dates and times become ISO-8601 text, timedeltas seconds, UUIDs and paths
  text, Decimals exact text, enums their value, sets sorted lists, dataclasses and
  mappings dicts, exceptions `{"type", "message"}`, pydantic models their JSON dump;
- NaN and infinities become text (`"nan"`, `"inf"`), bytes a description of their size,
  functions their name, any other object a description of its type.

`ListenResult.to_dict()` uses it for what jobs return, and the observability plugin's
`Sanitizer` extends `JsonSafe` with redaction and size caps, so a result reads the same
in the library's answer and in the recorded row.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any

MAX_DEPTH = 32
MAX_EXCEPTION_CHARS = 2000

Path = tuple[str | int, ...]


def describe(value: Any) -> str:
    """A description of `value`'s type, for what has no JSON form (`[module.Class object]`)."""
    kind = type(value)
    return f"[{kind.__module__}.{kind.__qualname__} object]"


def truncate_text(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"{text[:limit]}… [truncated {cut} characters]"


class JsonSafe:
    """Walks a value and returns its JSON-safe copy (see the module docstring).

    Subclasses hook in per value (`_visit`, before the value is converted) and per
    mapping entry (`_entry`). Thread-safe: it holds no per-call state.
    """

    def clean(self, value: Any) -> Any:
        """`value` as JSON-safe data; never raises."""
        return self._clean(value, (), set(), 0)

    def _visit(self, value: Any, path: Path) -> Any:
        """The value to convert in place of `value` at `path` (the root is `()`)."""
        return value

    def _entry(self, name: str, item: Any, path: Path, active: set[int], depth: int) -> Any:
        """The JSON-safe value of the mapping entry `name` (its path is `path + (name,)`)."""
        return self._clean(item, (*path, name), active, depth + 1)

    def _clean(self, value: Any, path: Path, active: set[int], depth: int) -> Any:
        value = self._visit(value, path)
        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if depth >= MAX_DEPTH:
            return "[max depth reached]"
        if isinstance(value, Mapping | list | tuple | set | frozenset) or dataclasses.is_dataclass(
            value
        ):
            marker = id(value)
            if marker in active:
                return "[circular reference]"
            active.add(marker)
            try:
                return self._container(value, path, active, depth)
            finally:
                active.discard(marker)
        return self._scalar(value)

    def _container(self, value: Any, path: Path, active: set[int], depth: int) -> Any:
        if isinstance(value, Mapping):
            items: Iterable[tuple[Any, Any]] = value.items()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            items = ((f.name, getattr(value, f.name, None)) for f in dataclasses.fields(value))
        else:
            if isinstance(value, set | frozenset):
                try:
                    value = sorted(value)
                except TypeError:
                    value = list(value)
            return [
                self._clean(item, (*path, index), active, depth + 1)
                for index, item in enumerate(value)
            ]
        out: dict[str, Any] = {}
        try:
            for key, item in items:
                name = key if isinstance(key, str) else str(key)
                out[name] = self._entry(name, item, path, active, depth)
        except Exception:
            return describe(value)
        return out

    def _scalar(self, value: Any) -> Any:
        try:
            if isinstance(value, datetime | date | time):
                return value.isoformat()
            if isinstance(value, timedelta):
                return value.total_seconds()
            if isinstance(value, uuid.UUID | PurePath):
                return str(value)
            if isinstance(value, Decimal):
                # Kept exact as text: a float could change the amount.
                return str(value)
            if isinstance(value, enum.Enum):
                return self._scalar_or_plain(value.value)
            if isinstance(value, bytes | bytearray | memoryview):
                return f"[bytes: {len(value)} bytes]"
            if isinstance(value, BaseException):
                message = truncate_text(str(value), MAX_EXCEPTION_CHARS)
                return {"type": type(value).__name__, "message": message}
            if callable(value):
                name = getattr(value, "__qualname__", None) or getattr(value, "__name__", "")
                return f"[function {name}]" if name else describe(value)
            model_dump = getattr(value, "model_dump", None)  # pydantic models
            if callable(model_dump):
                return self.clean(model_dump(mode="json"))
        except Exception:
            pass
        return describe(value)

    def _scalar_or_plain(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | str):
            return value
        return self._scalar(value)


_JSON_SAFE = JsonSafe()


def json_safe(value: Any) -> Any:
    """`value` as data `json.dumps` accepts, whatever it holds (see the module docstring)."""
    return _JSON_SAFE.clean(value)
