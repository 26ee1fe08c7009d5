"""The namespace field: Hasura's `root_fields.namespace` customization at execution.

With a namespace `ns`, each root type holds one field `ns` whose object type holds the
root fields (`{ ns { invocations { id } } }`). Queries and mutations need nothing more
than a field that resolves to an object: graphql-core then resolves the root fields
inside it. A subscription's root field must produce the event stream, so the namespace
field of `subscription_root` subscribes through the one root field selected inside it
(Hasura allows one, as for an unnamespaced subscription) and passes each event down.
Mutation fields inside the namespace run in document order, in one transaction:
`execution.transaction` serialises them.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLField, GraphQLObjectType, GraphQLResolveInfo
from graphql.execution.values import get_argument_values

from service.graphql.errors import validation_failed
from service.graphql.execution.resolvers import SharedResult

NAMESPACE = "namespace"
"""Key in a namespace field's `extensions` (its value: the operation type)."""


class NamespaceValue:
    """The value of a namespace field: nothing but a place for the root fields."""

    __slots__ = ()


_VALUE = NamespaceValue()


def resolve_namespace(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """A namespace field's value; a subscription event is handed to the root field."""
    if type(root) is SharedResult or isinstance(root, dict):
        return root  # a live-query result, or a stream's cursor position
    return _VALUE


async def subscribe_namespace(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """The event stream of the one root field selected inside the namespace."""
    namespace_type = info.return_type
    while not isinstance(namespace_type, GraphQLObjectType):
        namespace_type = namespace_type.of_type  # type: ignore[union-attr]
    selected: dict[str, list[Any]] = {}
    for node in info.field_nodes:
        _collect(node.selection_set, info, selected)
    fields = {key: nodes for key, nodes in selected.items() if nodes[0].name.value != "__typename"}
    if len(fields) != 1:
        raise validation_failed(
            "subscriptions must select one top level field",
            f"$.selectionSet.{info.field_name}",
        )
    ((key, nodes),) = fields.items()
    name = nodes[0].name.value
    field_def = namespace_type.fields[name]
    inner = info._replace(
        field_name=name,
        field_nodes=nodes,
        return_type=field_def.type,
        parent_type=namespace_type,
        path=info.path.add_key(key, namespace_type.name),
    )
    arguments = get_argument_values(field_def, nodes[0], info.variable_values)
    assert field_def.subscribe is not None
    return await field_def.subscribe(root, inner, **arguments)


def _collect(selection_set: Any, info: GraphQLResolveInfo, into: dict[str, list[Any]]) -> None:
    from graphql.language import FieldNode, FragmentSpreadNode, InlineFragmentNode

    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            into.setdefault(key, []).append(selection)
        elif isinstance(selection, InlineFragmentNode):
            _collect(selection.selection_set, info, into)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = info.fragments.get(selection.name.value)
            if fragment is not None:
                _collect(fragment.selection_set, info, into)


def field(namespace_type: GraphQLObjectType, operation: str) -> GraphQLField:
    """The namespace field of a root type (`operation`: query, mutation or subscription)."""
    if operation == "subscription":
        return GraphQLField(
            namespace_type,
            subscribe=subscribe_namespace,
            resolve=resolve_namespace,
            extensions={NAMESPACE: operation},
        )
    return GraphQLField(
        namespace_type, resolve=resolve_namespace, extensions={NAMESPACE: operation}
    )


def is_namespace(field_def: GraphQLField) -> bool:
    return bool(field_def.extensions and NAMESPACE in field_def.extensions)
