"""From a GraphQL selection to a plan of what to fetch and how to shape the response.

The engine resolves each root field in one go: it walks the field's selection (aliases,
fragments, `@skip`/`@include`) once, and produces a tree of plans — which columns,
computed fields, relationships and aggregates each level needs, with their coerced
arguments. `sql/selects.py` turns each plan level into one SQL statement, so the number of
statements depends on the shape of the query, never on the rows it returns.

The schema builder marks every field with a `FieldSpec` (in the graphql-core field's
`extensions["engine"]`); that is how the planner knows what a field means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    get_named_type,
    get_nullable_type,
)
from graphql.execution.values import VariableValues, get_argument_values, get_directive_values
from graphql.language import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    SelectionSetNode,
    VariableNode,
)
from graphql.pyutils import Undefined

from service.graphql.catalog.metadata import ColumnInfo, ComputedField, Relationship, TableInfo
from service.graphql.catalog.scalars import Serializer, serializer_for
from service.graphql.errors import EngineError, validation_failed
from service.graphql.sql.compiling import CompileContext

# --- what each schema field means (set by schema.py) ------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    column: ColumnInfo


@dataclass(frozen=True)
class ComputedSpec:
    computed: ComputedField


@dataclass(frozen=True)
class ObjectRelationshipSpec:
    relationship: Relationship


@dataclass(frozen=True)
class ArrayRelationshipSpec:
    relationship: Relationship


@dataclass(frozen=True)
class ArrayAggregateSpec:
    relationship: Relationship


@dataclass(frozen=True)
class AggregateFieldsSpec:
    """`aggregate` of `<table>_aggregate`."""

    table: TableInfo


@dataclass(frozen=True)
class NodesSpec:
    """`nodes` of `<table>_aggregate`."""

    table: TableInfo


@dataclass(frozen=True)
class CountSpec:
    table: TableInfo


@dataclass(frozen=True)
class OperationSpec:
    """`sum`, `avg`, ... of `<table>_aggregate_fields`."""

    operation: str


@dataclass(frozen=True)
class OperationColumnSpec:
    """A column of `<table>_<operation>_fields`."""

    operation: str
    column: ColumnInfo
    scalar: str


@dataclass(frozen=True)
class AffectedRowsSpec:
    pass


@dataclass(frozen=True)
class ReturningSpec:
    table: TableInfo


FieldSpec = (
    ColumnSpec
    | ComputedSpec
    | ObjectRelationshipSpec
    | ArrayRelationshipSpec
    | ArrayAggregateSpec
    | AggregateFieldsSpec
    | NodesSpec
    | CountSpec
    | OperationSpec
    | OperationColumnSpec
    | AffectedRowsSpec
    | ReturningSpec
)


def spec_of(field_def: GraphQLField) -> Any:
    return (field_def.extensions or {}).get("engine")


# --- plans ------------------------------------------------------------------------------------


@dataclass
class SelectArgs:
    """The five arguments of a list field, coerced; `distinct_on` holds field names."""

    where: Mapping[str, Any] | None = None
    order_by: list[Mapping[str, Any]] | None = None
    limit: int | None = None
    offset: int | None = None
    distinct_on: list[str] = field(default_factory=list)
    path: str = "$"


@dataclass
class ConstOut:
    """A constant output, e.g. `__typename`."""

    key: str
    value: Any


@dataclass
class ColumnOut:
    key: str
    column: ColumnInfo
    serialize: Serializer
    json_path: str | None = None


@dataclass
class ComputedOut:
    key: str
    computed: ComputedField
    serialize: Serializer


@dataclass
class ObjectRelationshipOut:
    key: str
    relationship: Relationship
    plan: RowPlan


@dataclass
class ArrayRelationshipOut:
    key: str
    relationship: Relationship
    args: SelectArgs
    plan: RowPlan


@dataclass
class ArrayAggregateOut:
    key: str
    relationship: Relationship
    args: SelectArgs
    plan: AggregatePlan


RowOutput = (
    ConstOut
    | ColumnOut
    | ComputedOut
    | ObjectRelationshipOut
    | ArrayRelationshipOut
    | ArrayAggregateOut
)


@dataclass
class RowPlan:
    """What to fetch for each row of `table` and how to shape it."""

    table: TableInfo
    outputs: list[RowOutput]
    path: str


@dataclass
class CountOut:
    key: str
    columns: list[ColumnInfo]
    distinct: bool


@dataclass
class OperationColumnOut:
    key: str
    column: ColumnInfo
    serialize: Serializer


@dataclass
class OperationOut:
    key: str
    operation: str
    outputs: list[ConstOut | OperationColumnOut]


@dataclass
class AggregateFieldsOut:
    key: str
    outputs: list[ConstOut | CountOut | OperationOut]


@dataclass
class NodesOut:
    key: str
    plan: RowPlan


@dataclass
class AggregatePlan:
    """What `<table>_aggregate` asks for: aggregate blocks and/or nodes."""

    table: TableInfo
    outputs: list[ConstOut | AggregateFieldsOut | NodesOut]
    path: str


@dataclass
class AffectedRowsOut:
    key: str


@dataclass
class ReturningOut:
    key: str
    plan: RowPlan


@dataclass
class MutationResponsePlan:
    table: TableInfo
    outputs: list[ConstOut | AffectedRowsOut | ReturningOut]


# --- the planner --------------------------------------------------------------------------------


class Planner:
    """Turns field nodes into plans, for one operation's fragments and variables."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: VariableValues,
        ctx: CompileContext,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.ctx = ctx

    # selection handling

    def collect(
        self, parent_type: GraphQLObjectType, field_nodes: Sequence[FieldNode]
    ) -> dict[str, list[FieldNode]]:
        """Sub-fields of `field_nodes` by response key, in first-seen order (merged)."""
        grouped: dict[str, list[FieldNode]] = {}
        for node in field_nodes:
            if node.selection_set is not None:
                self._visit(parent_type, node.selection_set, grouped, set())
        return grouped

    def _visit(
        self,
        parent_type: GraphQLObjectType,
        selection_set: SelectionSetNode,
        grouped: dict[str, list[FieldNode]],
        seen_fragments: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or condition.name.value == parent_type.name:
                    self._visit(parent_type, selection.selection_set, grouped, seen_fragments)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen_fragments:
                    continue
                if fragment.type_condition.name.value != parent_type.name:
                    continue
                self._visit(parent_type, fragment.selection_set, grouped, seen_fragments | {name})

    def _included(self, node: Any) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include is not None and include.get("if") is False)

    def arguments(self, field_def: GraphQLField, node: FieldNode) -> dict[str, Any]:
        """Coerced arguments of a nested field (graphql-core coerces root fields)."""
        return get_argument_values(field_def, node, self.variables)

    def select_args(
        self,
        table: TableInfo,
        args: Mapping[str, Any],
        node: FieldNode,
        path: str,
        field_def: GraphQLField,
    ) -> SelectArgs:
        """`SelectArgs` from coerced arguments, checking limit, offset and distinct_on.

        `args` are keyed by default names (`out_name`); `field_def` is the field they
        were given to, which knows the names the client used.
        """
        order_by = args.get("order_by")
        if order_by is not None:
            name, argument = _argument_named(field_def, "order_by")
            order_by = restore_key_order(
                order_by, _argument_node(node, name), self.variables, argument.type
            )
        limit, offset = args.get("limit"), args.get("offset")
        if limit is not None and limit < 0:
            raise validation_failed("unexpected negative value for 'limit'", f"{path}.args.limit")
        if offset is not None and offset < 0:
            raise validation_failed("unexpected negative value for 'offset'", f"{path}.args.offset")
        distinct_on = [str(name) for name in args.get("distinct_on") or []]
        if distinct_on and order_by:
            leading: list[str] = []
            for item in order_by:
                leading.extend(item.keys())
            if set(leading[: len(distinct_on)]) != set(distinct_on):
                raise validation_failed(
                    '"distinct_on" columns must match initial "order_by" columns',
                    f"{path}.args",
                )
        return SelectArgs(
            where=args.get("where"),
            order_by=order_by,
            limit=limit,
            offset=offset,
            distinct_on=distinct_on,
            path=path,
        )

    # plans

    def row_plan(
        self,
        object_type: GraphQLObjectType,
        table: TableInfo,
        field_nodes: Sequence[FieldNode],
        path: str,
    ) -> RowPlan:
        """The plan for rows of `table` selected by `field_nodes`' sub-selection."""
        outputs: list[RowOutput] = []
        stringify = self.ctx.stringify_numeric
        for key, nodes in self.collect(object_type, field_nodes).items():
            node = nodes[0]
            name = node.name.value
            # Hasura's paths name fields, not aliases.
            here = f"{path}.selectionSet.{name}"
            if name == "__typename":
                outputs.append(ConstOut(key, object_type.name))
                continue
            field_def = object_type.fields[name]
            spec = spec_of(field_def)
            if isinstance(spec, ColumnSpec):
                json_path = None
                if node.arguments:
                    json_path = self.arguments(field_def, node).get("path")
                serialize = serializer_for(spec.column.scalar, stringify_numeric=stringify)
                outputs.append(ColumnOut(key, spec.column, serialize, json_path))
            elif isinstance(spec, ComputedSpec):
                serialize = serializer_for(spec.computed.scalar, stringify_numeric=stringify)
                outputs.append(ComputedOut(key, spec.computed, serialize))
            elif isinstance(spec, ObjectRelationshipSpec):
                target = self.ctx.table(spec.relationship.target)
                nested_type = _object(field_def)
                outputs.append(
                    ObjectRelationshipOut(
                        key, spec.relationship, self.row_plan(nested_type, target, nodes, here)
                    )
                )
            elif isinstance(spec, ArrayRelationshipSpec):
                target = self.ctx.table(spec.relationship.target)
                args = self.select_args(
                    target, self.arguments(field_def, node), node, here, field_def
                )
                nested = self.row_plan(_object(field_def), target, nodes, here)
                outputs.append(ArrayRelationshipOut(key, spec.relationship, args, nested))
            elif isinstance(spec, ArrayAggregateSpec):
                target = self.ctx.table(spec.relationship.target)
                args = self.select_args(
                    target, self.arguments(field_def, node), node, here, field_def
                )
                nested_aggregate = self.aggregate_plan(_object(field_def), target, nodes, here)
                outputs.append(ArrayAggregateOut(key, spec.relationship, args, nested_aggregate))
            else:  # pragma: no cover - every field of a row type has a spec
                raise EngineError("unexpected", f"field {name} has no plan", here)
        return RowPlan(table, outputs, path)

    def aggregate_plan(
        self,
        object_type: GraphQLObjectType,
        table: TableInfo,
        field_nodes: Sequence[FieldNode],
        path: str,
    ) -> AggregatePlan:
        """The plan for a `<table>_aggregate` selection."""
        outputs: list[ConstOut | AggregateFieldsOut | NodesOut] = []
        for key, nodes in self.collect(object_type, field_nodes).items():
            name = nodes[0].name.value
            here = f"{path}.selectionSet.{name}"
            if name == "__typename":
                outputs.append(ConstOut(key, object_type.name))
                continue
            field_def = object_type.fields[name]
            spec = spec_of(field_def)
            if isinstance(spec, NodesSpec):
                outputs.append(NodesOut(key, self.row_plan(_object(field_def), table, nodes, here)))
            elif isinstance(spec, AggregateFieldsSpec):
                outputs.append(
                    AggregateFieldsOut(
                        key, self._aggregate_fields(_object(field_def), table, nodes)
                    )
                )
        return AggregatePlan(table, outputs, path)

    def _aggregate_fields(
        self, object_type: GraphQLObjectType, table: TableInfo, field_nodes: Sequence[FieldNode]
    ) -> list[ConstOut | CountOut | OperationOut]:
        outputs: list[ConstOut | CountOut | OperationOut] = []
        stringify = self.ctx.stringify_numeric
        for key, nodes in self.collect(object_type, field_nodes).items():
            node = nodes[0]
            name = node.name.value
            if name == "__typename":
                outputs.append(ConstOut(key, object_type.name))
                continue
            field_def = object_type.fields[name]
            spec = spec_of(field_def)
            if isinstance(spec, CountSpec):
                args = self.arguments(field_def, node)
                columns = [table.columns_by_field[str(c)] for c in args.get("columns") or []]
                outputs.append(CountOut(key, columns, bool(args.get("distinct"))))
            elif isinstance(spec, OperationSpec):
                operation_type = _object(field_def)
                members: list[ConstOut | OperationColumnOut] = []
                for member_key, member_nodes in self.collect(operation_type, nodes).items():
                    member_name = member_nodes[0].name.value
                    if member_name == "__typename":
                        members.append(ConstOut(member_key, operation_type.name))
                        continue
                    member_spec = spec_of(operation_type.fields[member_name])
                    assert isinstance(member_spec, OperationColumnSpec)
                    serialize = serializer_for(member_spec.scalar, stringify_numeric=stringify)
                    members.append(OperationColumnOut(member_key, member_spec.column, serialize))
                outputs.append(OperationOut(key, spec.operation, members))
        return outputs

    def mutation_response_plan(
        self,
        object_type: GraphQLObjectType,
        table: TableInfo,
        field_nodes: Sequence[FieldNode],
        path: str,
    ) -> MutationResponsePlan:
        outputs: list[ConstOut | AffectedRowsOut | ReturningOut] = []
        for key, nodes in self.collect(object_type, field_nodes).items():
            name = nodes[0].name.value
            here = f"{path}.selectionSet.{name}"
            if name == "__typename":
                outputs.append(ConstOut(key, object_type.name))
            elif isinstance(spec_of(object_type.fields[name]), AffectedRowsSpec):
                outputs.append(AffectedRowsOut(key))
            else:
                field_def = object_type.fields[name]
                outputs.append(
                    ReturningOut(key, self.row_plan(_object(field_def), table, nodes, here))
                )
        return MutationResponsePlan(table, outputs)


