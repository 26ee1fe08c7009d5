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
    session_parameters: bool = False
    """Compiling once for many sessions: session variables become `ParamRef`s."""
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

    def session_value(self, marker: SessionVariable, path: str) -> str | ParamRef:
        """The session's value of `marker` (a `ParamRef` with `session_parameters`).

        Raises `EngineError` (access-denied) when the session lacks it.
        """
        if self.session_parameters:
            return ParamRef(("session", marker.name), path)
        value = self.session_variables.get(marker.name)
        if value is None:
            raise missing_session_variable(marker.name, path)
        return value


def missing_session_variable(name: str, path: str) -> EngineError:
    """The error for a permission rule reading a session variable the session lacks."""
    return EngineError(ACCESS_DENIED, f'missing session variable: "{name}"', path)


class NotParametric(Exception):
    """A `ParamRef` was used for more than its value: what it stands for shapes the SQL."""

    def __init__(self, ref: ParamRef) -> None:
        super().__init__(f"{ref.source} shapes the statement")
        self.ref = ref


class ParamRef:
    """A value that differs between executions of one compiled statement.

    Compiling an operation once for many requests (`execution.compiled`) puts a
    `ParamRef` where a variable's value (or a session variable's) would go. Bound as a
    parameter, it becomes a named placeholder; any other use (comparing it, formatting
    it, iterating it, reading its attributes) raises `NotParametric`, so a value that
    decides the statement's shape (a limit checked against the row cap, a pattern
    validated in Python) is never mistaken for a parameter.

    `source` is `("variable", name, key, ...)` (the path of the leaf in the coerced
    variables) or `("session", name)`; `scalar` is the Hasura scalar a session variable's
    text is read as (set by the filter that compares it); `path` is the request path
    for errors.
    """

    __slots__ = ("path", "scalar", "source")

    def __init__(self, source: tuple[Any, ...], path: str = "$", scalar: str | None = None) -> None:
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "scalar", scalar)

    def read_as(self, scalar: str) -> ParamRef:
        """The same session variable, read as a value of `scalar`."""
        return ParamRef(self.source, self.path, scalar)

    def __repr__(self) -> str:
        return f"ParamRef({self.source!r}, scalar={self.scalar!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ParamRef, (self.source, self.path, self.scalar))

    def __copy__(self) -> ParamRef:
        return self  # immutable

    def __deepcopy__(self, memo: Any) -> ParamRef:
        return self

    def _shapes(self, *args: Any, **kwargs: Any) -> Any:
        raise NotParametric(self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ParamRef.__slots__:
            raise AttributeError(name)
        raise NotParametric(self)

    __setattr__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _shapes  # type: ignore[assignment]
    __hash__ = __bool__ = __len__ = __iter__ = __contains__ = __getitem__ = _shapes  # type: ignore[assignment]
    __str__ = __format__ = __int__ = __index__ = __float__ = _shapes  # type: ignore[assignment]
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __neg__ = _shapes  # type: ignore[assignment]


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
    """A bound parameter processed by the column's type (uuid, timestamptz, jsonb...).

    `value` may be a `ParamRef`: the compiled statement then takes it per execution.
    """
    return sa.bindparam(None, value, type_=column_type)
