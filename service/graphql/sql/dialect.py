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
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnClause, ColumnElement
from sqlalchemy.sql.selectable import FromClause

from detector.observability.sqltypes import UUID
from service.graphql.catalog.metadata import ColumnInfo
from service.graphql.catalog.scalars import STRINGIFIABLE
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


def _json_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot bind {type(value).__name__} in a parameter set")


_JSON_PAIRS_PER_CALL = 50
"""Key/value pairs per `json_build_object` call (functions take at most 100 arguments)."""

_GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_text(text: str) -> ColumnElement[str]:
    """A constant of the engine's SQL written as a literal (not a parameter to bind)."""
    return sa.literal_column(_sql_string(text), sa.Text)


class _JSONConstant(ColumnClause[str]):
    """A constant of the response as its JSON text, written into the SQL as a literal.

    PostgreSQL's `json_object` writes it into the constant text around it (a `__typename`
    costs no concatenation per row)."""

    inherit_cache = True

    def __init__(self, json_text: str) -> None:
        super().__init__(_sql_string(json_text), type_=sa.Text, is_literal=True)
        self.json_text = json_text


def _joined(parts: Sequence[str | ColumnElement[Any]]) -> ColumnElement[Any]:
    """`parts` concatenated with `||` (strings as literals)."""
    text: ColumnElement[Any] | None = None
    for part in parts:
        element = _sql_text(part) if isinstance(part, str) else part
        text = element if text is None else text.op("||")(element)
    assert text is not None
    return text


def _check_name(key: str) -> None:
    """Response keys are written into the SQL: GraphQL names only, no quoting surprises."""
    if not _GRAPHQL_NAME.fullmatch(key):
        raise ValueError(f"not a GraphQL name: {key!r}")


def _json_key(key: str) -> ColumnElement[str]:
    """A response key as a SQL string literal."""
    _check_name(key)
    return sa.literal_column(_sql_string(key), sa.Text)


