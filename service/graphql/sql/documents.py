"""Root fields as one SQL statement that builds the field's JSON in the database.

As Hasura does, a root field's whole selection becomes one statement whose one result is
the field's JSON text: each row a JSON object (text concatenated on PostgreSQL, where
the constants between two rows' values are `string_agg`'s separator; `json_object` on
SQLite; see each dialect's `json_object` and `json_object_array`), each relationship a correlated subquery (object relationships one row, array
relationships and `<rel>_aggregate` fields an aggregate over their rows, with the role's
row filter and the field's `where`/`order_by`/`limit`/`offset`/`distinct_on`), each list
a JSON array aggregated over a subquery in the order the response needs. The engine
sends that text on as it came: no rows cross into Python, nothing is serialised twice.

Scalars are written as the row-by-row path writes them (`catalog.scalars`), by each
dialect's `json_value`, so both paths answer the same text (`tests/test_graphql_documents.py`
compares them).

The row cap (`CompileContext.max_rows`) keeps its meaning: a root list (or the `nodes`
of a root `_aggregate`) reads at most `max_rows` + 1 rows and answers the JSON string
`ROW_CAP` instead of its array when it found more; a nested array reads at most
`max_rows` + 1 rows per parent, and `nested_array_counts` totals each nested level over
all parents so the caller can refuse what the row-by-row path refuses.

`NotBuildable` is raised for the selections built row by row only: a jsonb column's
`path` argument, and selections that could amplify. The database builds every place a
row appears, where the row-by-row path loads each level once and shares its rows, so a
relationship that leads back to a table already on its path (`invocation { events {
invocation … } }`), or one selected twice under one parent (aliases), could make a small
query describe a huge answer that only the response budget would refuse, after the
database built it. Those go row by row, where the budget refuses before anything is
built (`sql.budget`); without them the answer is bounded by the data's own fan-out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause, Subquery

from service.graphql.catalog.metadata import Relationship, TableInfo
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
from service.graphql.sql.aggregates import aggregate_function, result_scalar
from service.graphql.sql.compiling import CompileContext
from service.graphql.sql.filters import count_expression, related_condition
from service.graphql.sql.selects import build_rows_query

ROW_CAP = '"more rows than the row cap"'
"""What a capped list answers instead of its array when it has more than `max_rows` rows."""


class NotBuildable(Exception):
    """The selection uses something only the row-by-row path builds (`sql.selects`)."""


def list_document(
    ctx: CompileContext,
    plan: RowPlan,
    args: SelectArgs,
    condition: Callable[[FromClause], ColumnElement[bool]] | None = None,
) -> Select[Any]:
    """The statement answering a root list field (`t(...)`) as one JSON array."""
    builder = _Builder(ctx)
    rows = builder.rows(plan.table, _row_columns(plan), args, condition, ctx.max_rows)
    array = builder.row_array(plan, rows)
    return sa.select(ctx.dialect.json_document(builder.capped(array))).select_from(rows)


def object_document(
    ctx: CompileContext,
    plan: RowPlan,
    condition: Callable[[FromClause], ColumnElement[bool]],
) -> Select[Any]:
    """The statement answering a `t_by_pk` field: one JSON object, or no row (null)."""
    builder = _Builder(ctx)
    rows = builder.rows(plan.table, _row_columns(plan), SelectArgs(path=plan.path), condition, None)
    row = ctx.dialect.json_document(builder.row_object(plan, rows))
    return sa.select(row).select_from(rows).limit(1)


def aggregate_document(ctx: CompileContext, plan: AggregatePlan, args: SelectArgs) -> Select[Any]:
    """The statement answering a root `t_aggregate` field as one JSON object."""
    builder = _Builder(ctx)
    statement = builder.aggregate(plan, args, None, None, root=True)
    return statement.with_only_columns(ctx.dialect.json_document(statement.selected_columns[0]))


def exceeds_row_cap(text: str | None) -> bool:
    """Whether a root document answered `ROW_CAP` (a list or object never starts with `"`)."""
    return text is not None and text.startswith('"')


@dataclass(frozen=True)
class NestedArray:
    """An array nested under a root field's rows: where it is and what it lists."""

    steps: tuple[tuple[str, bool], ...]
    """(response key, whether the value there is a list) from the root value down."""
    table: TableInfo
    path: str
    least_bytes: int
    """The fewest characters one of its rows takes in the answer (braces, keys, one
    character a value, separators): an answer shorter than n times this holds fewer
    than n of them."""


