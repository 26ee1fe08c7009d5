"""What compiling GraphQL arguments to SQL needs to know, and small shared SQL helpers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from detector.observability.sqltypes import UUID
from service.graphql.catalog.metadata import Catalog, ColumnInfo, TableInfo
from service.graphql.catalog.permissions import RolePermissions, SessionVariable, TableAccess
from service.graphql.errors import ACCESS_DENIED, EngineError


@dataclass
class CompileContext:
    """Per-request facts for compiling: the catalog, the role, its session, the dialect."""

    catalog: Catalog
    permissions: RolePermissions
    dialect: str
    session_variables: Mapping[str, str] = field(default_factory=dict)
    stringify_numeric: bool = False
    max_rows: int | None = None
    _aliases_used: dict[str, int] = field(default_factory=dict)

    @property
    def sqlite(self) -> bool:
        return self.dialect == "sqlite"

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


def in_values(
    ctx: CompileContext, expression: ColumnElement[Any], column: ColumnInfo, values: Sequence[Any]
) -> ColumnElement[bool]:
    """`expression IN values` as one bound parameter, whatever the number of values.

    PostgreSQL gets `= ANY($1::type[])`; SQLite `IN (SELECT value FROM json_each(?))`.
    One parameter keeps statements (and their plans) identical for any batch size, and
    stays clear of the drivers' parameter-count limits.
    """
    if ctx.sqlite:
        processor = column.sa_column.type.bind_processor(_SQLITE_DIALECT)
        items = [processor(value) if processor else value for value in values]
        table = sa.func.json_each(
            sa.bindparam(None, json.dumps(items), type_=sa.Text)
        ).table_valued("value")
        return expression.in_(sa.select(table.c.value))
    # Keys come straight from earlier result rows, already in the driver's form: bind
    # them with the PostgreSQL type itself, skipping per-item Python conversion.
    column_type = column.sa_column.type
    if isinstance(column_type, UUID):
        item_type: sa.types.TypeEngine[Any] = postgresql.UUID(as_uuid=False)
    elif isinstance(column_type, sa.types.TypeDecorator):
        item_type = column_type
    else:
        item_type = column_type
    array_type = postgresql.ARRAY(item_type)
    return expression == sa.any_(sa.bindparam(None, list(values), type_=array_type))


_SQLITE_DIALECT = sqlite.dialect()


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def readable(ctx: CompileContext, expression: ColumnElement[Any]) -> ColumnElement[Any]:
    """`expression` typed so that SQLite's numbers read back unrounded.

    SQLAlchemy turns SQLite's floats for a `NUMERIC` without scale into Decimals cut to
    ten digits; PostgreSQL's `numeric` keeps them all. Reading them as floats keeps both
    backends answering the same number.
    """
    column_type = expression.type
    if (
        ctx.sqlite
        and isinstance(column_type, sa.Numeric)
        and not isinstance(column_type, sa.Float)
        and getattr(column_type, "scale", None) is None
    ):
        return sa.type_coerce(expression, sa.Float())
    return expression
