"""Execute plans: one SQL statement per plan level, whatever the number of rows.

A root field's rows come from one `SELECT`. Then, level by level, each relationship in
the selection loads the related rows of *every* parent of that level in one statement
(`WHERE key = ANY(:keys)`), with per-parent `limit`/`offset`/`distinct_on` through
`row_number() OVER (PARTITION BY key …)`; each nested `_aggregate` is one `GROUP BY key`
statement. Statements per request therefore depend only on the query's shape.

Loading happens afresh for every execution (nothing is cached between executions), so
a live query re-executed later sees current data. Only the columns the query asks for
(plus join keys) are selected. Results are plain dicts keyed by response key, already
serialised: the engine hands them to graphql-core as completed values.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import CodeType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from service.graphql.catalog.metadata import ColumnInfo, TableInfo
from service.graphql.errors import EngineError, validation_failed
from service.graphql.plan import (
    AggregateFieldsOut,
    AggregatePlan,
    ArrayAggregateOut,
    ArrayRelationshipOut,
    ColumnOut,
    ComputedOut,
    ConstOut,
    CountOut,
    NodesOut,
    ObjectRelationshipOut,
    OperationOut,
    RowPlan,
    SelectArgs,
)
from service.graphql.sql.aggregates import aggregate_function
from service.graphql.sql.compiling import CompileContext
from service.graphql.sql.dberrors import translate
from service.graphql.sql.filters import compile_where, count_expression
from service.graphql.sql.ordering import compile_order_by

PARTITION = "_part"

VALUES_AS_FETCHED = frozenset({"jsonb", "String", "Boolean", "Int", "uuid"})
"""Column scalars whose fetched values are already what the response holds."""


@dataclass
class Partition:
    """Rows related to many parents at once: `column` holds the parent's key."""

    column: ColumnInfo
    keys: list[Any]


class Fetcher:
    """Runs one root field's statements on one connection.

    Every row fetched is charged to the request's response budget at once (each shows
    in the response at least once), so what a request holds in memory stays within the
    budget while it loads; `charge_response` charges the rest once the result is shaped.
    """

    def __init__(self, ctx: CompileContext, conn: AsyncConnection) -> None:
        self.ctx = ctx
        self.conn = conn
        self.statements = 0
        self.fetched = 0

    async def rows(self, statement: Select[Any], path: str = "$") -> Sequence[sa.Row[Any]]:
        self.statements += 1
        try:
            result = await self.conn.execute(statement)
        except DBAPIError as error:
            raise translate(error, self.ctx.catalog) from error
        rows = result.all()
        if self.ctx.budget is not None:
            self.ctx.budget.charge(len(rows), path)
            self.fetched += len(rows)
        return rows


def charge_response(
    fetcher: Fetcher, plan: RowPlan | AggregatePlan, value: Any, fetched_before: int
) -> None:
    """Charge a root field's shaped `value` (rows, a row or an aggregate) to the budget.

    Its size counts shared relationship rows once per place they appear, as the encoded
    response will (`response_size`); the rows fetched for it (since `fetcher.fetched`
    was `fetched_before`) were charged already and are deducted.
    """
    budget = fetcher.ctx.budget
    if budget is None:
        return
    size = response_size(plan, value)
    already = fetcher.fetched - fetched_before
    budget.charge(max(0, size - already), plan.path)
    fetcher.fetched = fetched_before + max(size, already)


def response_size(plan: RowPlan | AggregatePlan, value: Any) -> int:
    """Row objects in `value` as encoded: one per row and per aggregate object, nested
    relationships expanded (each shared list is measured once, so this costs what the
    distinct rows cost, not what the expansion would)."""
    measured: dict[int, int] = {}
    nested: dict[int, list[tuple[str, Any]]] = {}

    def outputs_of(plan: RowPlan | AggregatePlan) -> list[tuple[str, Any]]:
        found = nested.get(id(plan))
        if found is None:
            found = [
                (output.key, output)
                for output in plan.outputs
                if isinstance(
                    output,
                    ObjectRelationshipOut | ArrayRelationshipOut | ArrayAggregateOut | NodesOut,
                )
            ]
            nested[id(plan)] = found
        return found

    def size_of(plan: RowPlan | AggregatePlan, obj: dict[str, Any]) -> int:
        size = 1
        for key, output in outputs_of(plan):
            value = obj.get(key)
            if not value:
                continue
            known = measured.get(id(value))
            if known is None:
                if isinstance(value, list):
                    known = sum(size_of(output.plan, item) for item in value)
                else:
                    known = size_of(output.plan, value)
                measured[id(value)] = known
            size += known
        return size

    if value is None:
        return 0
    if isinstance(value, list):
        return sum(size_of(plan, row) for row in value)
    return size_of(plan, value)