def _quoted(text: ColumnElement[Any]) -> ColumnElement[Any]:
    """`text` (which needs no escaping: digits, a uuid) as a JSON string."""
    return _joined(['"', text, '"'])


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

    # --- the response as JSON (`sql/documents.py`) -------------------------------------------
    #
    # PostgreSQL: JSON written as text, by concatenation. Each value is already its JSON
    # text, so nothing is parsed twice, and `||` with `string_agg` builds wide objects and
    # long arrays about twice as fast as `json_build_object` with `json_agg`.

    def json_object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        """A JSON object of `pairs` (key, value as `json_value` writes it; SQL NULL is
        null), keys in the order given. Keys are GraphQL names, written as literals."""
        return _joined(self._object_parts(pairs))

    def json_object_array(
        self, pairs: Sequence[tuple[str, ColumnElement[Any]]]
    ) -> ColumnElement[Any]:
        """`json_array(json_object(pairs))`: the aggregate JSON array of one object per row.

        The constant text that ends one row's object and starts the next one's is
        `string_agg`'s separator, written once: a row costs only the concatenation of its
        values and the constants between them (a `nodes { name __typename }` list of
        thousands of rows is about a fifth faster than with each object built whole).
        """
        parts = self._object_parts(pairs)
        if len(parts) == 1:  # every member a constant
            return self.json_array(_sql_text(parts[0]))
        head, values, tail = parts[0], parts[1:-1], parts[-1]
        assert isinstance(head, str) and isinstance(tail, str)
        rows = sa.func.string_agg(_joined(values), _sql_text(tail + "," + head), type_=sa.Text)
        # No rows: string_agg is NULL, and so is the concatenation.
        return sa.func.coalesce(
            _joined(["[" + head, rows, tail + "]"]), _sql_text("[]"), type_=sa.Text
        )

    @staticmethod
    def _object_parts(
        pairs: Sequence[tuple[str, ColumnElement[Any]]],
    ) -> list[str | ColumnElement[Any]]:
        """An object's text as constant strings alternating with values (never NULL),
        starting and ending with a string: constants written into the text around them."""
        parts: list[str | ColumnElement[Any]] = []
        text = ""
        for number, (key, value) in enumerate(pairs):
            _check_name(key)
            text += ("{" if number == 0 else ",") + f'"{key}":'
            if isinstance(value, _JSONConstant):
                text += value.json_text
            else:
                parts += [text, sa.func.coalesce(value, _sql_text("null"), type_=sa.Text)]
                text = ""
        parts.append(text + "}" if pairs else "{}")
        return parts

    def json_array(self, element: ColumnElement[Any]) -> ColumnElement[Any]:
        """The aggregate JSON array of `element` over the rows, in their order; `[]` for none.

        Rows come from a subquery ordered as the response needs: an aggregate over it
        keeps that order (as PostgREST relies on for `json_agg`, and SQLite always does).
        """
        items = sa.func.coalesce(
            sa.func.string_agg(element, _sql_text(","), type_=sa.Text), _sql_text(""), type_=sa.Text
        )
        return _joined(["[", items, "]"])

    def json_nested(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        """A JSON value read back from a subquery, to be embedded as JSON (not as text)."""
        return value

    def json_literal(self, text: str) -> ColumnElement[Any]:
        """The JSON value written as `text` (a constant of the engine, never user input)."""
        return _JSONConstant(text)

    def json_constant(self, value: str) -> ColumnElement[Any]:
        """A constant string of the response (`__typename`: a GraphQL name)."""
        return _JSONConstant(_json_text(value))

    def json_value(
        self, expression: ColumnElement[Any], scalar: str, *, stringify_numeric: bool
    ) -> ColumnElement[Any]:
        """A column or aggregate of Hasura scalar `scalar`, as the response writes it.

        The same text as the row-by-row path's serialisers (`catalog.scalars`):
        timestamps in UTC with `+00:00` and the fraction trimmed, integral numerics as
        integers, the others as float8 (NaN and infinities as strings), and with
        `stringify_numeric` bigint, numeric and float8 as strings. SQL NULL stays NULL.
        """
        if stringify_numeric and scalar in STRINGIFIABLE:
            if scalar == "bigint":
                return _quoted(sa.cast(expression, sa.Text))
            if scalar == "numeric":
                return _quoted(
                    sa.case(
                        (
                            expression == sa.func.trunc(expression),
                            sa.cast(sa.func.trunc(expression), sa.Text),
                        ),
                        else_=sa.cast(expression, sa.Text),
                    )
                )
            as_float = sa.cast(expression, postgresql.DOUBLE_PRECISION)
            # Python's repr: integral floats below 1e15 end in ".0" (PostgreSQL omits it).
            return _quoted(
                sa.case(
                    (
                        sa.and_(as_float == sa.func.trunc(as_float), sa.func.abs(as_float) < 1e15),
                        sa.cast(sa.cast(as_float, sa.BigInteger), sa.Text).op("||")(
                            _sql_text(".0")
                        ),
                    ),
                    else_=sa.cast(as_float, sa.Text),
                )
            )
        if scalar == "timestamptz":
            text = sa.func.to_char(
                sa.func.timezone(_sql_text("UTC"), expression),
                _sql_text('YYYY-MM-DD"T"HH24:MI:SS.US'),
                type_=sa.Text,
            )
            trimmed = sa.func.rtrim(
                sa.func.rtrim(text, _sql_text("0"), type_=sa.Text), _sql_text("."), type_=sa.Text
            )
            return _joined(['"', trimmed, '+00:00"'])
        if scalar == "uuid":
            return _quoted(sa.cast(expression, sa.Text))
        if scalar == "numeric":
            return sa.case(
                (
                    expression == sa.func.trunc(expression),
                    sa.cast(sa.func.trunc(expression), sa.Text),
                ),
                else_=sa.cast(
                    sa.func.to_json(sa.cast(expression, postgresql.DOUBLE_PRECISION)), sa.Text
                ),
            )
        if scalar in ("float8", "Float"):
            return sa.cast(
                sa.func.to_json(sa.cast(expression, postgresql.DOUBLE_PRECISION)), sa.Text
            )
        if scalar in ("Int", "bigint", "Boolean", "jsonb"):
            # Their text is their JSON (jsonb's text is JSON; booleans are true/false).
            return sa.cast(expression, sa.Text)
        return sa.cast(sa.func.to_json(expression), sa.Text)

    def json_document(self, value: ColumnElement[Any]) -> ColumnElement[str]:
        """The finished JSON value as text, as the statement's one result column."""
        return sa.type_coerce(value, sa.Text)

    # --- many parameter sets in one statement (`sql/multiplex.py`) ---------------------------

    def parameter_sets(
        self, types: Sequence[sa.types.TypeEngine[Any]]
    ) -> tuple[FromClause, ColumnElement[int], list[ColumnElement[Any]]]:
        """A relation `_subs` of parameter sets: its FROM item, the column numbering the
        sets, and one column per parameter (typed `types`), for a statement to run once
        per set. The parameter columns are written as names, never added to a FROM list,
        so any subquery may refer to them.

        PostgreSQL: `unnest` of one array per parameter (Hasura's multiplexing).
        """
        arrays = [sa.bindparam("set_numbers", type_=postgresql.ARRAY(sa.Integer))]
        arrays += [
            sa.bindparam(f"set_p{number}", type_=postgresql.ARRAY(column_type))
            for number, column_type in enumerate(types)
        ]
        names = ["n", *(f"p{number}" for number in range(len(types)))]
        subs = sa.func.unnest(*arrays).table_valued(*names).render_derived(name="_subs")
        columns = [sa.literal_column(f"_subs.p{number}") for number in range(len(types))]
        return subs, subs.c.n, columns

    def parameter_set_values(
        self, types: Sequence[sa.types.TypeEngine[Any]], sets: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        """The bound values of `parameter_sets(types)` for `sets` (numbered from 0)."""
        values: dict[str, Any] = {"set_numbers": list(range(len(sets)))}
        for number in range(len(types)):
            values[f"set_p{number}"] = [parameters[number] for parameters in sets]
        return values

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

    def json_object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        pieces = [
            self._json_object_piece(pairs[start : start + _JSON_PAIRS_PER_CALL])
            for start in range(0, len(pairs), _JSON_PAIRS_PER_CALL)
        ] or [self._json_object_piece([])]
        if len(pieces) == 1:
            return pieces[0]
        text = sa.func.substr(pieces[0], 1, sa.func.length(pieces[0]) - 1)
        for piece in pieces[1:]:
            text = text.concat(",").concat(sa.func.substr(piece, 2))
        return sa.func.json(text)

    def _json_object_piece(
        self, pairs: Sequence[tuple[str, ColumnElement[Any]]]
    ) -> ColumnElement[Any]:
        arguments: list[Any] = []
        for key, value in pairs:
            arguments += [_json_key(key), value]
        return sa.func.json_object(*arguments)

    def json_array(self, element: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.json_group_array(element)

    def json_object_array(
        self, pairs: Sequence[tuple[str, ColumnElement[Any]]]
    ) -> ColumnElement[Any]:
        return self.json_array(self.json_object(pairs))

    def json_nested(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        # JSON read back from a subquery is text to SQLite: json() makes it JSON again.
        return sa.func.json(value)

    def json_literal(self, text: str) -> ColumnElement[Any]:
        return sa.func.json(sa.literal_column(_sql_string(text)))

    def json_constant(self, value: str) -> ColumnElement[Any]:
        return _sql_text(value)  # json_object quotes it

    def json_value(
        self, expression: ColumnElement[Any], scalar: str, *, stringify_numeric: bool
    ) -> ColumnElement[Any]:
        if scalar == "timestamptz":
            # Stored as fixed-width UTC text (`...SS.ffffff+00:00`): trim the fraction.
            fraction = sa.func.substr(expression, sa.literal_column("1"), sa.literal_column("26"))
            trimmed = sa.func.rtrim(sa.func.rtrim(fraction, _sql_text("0")), _sql_text("."))
            return trimmed.concat(_sql_text("+00:00"))
        if scalar == "Boolean":
            return sa.func.json(
                sa.case(
                    (expression == sa.true(), _sql_text("true")),
                    (expression == sa.false(), _sql_text("false")),
                )
            )
        kind = sqlite_functions.json_serializer_name(scalar, stringify_numeric=stringify_numeric)
        if kind is not None:
            return sa.func.json(sa.func.pg_json(expression, _sql_text(kind)))
        return expression

    def json_document(self, value: ColumnElement[Any]) -> ColumnElement[str]:
        return sa.type_coerce(value, sa.Text)

    def parameter_sets(
        self, types: Sequence[sa.types.TypeEngine[Any]]
    ) -> tuple[FromClause, ColumnElement[int], list[ColumnElement[Any]]]:
        # One JSON array of sets, each an array of values: `json_each` numbers them. The
        # values are extracted once per set, in a subquery SQLite must not flatten into
        # its users (OFFSET keeps it whole), rather than at every use in every row.
        each = (
            sa.func.json_each(sa.bindparam("sets", type_=sa.Text))
            .table_valued("key", "value")
            .alias("_sets")
        )
        extracted = [
            sa.func.json_extract(each.c.value, sa.literal_column(f"'$[{number}]'")).label(
                f"p{number}"
            )
            for number in range(len(types))
        ]
        subs = (
            sa.select(each.c.key.label("n"), *extracted)
            .limit(sa.literal_column("-1"))
            .offset(sa.literal_column("0"))
            .subquery("_subs")
        )
        columns = [sa.literal_column(f"_subs.p{number}") for number in range(len(types))]
        return subs, subs.c.n, columns

    def parameter_set_values(
        self, types: Sequence[sa.types.TypeEngine[Any]], sets: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        # Values as their types bind them (timestamps and uuids as their stored text).
        processors = [column_type.bind_processor(self._sa_dialect) for column_type in types]
        rows = [
            [
                value if processor is None or value is None else processor(value)
                for processor, value in zip(processors, parameters, strict=True)
            ]
            for parameters in sets
        ]
        return {"sets": json.dumps(rows, default=_json_number)}

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
