"""Where PostgreSQL and SQLite differ, one method per construct.

The SQL layer compiles one `where`, `order_by`, aggregate or mutation for both backends;
every construct whose SQL differs asks the request's dialect (`CompileContext.dialect`)
instead of branching on the backend's name. `PostgresDialect` writes PostgreSQL's own
operators; `SQLiteDialect` calls the functions, aggregates and collation that
`service.graphql.sql.sqlite_functions` registers on every SQLite connection, which give
PostgreSQL's semantics (as Django's SQLite backend does with `as_sqlite`).

Adding a construct: a method on `SQLDialect` with PostgreSQL's SQL, overridden in
`SQLiteDialect`, and a test in `tests/test_sqlite_functions.py` or the backend-parametrised
GraphQL tests showing both answer alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from detector.observability.sqltypes import UUID
from service.graphql.catalog.metadata import ColumnInfo
from service.graphql.errors import DATA_EXCEPTION, EngineError, validation_failed
from service.graphql.sql import sqlite_functions

# Hasura's pattern operators: PostgreSQL's operator, and (SQLite) the emulating function
# with whether the result is negated.
PATTERN_OPERATORS: dict[str, tuple[str, str, bool]] = {
    "_like": ("LIKE", "pg_like", False),
    "_nlike": ("NOT LIKE", "pg_like", True),
    "_ilike": ("ILIKE", "pg_ilike", False),
    "_nilike": ("NOT ILIKE", "pg_ilike", True),
    "_similar": ("SIMILAR TO", "pg_similar", False),
    "_nsimilar": ("NOT SIMILAR TO", "pg_similar", True),
    "_regex": ("~", "pg_regex", False),
    "_nregex": ("!~", "pg_regex", True),
    "_iregex": ("~*", "pg_iregex", False),
    "_niregex": ("!~*", "pg_iregex", True),
}

COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "_eq": lambda a, b: a == b,
    "_neq": lambda a, b: a != b,
    "_gt": lambda a, b: a > b,
    "_gte": lambda a, b: a >= b,
    "_lt": lambda a, b: a < b,
    "_lte": lambda a, b: a <= b,
}

_HAS_KEYS_SYMBOL = {"_has_keys_any": "?|", "_has_keys_all": "?&"}


def _text(value: Any) -> ColumnElement[str]:
    return sa.bindparam(None, value, type_=sa.Text)


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SQLDialect:
    """PostgreSQL's SQL for each construct; `SQLiteDialect` overrides what differs."""

    name = "postgresql"

    def insert(self, table: sa.Table) -> Any:
        """An INSERT supporting `ON CONFLICT` for `table`."""
        return postgresql.insert(table)

    # --- filters ---------------------------------------------------------------------------

    def pattern_match(
        self, expression: ColumnElement[Any], operator: str, pattern: str, path: str
    ) -> ColumnElement[bool]:
        """`expression <operator> pattern` for one of `PATTERN_OPERATORS`."""
        sql_operator = PATTERN_OPERATORS[operator][0]
        return expression.op(sql_operator, is_comparison=True)(_text(pattern))

    def bool_aggregate(self, function: str, argument: ColumnElement[Any]) -> ColumnElement[Any]:
        """`bool_and` / `bool_or` over `argument`."""
        return getattr(sa.func, function)(argument)

    def count_distinct_rows(self, columns: Sequence[ColumnElement[Any]]) -> ColumnElement[int]:
        """Distinct combinations of several columns (Hasura's `count(columns, distinct)`)."""
        return sa.func.count(sa.tuple_(*columns).distinct())

    def jsonb_document(self, value: Any) -> ColumnElement[Any]:
        """A JSON value bound as a jsonb operand."""
        return sa.cast(_text(_json_text(value)), postgresql.JSONB)

    def jsonb_as_text(self, expression: ColumnElement[Any]) -> ColumnElement[str]:
        """`jsonb::text`, in PostgreSQL's text form."""
        return sa.cast(expression, sa.Text)

    def jsonb_has_keys(
        self, expression: ColumnElement[Any], operator: str, keys: str | list[str]
    ) -> ColumnElement[bool]:
        """`_has_key` (one key), `_has_keys_any` / `_has_keys_all` (a list)."""
        if operator == "_has_key":
            return expression.op("?", is_comparison=True)(_text(keys))
        array = sa.bindparam(None, keys, type_=postgresql.ARRAY(sa.Text))
        return expression.op(_HAS_KEYS_SYMBOL[operator], is_comparison=True)(array)

    def jsonb_contains(
        self, container: ColumnElement[Any], contained: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        """`container @> contained`."""
        return container.op("@>", is_comparison=True)(contained)

    def jsonb_compare(
        self, expression: ColumnElement[Any], operator: str, document: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        """jsonb equality and ordering (`_eq`, `_gt`, …) by jsonb's rules."""
        return COMPARE[operator](expression, document)

    # --- selects, ordering, aggregates ----------------------------------------------------------

    def in_values(
        self, expression: ColumnElement[Any], column: ColumnInfo, values: Sequence[Any]
    ) -> ColumnElement[bool]:
        """`expression IN values` as one bound parameter, whatever the number of values.

        One parameter keeps statements (and their plans) identical for any batch size,
        and stays clear of the drivers' parameter-count limits. Values come straight from
        earlier result rows, already in the driver's form: they are bound with the
        PostgreSQL type itself, skipping per-item conversion.
        """
        column_type = column.sa_column.type
        item_type: sa.types.TypeEngine[Any] = (
            postgresql.UUID(as_uuid=False) if isinstance(column_type, UUID) else column_type
        )
        array = sa.bindparam(None, list(values), type_=postgresql.ARRAY(item_type))
        return expression == sa.any_(array)

    def readable(self, expression: ColumnElement[Any]) -> ColumnElement[Any]:
        """`expression` typed so that its numbers read back unrounded (see SQLite's)."""
        return expression

    def order_collation(self, scalar: str) -> str | None:
        """The collation `ORDER BY` needs for a column of Hasura scalar `scalar`."""
        return None

    def min_max_argument(self, column: ColumnElement[Any], scalar: str) -> ColumnElement[Any]:
        """The argument of `min`/`max` over a column (PostgreSQL has no max(uuid))."""
        return sa.cast(column, sa.Text) if scalar == "uuid" else column

    # --- mutations ---------------------------------------------------------------------------

    def jsonb_update(self, operator: str, column: ColumnElement[Any], value: Any) -> Any:
        """The new value of a jsonb column for Hasura's `_append`, `_prepend`,
        `_delete_key`, `_delete_elem` and `_delete_at_path`."""
        if operator == "_append":
            return column.op("||")(self.jsonb_document(value))
        if operator == "_prepend":
            return self.jsonb_document(value).op("||")(column)
        if operator == "_delete_key":
            return column.op("-")(_text(value))
        if operator == "_delete_elem":
            return column.op("-")(sa.bindparam(None, value, type_=sa.Integer))
        return column.op("#-")(sa.bindparam(None, list(value), type_=postgresql.ARRAY(sa.Text)))


class PostgresDialect(SQLDialect):
    """PostgreSQL: the base's SQL, as it is."""


class SQLiteDialect(SQLDialect):
    """SQLite, through the functions `sqlite_functions` registers on each connection."""

    name = "sqlite"
    _sa_dialect = sqlite.dialect()

    def insert(self, table: sa.Table) -> Any:
        return sqlite.insert(table)

    def pattern_match(
        self, expression: ColumnElement[Any], operator: str, pattern: str, path: str
    ) -> ColumnElement[bool]:
        _, function, negate = PATTERN_OPERATORS[operator]
        self._check_pattern(function, operator, pattern, path)
        matched = getattr(sa.func, function)(expression, _text(pattern), type_=sa.Boolean) == 1
        return sa.not_(matched) if negate else matched

    @staticmethod
    def _check_pattern(function: str, operator: str, pattern: str, path: str) -> None:
        """Refuse, up front, a pattern the emulation will not evaluate.

        An invalid pattern is `data-exception` with PostgreSQL's wording, as PostgreSQL
        answers; a valid one using a construct RE2 cannot run in linear time
        (back-references, look-around) is `validation-failed` naming the operator. Inside
        SQLite either would surface as "user-defined function raised exception", and
        only once some row is compared.
        """
        try:
            sqlite_functions.PATTERN_COMPILERS[function](pattern)
        except sqlite_functions.UnsupportedPattern as error:
            raise validation_failed(
                f"the pattern of '{operator}' uses {error.construct}, which this server's "
                "SQLite backend does not evaluate: its patterns run on RE2, in time linear "
                "in the text (PostgreSQL backends take it)",
                path,
            ) from None
        except sqlite_functions.InvalidPattern as error:
            raise EngineError(
                DATA_EXCEPTION, f"invalid regular expression: {error}", path
            ) from None

    def bool_aggregate(self, function: str, argument: ColumnElement[Any]) -> ColumnElement[Any]:
        return (sa.func.min if function == "bool_and" else sa.func.max)(argument)

    def count_distinct_rows(self, columns: Sequence[ColumnElement[Any]]) -> ColumnElement[int]:
        return sa.func.count(sa.func.json_array(*columns).distinct())

    def jsonb_document(self, value: Any) -> ColumnElement[Any]:
        return _text(_json_text(value))

    def jsonb_as_text(self, expression: ColumnElement[Any]) -> ColumnElement[str]:
        return sa.func.jsonb_text(expression, type_=sa.Text)

    def jsonb_has_keys(
        self, expression: ColumnElement[Any], operator: str, keys: str | list[str]
    ) -> ColumnElement[bool]:
        if operator == "_has_key":
            return sa.func.jsonb_has_key(expression, _text(keys)) == 1
        function = sa.func.jsonb_has_any if operator == "_has_keys_any" else sa.func.jsonb_has_all
        return function(expression, _text(_json_text(keys))) == 1

    def jsonb_contains(
        self, container: ColumnElement[Any], contained: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        return sa.func.jsonb_contains(container, contained) == 1

    def jsonb_compare(
        self, expression: ColumnElement[Any], operator: str, document: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        return COMPARE[operator](sa.func.jsonb_cmp(expression, document), 0)

    def in_values(
        self, expression: ColumnElement[Any], column: ColumnInfo, values: Sequence[Any]
    ) -> ColumnElement[bool]:
        # `IN (SELECT value FROM json_each(?))`: one parameter for any number of values.
        processor = column.sa_column.type.bind_processor(self._sa_dialect)
        items = [processor(value) if processor else value for value in values]
        table = sa.func.json_each(_text(json.dumps(items))).table_valued("value")
        return expression.in_(sa.select(table.c.value))

    def readable(self, expression: ColumnElement[Any]) -> ColumnElement[Any]:
        # SQLAlchemy turns SQLite's floats for a NUMERIC without scale into Decimals cut
        # to ten digits; PostgreSQL's numeric keeps them all. Reading them as floats keeps
        # both backends answering the same number.
        column_type = expression.type
        if (
            isinstance(column_type, sa.Numeric)
            and not isinstance(column_type, sa.Float)
            and getattr(column_type, "scale", None) is None
        ):
            return sa.type_coerce(expression, sa.Float())
        return expression

    def order_collation(self, scalar: str) -> str | None:
        # jsonb orders by jsonb's rules: the registered collation.
        return "jsonb" if scalar == "jsonb" else None

    def min_max_argument(self, column: ColumnElement[Any], scalar: str) -> ColumnElement[Any]:
        return column

    def jsonb_update(self, operator: str, column: ColumnElement[Any], value: Any) -> Any:
        document = _text(_json_text(value))
        if operator == "_append":
            return sa.func.jsonb_concat(column, document)
        if operator == "_prepend":
            return sa.func.jsonb_concat(document, column)
        if operator == "_delete_key":
            return sa.func.jsonb_delete_key(column, _text(value))
        if operator == "_delete_elem":
            return sa.func.jsonb_delete_elem(column, sa.bindparam(None, value, type_=sa.Integer))
        return sa.func.jsonb_delete_path(column, document)


_DIALECTS: dict[str, SQLDialect] = {"postgresql": PostgresDialect(), "sqlite": SQLiteDialect()}


def dialect_named(name: str) -> SQLDialect:
    """The dialect for `"postgresql"` or `"sqlite"`; raises ValueError naming both."""
    try:
        return _DIALECTS[name]
    except KeyError:
        known = sorted(_DIALECTS)
        raise ValueError(f"unknown SQL dialect {name!r}: expected one of {known}") from None
