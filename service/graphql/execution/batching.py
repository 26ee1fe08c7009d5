"""Rows by primary key, many requests in one statement (aiodataloader).

Apollo Federation's `_entities(representations:)` asks for rows of several tables by
key, and a client may ask for several `t_by_pk` root fields under aliases at once. Each
becomes a `load` on a DataLoader keyed by what is fetched (the table and the selection),
so the loads of one execution that fetch the same thing are answered by one
`SELECT … WHERE pk IN (…)`, under the caller's role and permission filter.

Loaders live for one execution only (`RowBatching`, an extension, opens the scope):
a WebSocket connection runs many executions, and a loader kept longer would hand a
later live-query run an old row. Outside an execution (a live query's own run), every
load gets a fresh loader: nothing is shared, nothing is stale.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from aiodataloader import DataLoader
from graphql import GraphQLObjectType, print_ast
from graphql.language import FieldNode
from strawberry.extensions import SchemaExtension

from service.graphql.plan import ColumnOut, RowPlan, SelectArgs
from service.graphql.sql.selects import Fetcher, select_rows

if TYPE_CHECKING:
    from service.graphql.catalog.metadata import TableInfo
    from service.graphql.execution.engine import GraphQLEngine
    from service.graphql.sql.compiling import CompileContext

KEY_PREFIX = "@key:"
"""Response keys of the hidden primary-key columns (never GraphQL names: no clashes)."""

PrimaryKey = tuple[Any, ...]


class RowLoaders:
    """The DataLoaders of one execution, by what they fetch."""

    def __init__(self) -> None:
        self._loaders: dict[Any, DataLoader[PrimaryKey, dict[str, Any] | None]] = {}

    def get(
        self, signature: Any, make: Callable[[], DataLoader[PrimaryKey, dict[str, Any] | None]]
    ) -> DataLoader[PrimaryKey, dict[str, Any] | None]:
        loader = self._loaders.get(signature)
        if loader is None:
            loader = self._loaders[signature] = make()
        return loader


_current: contextvars.ContextVar[RowLoaders | None] = contextvars.ContextVar(
    "row_loaders", default=None
)


class RowBatching(SchemaExtension):
    """Gives each execution its own `RowLoaders`."""

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        token = _current.set(RowLoaders())
        try:
            yield
        finally:
            _current.reset(token)


def selection_signature(table: TableInfo, nodes: Sequence[FieldNode], extra: Any = None) -> Any:
    """What a load fetches: the table and the selection (fragments and variables are
    the execution's, so equal text means an equal plan)."""
    return (table.name, extra, tuple(_text(node.selection_set) for node in nodes))


def _text(selection_set: Any) -> str:
    # The selection's text in the request: slicing it costs far less than printing it.
    if selection_set is None:
        return ""
    loc = selection_set.loc
    if loc is not None:
        return str(loc.source.body[loc.start : loc.end])
    return print_ast(selection_set)


def key_text(value: Any) -> str:
    """A primary-key value as text, the same for the request's and the database's form."""
    return str(value)


async def load_rows(
    engine: GraphQLEngine,
    ctx: CompileContext,
    signature: Any,
    plan: RowPlan,
    keys: Sequence[PrimaryKey],
) -> list[dict[str, Any] | None]:
    """The rows of `plan.table` with these primary keys, shaped by `plan`, in key order
    (None for a key with no row the role may see).

    Loads of the same execution with the same `signature` share one statement.
    """
    loaders = _current.get() or RowLoaders()

    async def fetch(batch: list[PrimaryKey]) -> list[dict[str, Any] | None]:
        return await _fetch(engine, ctx, plan, batch)

    loader = loaders.get(signature, lambda: DataLoader(fetch, cache=False))
    return list(await loader.load_many(list(keys)))


async def _fetch(
    engine: GraphQLEngine, ctx: CompileContext, plan: RowPlan, keys: list[PrimaryKey]
) -> list[dict[str, Any] | None]:
    table = plan.table
    columns = [table.columns[name] for name in table.primary_key]
    hidden = [f"{KEY_PREFIX}{column.name}" for column in columns]
    outputs = plan.outputs + [
        ColumnOut(label, column, _unchanged) for label, column in zip(hidden, columns, strict=True)
    ]
    wanted = list(dict.fromkeys(keys))

    def matches(alias: Any) -> Any:
        if len(wanted) == 1:
            # One key (the common case): plain equality, the cheapest statement to build.
            return sa.and_(
                *(
                    alias.c[column.name]
                    == sa.bindparam(None, value, type_=alias.c[column.name].type)
                    for column, value in zip(columns, wanted[0], strict=True)
                )
            )
        if len(columns) == 1:
            return ctx.dialect.in_values(
                alias.c[columns[0].name], columns[0], [k[0] for k in wanted]
            )
        return sa.tuple_(*(alias.c[c.name] for c in columns)).in_(wanted)

    async with engine.database.read() as conn:
        rows = await select_rows(
            Fetcher(ctx, conn),
            RowPlan(table, outputs, plan.path),
            SelectArgs(path=plan.path),
            matches,
        )
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        found[tuple(key_text(row.pop(label)) for label in hidden)] = row
    return [found.get(tuple(key_text(value) for value in key)) for key in keys]


def _unchanged(value: Any) -> Any:
    return value


def object_type_of(return_type: Any) -> GraphQLObjectType:
    while not isinstance(return_type, GraphQLObjectType):
        return_type = return_type.of_type
    return return_type