def nested_arrays(plan: RowPlan | AggregatePlan) -> list[NestedArray]:
    """Every array (relationship lists and `nodes`) below the root level of `plan`."""
    found: list[NestedArray] = []

    def listed(plan: RowPlan, steps: tuple[tuple[str, bool], ...]) -> None:
        found.append(NestedArray(steps, plan.table, plan.path, _least_bytes(plan)))
        rows(plan, steps)

    def rows(level: RowPlan, steps: tuple[tuple[str, bool], ...]) -> None:
        for output in level.outputs:
            if isinstance(output, ObjectRelationshipOut):
                rows(output.plan, (*steps, (output.key, False)))
            elif isinstance(output, ArrayRelationshipOut):
                listed(output.plan, (*steps, (output.key, True)))
            elif isinstance(output, ArrayAggregateOut):
                aggregate(output.plan, (*steps, (output.key, False)))

    def aggregate(level: AggregatePlan, steps: tuple[tuple[str, bool], ...]) -> None:
        for output in level.outputs:
            if isinstance(output, NodesOut):
                listed(output.plan, (*steps, (output.key, True)))

    if isinstance(plan, RowPlan):
        rows(plan, ())
    else:
        for output in plan.outputs:
            if isinstance(output, NodesOut):
                rows(output.plan, ((output.key, True),))
    return found


def least_object_bytes(plan: RowPlan | AggregatePlan) -> int:
    """The fewest characters any object the response budget counts (a row, an aggregate
    object) takes in the answer of `plan`: an answer of n characters holds at most n over
    this many of them."""
    least = _least_bytes(plan)
    for output in plan.outputs:
        if isinstance(
            output, ObjectRelationshipOut | ArrayRelationshipOut | ArrayAggregateOut | NodesOut
        ):
            least = min(least, least_object_bytes(output.plan))
    return least


def _least_bytes(plan: RowPlan | AggregatePlan) -> int:
    # `{}`, and per key `"key":` and a value of at least one character, commas between.
    if not plan.outputs:
        return 2
    return 1 + sum(len(output.key) + 5 for output in plan.outputs)


def nested_array_counts(arrays: list[NestedArray], value: Any) -> Iterator[tuple[NestedArray, int]]:
    """Rows of each nested array over all its parents, in the parsed root `value`.

    The root value is a list of rows, one row, or an aggregate object; each array counts
    the items of every list found at its steps.
    """
    roots = value if isinstance(value, list) else [value]
    for array in arrays:
        level = roots
        for key, is_list in array.steps:
            found: list[Any] = []
            for item in level:
                if isinstance(item, dict):
                    child = item.get(key)
                    if is_list and isinstance(child, list):
                        found.extend(child)
                    elif child is not None:
                        found.append(child)
            level = found
        yield array, len(level)


