"""`compile_where`: a Hasura `<table>_bool_exp` as one SQL condition, on either backend.

Semantics follow Hasura v2:
- keys of one object are ANDed; `{}` is true; `_and: []` is true, `_or: []` false;
- `_in: []` matches nothing, `_nin: []` everything;
- an object relationship compares through the related row, an array relationship means
  "some related row matches" (both as `EXISTS`, with the related table's row filter for
  the role applied);
- `<array relationship>_aggregate` compares `count`, `bool_and` or `bool_or` over the
  related rows;
- a null where a value is expected is an error, as in Hasura v2.

Where PostgreSQL and SQLite differ (`ILIKE`, `SIMILAR TO`, regular expressions,
case-sensitive `LIKE`, jsonb operators), the request's dialect writes the SQL
(`service.graphql.sql.dialect`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from service.graphql.catalog.metadata import ColumnInfo, Relationship, TableInfo
from service.graphql.catalog.permissions import SessionVariable
from service.graphql.catalog.scalars import build_custom_scalars
from service.graphql.errors import validation_failed
from service.graphql.sql.compiling import CompileContext, ParamRef, bind
from service.graphql.sql.dialect import PATTERN_OPERATORS

TRUE = sa.true()
FALSE = sa.false()
_CONNECTIVES: dict[str, tuple[Callable[..., ColumnElement[bool]], ColumnElement[bool]]] = {
    "_and": (sa.and_, TRUE),
    "_or": (sa.or_, FALSE),
}

_SCALAR_PARSERS = build_custom_scalars()


def compile_where(
    ctx: CompileContext,
    table: TableInfo,
    alias: FromClause,
    bool_exp: Mapping[str, Any] | None,
    path: str = "$",
) -> ColumnElement[bool]:
    """The SQL condition for `bool_exp` over rows of `table` named `alias`.

    Raises `EngineError` (validation-failed) for a null where a value is expected or an
    invalid value, naming the request path.
    """
    if bool_exp is None:
        return TRUE
    conditions: list[ColumnElement[bool]] = []
    naming = ctx.catalog.naming
    for key, value in bool_exp.items():
        # Paths and messages name the field the client wrote (the naming convention's).
        public = naming.bool_exp_key(table, key)
        here = f"{path}.{public}"
        if value is None:
            raise validation_failed(f"unexpected null value for field '{public}'", here)
        if key in _CONNECTIVES:
            # The identity element first: an empty `_and` is true, an empty `_or` false.
            combine, identity = _CONNECTIVES[key]
            conditions.append(
                combine(
                    identity,
                    *(
                        compile_where(ctx, table, alias, v, f"{here}[{i}]")
                        for i, v in enumerate(_as_list(value))
                    ),
                )
            )
        elif key == "_not":
            conditions.append(sa.not_(compile_where(ctx, table, alias, value, here)))
        elif key in table.relationships:
            conditions.append(_relationship(ctx, table.relationships[key], alias, value, here))
        elif (
            key.endswith("_aggregate")
            and key.removesuffix("_aggregate") in table.array_relationships
        ):
            relationship = table.array_relationships[key.removesuffix("_aggregate")]
            conditions.append(_aggregate_predicate(ctx, relationship, alias, value, here))
        elif key in table.computed_fields:
            computed = table.computed_fields[key]
            expression = computed.function.build(alias)
            conditions.append(
                compile_comparison(ctx, expression, sa.Numeric(), computed.scalar, value, here)
            )
        else:
            column = table.columns_by_field.get(key)
            if column is None:
                raise validation_failed(
                    f"field '{key}' not found in type: '{table.type_name}_bool_exp'", here
                )
            conditions.append(
                compile_comparison(
                    ctx,
                    alias.c[column.name],
                    column.sa_column.type,
                    column.scalar,
                    value,
                    here,
                    column,
                )
            )
    if not conditions:
        return TRUE
    if len(conditions) == 1:
        return conditions[0]
    return sa.and_(*conditions)


def _as_list(value: Any) -> list[Any]:
    # GraphQL coerces a single object into a one-element list; filters built in Python
    # (permission rules) may still hold a bare object.
    return value if isinstance(value, list) else [value]


def related_condition(
    ctx: CompileContext, relationship: Relationship, outer: FromClause, inner: FromClause
) -> ColumnElement[bool]:
    """Join condition of `relationship` plus the role's row filter on the related table."""
    target = ctx.table(relationship.target)
    join = inner.c[relationship.target_column] == outer.c[relationship.source_column]
    access_filter = ctx.access(target.name).filter
    if access_filter:
        return sa.and_(join, compile_where(ctx, target, inner, access_filter, "$"))
    return join