# --- building row queries --------------------------------------------------------------------

ColumnsFor = Callable[[FromClause], list[tuple[str, ColumnElement[Any]]]]


def _limit(ctx: CompileContext, table: TableInfo, args: SelectArgs) -> int | None:
    limit = args.limit
    role_limit = ctx.access(table.name).limit
    if role_limit is not None:
        limit = role_limit if limit is None else min(limit, role_limit)
    if ctx.max_rows is not None and limit is not None and limit > ctx.max_rows:
        raise validation_failed(
            f"limit {limit} exceeds the maximum of {ctx.max_rows} rows per select",
            f"{args.path}.args.limit",
        )
    return limit


def build_rows_query(
    ctx: CompileContext,
    table: TableInfo,
    columns_for: ColumnsFor,
    args: SelectArgs,
    partition: Partition | None = None,
    extra_condition: Callable[[FromClause], ColumnElement[bool]] | None = None,
    cap: int | None = None,
    correlate: FromClause | None = None,
) -> tuple[Select[Any], list[str]]:
    """One SELECT for `table`'s rows under `args`, and the labels of its columns.

    With a partition, `limit`/`offset`/`distinct_on` apply per parent key and the key is
    selected as `_part`. `cap` limits the rows of the whole statement (cap + 1 are
    fetched so the caller can tell when it was exceeded). `correlate` names the row of
    an enclosing statement that `extra_condition` refers to (a correlated subquery).
    """
    alias = ctx.alias(table)
    access = ctx.access(table.name)
    conditions: list[ColumnElement[bool]] = []
    if access.filter:
        conditions.append(compile_where(ctx, table, alias, access.filter))
    if args.where is not None:
        conditions.append(compile_where(ctx, table, alias, args.where, f"{args.path}.args.where"))
    if partition is not None:
        conditions.append(
            ctx.dialect.in_values(alias.c[partition.column.name], partition.column, partition.keys)
        )
    if extra_condition is not None:
        conditions.append(extra_condition(alias))
    where = sa.and_(sa.true(), *conditions)
    terms = compile_order_by(ctx, table, alias, args.order_by, f"{args.path}.args.order_by")
    distinct = [table.columns_by_field[name] for name in args.distinct_on]
    limit = _limit(ctx, table, args)
    offset = args.offset or 0

    selected = [expression.label(label) for label, expression in columns_for(alias)]
    labels = [label for label, _ in columns_for(alias)]
    if partition is not None:
        selected.append(alias.c[partition.column.name].label(PARTITION))
        labels.append(PARTITION)
    windowed = bool(distinct) or (partition is not None and (limit is not None or offset > 0))

    if not windowed:
        statement = sa.select(*selected).select_from(alias).where(where)
        if correlate is not None:
            statement = statement.correlate(correlate)
        statement = statement.order_by(*(term.clause() for term in terms))
        return _bounded(statement, partition, limit, offset, cap), labels

    order_labels = [term.expression.label(f"_o{i}") for i, term in enumerate(terms)]
    inner_columns: list[Any] = [*selected, *order_labels]
    if distinct:
        partition_by = [alias.c[column.name] for column in distinct]
        if partition is not None:
            partition_by.insert(0, alias.c[partition.column.name])
        window_order = [term.clause() for term in terms] or None
        inner_columns.append(
            sa.func.row_number().over(partition_by=partition_by, order_by=window_order).label("_dn")
        )
    inner_select = sa.select(*inner_columns).select_from(alias).where(where)
    if correlate is not None:
        inner_select = inner_select.correlate(correlate)
    inner = inner_select.subquery()
    kept = [inner.c._dn == 1] if distinct else []

    def ordered(source: FromClause) -> list[ColumnElement[Any]]:
        return [term.clause(source.c[f"_o{i}"]) for i, term in enumerate(terms)]

    if partition is not None and (limit is not None or offset > 0):
        middle_columns = [inner.c[label] for label in labels]
        middle_columns += [inner.c[f"_o{i}"] for i in range(len(terms))]
        middle_columns.append(
            sa.func.row_number()
            .over(partition_by=inner.c[PARTITION], order_by=ordered(inner) or None)
            .label("_rn")
        )
        middle = sa.select(*middle_columns).where(*kept).subquery()
        bounds = [middle.c._rn > offset]
        if limit is not None:
            bounds.append(middle.c._rn <= offset + limit)
        statement = (
            sa.select(*(middle.c[label] for label in labels))
            .where(*bounds)
            .order_by(middle.c[PARTITION], middle.c._rn)
        )
    else:
        statement = sa.select(*(inner.c[label] for label in labels)).where(*kept)
        statement = statement.order_by(*ordered(inner))
    return _bounded(statement, partition, limit, offset, cap), labels


