"""Root-field resolvers: plan the field's whole selection, load it, hand back the result.

Each resolver is small: it builds the request's compile context and plan, runs the
loaders on a pooled connection, and returns a `Completed` value — the finished,
serialised result, which `execution.EngineExecutor` passes through without walking it
field by field again.

Subscription root fields use the same resolvers; what drives re-execution is the
engine's `subscription_events` hook (see `engine.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from graphql import GraphQLResolveInfo, get_named_type

from .errors import validation_failed
from .loaders import Fetcher, aggregate, select_rows
from .metadata import TableInfo
from .plan import Planner, SelectArgs

if TYPE_CHECKING:
    from .compiling import CompileContext
    from .engine import GraphQLEngine, RequestContext

Resolver = Callable[..., Awaitable[Any]]


class Completed:
    """A field value the engine already shaped and serialised completely."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def runtime(info: GraphQLResolveInfo) -> tuple[GraphQLEngine, CompileContext, Planner, str]:
    """The engine, compile context, planner and request path for a root field."""
    context: RequestContext = info.context
    engine = context.engine
    ctx = engine.compile_context(context.session)
    planner = Planner(info.schema, info.fragments, info.variable_values, ctx)
    return engine, ctx, planner, f"$.selectionSet.{info.path.key}"


def _object_type(info: GraphQLResolveInfo) -> Any:
    return get_named_type(info.return_type)


def select(table: TableInfo) -> Resolver:
    """Resolver of `t(where, order_by, limit, offset, distinct_on)`."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Completed:
        engine, ctx, planner, path = runtime(info)
        select_args = planner.select_args(table, args, info.field_nodes[0], path)
        plan = planner.row_plan(_object_type(info), table, info.field_nodes, path)
        async with engine.database.read() as conn:
            rows = await select_rows(Fetcher(ctx, conn), plan, select_args)
        return Completed(rows)

    return resolve


def select_by_pk(table: TableInfo) -> Resolver:
    """Resolver of `t_by_pk(<primary key columns>)`."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Completed | None:
        engine, ctx, planner, path = runtime(info)
        plan = planner.row_plan(_object_type(info), table, info.field_nodes, path)
        key = {table.columns_by_field[name].name: value for name, value in args.items()}

        def matches(alias: Any) -> Any:
            return sa.and_(
                *(
                    alias.c[name] == sa.bindparam(None, value, type_=alias.c[name].type)
                    for name, value in key.items()
                )
            )

        async with engine.database.read() as conn:
            rows = await select_rows(Fetcher(ctx, conn), plan, SelectArgs(path=path), matches)
        return Completed(rows[0]) if rows else None

    return resolve


def select_aggregate(table: TableInfo) -> Resolver:
    """Resolver of `t_aggregate(...)`: limit/offset select rows before aggregating."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Completed:
        engine, ctx, planner, path = runtime(info)
        select_args = planner.select_args(table, args, info.field_nodes[0], path)
        plan = planner.aggregate_plan(_object_type(info), table, info.field_nodes, path)
        async with engine.database.read() as conn:
            result = await aggregate(Fetcher(ctx, conn), plan, select_args)
        return Completed(result[None])

    return resolve


def select_stream(table: TableInfo) -> Resolver:
    """Resolver of `t_stream(batch_size, cursor, where)`: the next batch after the cursor.

    Rows strictly after the cursor value, in cursor order (Hasura's strict `>` without
    tie-break). A subscription driver may pass a mapping with `initial_value` (and
    optionally `ordering`) as the root value to continue from a later cursor.
    """

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Completed:
        engine, ctx, planner, path = runtime(info)
        cursors = args.get("cursor") or []
        if len(cursors) != 1 or cursors[0] is None:
            raise validation_failed(
                "exactly one cursor is expected in 'cursor'", f"{path}.args.cursor"
            )
        cursor = dict(cursors[0])
        if isinstance(root, Mapping) and "initial_value" in root:
            cursor.update(root)
        initial = cursor.get("initial_value") or {}
        if len(initial) != 1:
            raise validation_failed(
                "exactly one column is expected in the cursor's initial_value",
                f"{path}.args.cursor.initial_value",
            )
        ((field, value),) = initial.items()
        ascending = (cursor.get("ordering") or "ASC") == "ASC"
        batch_size = args["batch_size"]
        if batch_size < 0:
            raise validation_failed(
                "unexpected negative value for 'batch_size'", f"{path}.args.batch_size"
            )
        bound = {field: {"_gt" if ascending else "_lt": value}} if value is not None else {}
        where = {"_and": [args["where"], bound]} if args.get("where") is not None else bound
        select_args = SelectArgs(
            where=where,
            order_by=[{field: "asc" if ascending else "desc"}],
            limit=batch_size,
            path=path,
        )
        plan = planner.row_plan(_object_type(info), table, info.field_nodes, path)
        async with engine.database.read() as conn:
            rows = await select_rows(Fetcher(ctx, conn), plan, select_args)
        return Completed(rows)

    return resolve


def live(resolver: Resolver) -> dict[str, Any]:
    """`subscribe`/`resolve` for a subscription root field built on a query resolver.

    `subscribe` asks the engine for the events that should trigger a (re-)execution
    (`GraphQLEngine.subscription_events`); each event re-runs `resolver` with the
    event as root value.
    """

    async def subscribe(root: Any, info: GraphQLResolveInfo, **args: Any) -> AsyncIterator[Any]:
        context: RequestContext = info.context
        async for event in context.engine.subscription_events(info, args):
            yield event

    async def resolve(event: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        return await resolver(event, info, **args)

    return {"subscribe": subscribe, "resolve": resolve}
