"""Apollo Federation 2: the subgraph fields of a role's schema and the SDL a gateway composes.

Hasura v2 speaks Federation v1 (`@key` on tables with `apollo_federation_config:
{enable: v1}`, `_service`, `_entities`), which current Apollo gateways and routers no
longer compose. The engine serves the same tables as Federation 2 entities instead:

- `_service { sdl }` is the role's schema printed with `extend schema @link(url:
  "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@shareable"])` and
  `@key(fields: "<primary key>")` on every entity type. Every object type but the roots
  is `@shareable`: Federation 2 refuses a type's field defined by two subgraphs unless
  it is, and two instances of the service (two regions under two namespaces, say) define
  the same types. The federation fields and types themselves are left out, as the spec
  asks.
- `_entities(representations: [_Any!]!): [_Entity]!` resolves references to entities
  under the caller's role and permissions (`execution/entities.py`).

A table is an entity for a role when its metadata enables federation, the role may
select it and sees every primary-key column (the key a gateway sends).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    GraphQLUnionType,
    parse,
    print_ast,
    print_schema,
)
from graphql.language import (
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    NameNode,
    ObjectTypeDefinitionNode,
    StringValueNode,
)
from graphql.utilities import value_from_ast_untyped

import service.graphql.execution.entities as entities
from service.graphql.catalog.metadata import TableInfo

if TYPE_CHECKING:
    from service.graphql.schema.builder import SchemaBuilder

FEDERATION_SPEC = "https://specs.apollo.dev/federation/v2.3"
FEDERATION_TYPES = frozenset({"_Any", "_Entity", "_Service"})
FEDERATION_FIELDS = frozenset({"_service", "_entities"})


def _any_literal(node: Any, variables: Any = None) -> Any:
    return value_from_ast_untyped(node, variables)


def _identity(value: Any) -> Any:
    return value


class FederationTypes:
    """The federation fields of one role's schema, built with its `SchemaBuilder`."""

    def __init__(self, builder: SchemaBuilder) -> None:
        self.builder = builder
        naming = builder.naming
        self.entities: dict[str, TableInfo] = {}
        """Entity tables the role sees, by their type name."""
        self.keys: dict[str, str] = {}
        """`@key(fields:)` of each entity type: its primary-key fields."""
        for access in builder.permissions.tables:
            table = access.table
            if not (table.apollo_federation and table.primary_key):
                continue
            if not all(name in access.column_names for name in table.primary_key):
                continue
            type_name = naming.table(table).object
            self.entities[type_name] = table
            self.keys[type_name] = " ".join(
                naming.column(table.columns[name]) for name in table.primary_key
            )
        self.any = GraphQLScalarType(
            "_Any",
            coerce_output_value=_identity,
            coerce_input_value=_identity,
            coerce_input_literal=_any_literal,
        )
        self.service = GraphQLObjectType("_Service", {"sdl": GraphQLField(GraphQLString)})
        self._sdl: dict[int, str] = {}

    def root_fields(self) -> dict[str, GraphQLField]:
        """`_service` and, when the role sees an entity, `_entities`."""
        fields = {
            "_service": GraphQLField(GraphQLNonNull(self.service), resolve=self.resolve_service)
        }
        if self.entities:
            entity = GraphQLUnionType(
                "_Entity",
                lambda: [self.builder.object_type(table.name) for table in self.entities.values()],
            )
            fields["_entities"] = GraphQLField(
                GraphQLNonNull(GraphQLList(entity)),
                args={
                    "representations": GraphQLArgument(
                        GraphQLNonNull(GraphQLList(GraphQLNonNull(self.any)))
                    )
                },
                resolve=entities.resolve(self.entities, self.keys),
            )
        return fields

    def with_root_fields(self, query: GraphQLObjectType) -> GraphQLObjectType:
        """The query root with the federation fields added (outside any namespace)."""
        return GraphQLObjectType(query.name, lambda: {**query.fields, **self.root_fields()})

    def extra_types(self) -> list[GraphQLNamedType]:
        return []

    def resolve_service(self, root: Any, info: Any) -> dict[str, str]:
        key = id(info.schema)
        if key not in self._sdl:
            self._sdl[key] = subgraph_sdl(info.schema, self.keys)
        return {"sdl": self._sdl[key]}


def subgraph_sdl(schema: GraphQLSchema, keys: dict[str, str]) -> str:
    """`schema` as a Federation 2 subgraph: `@link`, `@key` on the entity types named in
    `keys` (type → key fields), `@shareable` on every object type but the roots, without
    the federation fields and types."""
    roots = {
        root.name
        for root in (schema.query_type, schema.mutation_type, schema.subscription_type)
        if root is not None
    }
    document = parse(print_schema(schema))
    definitions = []
    for definition in document.definitions:
        name = getattr(getattr(definition, "name", None), "value", None)
        if name in FEDERATION_TYPES:
            continue
        if isinstance(definition, ObjectTypeDefinitionNode):
            definition = _federated(definition, roots, keys)
        definitions.append(definition)
    link = f'extend schema @link(url: "{FEDERATION_SPEC}", import: ["@key", "@shareable"])\n\n'
    return link + print_ast(DocumentNode(definitions=tuple(definitions)))


def _federated(
    definition: ObjectTypeDefinitionNode, roots: set[str], keys: dict[str, str]
) -> ObjectTypeDefinitionNode:
    name = definition.name.value
    fields = definition.fields
    directives = tuple(definition.directives or ())
    if name in roots:
        fields = tuple(f for f in fields or () if f.name.value not in FEDERATION_FIELDS)
    else:
        if name in keys:
            directives += (_directive("key", fields=keys[name]),)
        directives += (_directive("shareable"),)
    return ObjectTypeDefinitionNode(
        description=definition.description,
        name=definition.name,
        interfaces=definition.interfaces,
        directives=directives,
        fields=fields,
    )


def _directive(name: str, **arguments: str) -> DirectiveNode:
    return DirectiveNode(
        name=NameNode(value=name),
        arguments=tuple(
            ArgumentNode(name=NameNode(value=key), value=StringValueNode(value=value))
            for key, value in arguments.items()
        ),
    )