def _bounded(
    statement: sa.Select[Any],
    partition: Partition | None,
    limit: int | None,
    offset: int,
    cap: int | None,
) -> sa.Select[Any]:
    """`statement` with its page and its `cap` (see `build_rows_query`).

    `limit`/`offset` apply here only without a partition (partitioned reads page per
    parent in a window); `cap` + 1 rows are read so that reaching the cap can be told.
    """
    if partition is None:
        if limit is not None:
            statement = statement.limit(limit)
        if offset:
            statement = statement.offset(offset)
    if cap is not None and (limit is None or partition is not None):
        statement = statement.limit(cap + 1)
    return statement


# --- rows ------------------------------------------------------------------------------------------


def row_columns(plan: RowPlan, ctx: CompileContext) -> ColumnsFor:
    """The columns a row plan needs: selected columns, computed fields, join keys."""
    wanted: list[tuple[str, Any]] = []
    seen: set[str] = set()

    def add(label: str, build: Any) -> None:
        if label not in seen:
            seen.add(label)
            wanted.append((label, build))

    for output in plan.outputs:
        if isinstance(output, ColumnOut):
            add(f"c_{output.column.name}", output.column.name)
        elif isinstance(output, ComputedOut):
            add(f"f_{output.computed.name}", output.computed)
        elif isinstance(output, ObjectRelationshipOut | ArrayRelationshipOut | ArrayAggregateOut):
            add(f"c_{output.relationship.source_column}", output.relationship.source_column)
    if not wanted:
        # A selection of only __typename still needs a column to count rows by.
        key = (
            plan.table.primary_key[0] if plan.table.primary_key else next(iter(plan.table.columns))
        )
        add(f"c_{key}", key)

    def columns_for(alias: FromClause) -> list[tuple[str, ColumnElement[Any]]]:
        result: list[tuple[str, ColumnElement[Any]]] = []
        for label, build in wanted:
            if isinstance(build, str):
                result.append((label, ctx.dialect.readable(alias.c[build])))
            else:
                result.append((label, ctx.dialect.readable(build.function.build(alias))))
        return result

    return columns_for


def _check_cap(ctx: CompileContext, table: TableInfo, rows: Sequence[Any], path: str) -> None:
    if ctx.max_rows is not None and len(rows) > ctx.max_rows:
        raise row_cap_error(ctx.max_rows, table, path)


def row_cap_error(max_rows: int, table: TableInfo, path: str) -> EngineError:
    """The error for a select that would return more than `max_rows` rows of `table`."""
    return validation_failed(
        f"the query would return more than {max_rows} rows of '{table.type_name}'; "
        "narrow it with 'where' or 'limit'",
        path,
    )


async def select_rows(
    fetcher: Fetcher,
    plan: RowPlan,
    args: SelectArgs,
    extra_condition: Callable[[FromClause], ColumnElement[bool]] | None = None,
) -> list[dict[str, Any]]:
    """The rows of a root list field (or `_by_pk` with `extra_condition`), shaped by `plan`."""
    ctx = fetcher.ctx
    fetched_before = fetcher.fetched
    statement, labels = build_rows_query(
        ctx,
        plan.table,
        row_columns(plan, ctx),
        args,
        extra_condition=extra_condition,
        cap=ctx.max_rows,
    )
    rows = await fetcher.rows(statement, plan.path)
    _check_cap(ctx, plan.table, rows, plan.path)
    shaped = await complete_rows(fetcher, plan, rows, labels)
    charge_response(fetcher, plan, shaped, fetched_before)
    return shaped


