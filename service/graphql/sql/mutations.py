"""Hasura's mutations as SQL, and their resolvers: insert (with `on_conflict`), update, delete.

The types and root fields are built by `service.graphql.schema.mutation_types`.

All mutation fields of one request run in one transaction
(`service.graphql.execution.transaction`),
committed only when every field succeeded, as in Hasura. `returning` shows rows as they
are after the mutation (for deletes: as they were before it). Database errors come
back in Hasura's shape (`constraint-violation` naming the constraint).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from graphql import (
    GraphQLResolveInfo,
    get_named_type,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from service.graphql.catalog.metadata import ColumnInfo, TableInfo
from service.graphql.errors import validation_failed
from service.graphql.execution.resolvers import Completed, runtime
from service.graphql.execution.transaction import mutation_connection
from service.graphql.plan import (
    AffectedRowsOut,
    ConstOut,
    MutationResponsePlan,
    Planner,
    ReturningOut,
    RowPlan,
    SelectArgs,
)
from service.graphql.sql.compiling import CompileContext
from service.graphql.sql.dberrors import translate
from service.graphql.sql.filters import compile_where
from service.graphql.sql.selects import (
    Fetcher,
    build_rows_query,
    charge_response,
    complete_rows,
    row_columns,
)

if TYPE_CHECKING:
    pass


JSONB_OPERATORS = ("_append", "_prepend", "_delete_key", "_delete_elem", "_delete_at_path")
UPDATE_OPERATORS = ("_set", "_inc", *JSONB_OPERATORS)


def _insert_statement(ctx: CompileContext, table: TableInfo) -> Any:
    return ctx.dialect.insert(table.sa_table)


def _row_values(table: TableInfo, obj: Mapping[str, Any]) -> dict[str, Any]:
    by_field = table.columns_by_field
    return {by_field[field].name: value for field, value in obj.items()}


def _pk_key(row: Sequence[Any]) -> Any:
    return row[0] if len(row) == 1 else tuple(row)


async def _run(conn: AsyncConnection, ctx: CompileContext, statement: Any, path: str) -> list[Any]:
    try:
        result = await conn.execute(statement)
    except DBAPIError as error:
        raise translate(error, ctx.catalog, path) from error
    return list(result.all())


async def _returning_rows(
    ctx: CompileContext, conn: AsyncConnection, plan: RowPlan, keys: list[Any]
) -> dict[Any, dict[str, Any]]:
    """Rows shaped by `plan` for the given primary keys, keyed by primary key."""
    table = plan.table
    if not keys:
        return {}
    pk = [table.columns[name] for name in table.primary_key]
    plan_columns = row_columns(plan, ctx)

    def columns_for(alias: Any) -> list[tuple[str, ColumnElement[Any]]]:
        columns = plan_columns(alias)
        labels = {label for label, _ in columns}
        for column in pk:
            if f"c_{column.name}" not in labels:
                columns.append((f"c_{column.name}", alias.c[column.name]))
        return columns

    def condition(alias: Any) -> ColumnElement[bool]:
        if len(pk) == 1:
            return ctx.dialect.in_values(alias.c[pk[0].name], pk[0], keys)
        return sa.tuple_(*(alias.c[c.name] for c in pk)).in_(keys)

    statement, labels = build_rows_query(
        ctx, table, columns_for, SelectArgs(), extra_condition=condition
    )
    fetcher = Fetcher(ctx, conn)
    rows = await fetcher.rows(statement, plan.path)
    shaped = await complete_rows(fetcher, plan, rows, labels)
    charge_response(fetcher, plan, shaped, 0)
    positions = [labels.index(f"c_{c.name}") for c in pk]
    return {
        _pk_key([row[p] for p in positions]): value for row, value in zip(rows, shaped, strict=True)
    }


def _response(
    plan: MutationResponsePlan, affected: int, rows: list[dict[str, Any]] | None
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for output in plan.outputs:
        if isinstance(output, ConstOut):
            result[output.key] = output.value
        elif isinstance(output, AffectedRowsOut):
            result[output.key] = affected
        else:
            result[output.key] = rows or []
    return result


def _returning_plan(plan: MutationResponsePlan) -> RowPlan | None:
    for output in plan.outputs:
        if isinstance(output, ReturningOut):
            return output.plan
    return None


def insert(table: TableInfo, *, many: bool) -> Any:
    """Resolver of `insert_t` (many) or `insert_t_one`."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        _, ctx, planner, path = runtime(info)
        objects = args["objects"] if many else [args["object"]]
        async with mutation_connection(info) as conn:
            keys = await _insert(ctx, conn, table, objects, args.get("on_conflict"), path)
            result = await _shape(ctx, conn, planner, info, table, keys, path, many)
            return result

    return resolve


