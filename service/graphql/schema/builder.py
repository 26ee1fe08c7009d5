"""Build the GraphQL schema Hasura would generate, for one role, from the catalog.

One builder produces every type from table metadata: for each table `t` the row type
`t`, `t_bool_exp`, `t_order_by`, `t_select_column`, the aggregate family
(`t_aggregate`, `t_aggregate_fields`, `t_<op>_fields`, `t_aggregate_order_by`,
`t_<op>_order_by`, `t_aggregate_bool_exp*`), the stream cursor inputs and, for the admin
role, the mutation inputs (`t_insert_input`, `t_on_conflict`, `t_constraint`,
`t_update_column`, `t_set_input`, `t_inc_input`, `t_pk_columns_input`, `t_updates`,
`t_mutation_response` and the jsonb operator inputs). Shared: `order_by`,
`cursor_ordering`, `<scalar>_comparison_exp`, `jsonb_cast_exp`.

Those are the `hasura-default` names; every name comes from the catalog's `Naming`
(`catalog/naming.py`), so the source customization (naming convention, prefixes,
suffixes, namespace) applies everywhere. A renamed argument or input field keeps its
default name as graphql-core's `out_name` and a renamed enum value its default value:
resolvers, the planner and the SQL layer see Hasura's default names whatever the
customization. With a namespace, the root fields move under one field per root type
(`execution/namespace.py`). With Apollo Federation on, `_service` and `_entities` join
the query root (`schema/federation.py`).

Fields a role may not see are left out, as Hasura does. Every field carries a
`FieldSpec` (see `plan.py`) in `extensions["engine"]`; root fields carry resolvers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    DirectiveLocation,
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLDirective,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    specified_directives,
)

import service.graphql.execution.namespace as namespace
import service.graphql.execution.resolvers as resolvers
from service.graphql.catalog.metadata import Catalog, ColumnInfo, TableInfo
from service.graphql.catalog.naming import TableNames
from service.graphql.catalog.permissions import RolePermissions, TableAccess
from service.graphql.catalog.scalars import (
    BUILT_IN,
    COMPARABLE_SCALARS,
    NUMERIC_SCALARS,
    TEXT_SCALARS,
    build_custom_scalars,
)
from service.graphql.plan import (
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
)
from service.graphql.sql.aggregates import COMPARABLE_OPERATIONS, NUMERIC_OPERATIONS, result_scalar

NO_QUERIES = (
    "There are no queries available to the current role. Either there are no sources or "
    "remote schemas configured, or the current role doesn't have the required permissions."
)

ORDER_BY_DESCRIPTIONS = {
    "asc": "in ascending order, nulls last",
    "asc_nulls_first": "in ascending order, nulls first",
    "asc_nulls_last": "in ascending order, nulls last",
    "desc": "in descending order, nulls first",
    "desc_nulls_first": "in descending order, nulls first",
    "desc_nulls_last": "in descending order, nulls last",
}

CACHED_DIRECTIVE = GraphQLDirective(
    name="cached",
    locations=[DirectiveLocation.QUERY],
    args={
        "ttl": GraphQLArgument(
            GraphQLNonNull(GraphQLInt), default_value=60, description="measured in seconds"
        ),
        "refresh": GraphQLArgument(
            GraphQLNonNull(GraphQLBoolean),
            default_value=False,
            description="refresh the cache entry",
        ),
    },
    description="whether this query should be cached (Hasura Cloud only)",
)


def _sorted(fields: dict[str, Any]) -> dict[str, Any]:
    # Hasura lists fields alphabetically.
    return dict(sorted(fields.items()))


def _list_of(type_: Any) -> GraphQLNonNull[Any]:
    return GraphQLNonNull(GraphQLList(GraphQLNonNull(type_)))


class SchemaBuilder:
    """Builds the schema of one role. Use `build()` once per builder.

    `federation` adds the Apollo Federation 2 fields (`_service`, `_entities`).
    """

    def __init__(
        self, catalog: Catalog, permissions: RolePermissions, *, federation: bool = False
    ) -> None:
        self.catalog = catalog
        self.naming = catalog.naming
        self.permissions = permissions
        self.federation = federation
        self.scalars: dict[str, GraphQLScalarType] = {**BUILT_IN, **build_custom_scalars()}
        self.types: dict[str, GraphQLNamedType] = {}

    def names(self, table: TableInfo) -> TableNames:
        """The GraphQL names of `table`'s types and root fields."""
        return self.naming.table(table)

    def column_arguments(
        self, columns: Any, type_of: Callable[[ColumnInfo], Any]
    ) -> dict[str, GraphQLInputField]:
        """Input fields for columns, by public name, coerced under their default names."""
        return _sorted(
            {
                self.naming.column(c): GraphQLInputField(type_of(c), out_name=c.field)
                for c in columns
            }
        )

    # --- shared types --------------------------------------------------------------------------

    def _cached(self, name: str, make: Callable[[], GraphQLNamedType]) -> Any:
        if name not in self.types:
            self.types[name] = make()
        return self.types[name]

    def scalar(self, name: str) -> GraphQLScalarType:
        return self.scalars[name]

    def order_by_enum(self) -> GraphQLEnumType:
        name = self.naming.order_by
        return self._cached(
            name,
            lambda: GraphQLEnumType(
                name,
                {
                    self.naming.enum_value(value): GraphQLEnumValue(value, description=text)
                    for value, text in ORDER_BY_DESCRIPTIONS.items()
                },
                description="column ordering options",
            ),
        )

    def cursor_ordering(self) -> GraphQLEnumType:
        name = self.naming.cursor_ordering
        return self._cached(
            name,
            lambda: GraphQLEnumType(
                name,
                {
                    "ASC": GraphQLEnumValue("ASC", description="ascending ordering of the cursor"),
                    "DESC": GraphQLEnumValue(
                        "DESC", description="descending ordering of the cursor"
                    ),
                },
                description="ordering argument of a cursor",
            ),
        )

    def comparison_exp(self, scalar: str) -> GraphQLInputObjectType:
        name = self.naming.comparison_exp(scalar)

        def make() -> GraphQLInputObjectType:
            value = self.scalar(scalar)

            def fields() -> dict[str, GraphQLInputField]:
                return _sorted(
                    {
                        self.naming.operator(operator): GraphQLInputField(
                            field.type, description=field.description, out_name=operator
                        )
                        for operator, field in operators().items()
                    }
                )

            def operators() -> dict[str, GraphQLInputField]:
                result: dict[str, GraphQLInputField] = {
                    "_is_null": GraphQLInputField(GraphQLBoolean),
                }
                for operator in ("_eq", "_gt", "_gte", "_lt", "_lte", "_neq"):
                    result[operator] = GraphQLInputField(value)
                result["_in"] = GraphQLInputField(GraphQLList(GraphQLNonNull(value)))
                result["_nin"] = GraphQLInputField(GraphQLList(GraphQLNonNull(value)))
                if scalar in TEXT_SCALARS:
                    described = {
                        "_like": "does the column match the given pattern",
                        "_nlike": "does the column NOT match the given pattern",
                        "_ilike": "does the column match the given case-insensitive pattern",
                        "_nilike": "does the column NOT match the given case-insensitive pattern",
                        "_similar": "does the column match the given SQL regular expression",
                        "_nsimilar": "does the column NOT match the given SQL regular expression",
                        "_regex": "does the column match the given POSIX regular expression, case sensitive",
                        "_nregex": "does the column NOT match the given POSIX regular expression, case sensitive",
                        "_iregex": "does the column match the given POSIX regular expression, case insensitive",
                        "_niregex": "does the column NOT match the given POSIX regular expression, case insensitive",
                    }
                    for operator, text in described.items():
                        result[operator] = GraphQLInputField(value, description=text)
                if scalar == "jsonb":
                    result["_cast"] = GraphQLInputField(self.jsonb_cast_exp())
                    result["_contained_in"] = GraphQLInputField(
                        value, description="is the column contained in the given json value"
                    )
                    result["_contains"] = GraphQLInputField(
                        value,
                        description="does the column contain the given json value at the top level",
                    )
                    result["_has_key"] = GraphQLInputField(
                        GraphQLString,
                        description="does the string exist as a top-level key in the column",
                    )
                    result["_has_keys_all"] = GraphQLInputField(
                        GraphQLList(GraphQLNonNull(GraphQLString)),
                        description="do all of these strings exist as top-level keys in the column",
                    )
                    result["_has_keys_any"] = GraphQLInputField(
                        GraphQLList(GraphQLNonNull(GraphQLString)),
                        description="do any of these strings exist as top-level keys in the column",
                    )
                return result

            return GraphQLInputObjectType(
                name,
                fields,
                description=(
                    f'Boolean expression to compare columns of type "{scalar}". '
                    "All fields are combined with logical 'AND'."
                ),
            )

        return self._cached(name, make)

    def jsonb_cast_exp(self) -> GraphQLInputObjectType:
        name = self.naming.jsonb_cast_exp
        return self._cached(
            name,
            lambda: GraphQLInputObjectType(
                name,
                lambda: {"String": GraphQLInputField(self.comparison_exp("String"))},
            ),
        )

    # --- per table: reading ----------------------------------------------------------------------

    def access(self, table_name: str) -> TableAccess | None:
        return self.permissions.access(table_name)

    def column_values(self, columns: Any) -> dict[str, GraphQLEnumValue]:
        """Enum values for columns: public names, valued with their default names."""
        return _sorted(
            {
                self.naming.column(c): GraphQLEnumValue(c.field, description="column name")
                for c in columns
            }
        )

    def select_column_enum(self, access: TableAccess) -> GraphQLEnumType:
        table = access.table
        name = self.names(table).select_column
        return self._cached(
            name,
            lambda: GraphQLEnumType(
                name,
                self.column_values(access.columns),
                description=f'select columns of table "{table.type_name}"',
            ),
        )

    def _bool_columns_enum(self, access: TableAccess, function: str) -> GraphQLEnumType | None:
        table = access.table
        columns = [c for c in access.columns if c.scalar == "Boolean"]
        if not columns:
            return None
        names = self.names(table)
        name = names.bool_columns_enum(function)
        subject = names.bool_columns_enum_subject(function)
        return self._cached(
            name,
            lambda: GraphQLEnumType(
                name,
                self.column_values(columns),
                description=f'select "{subject}" columns of table "{table.type_name}"',
            ),
        )

    def select_arguments(self, access: TableAccess) -> dict[str, GraphQLArgument]:
        table = access.table
        field = self.naming.field
        return _sorted(
            {
                field("distinct_on"): GraphQLArgument(
                    GraphQLList(GraphQLNonNull(self.select_column_enum(access))),
                    description="distinct select on columns",
                    out_name="distinct_on",
                ),
                "limit": GraphQLArgument(
                    GraphQLInt, description="limit the number of rows returned"
                ),
                "offset": GraphQLArgument(
                    GraphQLInt, description="skip the first n rows. Use only with order_by"
                ),
                field("order_by"): GraphQLArgument(
                    GraphQLList(GraphQLNonNull(self.order_by_input(access))),
                    description="sort the rows by one or more columns",
                    out_name="order_by",
                ),
                "where": GraphQLArgument(
                    self.bool_exp(table.name), description="filter the rows returned"
                ),
            }
        )

    def object_type(self, table_name: str) -> GraphQLObjectType:
        access = self.permissions.require(table_name)
        table = access.table
        name = self.names(table).object

        def fields() -> dict[str, GraphQLField]:
            result: dict[str, GraphQLField] = {}
            for column in access.columns:
                type_: GraphQLOutputType = self.scalar(column.scalar)
                if not column.nullable:
                    type_ = GraphQLNonNull(type_)
                args = {}
                if column.scalar == "jsonb":
                    args["path"] = GraphQLArgument(GraphQLString, description="JSON select path")
                result[self.naming.column(column)] = GraphQLField(
                    type_,
                    args=args,
                    extensions={"engine": ColumnSpec(column)},
                    description=column.sa_column.comment,
                )
            for computed in access.computed_fields:
                result[computed.name] = GraphQLField(
                    self.scalar(computed.scalar),
                    description=computed.comment
                    or f'A computed field, executes function "{computed.function.name}"',
                    extensions={"engine": ComputedSpec(computed)},
                )
            for relationship in table.object_relationships.values():
                if self.access(relationship.target) is None:
                    continue
                target_type: GraphQLOutputType = self.object_type(relationship.target)
                if not relationship.nullable:
                    target_type = GraphQLNonNull(target_type)
                result[relationship.name] = GraphQLField(
                    target_type,
                    description=relationship.comment or "An object relationship",
                    extensions={"engine": ObjectRelationshipSpec(relationship)},
                )
            for relationship in table.array_relationships.values():
                target_access = self.access(relationship.target)
                if target_access is None:
                    continue
                result[relationship.name] = GraphQLField(
                    _list_of(self.object_type(relationship.target)),
                    args=self.select_arguments(target_access),
                    description=relationship.comment or "An array relationship",
                    extensions={"engine": ArrayRelationshipSpec(relationship)},
                )
                if target_access.allow_aggregations:
                    result[self.naming.array_aggregate_field(relationship.name)] = GraphQLField(
                        GraphQLNonNull(self.aggregate_type(relationship.target)),
                        args=self.select_arguments(target_access),
                        description=relationship.comment or "An aggregate relationship",
                        extensions={"engine": ArrayAggregateSpec(relationship)},
                    )
            return _sorted(result)

        return self._cached(
            name,
            lambda: GraphQLObjectType(
                name,
                fields,
                description=table.comment or f'columns and relationships of "{table.type_name}"',
            ),
        )

    def bool_exp(self, table_name: str) -> GraphQLInputObjectType:
        access = self.permissions.require(table_name)
        table = access.table
        name = self.names(table).bool_exp

        def fields() -> dict[str, GraphQLInputField]:
            this = self.types[name]
            result: dict[str, GraphQLInputField] = {
                "_and": GraphQLInputField(GraphQLList(GraphQLNonNull(this))),
                "_not": GraphQLInputField(this),
                "_or": GraphQLInputField(GraphQLList(GraphQLNonNull(this))),
            }
            result.update(
                self.column_arguments(access.columns, lambda c: self.comparison_exp(c.scalar))
            )
            for computed in access.computed_fields:
                result[computed.name] = GraphQLInputField(self.comparison_exp(computed.scalar))
            for relationship in table.relationships.values():
                target_access = self.access(relationship.target)
                if target_access is None:
                    continue
                result[relationship.name] = GraphQLInputField(self.bool_exp(relationship.target))
                if relationship.kind == "array" and target_access.allow_aggregations:
                    result[self.naming.aggregate_input_field(relationship.name)] = (
                        GraphQLInputField(
                            self.aggregate_bool_exp(relationship.target),
                            out_name=f"{relationship.name}_aggregate",
                        )
                    )
            return _sorted(result)

        return self._cached(
            name,
            lambda: GraphQLInputObjectType(
                name,
                fields,
                description=(
                    f'Boolean expression to filter rows from the table "{table.type_name}". '
                    "All fields are combined with a logical 'AND'."
                ),
            ),
        )

    def aggregate_bool_exp(self, table_name: str) -> GraphQLInputObjectType:
        access = self.permissions.require(table_name)
        names = self.names(access.table)
        name = names.aggregate_bool_exp

        def fields() -> dict[str, GraphQLInputField]:
            result: dict[str, GraphQLInputField] = {}
            count_name = names.aggregate_bool_exp_function("count")
            result["count"] = GraphQLInputField(
                self._cached(
                    count_name,
                    lambda: GraphQLInputObjectType(
                        count_name,
                        lambda: {
                            "arguments": GraphQLInputField(
                                GraphQLList(GraphQLNonNull(self.select_column_enum(access)))
                            ),
                            "distinct": GraphQLInputField(GraphQLBoolean),
                            "filter": GraphQLInputField(self.bool_exp(table_name)),
                            "predicate": GraphQLInputField(
                                GraphQLNonNull(self.comparison_exp("Int"))
                            ),
                        },
                    ),
                )
            )
            for function in ("bool_and", "bool_or"):
                columns_enum = self._bool_columns_enum(access, function)
                if columns_enum is None:
                    continue
                type_name = names.aggregate_bool_exp_function(function)
                result[function] = GraphQLInputField(
                    self._cached(
                        type_name,
                        lambda type_name=type_name, columns_enum=columns_enum: (
                            GraphQLInputObjectType(
                                type_name,
                                lambda: {
                                    "arguments": GraphQLInputField(GraphQLNonNull(columns_enum)),
                                    "distinct": GraphQLInputField(GraphQLBoolean),
                                    "filter": GraphQLInputField(self.bool_exp(table_name)),
                                    "predicate": GraphQLInputField(
                                        GraphQLNonNull(self.comparison_exp("Boolean"))
                                    ),
                                },
                            )
                        ),
                    )
                )
            return _sorted(result)

        return self._cached(name, lambda: GraphQLInputObjectType(name, fields))

    def order_by_input(self, access: TableAccess) -> GraphQLInputObjectType:
        table = access.table
        name = self.names(table).order_by

        def fields() -> dict[str, GraphQLInputField]:
            order = self.order_by_enum()
            result = self.column_arguments(access.columns, lambda c: order)
            for computed in access.computed_fields:
                result[computed.name] = GraphQLInputField(order)
            for relationship in table.object_relationships.values():
                target_access = self.access(relationship.target)
                if target_access is not None:
                    result[relationship.name] = GraphQLInputField(
                        self.order_by_input(target_access)
                    )
            for relationship in table.array_relationships.values():
                target_access = self.access(relationship.target)
                if target_access is not None and target_access.allow_aggregations:
                    result[self.naming.aggregate_input_field(relationship.name)] = (
                        GraphQLInputField(
                            self.aggregate_order_by(target_access),
                            out_name=f"{relationship.name}_aggregate",
                        )
                    )
            return _sorted(result)

        return self._cached(
            name,
            lambda: GraphQLInputObjectType(
                name,
                fields,
                description=f'Ordering options when selecting data from "{table.type_name}".',
            ),
        )

    def _family(self, access: TableAccess, operation: str) -> list[ColumnInfo]:
        scalars = NUMERIC_SCALARS if operation in NUMERIC_OPERATIONS else COMPARABLE_SCALARS
        return [column for column in access.columns if column.scalar in scalars]

    def aggregate_order_by(self, access: TableAccess) -> GraphQLInputObjectType:
        table = access.table
        names = self.names(table)
        name = names.aggregate_order_by

        def fields() -> dict[str, GraphQLInputField]:
            order = self.order_by_enum()
            result: dict[str, GraphQLInputField] = {"count": GraphQLInputField(order)}
            for operation in (*NUMERIC_OPERATIONS, *COMPARABLE_OPERATIONS):
                columns = self._family(access, operation)
                if not columns:
                    continue
                type_name = names.operation_order_by(operation)
                public = self.naming.aggregate_operation(operation)
                result[public] = GraphQLInputField(
                    self._cached(
                        type_name,
                        lambda type_name=type_name, columns=columns, public=public: (
                            GraphQLInputObjectType(
                                type_name,
                                self.column_arguments(columns, lambda c: order),
                                description=f'order by {public}() on columns of table "{table.type_name}"',
                            )
                        ),
                    ),
                    out_name=operation,
                )
            return _sorted(result)

        return self._cached(
            name,
            lambda: GraphQLInputObjectType(
                name, fields, description=f'order by aggregate values of table "{table.type_name}"'
            ),
        )

    def aggregate_type(self, table_name: str) -> GraphQLObjectType:
        access = self.permissions.require(table_name)
        table = access.table
        names = self.names(table)
        base = table.type_name
        name = names.aggregate
        fields_name = names.aggregate_fields

        def aggregate_fields() -> GraphQLObjectType:
            def fields() -> dict[str, GraphQLField]:
                result: dict[str, GraphQLField] = {
                    "count": GraphQLField(
                        GraphQLNonNull(GraphQLInt),
                        args={
                            "columns": GraphQLArgument(
                                GraphQLList(GraphQLNonNull(self.select_column_enum(access)))
                            ),
                            "distinct": GraphQLArgument(GraphQLBoolean),
                        },
                        extensions={"engine": CountSpec(table)},
                    )
                }
                for operation in (*NUMERIC_OPERATIONS, *COMPARABLE_OPERATIONS):
                    columns = self._family(access, operation)
                    if not columns:
                        continue
                    result[self.naming.aggregate_operation(operation)] = GraphQLField(
                        self._operation_fields(names, operation, columns),
                        extensions={"engine": OperationSpec(operation)},
                    )
                return _sorted(result)

            return GraphQLObjectType(
                fields_name, fields, description=f'aggregate fields of "{base}"'
            )

        def make() -> GraphQLObjectType:
            fields_type = self._cached(fields_name, aggregate_fields)
            return GraphQLObjectType(
                name,
                lambda: {
                    "aggregate": GraphQLField(
                        fields_type, extensions={"engine": AggregateFieldsSpec(table)}
                    ),
                    "nodes": GraphQLField(
                        _list_of(self.object_type(table_name)),
                        extensions={"engine": NodesSpec(table)},
                    ),
                },
                description=f'aggregated selection of "{base}"',
            )

        return self._cached(name, make)

    def _operation_fields(
        self, names: TableNames, operation: str, columns: list[ColumnInfo]
    ) -> GraphQLObjectType:
        name = names.operation_fields(operation)
        public = self.naming.aggregate_operation(operation)

        def fields() -> dict[str, GraphQLField]:
            result: dict[str, GraphQLField] = {}
            for column in columns:
                scalar = result_scalar(operation, column.scalar)
                result[self.naming.column(column)] = GraphQLField(
                    self.scalar(scalar),
                    extensions={"engine": OperationColumnSpec(operation, column, scalar)},
                )
            return _sorted(result)

        return self._cached(
            name,
            lambda: GraphQLObjectType(name, fields, description=f"aggregate {public} on columns"),
        )

    def stream_cursor_input(self, access: TableAccess) -> GraphQLInputObjectType:
        table = access.table
        names = self.names(table)
        name = names.stream_cursor_input
        value_name = names.stream_cursor_value_input

        def value_type() -> GraphQLInputObjectType:
            return GraphQLInputObjectType(
                value_name,
                lambda: self.column_arguments(access.columns, lambda c: self.scalar(c.scalar)),
                description="Initial value of the column from where the streaming should start",
            )

        return self._cached(
            name,
            lambda: GraphQLInputObjectType(
                name,
                lambda: {
                    self.naming.field("initial_value"): GraphQLInputField(
                        GraphQLNonNull(self._cached(value_name, value_type)),
                        description="Stream column input with initial value",
                        out_name="initial_value",
                    ),
                    "ordering": GraphQLInputField(
                        self.cursor_ordering(), description="cursor ordering"
                    ),
                },
                description=f'Streaming cursor of the table "{table.type_name}"',
            ),
        )

    def _pk_arguments(self, table: TableInfo) -> dict[str, GraphQLArgument]:
        return {
            self.naming.column(table.columns[name]): GraphQLArgument(
                GraphQLNonNull(self.scalar(table.columns[name].scalar)),
                out_name=table.columns[name].field,
            )
            for name in table.primary_key
        }

    # --- roots -------------------------------------------------------------------------------------

    def query_fields(self, *, subscription: bool) -> dict[str, GraphQLField]:
        fields: dict[str, GraphQLField] = {}
        for access in self.permissions.tables:
            table = access.table
            roots = self.names(table).root_fields
            allowed = access.subscription_root_fields if subscription else access.query_root_fields

            def permitted(kind: str, allowed: frozenset[str] | None = allowed) -> bool:
                return allowed is None or kind in allowed

            wrap = resolvers.live if subscription else (lambda resolver: {"resolve": resolver})
            if permitted("select"):
                fields[roots.select] = GraphQLField(
                    _list_of(self.object_type(table.name)),
                    args=self.select_arguments(access),
                    description=f'fetch data from the table: "{table.type_name}"',
                    **wrap(resolvers.select(table)),
                    extensions={"table": table.name, "root": "select"},
                )
            pk_visible = table.primary_key and all(
                name in access.column_names for name in table.primary_key
            )
            if pk_visible and permitted("select_by_pk"):
                fields[roots.select_by_pk] = GraphQLField(
                    self.object_type(table.name),
                    args=self._pk_arguments(table),
                    description=f'fetch data from the table: "{table.type_name}" using primary key columns',
                    **wrap(resolvers.select_by_pk(table)),
                    extensions={"table": table.name, "root": "select_by_pk"},
                )
            if access.allow_aggregations and permitted("select_aggregate"):
                fields[roots.select_aggregate] = GraphQLField(
                    GraphQLNonNull(self.aggregate_type(table.name)),
                    args=self.select_arguments(access),
                    description=f'fetch aggregated fields from the table: "{table.type_name}"',
                    **wrap(resolvers.select_aggregate(table)),
                    extensions={"table": table.name, "root": "select_aggregate"},
                )
            if subscription and permitted("select_stream"):
                fields[roots.select_stream] = GraphQLField(
                    _list_of(self.object_type(table.name)),
                    args={
                        self.naming.field("batch_size"): GraphQLArgument(
                            GraphQLNonNull(GraphQLInt),
                            description="maximum number of rows returned in a single batch",
                            out_name="batch_size",
                        ),
                        "cursor": GraphQLArgument(
                            GraphQLNonNull(GraphQLList(self.stream_cursor_input(access))),
                            description="cursor to stream the results returned by the query",
                        ),
                        "where": GraphQLArgument(
                            self.bool_exp(table.name), description="filter the rows returned"
                        ),
                    },
                    description=f'fetch data from the table in a streaming manner: "{table.type_name}"',
                    **resolvers.live(resolvers.select_stream(table)),
                    extensions={"table": table.name, "stream": True, "root": "select_stream"},
                )
        return _sorted(fields)

    def root_type(
        self, name: str, operation: str, fields: Callable[[], dict[str, GraphQLField]]
    ) -> GraphQLObjectType:
        """A root type holding `fields`, under the namespace field when there is one."""
        ns = self.naming.namespace
        if ns is None:
            return GraphQLObjectType(name, fields)
        inner = GraphQLObjectType(self.naming.namespace_type(operation), fields)
        return GraphQLObjectType(name, lambda: {ns: namespace.field(inner, operation)})

    def build(self) -> GraphQLSchema:
        """The role's schema (query, subscription and, for admin, mutation roots)."""
        directives = [*specified_directives, CACHED_DIRECTIVE]
        federation = None
        if self.federation:
            from service.graphql.schema.federation import FederationTypes

            federation = FederationTypes(self)
        if not self.permissions.tables:
            query_fields: dict[str, GraphQLField] = {
                "no_queries_available": GraphQLField(
                    GraphQLNonNull(GraphQLString), resolve=lambda *_: NO_QUERIES
                )
            }
            if federation is not None:
                query_fields.update(federation.root_fields())
            query = GraphQLObjectType("query_root", query_fields)
            return GraphQLSchema(query=query, directives=directives)
        query = self.root_type("query_root", "query", lambda: self.query_fields(subscription=False))
        if federation is not None:
            query = federation.with_root_fields(query)
        subscription = self.root_type(
            "subscription_root", "subscription", lambda: self.query_fields(subscription=True)
        )
        mutation = None
        if self.permissions.is_admin and any(not t.read_only for t in self.catalog.tables.values()):
            from service.graphql.schema.mutation_types import MutationTypes

            mutation = self.root_type(
                "mutation_root", "mutation", lambda: MutationTypes(self).root_fields()
            )
        schema = GraphQLSchema(
            query=query,
            mutation=mutation,
            subscription=subscription,
            directives=directives,
            types=federation.extra_types() if federation is not None else None,
        )
        return schema


def build_schema(
    catalog: Catalog, permissions: RolePermissions, *, federation: bool = False
) -> GraphQLSchema:
    """The GraphQL schema Hasura would serve to `permissions.role`.

    `federation` makes it an Apollo Federation 2 subgraph (`_service`, `_entities`).
    """
    return SchemaBuilder(catalog, permissions, federation=federation).build()