def _relationship(
    ctx: CompileContext, relationship: Relationship, outer: FromClause, value: Any, path: str
) -> ColumnElement[bool]:
    target = ctx.table(relationship.target)
    inner = ctx.alias(target)
    condition = sa.and_(
        related_condition(ctx, relationship, outer, inner),
        compile_where(ctx, target, inner, value, path),
    )
    return sa.exists(sa.select(sa.literal(1)).select_from(inner).where(condition))


def _aggregate_predicate(
    ctx: CompileContext, relationship: Relationship, outer: FromClause, value: Any, path: str
) -> ColumnElement[bool]:
    target = ctx.table(relationship.target)
    conditions: list[ColumnElement[bool]] = []
    for function, spec in value.items():
        here = f"{path}.{function}"
        if spec is None:
            raise validation_failed(f"unexpected null value for field '{function}'", here)
        inner = ctx.alias(target)
        where = related_condition(ctx, relationship, outer, inner)
        if spec.get("filter") is not None:
            where = sa.and_(
                where, compile_where(ctx, target, inner, spec["filter"], f"{here}.filter")
            )
        arguments = spec.get("arguments")
        distinct = bool(spec.get("distinct"))
        if function == "count":
            columns = [_field_column(target, name) for name in _as_list(arguments or [])]
            aggregate = count_expression(ctx, [inner.c[c.name] for c in columns], distinct)
            scalar, value_type = "Int", sa.Integer()
        else:
            column = _field_column(target, arguments)
            argument = inner.c[column.name]
            if distinct:
                argument = argument.distinct()
            aggregate = ctx.dialect.bool_aggregate(function, argument)
            scalar, value_type = "Boolean", sa.Boolean()
        subquery = sa.select(aggregate).select_from(inner).where(where).scalar_subquery()
        predicate = spec.get("predicate")
        if predicate is None:
            raise validation_failed("missing required field 'predicate'", here)
        conditions.append(
            compile_comparison(ctx, subquery, value_type, scalar, predicate, f"{here}.predicate")
        )
    return sa.and_(TRUE, *conditions)


def _field_column(table: TableInfo, field_name: Any) -> ColumnInfo:
    column = table.columns_by_field.get(str(field_name))
    if column is None:  # enums make this unreachable through GraphQL
        raise validation_failed(f"unknown column {field_name!r} of {table.type_name}")
    return column


def count_expression(
    ctx: CompileContext, columns: list[ColumnElement[Any]], distinct: bool
) -> ColumnElement[int]:
    """Hasura's `count(columns, distinct)`.

    No columns counts rows. One column counts its non-null values. Several columns
    count rows (PostgreSQL counts the row value `(a, b)`, which is never null), or the
    distinct combinations with `distinct`.
    """
    if not columns:
        return sa.func.count()
    if len(columns) == 1:
        return sa.func.count(columns[0].distinct() if distinct else columns[0])
    if not distinct:
        return sa.func.count()
    return ctx.dialect.count_distinct_rows(columns)


def resolve_value(ctx: CompileContext, value: Any, scalar: str, path: str) -> Any:
    """A comparison value, with session variables from permission rules resolved."""
    if isinstance(value, SessionVariable):
        raw = ctx.session_value(value, path)
        if isinstance(raw, ParamRef):
            return raw.read_as(scalar)
        return read_session_value(raw, scalar, path)
    if isinstance(value, list):
        return [resolve_value(ctx, item, scalar, path) for item in value]
    return value


def read_session_value(raw: str, scalar: str, path: str) -> Any:
    """A session variable's text as a value of Hasura scalar `scalar`.

    Raises `EngineError` (validation-failed) when the text is not such a value.
    """
    parser = _SCALAR_PARSERS.get(scalar)
    try:
        if parser is not None:
            return parser.coerce_input_value(raw)  # type: ignore[misc]
        if scalar == "Int":
            return int(raw)
        if scalar == "Float":
            return float(raw)
        if scalar == "Boolean":
            return raw.lower() in ("true", "t", "1")
    except (ValueError, TypeError) as error:
        raise validation_failed(str(error), path) from error
    return raw


def compile_comparison(
    ctx: CompileContext,
    expression: ColumnElement[Any],
    value_type: sa.types.TypeEngine[Any],
    scalar: str,
    operators: Mapping[str, Any],
    path: str,
    column: ColumnInfo | None = None,
) -> ColumnElement[bool]:
    """`<scalar>_comparison_exp` applied to `expression`."""
    if not isinstance(operators, Mapping):
        raise validation_failed(f"expected an object of operators, got {operators!r}", path)
    conditions: list[ColumnElement[bool]] = []
    for operator, raw in operators.items():
        here = f"{path}.{ctx.catalog.naming.operator(operator)}"
        if raw is None:
            raise validation_failed(f"unexpected null value for type '{scalar}'", here)
        value = resolve_value(ctx, raw, scalar, here)
        if operator == "_is_null":
            conditions.append(expression.is_(None) if value else expression.is_not(None))
        elif scalar == "jsonb":
            conditions.append(_jsonb(ctx, expression, value_type, operator, value, here))
        elif operator in PATTERN_OPERATORS:
            conditions.append(_pattern(ctx, expression, operator, value, here))
        else:
            conditions.append(_basic(expression, value_type, operator, value, here))
    return sa.and_(TRUE, *conditions) if len(conditions) != 1 else conditions[0]


