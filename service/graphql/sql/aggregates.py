"""Aggregate functions of `<table>_aggregate_fields`, the same on both backends.

`sum`, `avg`, `max`, `min`, `stddev` (= `stddev_samp`), `stddev_pop`, `stddev_samp`,
`variance` (= `var_samp`), `var_pop`, `var_samp` and `count(columns, distinct)`. SQLite
gets the statistical aggregates from `service.graphql.sql.sqlite_functions`. Over no rows, `count` is
0 and every other aggregate is null.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from service.graphql.sql.compiling import CompileContext

NUMERIC_OPERATIONS = (
    "avg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "sum",
    "var_pop",
    "var_samp",
    "variance",
)
"""Aggregates over numeric columns (`<table>_<op>_fields`)."""

COMPARABLE_OPERATIONS = ("max", "min")
"""Aggregates over comparable columns (numbers, text, uuid, timestamps)."""

OPERATIONS = tuple(sorted(NUMERIC_OPERATIONS + COMPARABLE_OPERATIONS))

FLOAT_RESULT = frozenset(
    {"avg", "stddev", "stddev_pop", "stddev_samp", "var_pop", "var_samp", "variance"}
)
"""Aggregates whose result Hasura types as `Float` (the others keep the column's type)."""

_SQL_NAME = {
    "stddev": "stddev_samp",
    "variance": "var_samp",
}


def aggregate_function(
    ctx: CompileContext, operation: str, column: ColumnElement[Any], scalar: str
) -> ColumnElement[Any]:
    """The SQL aggregate `operation` over `column` (a column of Hasura type `scalar`)."""
    if operation in ("max", "min"):
        return getattr(sa.func, operation)(ctx.dialect.min_max_argument(column, scalar))
    if operation == "sum":
        return sa.func.sum(column)
    if operation == "avg":
        return sa.func.avg(column)
    name = _SQL_NAME.get(operation, operation)
    return getattr(sa.func, name)(column, type_=sa.Float())


def result_scalar(operation: str, column_scalar: str) -> str:
    """Hasura's scalar for the result of `operation` over a column of `column_scalar`."""
    return "Float" if operation in FLOAT_RESULT else column_scalar