class _Builder:
    """Builds the JSON of one root field's plan, level by level."""

    def __init__(self, ctx: CompileContext) -> None:
        self.ctx = ctx
        self.dialect = ctx.dialect
        self._path: list[str] = []
        """Tables of the row objects being built, from the root down."""

    # --- rows ----------------------------------------------------------------------------

    def rows(
        self,
        table: TableInfo,
        columns: list[str],
        args: SelectArgs,
        condition: Callable[[FromClause], ColumnElement[bool]] | None,
        cap: int | None,
        correlate: FromClause | None = None,
    ) -> Subquery:
        """The rows of `table` under `args` (and `condition`): `columns`, ordered and
        paged, as a subquery.

        The JSON of each row is built over this subquery, never inside it: rows skipped
        by `offset`, sorted or cut by `limit` cost no JSON and no relationship lookups,
        and sorts carry only the columns the response needs.
        """

        def columns_for(alias: FromClause) -> list[tuple[str, ColumnElement[Any]]]:
            return [(name, alias.c[name]) for name in columns]

        statement, _ = build_rows_query(
            self.ctx,
            table,
            columns_for,
            args,
            extra_condition=condition,
            cap=cap,
            correlate=correlate,
        )
        return statement.subquery()

    def row_object(self, plan: RowPlan, alias: FromClause) -> ColumnElement[Any]:
        """The JSON object of one row of `alias`."""
        return self.dialect.json_object(self._row_pairs(plan, alias))

    def row_array(self, plan: RowPlan, rows: FromClause) -> ColumnElement[Any]:
        """The JSON array of the objects of every row of `rows`, in their order."""
        return self.dialect.json_object_array(self._row_pairs(plan, rows))

    def _row_pairs(self, plan: RowPlan, alias: FromClause) -> list[tuple[str, ColumnElement[Any]]]:
        name = plan.table.name
        if name in self._path:
            raise NotBuildable(f"a relationship back to {name} (rows shared row by row)")
        selected: set[tuple[str, type]] = set()
        for output in plan.outputs:
            relationship = getattr(output, "relationship", None)
            if relationship is not None and _lists_rows(output):
                kind = (relationship.name, type(output))
                if kind in selected:
                    raise NotBuildable(f"{relationship.name} selected twice (aliases)")
                selected.add(kind)
        self._path.append(name)
        try:
            return [(output.key, self.value(output, alias)) for output in plan.outputs]
        finally:
            self._path.pop()

    def value(self, output: Any, alias: FromClause) -> ColumnElement[Any]:
        ctx, dialect = self.ctx, self.dialect
        stringify = ctx.stringify_numeric
        if isinstance(output, ConstOut):
            return self.dialect.json_constant(output.value)
        if isinstance(output, ColumnOut):
            if output.json_path is not None:
                raise NotBuildable("a jsonb column's path argument")
            column = output.column
            return dialect.json_value(
                alias.c[column.name], column.scalar, stringify_numeric=stringify
            )
        if isinstance(output, ComputedOut):
            computed = output.computed
            return dialect.json_value(
                computed.function.build(alias), computed.scalar, stringify_numeric=stringify
            )
        relationship: Relationship = output.relationship
        target = ctx.table(relationship.target)
        if isinstance(output, ObjectRelationshipOut):
            inner = ctx.alias(target)
            related = (
                sa.select(self.row_object(output.plan, inner))
                .select_from(inner)
                .where(related_condition(ctx, relationship, alias, inner))
                .correlate(alias)
                .limit(1)
            )
            return dialect.json_nested(related.scalar_subquery())
        join = _join(relationship, alias)
        if isinstance(output, ArrayRelationshipOut):
            rows = self.rows(
                target, _row_columns(output.plan), output.args, join, ctx.max_rows, alias
            )
            array = self.row_array(output.plan, rows)
            return dialect.json_nested(sa.select(array).select_from(rows).scalar_subquery())
        assert isinstance(output, ArrayAggregateOut)
        statement = self.aggregate(output.plan, output.args, join, alias, root=False)
        return dialect.json_nested(statement.scalar_subquery())

    # --- aggregates ------------------------------------------------------------------------

    def aggregate(
        self,
        plan: AggregatePlan,
        args: SelectArgs,
        condition: Callable[[FromClause], ColumnElement[bool]] | None,
        correlate: FromClause | None,
        *,
        root: bool,
    ) -> Select[Any]:
        """One select (one column) of a `<table>_aggregate` value over its rows."""
        ctx, dialect = self.ctx, self.dialect
        nodes = any(isinstance(output, NodesOut) for output in plan.outputs)
        cap = ctx.max_rows if nodes else None
        rows = self.rows(plan.table, _aggregate_columns(plan), args, condition, cap, correlate)
        pairs: list[tuple[str, ColumnElement[Any]]] = []
        for output in plan.outputs:
            if isinstance(output, ConstOut):
                pairs.append((output.key, self.dialect.json_constant(output.value)))
            elif isinstance(output, AggregateFieldsOut):
                pairs.append((output.key, self.block(output, rows)))
            else:
                pairs.append((output.key, self.row_array(output.plan, rows)))
        value = dialect.json_object(pairs)
        if root and nodes:
            value = self.capped(value)
        elif not nodes and not _aggregates_anything(plan):
            # Only `__typename`s: a select with no aggregate answers no row over no rows.
            value = sa.case((sa.func.count() >= 0, value))
        return sa.select(value).select_from(rows)

    def block(self, block: AggregateFieldsOut, rows: Subquery) -> ColumnElement[Any]:
        """One `aggregate { count sum {…} … }` object over `rows`."""
        ctx, dialect = self.ctx, self.dialect
        stringify = ctx.stringify_numeric
        pairs: list[tuple[str, ColumnElement[Any]]] = []
        for member in block.outputs:
            if isinstance(member, ConstOut):
                pairs.append((member.key, self.dialect.json_constant(member.value)))
            elif isinstance(member, CountOut):
                columns = [rows.c[column.name] for column in member.columns]
                count = count_expression(ctx, columns, member.distinct)
                pairs.append(
                    (member.key, dialect.json_value(count, "Int", stringify_numeric=stringify))
                )
            else:
                assert isinstance(member, OperationOut)
                items: list[tuple[str, ColumnElement[Any]]] = []
                for item in member.outputs:
                    if isinstance(item, ConstOut):
                        items.append((item.key, self.dialect.json_constant(item.value)))
                        continue
                    column = item.column
                    measure = aggregate_function(
                        ctx, member.operation, rows.c[column.name], column.scalar
                    )
                    scalar = result_scalar(member.operation, column.scalar)
                    items.append(
                        (item.key, dialect.json_value(measure, scalar, stringify_numeric=stringify))
                    )
                pairs.append((member.key, dialect.json_object(items)))
        return dialect.json_object(pairs)

    def capped(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        """`value`, or `ROW_CAP` when the rows it aggregates are more than the cap."""
        if self.ctx.max_rows is None:
            return value
        return sa.case(
            (sa.func.count() > self.ctx.max_rows, self.dialect.json_literal(ROW_CAP)),
            else_=value,
        )


def _row_columns(plan: RowPlan) -> list[str]:
    """Columns a level's JSON reads: its columns and relationship keys (every column when a
    computed field reads the row), at least one."""
    names: dict[str, None] = {}
    for output in plan.outputs:
        if isinstance(output, ColumnOut):
            names[output.column.name] = None
        elif isinstance(output, ComputedOut):
            return list(plan.table.columns)
        elif isinstance(output, ObjectRelationshipOut | ArrayRelationshipOut | ArrayAggregateOut):
            names[output.relationship.source_column] = None
    return list(names) or [_any_column(plan.table)]


def _aggregate_columns(plan: AggregatePlan) -> list[str]:
    """Columns an aggregate's blocks measure and its nodes read, at least one."""
    names: dict[str, None] = {}
    for output in plan.outputs:
        if isinstance(output, NodesOut):
            names.update(dict.fromkeys(_row_columns(output.plan)))
        elif isinstance(output, AggregateFieldsOut):
            for member in output.outputs:
                if isinstance(member, CountOut):
                    names.update(dict.fromkeys(column.name for column in member.columns))
                elif isinstance(member, OperationOut):
                    names.update(
                        dict.fromkeys(
                            item.column.name
                            for item in member.outputs
                            if not isinstance(item, ConstOut)
                        )
                    )
    return list(names) or [_any_column(plan.table)]


def _lists_rows(output: Any) -> bool:
    """Whether a relationship output answers rows (an aggregate only with `nodes`)."""
    if isinstance(output, ArrayAggregateOut):
        return any(isinstance(member, NodesOut) for member in output.plan.outputs)
    return True


def _aggregates_anything(plan: AggregatePlan) -> bool:
    """Whether an aggregate's blocks measure something (more than `__typename`s)."""
    for output in plan.outputs:
        if isinstance(output, AggregateFieldsOut):
            for member in output.outputs:
                if isinstance(member, CountOut):
                    return True
                if isinstance(member, OperationOut) and any(
                    not isinstance(item, ConstOut) for item in member.outputs
                ):
                    return True
    return False


def _any_column(table: TableInfo) -> str:
    return table.primary_key[0] if table.primary_key else next(iter(table.columns))


def _join(
    relationship: Relationship, outer: FromClause
) -> Callable[[FromClause], ColumnElement[bool]]:
    """The condition tying a related row to the row `outer` (the role's row filter on the
    related table is applied by `build_rows_query`)."""

    def condition(inner: FromClause) -> ColumnElement[bool]:
        return inner.c[relationship.target_column] == outer.c[relationship.source_column]

    return condition
