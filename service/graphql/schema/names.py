"""The names a customized schema serves, by Hasura's default names: what a client that
writes its operations in the default names (the web console) needs to adapt them.

`name_map(default, served, namespace)` pairs the schema of a role under Hasura's default
names with the same role's schema as served, type by type, and returns (as JSON):

    {"namespace": "observability" | null,
     "roots": {"query": "query_root", "mutation": ..., "subscription": ...},
     "types": {"<default type>": {
         "name": "<served type>",
         "fields": {"<default field>": {"name": ..., "type": "<default named type>",
                                        "args": {"<default arg>": {"name": ..., "type": ...}}}},
         "inputFields": {"<default field>": {"name": ..., "type": ...}},
         "values": {"<default enum value>": "<served enum value>"}}}}

A `name` equal to the default one, and empty `args`, `fields`, `inputFields` or `values`,
are left out (the map of the admin schema is then about 100 KB before compression).

Fields are paired by what they mean (root fields by table and kind, other fields by their
`FieldSpec`), arguments and input fields by their default name (`out_name`), enum values
by their value: the pairing needs no naming rule of its own.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
)
from graphql.language import OperationType

from service.graphql.execution.namespace import is_namespace
from service.graphql.plan import (
    AffectedRowsSpec,
    AggregateFieldsSpec,
    ArrayAggregateSpec,
    ArrayRelationshipSpec,
    ColumnSpec,
    ComputedSpec,
    CountSpec,
    NodesSpec,
    ObjectRelationshipSpec,
    OperationColumnSpec,
    OperationSpec,
    ReturningSpec,
    spec_of,
)

OPERATIONS = ("query", "mutation", "subscription")


def field_identity(name: str, field: GraphQLField) -> Any:
    """What a field means, the same whatever it is named."""
    extensions = field.extensions or {}
    if "root" in extensions:
        return ("root", extensions.get("table"), extensions["root"])
    spec = spec_of(field)
    if isinstance(spec, ColumnSpec):
        return ("column", spec.column.name)
    if isinstance(spec, ComputedSpec):
        return ("computed", spec.computed.name)
    if isinstance(spec, ObjectRelationshipSpec | ArrayRelationshipSpec):
        return ("relationship", spec.relationship.name)
    if isinstance(spec, ArrayAggregateSpec):
        return ("relationship_aggregate", spec.relationship.name)
    if isinstance(spec, OperationSpec):
        return ("operation", spec.operation)
    if isinstance(spec, OperationColumnSpec):
        return ("operation_column", spec.operation, spec.column.name)
    kinds = (AggregateFieldsSpec, NodesSpec, CountSpec, AffectedRowsSpec, ReturningSpec)
    if isinstance(spec, kinds):
        return ("kind", type(spec).__name__)
    return ("name", name)


def _root(schema: GraphQLSchema, operation: str, namespace: str | None) -> Any:
    root = schema.get_root_type(OperationType(operation))
    if root is None or namespace is None:
        return root
    field = root.fields.get(namespace)
    return get_named_type(field.type) if field is not None and is_namespace(field) else root


def name_map(
    default: GraphQLSchema, served: GraphQLSchema, namespace: str | None
) -> dict[str, Any]:
    """The served names of `default`'s types, fields, arguments and values (see above)."""
    types: dict[str, dict[str, Any]] = {}
    pending: deque[tuple[GraphQLNamedType, GraphQLNamedType, dict[str, Any]]] = deque()

    def pair(default_type: Any, served_type: Any) -> str:
        named, served_named = get_named_type(default_type), get_named_type(served_type)
        if named.name not in types:
            entry: dict[str, Any] = _named(named.name, served_named.name, {})
            types[named.name] = entry
            pending.append((named, served_named, entry))
        return str(named.name)

    def by_default_name(defaults: Any, served_items: Any) -> dict[str, Any]:
        """Arguments or input fields, paired by their default name (`out_name`)."""
        served_by_default = {
            item.out_name or served_name: (served_name, item)
            for served_name, item in served_items.items()
        }
        paired = {}
        for default_name, item in defaults.items():
            found = served_by_default.get(default_name)
            if found is not None:
                paired[default_name] = _named(
                    default_name, found[0], {"type": pair(item.type, found[1].type)}
                )
        return paired

    roots: dict[str, str] = {}
    for operation in OPERATIONS:
        default_root = default.get_root_type(OperationType(operation))
        served_root = _root(served, operation, namespace)
        if default_root is not None and served_root is not None:
            roots[operation] = pair(default_root, served_root)

    while pending:
        default_type, served_type, entry = pending.popleft()
        if isinstance(default_type, GraphQLObjectType):
            assert isinstance(served_type, GraphQLObjectType)
            by_identity = {
                field_identity(name, field): (name, field)
                for name, field in served_type.fields.items()
            }
            fields: dict[str, Any] = {}
            for name, field in default_type.fields.items():
                found = by_identity.get(field_identity(name, field))
                if found is None:
                    continue
                served_name, served_field = found
                fields[name] = _named(
                    name, served_name, {"type": pair(field.type, served_field.type)}
                )
                args = by_default_name(field.args, served_field.args)
                if args:
                    fields[name]["args"] = args
            if fields:
                entry["fields"] = fields
        elif isinstance(default_type, GraphQLInputObjectType):
            assert isinstance(served_type, GraphQLInputObjectType)
            inputs = by_default_name(default_type.fields, served_type.fields)
            if inputs:
                entry["inputFields"] = inputs
        elif isinstance(default_type, GraphQLEnumType):
            assert isinstance(served_type, GraphQLEnumType)
            served_values = {value.value: name for name, value in served_type.values.items()}
            values = {
                name: served_values[value.value]
                for name, value in default_type.values.items()
                if value.value in served_values and served_values[value.value] != name
            }
            if values:
                entry["values"] = values
    return {"namespace": namespace, "roots": roots, "types": types}


def _named(default: str, served: str, entry: dict[str, Any]) -> dict[str, Any]:
    if served != default:
        entry["name"] = served
    return entry