def _object(field_def: GraphQLField) -> GraphQLObjectType:
    named = get_named_type(field_def.type)
    assert isinstance(named, GraphQLObjectType)
    return named


def _argument_named(field_def: GraphQLField, out_name: str) -> tuple[str, GraphQLArgument]:
    """The argument of `field_def` coerced under `out_name`, with its public name."""
    for name, argument in field_def.args.items():
        if (argument.out_name or name) == out_name:
            return name, argument
    raise KeyError(out_name)


def _argument_node(node: FieldNode, name: str) -> Any:
    for argument in node.arguments or ():
        if argument.name.value == name:
            return argument.value
    return None


def restore_key_order(
    coerced: Any, source: Any, variables: VariableValues, type_: GraphQLInputType
) -> Any:
    """`coerced` with object keys in the order the client wrote them.

    graphql-core coerces input objects in the order of the type's fields; Hasura reads
    `order_by: {a: asc, b: desc}` in the order given. `source` is the argument's AST
    node, or the raw JSON of a variable; `type_` is the argument's type, whose fields
    tell the names the client wrote from the default names `coerced` is keyed by.
    """
    if isinstance(source, VariableNode):
        entry = variables.sources.get(source.name.value)
        if entry is None:
            return coerced
        if entry.value is not Undefined:
            source = entry.value
        elif entry.signature.default is not None:
            source = entry.signature.default.literal
        else:
            return coerced
    if isinstance(coerced, list):
        if isinstance(source, ListValueNode):
            items: list[Any] = list(source.values)
        elif isinstance(source, list):
            items = source
        else:
            items = [source]
        if len(items) != len(coerced):
            return coerced
        item_type = get_nullable_type(type_)
        if isinstance(item_type, GraphQLList):
            item_type = item_type.of_type
        return [
            restore_key_order(c, s, variables, item_type)
            for c, s in zip(coerced, items, strict=True)
        ]
    if isinstance(coerced, dict):
        if isinstance(source, ObjectValueNode):
            pairs = [(f.name.value, f.value) for f in source.fields]
        elif isinstance(source, dict):
            pairs = list(source.items())
        else:
            return coerced
        object_type = get_nullable_type(type_)
        if not isinstance(object_type, GraphQLInputObjectType):
            return coerced
        fields = object_type.fields
        ordered: dict[str, Any] = {}
        for name, value_source in pairs:
            field = fields.get(name)
            if field is None:
                continue
            key = field.out_name or name
            if key in coerced:
                ordered[key] = restore_key_order(coerced[key], value_source, variables, field.type)
        for key, value in coerced.items():
            ordered.setdefault(key, value)
        return ordered
    return coerced
