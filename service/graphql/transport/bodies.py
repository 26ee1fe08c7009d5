"""Request bodies within bounds: their size, and how deeply their JSON nests.

A JSON document nested a few thousand levels deep is a few kilobytes, yet every
recursive step that later walks it (the JSON parser, graphql-core's variable coercion,
the filter compiler, the webhook's sanitizer) would raise `RecursionError`, answered as
a plain-text 500 with a traceback in the log per request. Bodies are parsed with orjson
(which stops at 1024 levels itself) and then measured without recursion, so a deep
document is refused up front, by name.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class JSONTooDeep(json.JSONDecodeError):
    """A JSON document nesting arrays and objects deeper than allowed.

    A `JSONDecodeError`, so that every path that answers unparsable JSON (Strawberry's
    HTTP view and WebSocket handlers) answers this too; the message names the limit.
    """

    def __init__(self, limit: int, what: str = "the request body") -> None:
        super().__init__(
            f"{what} nests arrays and objects more than {limit} levels deep "
            "(the server's max_json_depth setting)",
            "",
            0,
        )

    def __str__(self) -> str:
        return self.msg  # without JSONDecodeError's ": line 1 column 1 (char 0)"


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` (parsed JSON) nests lists and dicts deeper than `limit` levels.

    Iterative, so any depth is measured without recursion; a scalar is depth 0.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if not isinstance(children, list) and not isinstance(item, dict):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def load_json(data: str | bytes, max_depth: int, what: str = "the request body") -> Any:
    """Parse `data` as JSON, refusing documents nested deeper than `max_depth`.

    Raises `JSONTooDeep` for those (also when orjson's own depth limit stops it) and
    `json.JSONDecodeError` for text that is not JSON.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if "depth limit" in str(error) or "recursion" in str(error).lower():
            raise JSONTooDeep(max_depth, what) from None
        raise
    if nesting_exceeds(value, max_depth):
        raise JSONTooDeep(max_depth, what)
    return value
