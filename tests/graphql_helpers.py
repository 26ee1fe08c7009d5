"""Helpers shared by the GraphQL API tests: expected values computed from the dataset."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from graphql import (
    FieldNode,
    NameNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    print_ast,
    visit,
)
from graphql.language import Visitor

from detector.observability.sqltypes import jsonb_order


def ts(value: datetime) -> str:
    """A timestamp as the API prints it (PostgreSQL JSON: +00:00, fraction trimmed)."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "+00:00"


def number(value: Any) -> Any:
    """A number as the API prints it (integral decimals as ints)."""
    if isinstance(value, Decimal | float) and float(value).is_integer():
        return int(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def ids(rows: Iterable[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


def sort_rows(
    rows: Iterable[dict[str, Any]], *keys: tuple[str | Callable[[dict[str, Any]], Any], str]
) -> list[dict[str, Any]]:
    """Rows sorted like PostgreSQL: each key with a Hasura direction (`asc`, `desc_nulls_last`...)."""
    result = list(rows)
    for key, direction in reversed(keys):
        getter = key if callable(key) else (lambda row, k=key: row[k])
        descending = direction.startswith("desc")
        nulls_first = direction.endswith("nulls_first") or direction == "desc"
        present = [row for row in result if getter(row) is not None]
        missing = [row for row in result if getter(row) is None]
        present.sort(key=getter, reverse=descending)
        result = missing + present if nulls_first else present + missing
    return result


def jsonb_text(value: Any) -> str:
    """PostgreSQL's text of a jsonb value."""
    return json.dumps(jsonb_order(value), ensure_ascii=False, separators=(", ", ": "))


def like(pattern: str, value: str | None, *, insensitive: bool = False) -> bool:
    """SQL LIKE as PostgreSQL evaluates it (for expected values)."""
    if value is None:
        return False
    parts: list[str] = []
    chars = iter(pattern)
    for c in chars:
        if c == "\\":
            parts.append(re.escape(next(chars, "\\")))
        else:
            parts.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
    regex = "".join(parts)
    flags = re.DOTALL | (re.IGNORECASE if insensitive else 0)
    return re.fullmatch(regex, value, flags) is not None


class _AddTypename(Visitor):
    def enter_selection_set(
        self, node: SelectionSetNode, key: Any, parent: Any, *_: Any
    ) -> SelectionSetNode | None:
        if isinstance(parent, OperationDefinitionNode):
            return None  # Apollo leaves the root selection alone
        names = [s.name.value for s in node.selections if isinstance(s, FieldNode)]
        if "__typename" in names:
            return None
        return SelectionSetNode(
            selections=(*node.selections, FieldNode(name=NameNode(value="__typename")))
        )


def with_typename(query: str) -> str:
    """The query with `__typename` in every selection set, as Apollo Client sends it."""
    return print_ast(visit(parse(query), _AddTypename()))
