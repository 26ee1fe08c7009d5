"""What the engine serves, read from Hasura's metadata directory and the table models.

`hasura/metadata/` is the one source of truth for which tables are tracked, their GraphQL
names and root fields, relationships (foreign-key and manual), computed fields and
select permissions. Column names, types, nullability, keys and foreign keys come from the
SQLAlchemy tables of the models. `load_catalog` joins the two into a `Catalog` of typed
descriptions, and refuses metadata it cannot honour with an error naming the file and
the problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
import yaml

from service.graphql.catalog.computed import FUNCTIONS, ComputedFunction
from service.graphql.catalog.naming import (
    ROOT_FIELD_KINDS,
    CustomizationError,
    Naming,
    SourceCustomization,
    is_graphql_name,
)
from service.graphql.catalog.scalars import scalar_name_for

ADMIN_ROLE = "admin"


class MetadataError(ValueError):
    """The Hasura metadata cannot be served; the message names the file and the problem."""


@dataclass(frozen=True)
class ColumnInfo:
    """One column: its SQL name, GraphQL field name and Hasura scalar."""

    name: str
    field: str
    """The field under Hasura's default naming (the engine's internal name for it)."""
    scalar: str
    nullable: bool
    sa_column: sa.Column[Any]
    custom_name: str | None = None
    """`column_config.<column>.custom_name`, used as given whatever the naming convention."""


@dataclass(frozen=True)
class Relationship:
    """An object or array relationship from `source` rows to `target` rows.

    `source_column` on the source row equals `target_column` on the target rows.
    """

    name: str
    kind: Literal["object", "array"]
    source: str
    target: str
    source_column: str
    target_column: str
    nullable: bool
    comment: str | None = None


@dataclass(frozen=True)
class ComputedField:
    """A scalar computed field backed by one of `computed.FUNCTIONS`."""

    name: str
    function: ComputedFunction
    comment: str | None = None

    @property
    def scalar(self) -> str:
        return self.function.scalar


@dataclass(frozen=True)
class SelectPermission:
    """A role's select permission on one table (columns and computed fields by name)."""

    role: str
    columns: frozenset[str]
    computed_fields: frozenset[str]
    filter: Mapping[str, Any]
    allow_aggregations: bool
    limit: int | None = None
    query_root_fields: frozenset[str] | None = None
    subscription_root_fields: frozenset[str] | None = None


@dataclass
class TableInfo:
    """A tracked table as the engine serves it."""

    name: str
    schema: str
    type_name: str
    sa_table: sa.Table
    columns: dict[str, ColumnInfo]
    primary_key: tuple[str, ...]
    read_only: bool
    unique_constraints: dict[str, tuple[str, ...]]
    custom_name: str | None = None
    """`configuration.custom_name`: the table's GraphQL name, used as given."""
    custom_root_fields: dict[str, str] = field(default_factory=dict)
    """`configuration.custom_root_fields`, by kind (`select`, `select_by_pk`, ...)."""
    apollo_federation: bool = False
    """`apollo_federation_config: {enable: v1}`: an entity when federation is on."""
    comment: str | None = None
    object_relationships: dict[str, Relationship] = field(default_factory=dict)
    array_relationships: dict[str, Relationship] = field(default_factory=dict)
    computed_fields: dict[str, ComputedField] = field(default_factory=dict)
    select_permissions: dict[str, SelectPermission] = field(default_factory=dict)

    @property
    def columns_by_field(self) -> dict[str, ColumnInfo]:
        return {column.field: column for column in self.columns.values()}

    @property
    def relationships(self) -> dict[str, Relationship]:
        return {**self.object_relationships, **self.array_relationships}

    def column(self, name: str) -> ColumnInfo:
        return self.columns[name]


@dataclass
class Catalog:
    """Every tracked table, by SQL table name, and every role that has permissions.

    `customization` is the source's (from `databases.yaml`); `naming` gives every
    GraphQL name under it. `customized(...)` is the same catalog with other names.
    """

    tables: dict[str, TableInfo]
    roles: frozenset[str]
    customization: SourceCustomization = field(default_factory=SourceCustomization)

    def __post_init__(self) -> None:
        self.naming = Naming(self.customization)

    def table(self, name: str) -> TableInfo:
        return self.tables[name]

    def customized(self, **overrides: str | None) -> Catalog:
        """This catalog with customization keys replaced (see
        `SourceCustomization.overridden`: None keeps the metadata's value, "" removes it).

        Raises `CustomizationError` naming a key whose value Hasura would refuse.
        """
        customization = self.customization.overridden(**overrides)
        if customization == self.customization:
            return self
        return Catalog(tables=self.tables, roles=self.roles, customization=customization)