async def complete_rows(
    fetcher: Fetcher, plan: RowPlan, rows: Sequence[Any], labels: list[str]
) -> list[dict[str, Any]]:
    """Shape fetched rows into response dicts, loading each relationship in one go."""
    index = {label: position for position, label in enumerate(labels)}
    measured = await _measure_siblings(fetcher, plan, rows, index)
    fields: list[tuple[str, Field]] = []
    for output in plan.outputs:
        fields.append((output.key, await _field(fetcher, output, rows, index, measured)))
    build = _row_builder(tuple(fields))
    return [build(row) for row in rows]


def _keys(rows: Sequence[Any], position: int) -> list[Any]:
    return list(dict.fromkeys(row[position] for row in rows if row[position] is not None))


@dataclass(frozen=True)
class Field:
    """How one response key gets its value from a fetched row.

    `constant` (when `position` is None and `function` is None), the row's value at
    `position` (through `function` when set, skipping nulls), or `function(row)` when
    `whole_row`.
    """

    position: int | None = None
    function: Callable[[Any], Any] | None = None
    constant: Any = None
    whole_row: bool = False


def _row_builder(fields: tuple[tuple[str, Field], ...]) -> Callable[[Any], dict[str, Any]]:
    """A function building one response dict from a row, specialised for `fields`.

    Thousands of rows go through it per request, so it is generated as one dict
    display (`{"id": row[0], "__typename": C1, ...}`) instead of a loop over getters;
    keys and values are never interpolated as code, only as names and indexes.
    """
    namespace: dict[str, Any] = {}
    items: list[str] = []
    for number, (key, field) in enumerate(fields):
        name = f"k{number}"
        namespace[name] = key
        if field.whole_row:
            namespace[f"f{number}"] = field.function
            items.append(f"{name}: f{number}(row)")
        elif field.position is None:
            namespace[f"c{number}"] = field.constant
            items.append(f"{name}: c{number}")
        elif field.function is None:
            items.append(f"{name}: row[{int(field.position)}]")
        else:
            namespace[f"f{number}"] = field.function
            position = int(field.position)
            items.append(
                f"{name}: (None if (v{number} := row[{position}]) is None else f{number}(v{number}))"
            )
    source = "lambda row: {" + ", ".join(items) + "}"
    return eval(_compiled_builder(source), namespace)


@functools.lru_cache(maxsize=1024)
def _compiled_builder(source: str) -> CodeType:
    # The source depends only on the fields' kinds and positions (keys, functions and
    # constants come from the namespace): one compilation serves every request of a shape.
    return compile(source, "<row builder>", "eval")


async def _measure_siblings(
    fetcher: Fetcher, plan: RowPlan, rows: Sequence[Any], index: dict[str, int]
) -> dict[str, dict[Any, dict[str, dict[str, Any]]]]:
    """Aggregate blocks of sibling `<rel>_aggregate` fields of one relationship, together."""
    by_relationship: dict[str, list[ArrayAggregateOut]] = {}
    for output in plan.outputs:
        if (
            isinstance(output, ArrayAggregateOut)
            and _blocks(output.plan)
            and measurable_together(output.args)
            # A role's row limit selects rows before aggregating: not shareable.
            and fetcher.ctx.access(output.plan.table.name).limit is None
        ):
            by_relationship.setdefault(output.relationship.name, []).append(output)
    measured: dict[str, dict[Any, dict[str, dict[str, Any]]]] = {}
    for siblings in by_relationship.values():
        if len(siblings) < 2:
            continue
        relationship = siblings[0].relationship
        target = fetcher.ctx.table(relationship.target)
        keys = _keys(rows, index[f"c_{relationship.source_column}"])
        partition = Partition(target.columns[relationship.target_column], keys)
        requests = [(output.plan, output.args) for output in siblings]
        results = await measure_together(fetcher, target, requests, partition)
        for output, values in zip(siblings, results, strict=True):
            measured[output.key] = values
    return measured


