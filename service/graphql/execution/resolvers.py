"""Root-field resolvers: plan the field's whole selection, load it, hand back the result.

Each resolver is small: it builds the request's compile context and plan, runs the
selects on a pooled connection, and returns a `Completed` value — the finished,
serialised result, which `execution.EngineExecutor` passes through without walking it
field by field again.

Subscription root fields use the same resolvers; what drives re-execution is the
engine's `subscription_events` hook (see `engine.py`; the live-query engine in
`service.live` runs each distinct subscription once per change and hands every
subscriber the same `SharedResult`).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from graphql import FieldNode, FragmentSpreadNode, GraphQLResolveInfo, get_named_type

from service.graphql.catalog.metadata import TableInfo
from service.graphql.errors import validation_failed
from service.graphql.execution.batching import load_rows, selection_signature
from service.graphql.execution.direct import record_compiled
from service.graphql.plan import ColumnOut, Planner, SelectArgs
from service.graphql.sql.budget import current_budget
from service.graphql.sql.selects import Fetcher, aggregate, select_rows

if TYPE_CHECKING:
    from service.graphql.execution.compiled import FieldKind
    from service.graphql.execution.context import RequestContext
    from service.graphql.execution.engine import GraphQLEngine
    from service.graphql.sql.compiling import CompileContext

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
    return engine, ctx, planner, root_path(engine, info)


def root_path(engine: GraphQLEngine, info: GraphQLResolveInfo) -> str:
    """Hasura's request path of a root field: field names (not aliases), through the
    namespace field when the root fields are namespaced."""
    path = f"$.selectionSet.{info.field_name}"
    if info.path.prev is not None:
        return f"$.selectionSet.{engine.catalog.naming.namespace}" + path[1:]
    return path


def _field_def(info: GraphQLResolveInfo) -> Any:
    return info.parent_type.fields[info.field_name]


def _object_type(info: GraphQLResolveInfo) -> Any:
    return get_named_type(info.return_type)


_ROW_BY_ROW = object()
"""What `_from_database_json` answers for a field it does not serve."""


async def _from_database_json(info: GraphQLResolveInfo, kind: FieldKind, table: TableInfo) -> Any:
    """The field answered by its compiled statement (the JSON built by the database), or
    `_ROW_BY_ROW` when that path is off or cannot build it."""
    context: RequestContext = info.context
    engine = context.engine
    if not engine.config.json_in_database:
        return _ROW_BY_ROW
    compiled = engine.compiled.field(info, kind, table, context.session)
    if compiled is None:
        return _ROW_BY_ROW
    values = compiled.values(info.variable_values.coerced, context.session)
    text = await compiled.answer(engine.database, values, engine.catalog)
    budget = current_budget.get()
    if budget is not None:
        compiled.charge(budget, text)
    record_compiled(info)
    if text is None:
        return None
    return Completed(orjson.Fragment(text) if context.json_text else orjson.loads(text))


def _selected_more_than_once(info: GraphQLResolveInfo) -> bool:
    """Whether the operation selects the root field being resolved more than once (under
    aliases, directly, in fragments or in the namespace field)."""
    name, namespace = info.field_name, info.context.engine.catalog.naming.namespace
    found = 0

    def walk(selection_set: Any) -> None:
        nonlocal found
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value == name:
                    found += 1
                elif selection.name.value == namespace and selection.selection_set:
                    walk(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = info.fragments.get(selection.name.value)
                if fragment is not None:
                    walk(fragment.selection_set)
            else:
                walk(selection.selection_set)

    walk(info.operation.selection_set)
    return found > 1


def select(table: TableInfo) -> Resolver:
    """Resolver of `t(where, order_by, limit, offset, distinct_on)`."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Completed:
        answer = await _from_database_json(info, "select", table)
        if answer is not _ROW_BY_ROW:
            return answer  # type: ignore[no-any-return]
        engine, ctx, planner, path = runtime(info)
        select_args = planner.select_args(table, args, info.field_nodes[0], path, _field_def(info))
        plan = planner.row_plan(_object_type(info), table, info.field_nodes, path)
        async with engine.database.read() as conn:
            rows = await select_rows(Fetcher(ctx, conn), plan, select_args)
        return Completed(rows)

    return resolve


def select_by_pk(table: TableInfo) -> Resolver:
    """Resolver of `t_by_pk(<primary key columns>)`.

    A field the operation selects once is answered by its compiled statement; aliased
    `t_by_pk` fields of one execution with the same selection are answered by one
    statement (`execution.batching`).
    """

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Completed | None:
        if not _selected_more_than_once(info):
            answer = await _from_database_json(info, "select_by_pk", table)
            if answer is not _ROW_BY_ROW:
                return answer  # type: ignore[no-any-return]
        engine, ctx, planner, path = runtime(info)
        plan = planner.row_plan(_object_type(info), table, info.field_nodes, path)
        by_name = {table.columns_by_field[name].name: value for name, value in args.items()}
        key = tuple(by_name[name] for name in table.primary_key)
        signature = selection_signature(table, info.field_nodes, "by_pk")
        [row] = await load_rows(engine, ctx, signature, plan, [key])
        return Completed(row) if row is not None else None

    return resolve


