"""What compiling GraphQL arguments to SQL needs to know, and small shared SQL helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from service.graphql.catalog.metadata import Catalog, TableInfo
from service.graphql.catalog.permissions import RolePermissions, SessionVariable, TableAccess
from service.graphql.errors import ACCESS_DENIED, EngineError
from service.graphql.sql.budget import ResponseBudget
from service.graphql.sql.dialect import SQLDialect


@dataclass
class CompileContext:
    """Per-request facts for compiling: the catalog, the role, its session, the dialect."""

    catalog: Catalog
    permissions: RolePermissions
    dialect: SQLDialect
    session_variables: Mapping[str, str] = field(default_factory=dict)
    stringify_numeric: bool = False
    max_rows: int | None = None
    budget: ResponseBudget | None = None
    """The request's response budget (`sql.budget`); None: unbounded."""
    _aliases_used: dict[str, int] = field(default_factory=dict)

    def alias(self, table: TableInfo) -> FromClause:
        """An alias of `table` not used before by this context.

        Aliases are named `<table>_<n>` and shared between requests (building an alias
        of a wide table costs more than the rest of a statement), so statements of the
        same shape are identical and hit SQLAlchemy's and the driver's caches.
        """
        index = self._aliases_used.get(table.name, 0)
        self._aliases_used[table.name] = index + 1
        return shared_alias(table, index)

    def access(self, table_name: str) -> TableAccess:
        return self.permissions.require(table_name)

    def table(self, name: str) -> TableInfo:
        return self.catalog.table(name)

    def session_value(self, marker: SessionVariable, path: str) -> str:
        value = self.session_variables.get(marker.name)
        if value is None:
            raise EngineError(ACCESS_DENIED, f'missing session variable: "{marker.name}"', path)
        return value


_SHARED_ALIASES: dict[tuple[str, int], FromClause] = {}
_MAX_SHARED_ALIASES = 64


def shared_alias(table: TableInfo, index: int) -> FromClause:
    """The alias `<table>_<index>` of `table`, built once."""
    if index >= _MAX_SHARED_ALIASES:
        return table.sa_table.alias()
    key = (table.name, index)
    alias = _SHARED_ALIASES.get(key)
    if alias is None:
        alias = table.sa_table.alias(f"{table.name}_{index}")
        alias.c  # noqa: B018 - build the column collection once
        _SHARED_ALIASES[key] = alias
    return alias


def bind(value: Any, column_type: sa.types.TypeEngine[Any]) -> ColumnElement[Any]:
    """A bound parameter processed by the column's type (uuid, timestamptz, jsonb...)."""
    return sa.bindparam(None, value, type_=column_type)
