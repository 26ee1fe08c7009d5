"""Hasura's mutations for the admin role: insert (with `on_conflict`), update, delete.

Root fields per writable table `t` (views such as `dashboard_stats` get none):
`insert_t(objects, on_conflict)`, `insert_t_one(object, on_conflict)`,
`update_t(where, _set, _inc, _append, _prepend, _delete_key, _delete_elem,
_delete_at_path)`, `update_t_by_pk(pk_columns, ...)`, `update_t_many(updates)`,
`delete_t(where)`, `delete_t_by_pk(<pk>)`.

All mutation fields of one request run in one transaction (`MutationTransaction`),
committed only when every field succeeded, as in Hasura. `returning` shows rows as they
are after the mutation (for deletes: as they were before it). Database errors come
back in Hasura's shape (`constraint-violation` naming the constraint).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLString,
    get_named_type,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction
from sqlalchemy.sql.elements import ColumnElement
from strawberry.extensions import SchemaExtension

from service.graphql.catalog.metadata import ColumnInfo, TableInfo
from service.graphql.catalog.scalars import NUMERIC_SCALARS
from service.graphql.errors import validation_failed
from service.graphql.execution.resolvers import Completed, runtime
from service.graphql.plan import (
    AffectedRowsOut,
    AffectedRowsSpec,
    ConstOut,
    MutationResponsePlan,
    Planner,
    ReturningOut,
    ReturningSpec,
    RowPlan,
    SelectArgs,
)
from service.graphql.sql.compiling import CompileContext, in_values, json_text
from service.graphql.sql.dberrors import translate
from service.graphql.sql.filters import compile_where
from service.graphql.sql.selects import Fetcher, build_rows_query, complete_rows, row_columns

if TYPE_CHECKING:
    from service.graphql.schema.builder import SchemaBuilder
    from service.storage.database import Database


# Hasura's jsonb update operators, in its order: argument, input type suffix, description
# (the argument's and its input type's), value type given the jsonb scalar.
_JSONB_OPERATOR_INPUTS: tuple[
    tuple[str, str, str, Callable[[GraphQLInputType], GraphQLInputType]], ...
] = (
    (
        "_append",
        "append_input",
        "append existing jsonb value of filtered columns with new jsonb value",
        lambda json_type: json_type,
    ),
    (
        "_prepend",
        "prepend_input",
        "prepend existing jsonb value of filtered columns with new jsonb value",
        lambda json_type: json_type,
    ),
    (
        "_delete_key",
        "delete_key_input",
        "delete key/value pair or string element. key/value pairs are matched based on their key value",
        lambda json_type: GraphQLString,
    ),
    (
        "_delete_elem",
        "delete_elem_input",
        "delete the array element with specified index (negative integers count from the end). throws an error if top level container is not an array",
        lambda json_type: GraphQLInt,
    ),
    (
        "_delete_at_path",
        "delete_at_path_input",
        "delete the field or element with specified path (for JSON arrays, negative integers count from the end)",
        lambda json_type: GraphQLList(GraphQLNonNull(GraphQLString)),
    ),
)
JSONB_OPERATORS = tuple(argument for argument, *_ in _JSONB_OPERATOR_INPUTS)
UPDATE_OPERATORS = ("_set", "_inc", *JSONB_OPERATORS)


# --- one transaction per request ---------------------------------------------------------------


class MutationScope:
    """The transaction shared by the mutation fields of one request (opened lazily)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.conn: AsyncConnection | None = None
        self.transaction: AsyncTransaction | None = None

    async def connection(self) -> AsyncConnection:
        if self.conn is None:
            self.conn = await self.database.engine.connect()
            self.transaction = await self.conn.begin()
        return self.conn

    async def finish(self, commit: bool) -> None:
        if self.conn is None or self.transaction is None:
            return
        try:
            if commit:
                await self.transaction.commit()
            else:
                await self.transaction.rollback()
        finally:
            await self.conn.close()
            self.conn = self.transaction = None


_current_scope: contextvars.ContextVar[MutationScope | None] = contextvars.ContextVar(
    "mutation_scope", default=None
)