async def _insert(
    ctx: CompileContext,
    conn: AsyncConnection,
    table: TableInfo,
    objects: list[Mapping[str, Any]],
    on_conflict: Mapping[str, Any] | None,
    path: str,
) -> list[Any]:
    pk = [table.sa_table.c[name] for name in table.primary_key]
    keys: list[Any] = []
    # Rows naming different columns cannot share one VALUES list (no DEFAULT on SQLite);
    # consecutive rows naming the same columns go together.
    batch: list[dict[str, Any]] = []
    for obj in [*objects, None]:
        values = None if obj is None else _row_values(table, obj)
        if batch and (values is None or values.keys() != batch[0].keys() or not values):
            statement = _insert_statement(ctx, table)
            if batch[0]:
                statement = statement.values(batch)
            statement = _with_conflict(ctx, table, statement, on_conflict, path)
            returning = pk or [sa.literal(1)]
            rows = await _run(conn, ctx, statement.returning(*returning), f"{path}.args.objects")
            keys.extend(_pk_key(row) for row in rows)
            batch = []
        if values is not None:
            batch.append(values)
    return keys


def _with_conflict(
    ctx: CompileContext,
    table: TableInfo,
    statement: Any,
    on_conflict: Mapping[str, Any] | None,
    path: str,
) -> Any:
    if on_conflict is None:
        return statement
    columns = list(table.unique_constraints[on_conflict["constraint"]])
    update_columns = [
        table.columns_by_field[name].name for name in on_conflict.get("update_columns") or []
    ]
    if not update_columns:
        return statement.on_conflict_do_nothing(index_elements=columns)
    where = None
    if on_conflict.get("where") is not None:
        where = compile_where(
            ctx, table, table.sa_table, on_conflict["where"], f"{path}.args.on_conflict.where"
        )
    return statement.on_conflict_do_update(
        index_elements=columns,
        set_={name: statement.excluded[name] for name in update_columns},
        where=where,
    )


async def _shape(
    ctx: CompileContext,
    conn: AsyncConnection,
    planner: Planner,
    info: GraphQLResolveInfo,
    table: TableInfo,
    keys: list[Any],
    path: str,
    many: bool,
    prefetched: dict[Any, dict[str, Any]] | None = None,
) -> Any:
    object_type = get_named_type(info.return_type)
    if many:
        plan = planner.mutation_response_plan(object_type, table, info.field_nodes, path)
        returning = _returning_plan(plan)
        rows = None
        if returning is not None:
            found = (
                prefetched
                if prefetched is not None
                else await _returning_rows(ctx, conn, returning, keys)
            )
            rows = [found[key] for key in keys if key in found]
        return Completed(_response(plan, len(keys), rows))
    if not keys:
        return None
    row_plan = planner.row_plan(object_type, table, info.field_nodes, path)
    found = (
        prefetched
        if prefetched is not None
        else await _returning_rows(ctx, conn, row_plan, keys[:1])
    )
    value = found.get(keys[0])
    return Completed(value) if value is not None else None


def _update_values(
    ctx: CompileContext, table: TableInfo, args: Mapping[str, Any], path: str
) -> dict[str, Any]:
    target = table.sa_table
    values: dict[str, Any] = {}
    for operator in UPDATE_OPERATORS:
        given = args.get(operator)
        if not given:
            continue
        for field_name, value in given.items():
            column = table.columns_by_field[field_name]
            name = column.name
            if name in values:
                raise validation_failed(
                    f"column '{field_name}' can be updated by only one operator",
                    f"{path}.args.{operator}",
                )
            if value is None and operator != "_set":
                raise validation_failed(
                    f"unexpected null value for '{field_name}'", f"{path}.args.{operator}"
                )
            values[name] = _update_expression(ctx, operator, target.c[name], column, value)
    if not values:
        raise validation_failed(
            "at least any one of _set, _inc, _append, _prepend, _delete_key, _delete_elem, "
            "_delete_at_path is expected",
            f"{path}.args",
        )
    return values


def _update_expression(
    ctx: CompileContext, operator: str, column: Any, info: ColumnInfo, value: Any
) -> Any:
    if operator == "_set":
        return value
    if operator == "_inc":
        return column + sa.bindparam(None, value, type_=column.type)
    return ctx.dialect.jsonb_update(operator, column, value)