def _basic(
    expression: ColumnElement[Any],
    value_type: sa.types.TypeEngine[Any],
    operator: str,
    value: Any,
    path: str,
) -> ColumnElement[bool]:
    if operator == "_in":
        items = _as_list(value)
        return expression.in_([bind(item, value_type) for item in items]) if items else FALSE
    if operator == "_nin":
        items = _as_list(value)
        return expression.not_in([bind(item, value_type) for item in items]) if items else TRUE
    operand = bind(value, value_type)
    if operator == "_eq":
        return expression == operand
    if operator == "_neq":
        return expression != operand
    if operator == "_gt":
        return expression > operand
    if operator == "_gte":
        return expression >= operand
    if operator == "_lt":
        return expression < operand
    if operator == "_lte":
        return expression <= operand
    raise validation_failed(f"unknown operator {operator}", path)


def _pattern(
    ctx: CompileContext, expression: ColumnElement[Any], operator: str, value: Any, path: str
) -> ColumnElement[bool]:
    return ctx.dialect.pattern_match(expression, operator, str(value), path)


def _jsonb(
    ctx: CompileContext,
    expression: ColumnElement[Any],
    value_type: sa.types.TypeEngine[Any],
    operator: str,
    value: Any,
    path: str,
) -> ColumnElement[bool]:
    if operator == "_cast":
        conditions = []
        for target, operators in value.items():
            if target != "String":
                raise validation_failed(f"cannot cast jsonb to {target}", f"{path}.{target}")
            text = ctx.dialect.jsonb_as_text(expression)
            conditions.append(
                compile_comparison(ctx, text, sa.Text(), "String", operators, f"{path}.{target}")
            )
        return sa.and_(TRUE, *conditions)
    if operator in ("_has_key", "_has_keys_any", "_has_keys_all"):
        keys = value if operator == "_has_key" else _as_list(value)
        return ctx.dialect.jsonb_has_keys(expression, operator, keys)
    if operator in ("_contains", "_contained_in"):
        document = ctx.dialect.jsonb_document(value)
        if operator == "_contains":
            return ctx.dialect.jsonb_contains(expression, document)
        return ctx.dialect.jsonb_contains(document, expression)
    if operator in ("_in", "_nin"):
        items = _as_list(value)
        if not items:
            return FALSE if operator == "_in" else TRUE
        matches = sa.or_(*(_jsonb_order(ctx, expression, "_eq", item) for item in items))
        return matches if operator == "_in" else sa.not_(matches)
    if operator in ("_eq", "_neq", "_gt", "_gte", "_lt", "_lte"):
        return _jsonb_order(ctx, expression, operator, value)
    raise validation_failed(f"unknown operator {operator}", path)


def _jsonb_order(
    ctx: CompileContext, expression: ColumnElement[Any], operator: str, value: Any
) -> ColumnElement[bool]:
    return ctx.dialect.jsonb_compare(expression, operator, ctx.dialect.jsonb_document(value))


def referenced_tables(ctx: CompileContext, table: TableInfo, bool_exp: Any) -> set[str]:
    """Tables a filter reads through relationships (for live-query invalidation)."""
    found: set[str] = set()
    if not isinstance(bool_exp, Mapping):
        return found
    for key, value in bool_exp.items():
        if key in ("_and", "_or"):
            for item in _as_list(value or []):
                found |= referenced_tables(ctx, table, item)
        elif key == "_not":
            found |= referenced_tables(ctx, table, value)
        elif key in table.relationships:
            target = ctx.table(table.relationships[key].target)
            found.add(target.name)
            found |= referenced_tables(ctx, target, value)
        elif (
            key.endswith("_aggregate")
            and key.removesuffix("_aggregate") in table.array_relationships
        ):
            target = ctx.table(table.array_relationships[key.removesuffix("_aggregate")].target)
            found.add(target.name)
            for spec in (value or {}).values():
                if isinstance(spec, Mapping):
                    found |= referenced_tables(ctx, target, spec.get("filter"))
        elif key in table.computed_fields:
            found.update(table.computed_fields[key].function.reads)
    return found
