"""Which tables a root field reads: its table, relationship targets, the tables its
filters reach through relationships, and computed fields' sources (for live queries)."""

from __future__ import annotations

from typing import Any

from graphql import get_named_type

from service.graphql.plan import (
    AggregatePlan,
    ArrayAggregateOut,
    ArrayRelationshipOut,
    ComputedOut,
    NodesOut,
    ObjectRelationshipOut,
    Planner,
    RowPlan,
)
from service.graphql.sql.compiling import CompileContext
from service.graphql.sql.filters import referenced_tables


def root_tables(
    planner: Planner, ctx: CompileContext, field_def: Any, nodes: list[Any], path: str
) -> set[str]:
    """Names of the tables the root field `field_def` (selected by `nodes`, at the
    request path `path`) reads."""
    extensions = field_def.extensions or {}
    table = ctx.catalog.tables.get(extensions.get("table", ""))
    if table is None:
        return set()
    tables = {table.name}
    args = planner.arguments(field_def, nodes[0])
    tables |= referenced_tables(ctx, table, args.get("where"))
    output = get_named_type(field_def.type)
    root = extensions.get("root")
    if root == "select_aggregate":
        tables |= _aggregate_tables(ctx, planner.aggregate_plan(output, table, nodes, path))
    elif root in ("select", "select_by_pk", "select_stream"):
        tables |= _plan_tables(ctx, planner.row_plan(output, table, nodes, path))
    return tables


def _plan_tables(ctx: CompileContext, plan: RowPlan) -> set[str]:
    tables = {plan.table.name}
    for output in plan.outputs:
        if isinstance(output, ComputedOut):
            tables.update(output.computed.function.reads)
        elif isinstance(output, ObjectRelationshipOut):
            tables |= _plan_tables(ctx, output.plan)
        elif isinstance(output, ArrayRelationshipOut):
            tables |= _plan_tables(ctx, output.plan)
            tables |= referenced_tables(ctx, output.plan.table, output.args.where)
        elif isinstance(output, ArrayAggregateOut):
            tables |= _aggregate_tables(ctx, output.plan)
            tables |= referenced_tables(ctx, output.plan.table, output.args.where)
    return tables


def _aggregate_tables(ctx: CompileContext, plan: AggregatePlan) -> set[str]:
    tables = {plan.table.name}
    for output in plan.outputs:
        if isinstance(output, NodesOut):
            tables |= _plan_tables(ctx, output.plan)
    return tables