async def _field(
    fetcher: Fetcher,
    output: Any,
    rows: Sequence[Any],
    index: dict[str, int],
    measured: dict[str, dict[Any, dict[str, dict[str, Any]]]],
) -> Field:
    if isinstance(output, ConstOut):
        return Field(constant=output.value)
    if isinstance(output, ColumnOut):
        position = index[f"c_{output.column.name}"]
        if output.json_path is not None:
            steps = parse_json_path(output.json_path, output.key)
            return Field(position=position, function=lambda value: follow_json_path(value, steps))
        if output.column.scalar in VALUES_AS_FETCHED:
            return Field(position=position)
        return Field(position=position, function=output.serialize)
    if isinstance(output, ComputedOut):
        position = index[f"f_{output.computed.name}"]
        return Field(position=position, function=output.serialize)
    relationship = output.relationship
    position = index[f"c_{relationship.source_column}"]
    keys = _keys(rows, position)
    target = fetcher.ctx.table(relationship.target)
    target_column = target.columns[relationship.target_column]
    if isinstance(output, ObjectRelationshipOut):
        related = await _related_objects(fetcher, output.plan, target_column, keys)
        return Field(function=lambda row: related.get(row[position]), whole_row=True)
    if isinstance(output, ArrayRelationshipOut):
        grouped = await _related_lists(fetcher, output.plan, output.args, target_column, keys)
        return Field(function=lambda row: grouped.get(row[position], []), whole_row=True)
    assert isinstance(output, ArrayAggregateOut)
    aggregates = await aggregate(
        fetcher, output.plan, output.args, Partition(target_column, keys), measured.get(output.key)
    )
    empty = empty_aggregate(output.plan)
    return Field(function=lambda row: aggregates.get(row[position], empty), whole_row=True)


async def _related_objects(
    fetcher: Fetcher, plan: RowPlan, column: ColumnInfo, keys: list[Any]
) -> dict[Any, dict[str, Any]]:
    if not keys:
        return {}
    partition = Partition(column, keys)
    statement, labels = build_rows_query(
        fetcher.ctx,
        plan.table,
        row_columns(plan, fetcher.ctx),
        SelectArgs(path=plan.path),
        partition,
    )
    rows = await fetcher.rows(statement, plan.path)
    shaped = await complete_rows(fetcher, plan, rows, labels)
    position = labels.index(PARTITION)
    related: dict[Any, dict[str, Any]] = {}
    for row, value in zip(rows, shaped, strict=True):
        related.setdefault(row[position], value)
    return related


async def _related_lists(
    fetcher: Fetcher, plan: RowPlan, args: SelectArgs, column: ColumnInfo, keys: list[Any]
) -> dict[Any, list[dict[str, Any]]]:
    if not keys:
        return {}
    ctx = fetcher.ctx
    statement, labels = build_rows_query(
        ctx, plan.table, row_columns(plan, ctx), args, Partition(column, keys), cap=ctx.max_rows
    )
    rows = await fetcher.rows(statement, plan.path)
    _check_cap(ctx, plan.table, rows, plan.path)
    shaped = await complete_rows(fetcher, plan, rows, labels)
    position = labels.index(PARTITION)
    grouped: dict[Any, list[dict[str, Any]]] = {}
    for row, value in zip(rows, shaped, strict=True):
        grouped.setdefault(row[position], []).append(value)
    return grouped


# --- aggregates ------------------------------------------------------------------------------------


def _aggregate_columns(plan: AggregatePlan) -> list[ColumnInfo]:
    needed: dict[str, ColumnInfo] = {}
    for output in plan.outputs:
        if not isinstance(output, AggregateFieldsOut):
            continue
        for member in output.outputs:
            if isinstance(member, CountOut):
                for column in member.columns:
                    needed[column.name] = column
            elif isinstance(member, OperationOut):
                for item in member.outputs:
                    if not isinstance(item, ConstOut):
                        needed[item.column.name] = item.column
    return list(needed.values())


def _measures(
    ctx: CompileContext,
    blocks: list[AggregateFieldsOut],
    column_of: Callable[[ColumnInfo], ColumnElement[Any]],
    condition: ColumnElement[bool] | None,
    first_label: int = 0,
) -> tuple[list[ColumnElement[Any]], list[tuple[str, str, str | None]]]:
    """SELECT expressions for aggregate blocks, and their (block, member, item) slots.

    With `condition`, every aggregate only sees rows matching it (`FILTER (WHERE …)`).
    """
    selected: list[ColumnElement[Any]] = []
    slots: list[tuple[str, str, str | None]] = []

    def add(expression: Any, slot: tuple[str, str, str | None]) -> None:
        if condition is not None:
            expression = expression.filter(condition)
        selected.append(ctx.dialect.readable(expression).label(f"a{first_label + len(selected)}"))
        slots.append(slot)

    for block in blocks:
        for member in block.outputs:
            if isinstance(member, CountOut):
                columns = [column_of(c) for c in member.columns]
                add(count_expression(ctx, columns, member.distinct), (block.key, member.key, None))
            elif isinstance(member, OperationOut):
                for item in member.outputs:
                    if isinstance(item, ConstOut):
                        continue
                    expression = aggregate_function(
                        ctx, member.operation, column_of(item.column), item.column.scalar
                    )
                    add(expression, (block.key, member.key, item.key))
    return selected, slots