async def _update(
    ctx: CompileContext,
    conn: AsyncConnection,
    table: TableInfo,
    args: Mapping[str, Any],
    condition: ColumnElement[bool],
    path: str,
) -> list[Any]:
    values = _update_values(ctx, table, args, path)
    pk = [table.sa_table.c[name] for name in table.primary_key]
    statement = (
        sa.update(table.sa_table)
        .where(condition)
        .values(values)
        .returning(*(pk or [sa.literal(1)]))
    )
    rows = await _run(conn, ctx, statement, path)
    return [_pk_key(row) for row in rows]


def _pk_condition(table: TableInfo, key: Mapping[str, Any]) -> ColumnElement[bool]:
    target = table.sa_table
    return sa.and_(
        *(
            target.c[table.columns_by_field[field].name]
            == sa.bindparam(None, value, type_=target.c[table.columns_by_field[field].name].type)
            for field, value in key.items()
        )
    )


def update(table: TableInfo) -> Any:
    """Resolver of `update_t(where, _set, _inc, ...)`."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        _, ctx, planner, path = runtime(info)
        async with mutation_connection(info) as conn:
            condition = compile_where(
                ctx, table, table.sa_table, args["where"], f"{path}.args.where"
            )
            keys = await _update(ctx, conn, table, args, condition, path)
            result = await _shape(ctx, conn, planner, info, table, keys, path, many=True)
            return result

    return resolve


def update_by_pk(table: TableInfo) -> Any:
    """Resolver of `update_t_by_pk(pk_columns, _set, _inc, ...)`."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        _, ctx, planner, path = runtime(info)
        async with mutation_connection(info) as conn:
            keys = await _update(
                ctx, conn, table, args, _pk_condition(table, args["pk_columns"]), path
            )
            result = await _shape(ctx, conn, planner, info, table, keys, path, many=False)
            return result

    return resolve


def update_many(table: TableInfo) -> Any:
    """Resolver of `update_t_many(updates)`: each update in order, one response each."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        _, ctx, planner, path = runtime(info)
        async with mutation_connection(info) as conn:
            responses = []
            for index, item in enumerate(args["updates"]):
                here = f"{path}.args.updates[{index}]"
                condition = compile_where(
                    ctx, table, table.sa_table, item["where"], f"{here}.where"
                )
                keys = await _update(ctx, conn, table, item, condition, here)
                shaped = await _shape(ctx, conn, planner, info, table, keys, path, many=True)
                responses.append(shaped.value)
            return Completed(responses)

    return resolve


async def _delete(
    ctx: CompileContext,
    conn: AsyncConnection,
    planner: Planner,
    info: GraphQLResolveInfo,
    table: TableInfo,
    condition_for: Any,
    path: str,
    many: bool,
) -> Any:
    object_type = get_named_type(info.return_type)
    if many:
        returning = _returning_plan(
            planner.mutation_response_plan(object_type, table, info.field_nodes, path)
        )
    else:
        returning = planner.row_plan(object_type, table, info.field_nodes, path)
    prefetched: dict[Any, dict[str, Any]] | None = None
    if returning is not None:
        # Deleted rows are shown as they were, related rows included.
        pk = [table.columns[name] for name in table.primary_key]
        statement = sa.select(*(table.sa_table.c[c.name] for c in pk)).where(
            condition_for(table.sa_table)
        )
        matching = [_pk_key(row) for row in await _run(conn, ctx, statement, path)]
        prefetched = await _returning_rows(ctx, conn, returning, matching)
    pk_columns = [table.sa_table.c[name] for name in table.primary_key]
    statement = (
        sa.delete(table.sa_table)
        .where(condition_for(table.sa_table))
        .returning(*(pk_columns or [sa.literal(1)]))
    )
    keys = [_pk_key(row) for row in await _run(conn, ctx, statement, path)]
    return await _shape(
        ctx, conn, planner, info, table, keys, path, many, prefetched=prefetched or {}
    )


def delete(table: TableInfo) -> Any:
    """Resolver of `delete_t(where)`."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        _, ctx, planner, path = runtime(info)
        async with mutation_connection(info) as conn:

            def condition(target: Any) -> ColumnElement[bool]:
                return compile_where(ctx, table, target, args["where"], f"{path}.args.where")

            result = await _delete(ctx, conn, planner, info, table, condition, path, many=True)
            return result

    return resolve


def delete_by_pk(table: TableInfo) -> Any:
    """Resolver of `delete_t_by_pk(<pk>)`."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        _, ctx, planner, path = runtime(info)
        async with mutation_connection(info) as conn:
            result = await _delete(
                ctx,
                conn,
                planner,
                info,
                table,
                lambda target: _pk_condition(table, args),
                path,
                many=False,
            )
            return result

    return resolve
