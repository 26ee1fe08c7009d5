"""Statements compiled once per dialect and run through the driver directly.

SQLAlchemy looks each statement it executes up in its compiled cache by the statement's
cache key, a tuple as deep as the statement; hashing it costs about 0.3 ms for a console
query's compiled root field, on every execution. A compiled field (`execution.compiled`)
runs the same statement many times: `DriverStatement` compiles it once for a dialect and
schema map, and each execution binds the values itself (SQLAlchemy's own defaults and
type processors, in its positional order) and hands SQL text and arguments to the driver
(`exec_driver_sql`). Connection events (statement counts, time limits) fire as usual.

A statement whose parameters are expanded or rendered at execution time (`IN` lists
bound as one parameter, literal-execute binds) has no fixed text: `compile` answers None
and the caller executes it the usual way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.engine.interfaces import Compiled
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter


@dataclass(frozen=True)
class DriverStatement:
    """One statement's SQL text for one dialect, and how to bind its arguments."""

    sql: str
    names: tuple[str, ...]
    """The bound parameters' names, in the order of the text's placeholders."""
    compiled: Compiled
    processors: Mapping[str, Callable[[Any], Any]]

    @classmethod
    def compile(
        cls,
        statement: Select[Any],
        dialect: Dialect,
        schema_translate_map: Mapping[Any, Any] | None,
    ) -> DriverStatement | None:
        """`statement` compiled for `dialect` (tables renamed by `schema_translate_map`),
        or None when its text depends on the values (see the module docstring)."""
        compiled: Any = statement.compile(
            dialect=dialect,
            schema_translate_map=dict(schema_translate_map) if schema_translate_map else None,
            render_schema_translate=bool(schema_translate_map),
        )
        names = compiled.positiontup
        if names is None or compiled.literal_execute_params or compiled.post_compile_params:
            return None
        return cls(compiled.string, tuple(names), compiled, dict(compiled._bind_processors))

    def arguments(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's arguments: `values` by name, the statement's own binds as compiled,
        each through its type's bind processor (as SQLAlchemy's execution would)."""
        params = self.compiled.construct_params(dict(values))
        processors = self.processors
        return tuple(
            processors[name](params[name]) if name in processors else params[name]
            for name in self.names
        )


class DriverStatements:
    """A statement's `DriverStatement` per dialect and schema map, made on first use."""

    __slots__ = ("_by_dialect", "statement")

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._by_dialect: dict[Any, DriverStatement | None] = {}

    async def execute(self, conn: AsyncConnection, values: Mapping[str, Any]) -> Any:
        """Execute the statement with `values` on `conn`; the result."""
        dialect = conn.dialect
        schema_map = conn.sync_engine.get_execution_options().get("schema_translate_map")
        key = (type(dialect), tuple(sorted((schema_map or {}).items(), key=repr)))
        try:
            prepared = self._by_dialect[key]
        except KeyError:
            prepared = self._by_dialect[key] = DriverStatement.compile(
                self.statement, dialect, schema_map
            )
        if prepared is None:
            return await conn.execute(self.statement, dict(values))
        return await conn.exec_driver_sql(prepared.sql, prepared.arguments(values))


def name_bind(bind: BindParameter[Any], name: str) -> None:
    """Make `bind`, in place, the required parameter `name` with no value of its own: what
    `sa.bindparam(name, type_=bind.type)` is, without copying the statement around it to
    replace it (`tests/test_sql_prepared.py` holds the two alike in compiled text and
    cache key). Only for a statement its builder owns alone."""
    bind.key = bind._identifying_key = bind._orig_key = name
    bind._anon_map_key = None
    bind.unique = False
    bind.value = None
    bind.callable = None
    bind.required = True
