"""`compile_order_by`: Hasura's `<table>_order_by` as SQL ordering terms.

The six directions keep PostgreSQL's meaning on both backends (`asc` puts nulls last,
`desc` first), so every term carries an explicit `NULLS FIRST/LAST` (SQLite's defaults
are the opposite). Object relationships order through the related row, array
relationships through an aggregate of the related rows (`{logs_aggregate: {count:
desc}}`), both as correlated scalar subqueries with the role's row filter applied.
Hasura adds no tie-break, and neither does this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from service.graphql.catalog.metadata import TableInfo
from service.graphql.errors import validation_failed
from service.graphql.sql.aggregates import aggregate_function
from service.graphql.sql.compiling import CompileContext
from service.graphql.sql.filters import related_condition

DIRECTIONS: dict[str, tuple[bool, bool]] = {
    "asc": (False, False),
    "asc_nulls_first": (False, True),
    "asc_nulls_last": (False, False),
    "desc": (True, True),
    "desc_nulls_first": (True, True),
    "desc_nulls_last": (True, False),
}
"""Direction → (descending, nulls first), with PostgreSQL's defaults."""


@dataclass(frozen=True)
class OrderTerm:
    """One ordering term: an expression, its direction and where nulls go."""

    expression: ColumnElement[Any]
    descending: bool
    nulls_first: bool
    column: str | None = None  # the column's field name when ordering by a plain column
    collation: str | None = None

    def clause(self, expression: ColumnElement[Any] | None = None) -> ColumnElement[Any]:
        """The ORDER BY clause, over `expression` (e.g. a subquery's label) if given."""
        target = self.expression if expression is None else expression
        if self.collation:
            target = target.collate(self.collation)
        ordered = target.desc() if self.descending else target.asc()
        return ordered.nulls_first() if self.nulls_first else ordered.nulls_last()


def compile_order_by(
    ctx: CompileContext,
    table: TableInfo,
    alias: FromClause,
    order_by: Sequence[Mapping[str, Any]] | None,
    path: str = "$",
) -> list[OrderTerm]:
    """Ordering terms for a list of `<table>_order_by` objects, in precedence order."""
    terms: list[OrderTerm] = []
    for index, item in enumerate(order_by or []):
        if item is None:
            raise validation_failed("unexpected null value in order_by", f"{path}[{index}]")
        terms.extend(_terms(ctx, table, alias, item, f"{path}[{index}]"))
    return terms


def _direction(value: Any, path: str) -> tuple[bool, bool]:
    if value not in DIRECTIONS:
        raise validation_failed(f"unexpected value {value!r} for enum 'order_by'", path)
    return DIRECTIONS[value]


def _terms(
    ctx: CompileContext, table: TableInfo, alias: FromClause, item: Mapping[str, Any], path: str
) -> list[OrderTerm]:
    terms: list[OrderTerm] = []
    for key, value in item.items():
        here = f"{path}.{key}"
        if value is None:
            raise validation_failed(f"unexpected null value for field '{key}'", here)
        if key in table.object_relationships:
            relationship = table.object_relationships[key]
            target = ctx.table(relationship.target)
            inner = ctx.alias(target)
            for term in _terms(ctx, target, inner, value, here):
                subquery = (
                    sa.select(term.expression)
                    .select_from(inner)
                    .where(related_condition(ctx, relationship, alias, inner))
                    .limit(1)
                    .scalar_subquery()
                )
                terms.append(
                    OrderTerm(subquery, term.descending, term.nulls_first, None, term.collation)
                )
        elif (
            key.endswith("_aggregate")
            and key.removesuffix("_aggregate") in table.array_relationships
        ):
            relationship = table.array_relationships[key.removesuffix("_aggregate")]
            target = ctx.table(relationship.target)
            for function, spec in value.items():
                inner = ctx.alias(target)
                where = related_condition(ctx, relationship, alias, inner)
                if function == "count":
                    descending, nulls_first = _direction(spec, f"{here}.count")
                    aggregate = sa.select(sa.func.count()).select_from(inner).where(where)
                    terms.append(OrderTerm(aggregate.scalar_subquery(), descending, nulls_first))
                    continue
                for field_name, direction in spec.items():
                    column = target.columns_by_field.get(field_name)
                    if column is None:
                        raise validation_failed(
                            f"field '{field_name}' not found in type: "
                            f"'{target.type_name}_{function}_order_by'",
                            f"{here}.{function}.{field_name}",
                        )
                    descending, nulls_first = _direction(
                        direction, f"{here}.{function}.{field_name}"
                    )
                    expression = aggregate_function(
                        ctx, function, inner.c[column.name], column.scalar
                    )
                    aggregate = sa.select(expression).select_from(inner).where(where)
                    terms.append(OrderTerm(aggregate.scalar_subquery(), descending, nulls_first))
        elif key in table.computed_fields:
            descending, nulls_first = _direction(value, here)
            expression = table.computed_fields[key].function.build(alias)
            terms.append(OrderTerm(expression, descending, nulls_first))
        else:
            column = table.columns_by_field.get(key)
            if column is None:
                raise validation_failed(
                    f"field '{key}' not found in type: '{table.type_name}_order_by'", here
                )
            descending, nulls_first = _direction(value, here)
            collation = ctx.dialect.order_collation(column.scalar)
            terms.append(
                OrderTerm(alias.c[column.name], descending, nulls_first, column.field, collation)
            )
    return terms
