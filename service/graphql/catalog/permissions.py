"""What a role may read: visible columns, computed fields, row filters, aggregations.

Like Hasura, the admin role sees everything; any other role sees only what its select
permissions in `hasura/` grant. Fields a role may not see are *absent* from its schema,
so asking for them is a validation error, never a silent null. Row filters apply to root
fields, relationships, aggregates and relationship filters alike.

Permission filters may compare with session variables (`"X-Hasura-User-Id"`); those
values are resolved per request from the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.graphql.catalog.metadata import (
    ADMIN_ROLE,
    Catalog,
    ColumnInfo,
    ComputedField,
    TableInfo,
)


@dataclass(frozen=True)
class SessionVariable:
    """A reference to a session variable inside a permission filter."""

    name: str


@dataclass(frozen=True)
class TableAccess:
    """A role's view of one table."""

    table: TableInfo
    columns: tuple[ColumnInfo, ...]
    computed_fields: tuple[ComputedField, ...]
    filter: Mapping[str, Any]
    allow_aggregations: bool
    limit: int | None
    query_root_fields: frozenset[str] | None = None
    subscription_root_fields: frozenset[str] | None = None

    @property
    def column_names(self) -> frozenset[str]:
        return frozenset(column.name for column in self.columns)

    def column_by_field(self, field: str) -> ColumnInfo | None:
        for column in self.columns:
            if column.field == field:
                return column
        return None


class RolePermissions:
    """Every table a role can read, with what it can read of each."""

    def __init__(self, catalog: Catalog, role: str) -> None:
        self.catalog = catalog
        self.role = role
        self.is_admin = role == ADMIN_ROLE
        self._access: dict[str, TableAccess] = {}
        for table in catalog.tables.values():
            access = self._build(table)
            if access is not None:
                self._access[table.name] = access

    def _build(self, table: TableInfo) -> TableAccess | None:
        if self.is_admin:
            return TableAccess(
                table=table,
                columns=tuple(table.columns.values()),
                computed_fields=tuple(table.computed_fields.values()),
                filter={},
                allow_aggregations=True,
                limit=None,
            )
        rule = table.select_permissions.get(self.role)
        if rule is None:
            return None
        return TableAccess(
            table=table,
            columns=tuple(c for c in table.columns.values() if c.name in rule.columns),
            computed_fields=tuple(
                f for f in table.computed_fields.values() if f.name in rule.computed_fields
            ),
            filter=_mark_session_variables(rule.filter),
            allow_aggregations=rule.allow_aggregations,
            limit=rule.limit,
            query_root_fields=rule.query_root_fields,
            subscription_root_fields=rule.subscription_root_fields,
        )

    def access(self, table_name: str) -> TableAccess | None:
        """The role's access to `table_name`, or None when it may not read it."""
        return self._access.get(table_name)

    def require(self, table_name: str) -> TableAccess:
        access = self._access.get(table_name)
        if access is None:  # the schema never exposes such a table; defensive
            raise KeyError(f"role {self.role} cannot read {table_name}")
        return access

    @property
    def tables(self) -> list[TableAccess]:
        return list(self._access.values())


def _mark_session_variables(value: Any) -> Any:
    """Replace `"X-Hasura-…"` strings in a filter by `SessionVariable` markers."""
    if isinstance(value, str) and value.lower().startswith("x-hasura-"):
        return SessionVariable(value.lower())
    if isinstance(value, list):
        return [_mark_session_variables(item) for item in value]
    if isinstance(value, dict):
        return {key: _mark_session_variables(item) for key, item in value.items()}
    return value