def select_aggregate(table: TableInfo) -> Resolver:
    """Resolver of `t_aggregate(...)`: limit/offset select rows before aggregating."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Completed:
        answer = await _from_database_json(info, "select_aggregate", table)
        if answer is not _ROW_BY_ROW:
            return answer  # type: ignore[no-any-return]
        engine, ctx, planner, path = runtime(info)
        select_args = planner.select_args(table, args, info.field_nodes[0], path, _field_def(info))
        plan = planner.aggregate_plan(_object_type(info), table, info.field_nodes, path)
        async with engine.database.read() as conn:
            result = await aggregate(Fetcher(ctx, conn), plan, select_args)
        return Completed(result[None])

    return resolve


STREAM_CURSOR_KEY = "@cursor"
"""Key of the hidden cursor column in stream rows (never a GraphQL name, so no alias clashes)."""


@dataclass
class StreamBatch:
    """One batch of `t_stream`: the shaped rows and where the next batch starts.

    `cursor` is `{"initial_value": {field: value}, "ordering": ...}` for the last row of
    the batch (the database's value, as the engine compares it), or None when the batch
    is empty; pass it as the root value of the next fetch.
    """

    rows: list[dict[str, Any]]
    cursor: dict[str, Any] | None


async def fetch_stream_batch(
    table: TableInfo, root: Any, info: GraphQLResolveInfo, args: Mapping[str, Any]
) -> StreamBatch:
    """The next batch of `t_stream(batch_size, cursor, where)` after the cursor.

    Rows strictly after the cursor value, in cursor order (Hasura's strict `>` without
    tie-break). `root` may be a mapping with `initial_value` (and optionally `ordering`)
    that continues from a later cursor, as `StreamBatch.cursor` gives it. Raises
    `EngineError` (validation-failed) for a cursor that is not exactly one column.
    """
    engine, ctx, planner, path = runtime(info)
    cursors = args.get("cursor") or []
    if len(cursors) != 1 or cursors[0] is None:
        raise validation_failed("exactly one cursor is expected in 'cursor'", f"{path}.args.cursor")
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
    ordering = cursor.get("ordering") or "ASC"
    ascending = ordering == "ASC"
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
    # The cursor column rides along unserialised, whether or not it was selected.
    column = table.columns_by_field[field]
    plan.outputs.append(ColumnOut(STREAM_CURSOR_KEY, column, _unchanged))
    async with engine.database.read() as conn:
        rows = await select_rows(Fetcher(ctx, conn), plan, select_args)
    last = None
    for row in rows:
        last = row.pop(STREAM_CURSOR_KEY)
    next_cursor = None
    if rows:
        next_cursor = {"initial_value": {field: last}, "ordering": ordering}
    return StreamBatch(rows, next_cursor)


def _unchanged(value: Any) -> Any:
    return value


def select_stream(table: TableInfo) -> Resolver:
    """Resolver of `t_stream(batch_size, cursor, where)`: the next batch after the cursor."""

    async def resolve(root: Any, info: GraphQLResolveInfo, **args: Any) -> Completed:
        return Completed((await fetch_stream_batch(table, root, info, args)).rows)

    return resolve


class SharedResult:
    """The result of one execution of a subscription root field, shared by many
    subscribers (the live-query engine runs a field once for all identical
    subscriptions): what the field resolved to, or the error it raised.

    `payload`, when set, is the whole response body (`{"data": {<key>: …}}` or
    `{"errors": […]}`, Hasura's shape) already encoded as JSON text, so a transport can
    send it as is (see `DirectEvents`).
    """

    __slots__ = ("error", "payload", "value")

    def __init__(
        self, value: Any = None, error: Exception | None = None, payload: str | None = None
    ) -> None:
        self.value = value
        self.error = error
        self.payload = payload


class DirectEvents:
    """Where a transport can pick up a subscription's event stream for direct sending.

    A transport sets one in `direct_events` (a context variable) before it runs an
    operation; `live()`'s subscribe puts the stream the engine's hook returned in
    `events`. When that stream says `direct = True`, every event it yields is a
    `SharedResult` with `payload` set: after the first result, the transport may send
    those payloads itself instead of executing each event through graphql-core again
    (the same bytes for every subscriber of a cohort).
    """

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: Any = None

    @property
    def available(self) -> bool:
        return bool(getattr(self.events, "direct", False))


direct_events: ContextVar[DirectEvents | None] = ContextVar("direct_events", default=None)


def live(resolver: Resolver) -> dict[str, Any]:
    """`subscribe`/`resolve` for a subscription root field built on a query resolver.

    `subscribe` asks the engine for the events that should trigger a (re-)execution
    (`GraphQLEngine.subscription_events(info, args)`, an async iterator or an awaitable
    of one). An event that is a `SharedResult` is the field's value (or error) already;
    any other event re-runs `resolver` with the event as root value.
    """

    async def subscribe(root: Any, info: GraphQLResolveInfo, **args: Any) -> AsyncIterator[Any]:
        context: RequestContext = info.context
        events = context.engine.subscription_events(info, args)
        if inspect.isawaitable(events):
            events = await events
        slot = direct_events.get()
        if slot is not None:
            slot.events = events
        return events

    async def resolve(event: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        if type(event) is SharedResult:
            if event.error is not None:
                raise event.error
            return event.value
        return await resolver(event, info, **args)

    return {"subscribe": subscribe, "resolve": resolve}
