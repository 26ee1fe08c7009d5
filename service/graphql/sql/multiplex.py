"""One statement for many parameter sets: how live queries run many cohorts at once.

A compiled root field (`execution.compiled`) is a statement with named parameters `p0`,
`p1`, …; subscriptions that share it differ only in those values. As Hasura does, the
parameter sets of many subscriptions become one relation (PostgreSQL: `unnest` of one
array per parameter; SQLite: `json_each` over a JSON array of sets), and the field's
statement becomes a correlated subquery evaluated once per set: one round trip answers
every set, each row tagged with its set's number. Each set's answer is computed under
its own parameters, session variables included, so every subscriber still gets only
what its own permissions allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select, visitors
from sqlalchemy.sql.elements import BindParameter

from service.graphql.sql.dialect import SQLDialect


@dataclass(frozen=True)
class BatchStatement:
    """A statement answering (set number, JSON text) for each parameter set."""

    statement: Select[Any]
    types: tuple[sa.types.TypeEngine[Any], ...]
    dialect: SQLDialect

    def values(self, sets: Sequence[Sequence[Any]]) -> dict[str, Any]:
        """The bound values for `sets` (each the values of `p0`, `p1`, … in order)."""
        return self.dialect.parameter_set_values(self.types, sets)


def batch_statement(statement: Select[Any], count: int, dialect: SQLDialect) -> BatchStatement:
    """`statement` (one column; parameters `p0` … `p<count-1>`) run once per parameter set."""
    types: list[sa.types.TypeEngine[Any]] = [sa.types.NULLTYPE] * count
    for element in visitors.iterate(statement):
        if isinstance(element, BindParameter) and _number(element.key) is not None:
            types[_number(element.key)] = element.type  # type: ignore[index]
    subs, numbering, columns = dialect.parameter_sets(types)

    def replace(element: Any) -> Any:
        if isinstance(element, BindParameter):
            number = _number(element.key)
            if number is not None:
                return columns[number]
        return None

    answer = visitors.replacement_traverse(statement, {}, replace)
    batch = sa.select(numbering.label("set"), answer.scalar_subquery().label("answer"))
    return BatchStatement(batch.select_from(subs), tuple(types), dialect)


def _number(key: Any) -> int | None:
    """`n` for a parameter named `p<n>` (the compiled field's), else None."""
    if isinstance(key, str) and key.startswith("p") and key[1:].isdigit():
        return int(key[1:])
    return None
