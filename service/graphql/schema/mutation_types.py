"""The GraphQL types and root fields of Hasura's mutations, per writable table.

Root fields per writable table `t` (views such as `dashboard_stats` get none):
`insert_t(objects, on_conflict)`, `insert_t_one(object, on_conflict)`,
`update_t(where, _set, _inc, _append, _prepend, _delete_key, _delete_elem,
_delete_at_path)`, `update_t_by_pk(pk_columns, ...)`, `update_t_many(updates)`,
`delete_t(where)`, `delete_t_by_pk(<pk>)`. Their resolvers are in
`service.graphql.sql.mutations`. These are the `hasura-default` names: every name comes
from the catalog's `Naming`, renamed arguments and input fields keeping their default
name as `out_name` (see `schema/builder.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLString,
)

from service.graphql.catalog.metadata import ColumnInfo, TableInfo
from service.graphql.catalog.scalars import NUMERIC_SCALARS
from service.graphql.plan import (
    AffectedRowsSpec,
    ReturningSpec,
)

if TYPE_CHECKING:
    from service.graphql.schema.builder import SchemaBuilder


from service.graphql.sql.mutations import (
    JSONB_OPERATORS,
    delete,
    delete_by_pk,
    insert,
    update,
    update_by_pk,
    update_many,
)

# Hasura's jsonb update operators, in its order: argument, description (the argument's
# and its input type's), value type given the jsonb scalar.
_JSONB_OPERATOR_INPUTS: tuple[
    tuple[str, str, Callable[[GraphQLInputType], GraphQLInputType]], ...
] = (
    (
        "_append",
        "append existing jsonb value of filtered columns with new jsonb value",
        lambda json_type: json_type,
    ),
    (
        "_prepend",
        "prepend existing jsonb value of filtered columns with new jsonb value",
        lambda json_type: json_type,
    ),
    (
        "_delete_key",
        "delete key/value pair or string element. key/value pairs are matched based on their key value",
        lambda json_type: GraphQLString,
    ),
    (
        "_delete_elem",
        "delete the array element with specified index (negative integers count from the end). throws an error if top level container is not an array",
        lambda json_type: GraphQLInt,
    ),
    (
        "_delete_at_path",
        "delete the field or element with specified path (for JSON arrays, negative integers count from the end)",
        lambda json_type: GraphQLList(GraphQLNonNull(GraphQLString)),
    ),
)
assert tuple(argument for argument, *_ in _JSONB_OPERATOR_INPUTS) == JSONB_OPERATORS


class MutationTypes:
    """The mutation root and its input/output types, built on a `SchemaBuilder`."""

    def __init__(self, builder: SchemaBuilder) -> None:
        self.builder = builder

    def _input(
        self, name: str, fields: Any, description: str | None = None
    ) -> GraphQLInputObjectType:
        return self.builder._cached(
            name, lambda: GraphQLInputObjectType(name, fields, description=description)
        )

    def columns_input(
        self,
        name: str,
        description: str,
        columns: Sequence[ColumnInfo],
        type_of: Any,
    ) -> GraphQLInputObjectType:
        return self._input(
            name, lambda: self.builder.column_arguments(columns, type_of), description
        )

    def insert_input(self, table: TableInfo) -> GraphQLInputObjectType:
        return self.columns_input(
            self.builder.names(table).insert_input,
            f'input type for inserting data into table "{table.type_name}"',
            list(table.columns.values()),
            lambda c: self.builder.scalar(c.scalar),
        )

    def constraint_enum(self, table: TableInfo) -> GraphQLEnumType:
        name = self.builder.names(table).constraint
        return self.builder._cached(
            name,
            lambda: GraphQLEnumType(
                name,
                {
                    constraint: GraphQLEnumValue(
                        constraint,
                        description=f"unique or primary key constraint on columns {', '.join(repr(c) for c in columns)}",
                    )
                    for constraint, columns in sorted(table.unique_constraints.items())
                },
                description=f'unique or primary key constraints on table "{table.type_name}"',
            ),
        )

    def update_column_enum(self, table: TableInfo) -> GraphQLEnumType:
        name = self.builder.names(table).update_column
        return self.builder._cached(
            name,
            lambda: GraphQLEnumType(
                name,
                self.builder.column_values(table.columns.values()),
                description=f'update columns of table "{table.type_name}"',
            ),
        )

    def on_conflict(self, table: TableInfo) -> GraphQLInputObjectType:
        return self._input(
            self.builder.names(table).on_conflict,
            lambda: {
                "constraint": GraphQLInputField(GraphQLNonNull(self.constraint_enum(table))),
                "update_columns": GraphQLInputField(
                    GraphQLNonNull(GraphQLList(GraphQLNonNull(self.update_column_enum(table)))),
                    default_value=[],
                ),
                "where": GraphQLInputField(self.builder.bool_exp(table.name)),
            },
            f'on_conflict condition type for table "{table.type_name}"',
        )

    def update_arguments(self, table: TableInfo) -> dict[str, GraphQLArgument]:
        scalar = self.builder.scalar
        names = self.builder.names(table)
        operator = self.builder.naming.operator
        columns = list(table.columns.values())
        numeric = [c for c in columns if c.scalar in NUMERIC_SCALARS]
        jsonb = [c for c in columns if c.scalar == "jsonb"]
        args = {
            operator("_set"): GraphQLArgument(
                self.columns_input(
                    names.update_input("_set"),
                    f'input type for updating data in table "{table.type_name}"',
                    columns,
                    lambda c: scalar(c.scalar),
                ),
                description="sets the columns of the filtered rows to the given values",
                out_name="_set",
            )
        }
        if numeric:
            args[operator("_inc")] = GraphQLArgument(
                self.columns_input(
                    names.update_input("_inc"),
                    f'input type for incrementing numeric columns in table "{table.type_name}"',
                    numeric,
                    lambda c: scalar(c.scalar),
                ),
                description="increments the numeric columns with given value of the filtered values",
                out_name="_inc",
            )
        if jsonb:
            json_type = scalar("jsonb")
            for argument, description, value_type in _JSONB_OPERATOR_INPUTS:
                value = value_type(json_type)
                # `value` bound now: the input's fields are built lazily, after the loop.
                args[operator(argument)] = GraphQLArgument(
                    self.columns_input(
                        names.update_input(argument), description, jsonb, lambda c, v=value: v
                    ),
                    description=description,
                    out_name=argument,
                )
        return args

    def mutation_response(self, table: TableInfo) -> GraphQLObjectType:
        name = self.builder.names(table).mutation_response
        return self.builder._cached(
            name,
            lambda: GraphQLObjectType(
                name,
                lambda: {
                    self.builder.naming.field("affected_rows"): GraphQLField(
                        GraphQLNonNull(GraphQLInt),
                        description="number of rows affected by the mutation",
                        extensions={"engine": AffectedRowsSpec()},
                    ),
                    "returning": GraphQLField(
                        GraphQLNonNull(
                            GraphQLList(GraphQLNonNull(self.builder.object_type(table.name)))
                        ),
                        description="data from the rows affected by the mutation",
                        extensions={"engine": ReturningSpec(table)},
                    ),
                },
                description=f'response of any mutation on the table "{table.type_name}"',
            ),
        )

    def root_fields(self) -> dict[str, GraphQLField]:
        fields: dict[str, GraphQLField] = {}
        for table in self.builder.catalog.tables.values():
            if table.read_only:
                continue
            table_names = self.builder.names(table)
            names = table_names.root_fields
            object_type = self.builder.object_type(table.name)
            response = self.mutation_response(table)
            conflict = (
                {
                    self.builder.naming.field("on_conflict"): GraphQLArgument(
                        self.on_conflict(table),
                        description="upsert condition",
                        out_name="on_conflict",
                    )
                }
                if table.unique_constraints
                else {}
            )
            bool_exp = self.builder.bool_exp(table.name)
            fields[names.insert] = GraphQLField(
                response,
                args={
                    "objects": GraphQLArgument(
                        GraphQLNonNull(GraphQLList(GraphQLNonNull(self.insert_input(table)))),
                        description="the rows to be inserted",
                    ),
                    **conflict,
                },
                description=f'insert data into the table: "{table.type_name}"',
                resolve=insert(table, many=True),
                extensions={"table": table.name, "root": "insert"},
            )
            fields[names.insert_one] = GraphQLField(
                object_type,
                args={
                    "object": GraphQLArgument(
                        GraphQLNonNull(self.insert_input(table)),
                        description="the row to be inserted",
                    ),
                    **conflict,
                },
                description=f'insert a single row into the table: "{table.type_name}"',
                resolve=insert(table, many=False),
                extensions={"table": table.name, "root": "insert_one"},
            )
            update_args = self.update_arguments(table)
            fields[names.update] = GraphQLField(
                response,
                args={
                    **update_args,
                    "where": GraphQLArgument(
                        GraphQLNonNull(bool_exp),
                        description="filter the rows which have to be updated",
                    ),
                },
                description=f'update data of the table: "{table.type_name}"',
                resolve=update(table),
                extensions={"table": table.name, "root": "update"},
            )
            updates_type = self._input(
                table_names.updates,
                lambda update_args=update_args, bool_exp=bool_exp: {
                    **{
                        name: GraphQLInputField(
                            arg.type, description=arg.description, out_name=arg.out_name
                        )
                        for name, arg in update_args.items()
                    },
                    "where": GraphQLInputField(
                        GraphQLNonNull(bool_exp),
                        description="filter the rows which have to be updated",
                    ),
                },
            )
            fields[names.update_many] = GraphQLField(
                GraphQLList(response),
                args={
                    "updates": GraphQLArgument(
                        GraphQLNonNull(GraphQLList(GraphQLNonNull(updates_type))),
                        description="updates to execute, in order",
                    )
                },
                description=f'update multiples rows of table: "{table.type_name}"',
                resolve=update_many(table),
                extensions={"table": table.name, "root": "update_many"},
            )
            fields[names.delete] = GraphQLField(
                response,
                args={
                    "where": GraphQLArgument(
                        GraphQLNonNull(bool_exp),
                        description="filter the rows which have to be deleted",
                    )
                },
                description=f'delete data from the table: "{table.type_name}"',
                resolve=delete(table),
                extensions={"table": table.name, "root": "delete"},
            )
            if table.primary_key:
                pk_input = self._input(
                    table_names.pk_columns_input,
                    lambda table=table: self.builder.column_arguments(
                        [table.columns[c] for c in table.primary_key],
                        lambda c: GraphQLNonNull(self.builder.scalar(c.scalar)),
                    ),
                    f"primary key columns input for table: {table.type_name}",
                )
                fields[names.update_by_pk] = GraphQLField(
                    object_type,
                    args={**update_args, "pk_columns": GraphQLArgument(GraphQLNonNull(pk_input))},
                    description=f'update single row of the table: "{table.type_name}"',
                    resolve=update_by_pk(table),
                    extensions={"table": table.name, "root": "update_by_pk"},
                )
                fields[names.delete_by_pk] = GraphQLField(
                    object_type,
                    args=self.builder._pk_arguments(table),
                    description=f'delete single row from the table: "{table.type_name}"',
                    resolve=delete_by_pk(table),
                    extensions={"table": table.name, "root": "delete_by_pk"},
                )
        return dict(sorted(fields.items()))