def _blocks(plan: AggregatePlan) -> list[AggregateFieldsOut]:
    return [output for output in plan.outputs if isinstance(output, AggregateFieldsOut)]


def _measures_anything(blocks: list[AggregateFieldsOut]) -> bool:
    """Whether the blocks ask for a measure, not only `__typename` (Apollo adds it)."""
    return any(
        isinstance(member, CountOut)
        or (
            isinstance(member, OperationOut)
            and any(not isinstance(item, ConstOut) for item in member.outputs)
        )
        for block in blocks
        for member in block.outputs
    )


def measurable_together(args: SelectArgs) -> bool:
    """Whether aggregate blocks under `args` can share a statement with siblings."""
    return args.limit is None and not args.offset and not args.distinct_on


async def measure_together(
    fetcher: Fetcher,
    table: TableInfo,
    requests: list[tuple[AggregatePlan, SelectArgs]],
    partition: Partition,
) -> list[dict[Any, dict[str, dict[str, Any]]]]:
    """Aggregate blocks of several sibling `<rel>_aggregate` fields in one statement.

    Dashboards ask for `total`, `detected` and `undetected` counts of the same
    relationship side by side; each differs only by `where`, so one GROUP BY with a
    `FILTER (WHERE …)` per field answers them all. Returns, per request, the blocks by
    parent key.
    """
    ctx = fetcher.ctx
    results: list[dict[Any, dict[str, dict[str, Any]]]] = [{} for _ in requests]
    if not partition.keys:
        return results
    alias = ctx.alias(table)
    access = ctx.access(table.name)
    key_column = alias.c[partition.column.name]
    conditions = [ctx.dialect.in_values(key_column, partition.column, partition.keys)]
    if access.filter:
        conditions.append(compile_where(ctx, table, alias, access.filter))
    selected: list[ColumnElement[Any]] = []
    layout: list[tuple[int, int, list[tuple[str, str, str | None]]]] = []
    for plan, args in requests:
        condition = None
        if args.where is not None:
            condition = compile_where(ctx, table, alias, args.where, f"{args.path}.args.where")
        expressions, slots = _measures(
            ctx, _blocks(plan), lambda c: alias.c[c.name], condition, len(selected)
        )
        layout.append((len(selected), len(expressions), slots))
        selected.extend(expressions)
    statement = (
        sa.select(key_column.label(PARTITION), *selected)
        .select_from(alias)
        .where(*conditions)
        .group_by(key_column)
    )
    for row in await fetcher.rows(statement, requests[0][0].path):
        for index, (plan, _) in enumerate(requests):
            start, width, slots = layout[index]
            measured = row[1 + start : 1 + start + width]
            results[index][row[0]] = _shape_blocks(_blocks(plan), slots, measured)
    return results


async def aggregate(
    fetcher: Fetcher,
    plan: AggregatePlan,
    args: SelectArgs,
    partition: Partition | None = None,
    measured: dict[Any, dict[str, dict[str, Any]]] | None = None,
) -> dict[Any, dict[str, Any]]:
    """`<table>_aggregate` results, by parent key (or under key None without partition).

    `limit`/`offset`/`distinct_on` select the rows before they are aggregated, as in
    Hasura. One statement for all aggregate blocks (unless `measured` already holds
    them), plus one per `nodes` selection.
    """
    ctx = fetcher.ctx
    table = plan.table
    if partition is not None and not partition.keys:
        return {}
    fetched_before = fetcher.fetched
    blocks = _blocks(plan)
    values: dict[Any, dict[str, Any]] = dict(measured or {})
    # Blocks of `__typename` alone need no statement: their shape is the same over any rows.
    if measured is None and _measures_anything(blocks):
        columns = _aggregate_columns(plan)

        def columns_for(alias: FromClause) -> list[tuple[str, ColumnElement[Any]]]:
            if not columns:
                return [("_one", sa.literal(1))]
            return [(f"c_{column.name}", alias.c[column.name]) for column in columns]

        rows_query, _ = build_rows_query(ctx, table, columns_for, args, partition)
        source = rows_query.subquery()
        selected, slots = _measures(ctx, blocks, lambda c: source.c[f"c_{c.name}"], None)
        statement = sa.select(*selected).select_from(source)
        if partition is not None:
            statement = sa.select(source.c[PARTITION], *selected).group_by(source.c[PARTITION])
        for row in await fetcher.rows(statement, plan.path):
            parent = row[0] if partition is not None else None
            measured_row = row[1:] if partition is not None else row
            values[parent] = _shape_blocks(blocks, slots, measured_row)
    nodes: dict[str, dict[Any, list[dict[str, Any]]]] = {}
    for output in plan.outputs:
        if isinstance(output, NodesOut):
            if partition is None:
                listed = await select_rows(fetcher, output.plan, args)
                nodes[output.key] = {None: listed}
            else:
                nodes[output.key] = await _related_lists(
                    fetcher, output.plan, args, partition.column, partition.keys
                )
    parents = [None] if partition is None else partition.keys
    results: dict[Any, dict[str, Any]] = {}
    for parent in parents:
        parent_nodes = {key: listed.get(parent, []) for key, listed in nodes.items()}
        results[parent] = _aggregate_result(plan, values.get(parent), parent_nodes)
    if partition is None:
        charge_response(fetcher, plan, results[None], fetched_before)
    return results