class MutationTransaction(SchemaExtension):
    """Runs every mutation field of an execution in one transaction."""

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        context = self.execution_context.context
        engine = getattr(context, "engine", None)
        if engine is None:
            yield
            return
        scope = MutationScope(engine.database)
        token = _current_scope.set(scope)
        try:
            yield
        finally:
            _current_scope.reset(token)
            result = self.execution_context.result
            errors = getattr(result, "errors", None) or self.execution_context.pre_execution_errors
            await scope.finish(commit=result is not None and not errors)


@contextlib.asynccontextmanager
async def _connection(info: GraphQLResolveInfo) -> AsyncIterator[AsyncConnection]:
    """The request's mutation transaction, or a transaction of this field alone."""
    scope = _current_scope.get()
    if scope is not None:
        yield await scope.connection()
        return
    # Executed without the extension (e.g. a bare graphql-core call): own transaction.
    own = MutationScope(info.context.engine.database)
    conn = await own.connection()
    try:
        yield conn
    except BaseException:
        await own.finish(commit=False)
        raise
    await own.finish(commit=True)


# --- types ----------------------------------------------------------------------------------------


class MutationTypes:
    """The mutation root and its input/output types, built on a `SchemaBuilder`."""

    def __init__(self, builder: SchemaBuilder) -> None:
        self.builder = builder

    def _input(
        self, name: str, fields: Any, description: str | None = None
    ) -> GraphQLInputObjectType:
        return self.builder._cached(
            name, lambda: GraphQLInputObjectType(name, fields, description=description)
        )

    def columns_input(
        self,
        table: TableInfo,
        suffix: str,
        description: str,
        columns: Sequence[ColumnInfo],
        type_of: Any,
    ) -> GraphQLInputObjectType:
        return self._input(
            f"{table.type_name}_{suffix}",
            lambda: {
                c.field: GraphQLInputField(type_of(c))
                for c in sorted(columns, key=lambda c: c.field)
            },
            description,
        )

    def insert_input(self, table: TableInfo) -> GraphQLInputObjectType:
        return self.columns_input(
            table,
            "insert_input",
            f'input type for inserting data into table "{table.type_name}"',
            list(table.columns.values()),
            lambda c: self.builder.scalar(c.scalar),
        )

    def constraint_enum(self, table: TableInfo) -> GraphQLEnumType:
        name = f"{table.type_name}_constraint"
        return self.builder._cached(
            name,
            lambda: GraphQLEnumType(
                name,
                {
                    constraint: GraphQLEnumValue(
                        constraint,
                        description=f"unique or primary key constraint on columns {', '.join(repr(c) for c in columns)}",
                    )
                    for constraint, columns in sorted(table.unique_constraints.items())
                },
                description=f'unique or primary key constraints on table "{table.type_name}"',
            ),
        )

    def update_column_enum(self, table: TableInfo) -> GraphQLEnumType:
        name = f"{table.type_name}_update_column"
        return self.builder._cached(
            name,
            lambda: GraphQLEnumType(
                name,
                {
                    c.field: GraphQLEnumValue(c.field, description="column name")
                    for c in sorted(table.columns.values(), key=lambda c: c.field)
                },
                description=f'update columns of table "{table.type_name}"',
            ),
        )

    def on_conflict(self, table: TableInfo) -> GraphQLInputObjectType:
        return self._input(
            f"{table.type_name}_on_conflict",
            lambda: {
                "constraint": GraphQLInputField(GraphQLNonNull(self.constraint_enum(table))),
                "update_columns": GraphQLInputField(
                    GraphQLNonNull(GraphQLList(GraphQLNonNull(self.update_column_enum(table)))),
                    default_value=[],
                ),
                "where": GraphQLInputField(self.builder.bool_exp(table.name)),
            },
            f'on_conflict condition type for table "{table.type_name}"',
        )

    def update_arguments(self, table: TableInfo) -> dict[str, GraphQLArgument]:
        scalar = self.builder.scalar
        columns = list(table.columns.values())
        numeric = [c for c in columns if c.scalar in NUMERIC_SCALARS]
        jsonb = [c for c in columns if c.scalar == "jsonb"]
        args = {
            "_set": GraphQLArgument(
                self.columns_input(
                    table,
                    "set_input",
                    f'input type for updating data in table "{table.type_name}"',
                    columns,
                    lambda c: scalar(c.scalar),
                ),
                description="sets the columns of the filtered rows to the given values",
            )
        }
        if numeric:
            args["_inc"] = GraphQLArgument(
                self.columns_input(
                    table,
                    "inc_input",
                    f'input type for incrementing numeric columns in table "{table.type_name}"',
                    numeric,
                    lambda c: scalar(c.scalar),
                ),
                description="increments the numeric columns with given value of the filtered values",
            )
        if jsonb:
            json_type = scalar("jsonb")
            for argument, suffix, description, value_type in _JSONB_OPERATOR_INPUTS:
                value = value_type(json_type)
                # `value` bound now: the input's fields are built lazily, after the loop.
                args[argument] = GraphQLArgument(
                    self.columns_input(table, suffix, description, jsonb, lambda c, v=value: v),
                    description=description,
                )
        return args

    def mutation_response(self, table: TableInfo) -> GraphQLObjectType:
        name = f"{table.type_name}_mutation_response"
        return self.builder._cached(
            name,
            lambda: GraphQLObjectType(
                name,
                lambda: {
                    "affected_rows": GraphQLField(
                        GraphQLNonNull(GraphQLInt),
                        description="number of rows affected by the mutation",
                        extensions={"engine": AffectedRowsSpec()},
                    ),
                    "returning": GraphQLField(
                        GraphQLNonNull(
                            GraphQLList(GraphQLNonNull(self.builder.object_type(table.name)))
                        ),
                        description="data from the rows affected by the mutation",
                        extensions={"engine": ReturningSpec(table)},
                    ),
                },
                description=f'response of any mutation on the table "{table.type_name}"',
            ),
        )

    def root_fields(self) -> dict[str, GraphQLField]:
        fields: dict[str, GraphQLField] = {}
        for table in self.builder.catalog.tables.values():
            if table.read_only:
                continue
            names = table.root_fields
            object_type = self.builder.object_type(table.name)
            response = self.mutation_response(table)
            conflict = (
                {
                    "on_conflict": GraphQLArgument(
                        self.on_conflict(table), description="upsert condition"
                    )
                }
                if table.unique_constraints
                else {}
            )
            bool_exp = self.builder.bool_exp(table.name)
            fields[names.insert] = GraphQLField(
                response,
                args={
                    "objects": GraphQLArgument(
                        GraphQLNonNull(GraphQLList(GraphQLNonNull(self.insert_input(table)))),
                        description="the rows to be inserted",
                    ),
                    **conflict,
                },
                description=f'insert data into the table: "{table.type_name}"',
                resolve=insert(table, many=True),
                extensions={"table": table.name},
            )
            fields[names.insert_one] = GraphQLField(
                object_type,
                args={
                    "object": GraphQLArgument(
                        GraphQLNonNull(self.insert_input(table)),
                        description="the row to be inserted",
                    ),
                    **conflict,
                },
                description=f'insert a single row into the table: "{table.type_name}"',
                resolve=insert(table, many=False),
                extensions={"table": table.name},
            )
            update_args = self.update_arguments(table)
            fields[names.update] = GraphQLField(
                response,
                args={
                    **update_args,
                    "where": GraphQLArgument(
                        GraphQLNonNull(bool_exp),
                        description="filter the rows which have to be updated",
                    ),
                },
                description=f'update data of the table: "{table.type_name}"',
                resolve=update(table),
                extensions={"table": table.name},
            )
            updates_name = f"{table.type_name}_updates"
            updates_type = self._input(
                updates_name,
                lambda update_args=update_args, bool_exp=bool_exp: {
                    **{
                        name: GraphQLInputField(arg.type, description=arg.description)
                        for name, arg in update_args.items()
                    },
                    "where": GraphQLInputField(
                        GraphQLNonNull(bool_exp),
                        description="filter the rows which have to be updated",
                    ),
                },
            )
            fields[names.update_many] = GraphQLField(
                GraphQLList(response),
                args={
                    "updates": GraphQLArgument(
                        GraphQLNonNull(GraphQLList(GraphQLNonNull(updates_type))),
                        description="updates to execute, in order",
                    )
                },
                description=f'update multiples rows of table: "{table.type_name}"',
                resolve=update_many(table),
                extensions={"table": table.name},
            )
            fields[names.delete] = GraphQLField(
                response,
                args={
                    "where": GraphQLArgument(
                        GraphQLNonNull(bool_exp),
                        description="filter the rows which have to be deleted",
                    )
                },
                description=f'delete data from the table: "{table.type_name}"',
                resolve=delete(table),
                extensions={"table": table.name},
            )
            if table.primary_key:
                pk_name = f"{table.type_name}_pk_columns_input"
                pk_input = self._input(
                    pk_name,
                    lambda table=table: {
                        table.columns[c].field: GraphQLInputField(
                            GraphQLNonNull(self.builder.scalar(table.columns[c].scalar))
                        )
                        for c in table.primary_key
                    },
                    f"primary key columns input for table: {table.type_name}",
                )
                fields[names.update_by_pk] = GraphQLField(
                    object_type,
                    args={**update_args, "pk_columns": GraphQLArgument(GraphQLNonNull(pk_input))},
                    description=f'update single row of the table: "{table.type_name}"',
                    resolve=update_by_pk(table),
                    extensions={"table": table.name},
                )
                fields[names.delete_by_pk] = GraphQLField(
                    object_type,
                    args=self.builder._pk_arguments(table),
                    description=f'delete single row from the table: "{table.type_name}"',
                    resolve=delete_by_pk(table),
                    extensions={"table": table.name},
                )
        return dict(sorted(fields.items()))