# --- loading ---------------------------------------------------------------------------------

INCLUDE = "!include "


def _load_yaml(path: Path) -> Any:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise MetadataError(f"{path}: cannot read metadata: {error}") from error
    return _resolve_includes(data, path.parent)


def _resolve_includes(value: Any, base: Path) -> Any:
    """Replace the Hasura CLI's `"!include file"` strings with the included YAML."""
    if isinstance(value, str) and value.startswith(INCLUDE):
        return _load_yaml(base / value.removeprefix(INCLUDE).strip())
    if isinstance(value, list):
        return [_resolve_includes(item, base) for item in value]
    if isinstance(value, dict):
        return {key: _resolve_includes(item, base) for key, item in value.items()}
    return value


def _table_ref(value: Any) -> tuple[str, str]:
    if isinstance(value, str):
        return "public", value
    return str(value.get("schema", "public")), str(value["name"])


def _root_field_name(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("name")
    return str(value)


def load_catalog(metadata_dir: Path, sa_metadata: sa.MetaData) -> Catalog:
    """Read Hasura metadata under `metadata_dir` and join it with `sa_metadata`'s tables.

    Raises `MetadataError` naming the problem: a tracked table without a model, an
    unknown column, a relationship whose foreign key does not exist, a computed field
    whose function the engine does not implement.
    """
    databases_file = metadata_dir / "databases" / "databases.yaml"
    if not databases_file.exists():
        raise MetadataError(f"{databases_file}: not found (is hasura_metadata_dir right?)")
    sources = _load_yaml(databases_file) or []
    entries: list[dict[str, Any]] = []
    for source in sources:
        entries.extend(source.get("tables") or [])
    customizations = [source.get("customization") for source in sources]
    customizations = [c for c in customizations if c]
    if len(customizations) > 1:
        raise MetadataError(
            f"{databases_file}: the engine serves one source; only one may have a customization"
        )
    try:
        customization = SourceCustomization.from_metadata(
            customizations[0] if customizations else None
        )
    except CustomizationError as error:
        raise MetadataError(f"{databases_file}: {error}") from error

    tables: dict[str, TableInfo] = {}
    for entry in entries:
        info = _table_info(entry, sa_metadata)
        tables[info.name] = info
    for entry in entries:
        _, name = _table_ref(entry["table"])
        _add_relationships(tables[name], entry, tables)
    roles: set[str] = set()
    for entry in entries:
        _, name = _table_ref(entry["table"])
        table = tables[name]
        for permission in entry.get("select_permissions") or []:
            rule = _select_permission(table, permission)
            table.select_permissions[rule.role] = rule
            roles.add(rule.role)
    for table in tables.values():
        for rule in table.select_permissions.values():
            _check_filter(table, rule.filter, tables, f"{table.name} select permission")
    roles.discard(ADMIN_ROLE)
    return Catalog(tables=tables, roles=frozenset(roles), customization=customization)


def _sa_table(schema: str, name: str, sa_metadata: sa.MetaData) -> sa.Table:
    table = sa_metadata.tables.get(name)
    if table is None:
        table = sa_metadata.tables.get(f"{schema}.{name}")
    if table is None:
        raise MetadataError(f"table {schema}.{name} is tracked in hasura/ but has no model")
    return table


def _table_info(entry: Mapping[str, Any], sa_metadata: sa.MetaData) -> TableInfo:
    schema, name = _table_ref(entry["table"])
    where = f"{schema}.{name}"
    sa_table = _sa_table(schema, name, sa_metadata)
    configuration = entry.get("configuration") or {}
    custom_name = configuration.get("custom_name")
    if custom_name is not None and not is_graphql_name(str(custom_name)):
        raise MetadataError(f"{where}: custom_name {custom_name!r} is not a GraphQL name")
    # Hasura's default type name: the custom name, else the table prefixed by its
    # schema unless the schema is public.
    type_name = custom_name or (name if schema == "public" else f"{schema}_{name}")
    column_config = configuration.get("column_config") or {}
    columns: dict[str, ColumnInfo] = {}
    for column in sa_table.columns:
        custom = (column_config.get(column.name) or {}).get("custom_name")
        if custom is not None and not is_graphql_name(str(custom)):
            raise MetadataError(
                f"{where}.{column.name}: custom_name {custom!r} is not a GraphQL name"
            )
        try:
            scalar = scalar_name_for(column.type)
        except TypeError as error:
            raise MetadataError(f"{where}.{column.name}: {error}") from error
        columns[column.name] = ColumnInfo(
            name=column.name,
            field=custom or column.name,
            scalar=scalar,
            nullable=bool(column.nullable),
            sa_column=column,
            custom_name=custom,
        )
    for configured in column_config:
        if configured not in columns:
            raise MetadataError(f"{where}: column_config names unknown column {configured}")
    read_only = bool(sa_table.info.get("materialized_view") or sa_table.info.get("view"))
    primary_key = () if read_only else tuple(column.name for column in sa_table.primary_key)
    unique: dict[str, tuple[str, ...]] = {}
    if primary_key:
        unique[str(sa_table.primary_key.name or f"{name}_pkey")] = primary_key
    for constraint in sa_table.constraints:
        if isinstance(constraint, sa.UniqueConstraint) and not read_only:
            unique[str(constraint.name)] = tuple(column.name for column in constraint.columns)
    custom_roots: dict[str, str] = {}
    for kind, value in (configuration.get("custom_root_fields") or {}).items():
        if kind not in ROOT_FIELD_KINDS:
            raise MetadataError(f"{where}: custom_root_fields has unknown kind {kind}")
        root_name = _root_field_name(value)
        if root_name is None:
            continue
        if not is_graphql_name(root_name):
            raise MetadataError(f"{where}: custom root field {root_name!r} is not a GraphQL name")
        custom_roots[kind] = root_name
    table = TableInfo(
        name=name,
        schema=schema,
        type_name=type_name,
        sa_table=sa_table,
        columns=columns,
        primary_key=primary_key,
        read_only=read_only,
        unique_constraints=unique,
        custom_name=custom_name,
        custom_root_fields=custom_roots,
        apollo_federation=_apollo_federation(entry.get("apollo_federation_config"), where),
        comment=sa_table.comment,
    )
    for computed in entry.get("computed_fields") or []:
        function_name = computed["definition"]["function"]["name"]
        function = FUNCTIONS.get(function_name)
        if function is None:
            raise MetadataError(
                f"{schema}.{name}: computed field {computed['name']} uses function "
                f"{function_name}, which the engine does not implement "
                f"(known: {', '.join(sorted(FUNCTIONS))})"
            )
        if function.table != name:
            raise MetadataError(
                f"{schema}.{name}: computed field {computed['name']}: function "
                f"{function_name} takes a {function.table} row"
            )
        table.computed_fields[computed["name"]] = ComputedField(
            name=computed["name"], function=function, comment=computed.get("comment")
        )
    return table


def _apollo_federation(value: Any, where: str) -> bool:
    """Hasura's `apollo_federation_config`: `{enable: v1}` makes the table an entity."""
    if value is None:
        return False
    if not isinstance(value, Mapping) or value.get("enable") != "v1":
        raise MetadataError(
            f"{where}: apollo_federation_config must be {{enable: v1}}, got {value!r}"
        )
    return True


def _single_column(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1:
        return str(value[0])
    raise MetadataError(f"{where}: only single-column relationships are supported, got {value!r}")


def _add_relationships(
    table: TableInfo, entry: Mapping[str, Any], tables: Mapping[str, TableInfo]
) -> None:
    where = f"{table.schema}.{table.name}"
    for kind, key in (("object", "object_relationships"), ("array", "array_relationships")):
        for rel in entry.get(key) or []:
            name = rel["name"]
            using = rel.get("using") or {}
            here = f"{where} relationship {name}"
            if "manual_configuration" in using:
                manual = using["manual_configuration"]
                _, target_name = _table_ref(manual["remote_table"])
                mapping = manual.get("column_mapping") or {}
                if len(mapping) != 1:
                    raise MetadataError(f"{here}: only single-column mappings are supported")
                ((source_column, target_column),) = mapping.items()
                nullable = True
            elif "foreign_key_constraint_on" in using:
                fk_on = using["foreign_key_constraint_on"]
                if kind == "object" and not (isinstance(fk_on, dict) and "table" in fk_on):
                    column_name = _single_column(
                        fk_on.get("column", fk_on.get("columns"))
                        if isinstance(fk_on, dict)
                        else fk_on,
                        here,
                    )
                    source_column, target_name, target_column = _outgoing_fk(
                        table, column_name, here
                    )
                    nullable = table.columns[source_column].nullable
                else:
                    _, target_name = _table_ref(fk_on["table"])
                    column_name = _single_column(fk_on.get("column", fk_on.get("columns")), here)
                    if target_name not in tables:
                        raise MetadataError(f"{here}: table {target_name} is not tracked")
                    target_column, referenced_table, source_column = _outgoing_fk(
                        tables[target_name], column_name, here
                    )
                    if referenced_table != table.name:
                        raise MetadataError(
                            f"{here}: {target_name}.{column_name} references "
                            f"{referenced_table}, not {table.name}"
                        )
                    nullable = True
            else:
                raise MetadataError(f"{here}: unsupported relationship definition {using!r}")
            if target_name not in tables:
                raise MetadataError(f"{here}: table {target_name} is not tracked")
            target = tables[target_name]
            for column_name, owner in ((source_column, table), (target_column, target)):
                if column_name not in owner.columns:
                    raise MetadataError(f"{here}: {owner.name} has no column {column_name}")
            if name in table.columns or name in table.relationships:
                raise MetadataError(f"{here}: name clashes with a column or relationship")
            relationship = Relationship(
                name=name,
                kind=kind,  # type: ignore[arg-type]
                source=table.name,
                target=target_name,
                source_column=source_column,
                target_column=target_column,
                nullable=nullable,
                comment=rel.get("comment"),
            )
            bucket = table.object_relationships if kind == "object" else table.array_relationships
            bucket[name] = relationship


def _outgoing_fk(table: TableInfo, column_name: str, where: str) -> tuple[str, str, str]:
    """(column, referenced table, referenced column) of the foreign key on `column_name`."""
    column = table.sa_table.columns.get(column_name)
    if column is None:
        raise MetadataError(f"{where}: {table.name} has no column {column_name}")
    for fk in column.foreign_keys:
        return column_name, fk.column.table.name, fk.column.name
    raise MetadataError(f"{where}: {table.name}.{column_name} has no foreign key")


def _names(value: Any, known: Iterable[str], what: str, where: str) -> frozenset[str]:
    known_set = set(known)
    if value == "*":
        return frozenset(known_set)
    names = frozenset(value or [])
    unknown = names - known_set
    if unknown:
        raise MetadataError(f"{where}: unknown {what} {', '.join(sorted(unknown))}")
    return names


def _select_permission(table: TableInfo, entry: Mapping[str, Any]) -> SelectPermission:
    role = str(entry["role"])
    permission = entry.get("permission") or {}
    where = f"{table.schema}.{table.name} select permission for {role}"
    columns = _names(permission.get("columns"), table.columns, "columns", where)
    computed = _names(
        permission.get("computed_fields"), table.computed_fields, "computed fields", where
    )

    def roots(key: str) -> frozenset[str] | None:
        value = permission.get(key)
        return None if value is None else frozenset(value)

    return SelectPermission(
        role=role,
        columns=columns,
        computed_fields=computed,
        filter=permission.get("filter") or {},
        allow_aggregations=bool(permission.get("allow_aggregations", False)),
        limit=permission.get("limit"),
        query_root_fields=roots("query_root_fields"),
        subscription_root_fields=roots("subscription_root_fields"),
    )


def _check_filter(
    table: TableInfo, bool_exp: Any, tables: Mapping[str, TableInfo], where: str
) -> None:
    """Fail early on a permission filter naming unknown columns or relationships."""
    if not isinstance(bool_exp, dict):
        raise MetadataError(f"{where}: filter must be an object, got {bool_exp!r}")
    for key, value in bool_exp.items():
        if key in ("_and", "_or"):
            for item in value or []:
                _check_filter(table, item, tables, where)
        elif key == "_not":
            _check_filter(table, value, tables, where)
        elif key == "_exists":
            raise MetadataError(f"{where}: _exists is not supported in permission filters")
        elif key in table.relationships:
            _check_filter(tables[table.relationships[key].target], value, tables, where)
        elif key not in table.columns_by_field and key not in table.computed_fields:
            raise MetadataError(f"{where}: unknown field {key} in filter")