def _aggregate_result(
    plan: AggregatePlan,
    blocks: dict[str, Any] | None,
    nodes: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """One `<table>_aggregate` value: its shaped `blocks` (None: of no rows) and `nodes`."""
    result: dict[str, Any] = {}
    for output in plan.outputs:
        if isinstance(output, ConstOut):
            result[output.key] = output.value
        elif isinstance(output, AggregateFieldsOut):
            result[output.key] = blocks[output.key] if blocks else _empty_block(output)
        else:
            result[output.key] = nodes.get(output.key, [])
    return result


def _shape_blocks(
    blocks: list[AggregateFieldsOut], slots: list[tuple[str, str, str | None]], row: Sequence[Any]
) -> dict[str, dict[str, Any]]:
    measured = {slot: value for slot, value in zip(slots, row, strict=True)}
    return {block.key: _shape_block(block, measured) for block in blocks}


def _shape_block(
    block: AggregateFieldsOut, measured: Mapping[tuple[str, str, str | None], Any]
) -> dict[str, Any]:
    """One `aggregate` block from its measured values, keyed (block, member, item)."""
    out: dict[str, Any] = {}
    for member in block.outputs:
        if isinstance(member, ConstOut):
            out[member.key] = member.value
        elif isinstance(member, CountOut):
            out[member.key] = int(measured[(block.key, member.key, None)] or 0)
        else:
            fields: dict[str, Any] = {}
            for item in member.outputs:
                if isinstance(item, ConstOut):
                    fields[item.key] = item.value
                else:
                    value = measured[(block.key, member.key, item.key)]
                    fields[item.key] = None if value is None else item.serialize(value)
            out[member.key] = fields
    return out


def _empty_block(block: AggregateFieldsOut) -> dict[str, Any]:
    # Over no rows every measure is NULL (so count 0, the other aggregates null).
    return _shape_block(block, defaultdict(lambda: None))


def empty_aggregate(plan: AggregatePlan) -> dict[str, Any]:
    """The aggregate of no rows: count 0, other aggregates null, no nodes."""
    return _aggregate_result(plan, None, {})


# --- jsonb paths ------------------------------------------------------------------------------------

_PATH_STEP = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[["']([^"']*)["']\]""")


def parse_json_path(path: str, field: str) -> list[str | int]:
    """Steps of a simple JSONPath (`$.a.b[0]`, `a.b`, `[0].c`, `$["k"]`).

    Raises `EngineError` (validation-failed) for anything else, naming the field.
    """
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    if text and not text.startswith((".", "[")):
        text = "." + text
    steps: list[str | int] = []
    position = 0
    while position < len(text):
        match = _PATH_STEP.match(text, position)
        if match is None:
            raise validation_failed(
                f"parse json path error: invalid path {path!r} for field '{field}'",
                f"$.selectionSet.{field}.args.path",
            )
        name, number, quoted = match.groups()
        steps.append(int(number) if number is not None else (name if name is not None else quoted))
        position = match.end()
    return steps


def follow_json_path(value: Any, steps: list[str | int]) -> Any:
    """The value at `steps` inside a JSON value, or None when the path does not exist."""
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return None
        elif not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    return value