# --- execution ------------------------------------------------------------------------------------


def _insert_statement(ctx: CompileContext, table: TableInfo) -> Any:
    insert = postgresql.insert if not ctx.sqlite else sqlite.insert
    return insert(table.sa_table)


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
            return in_values(ctx, alias.c[pk[0].name], pk[0], keys)
        return sa.tuple_(*(alias.c[c.name] for c in pk)).in_(keys)

    statement, labels = build_rows_query(
        ctx, table, columns_for, SelectArgs(), extra_condition=condition
    )
    fetcher = Fetcher(ctx, conn)
    rows = await fetcher.rows(statement)
    shaped = await complete_rows(fetcher, plan, rows, labels)
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
        async with _connection(info) as conn:
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
    text = sa.bindparam(None, json_text(value), type_=sa.Text)
    if ctx.sqlite:
        functions = {
            "_append": lambda: sa.func.jsonb_concat(column, text),
            "_prepend": lambda: sa.func.jsonb_concat(text, column),
            "_delete_key": lambda: sa.func.jsonb_delete_key(
                column, sa.bindparam(None, value, type_=sa.Text)
            ),
            "_delete_elem": lambda: sa.func.jsonb_delete_elem(
                column, sa.bindparam(None, value, type_=sa.Integer)
            ),
            "_delete_at_path": lambda: sa.func.jsonb_delete_path(column, text),
        }
        return functions[operator]()
    document = sa.cast(text, postgresql.JSONB)
    if operator == "_append":
        return column.op("||")(document)
    if operator == "_prepend":
        return document.op("||")(column)
    if operator == "_delete_key":
        return column.op("-")(sa.bindparam(None, value, type_=sa.Text))
    if operator == "_delete_elem":
        return column.op("-")(sa.bindparam(None, value, type_=sa.Integer))
    return column.op("#-")(sa.bindparam(None, list(value), type_=postgresql.ARRAY(sa.Text)))


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
        async with _connection(info) as conn:
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
        async with _connection(info) as conn:
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
        async with _connection(info) as conn:
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
        async with _connection(info) as conn:

            def condition(target: Any) -> ColumnElement[bool]:
                return compile_where(ctx, table, target, args["where"], f"{path}.args.where")

            result = await _delete(ctx, conn, planner, info, table, condition, path, many=True)
            return result

    return resolve


def delete_by_pk(table: TableInfo) -> Any:
    """Resolver of `delete_t_by_pk(<pk>)`."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        _, ctx, planner, path = runtime(info)
        async with _connection(info) as conn:
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
