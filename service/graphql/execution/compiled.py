"""Compiled operations: a root field's statement built once, run for every request like it.

Planning a root field and building its SQL costs more CPU than running it on a small
result (1.5 to 10 ms of Python against a fraction of a millisecond in the database).
Requests that send the same document, operation and role, with variables of the same
*shape*, differ only in the values the statement binds. So the first such request
builds the field's statement (`sql.documents`: the whole response as JSON, built by
the database) with a `ParamRef` in place of every value that may differ, and later
ones only fill in those values and run it. The live-query engine runs the same
statement for many subscriptions at once (`batch_statement`).

What is a parameter, and what is shape:

- a variable's scalar leaves (strings, numbers, ids, timestamps) are parameters, and so
  are the session variables permission rules compare;
- everything else is shape, part of the cache key: booleans (`_is_null`, `@skip`),
  enum values (`order_by`, `distinct_on`), jsonb values, null, the keys present in an
  input object and the length of every list;
- a leaf the compiler uses for more than binding it (a `limit` checked against the row
  cap, a pattern validated in Python, a jsonb path) makes `ParamRef` raise
  `NotParametric`: that leaf becomes shape for the operation from then on, and the
  field is compiled again. A leaf that fails in any other way makes every variable leaf
  shape (and then, if it still fails, the session variables).

Entries are keyed by (normalised document, root field, role, shape) and kept in an LRU
of `EngineConfig.compiled_cache_size` entries (0: build every request's statement anew,
for measuring what the cache saves).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson
import sqlalchemy as sa
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
    print_ast,
)
from graphql.execution.values import VariableValues
from graphql.language import DocumentNode, FragmentDefinitionNode, OperationDefinitionNode
from graphql.utilities import type_from_ast
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select, visitors
from sqlalchemy.sql.elements import BindParameter

from service.graphql.catalog.metadata import Catalog, TableInfo
from service.graphql.execution.reads import root_tables
from service.graphql.execution.resolvers import root_path
from service.graphql.plan import AggregatePlan, Planner, RowPlan
from service.graphql.sql.budget import ResponseBudget
from service.graphql.sql.compiling import NotParametric, ParamRef, missing_session_variable
from service.graphql.sql.dberrors import translate
from service.graphql.sql.dialect import SQLDialect
from service.graphql.sql.documents import (
    NestedArray,
    NotBuildable,
    aggregate_document,
    exceeds_row_cap,
    least_object_bytes,
    list_document,
    nested_array_counts,
    nested_arrays,
    object_document,
)
from service.graphql.sql.filters import read_session_value
from service.graphql.sql.multiplex import BatchStatement, batch_statement
from service.graphql.sql.prepared import DriverStatements, name_bind
from service.graphql.sql.selects import response_size, row_cap_error

if TYPE_CHECKING:
    from service.graphql.config import EngineDatabase
    from service.graphql.execution.auth import Session
    from service.graphql.execution.engine import GraphQLEngine

log = logging.getLogger(__name__)

FieldKind = Literal["select", "select_by_pk", "select_aggregate"]

PARAMETER_SCALARS = frozenset(
    {"Int", "Float", "String", "ID", "uuid", "timestamptz", "bigint", "numeric", "float8"}
)
"""Scalars whose variable values are bound as parameters (the others are shape)."""

_ALL_LEAVES = ("*",)
"""Marker in an operation's learned shape paths: every leaf is shape."""


@dataclass
class CompiledField:
    """One root field's statement, with named parameters `p0`, `p1`, … and their sources."""

    key: tuple[Any, ...]
    """(normalised document, root field, role, variable shape): equal keys, equal statements."""
    kind: FieldKind
    statement: Select[Any]
    parameters: list[ParamRef]
    table: TableInfo
    path: str
    tables: frozenset[str]
    """Tables the field reads (what live queries watch)."""
    nested: list[NestedArray]
    max_rows: int | None
    plan: RowPlan | AggregatePlan
    """The field's plan (what the response budget counts in an answer)."""
    least_bytes: int
    """The fewest characters an object the budget counts takes (`least_object_bytes`)."""
    seconds: float = 0.0
    """How long its last `answer` took (`execution.direct` sends the longest first)."""
    _batch: BatchStatement | None = None
    _driver: DriverStatements = field(init=False)

    def __post_init__(self) -> None:
        self._driver = DriverStatements(self.statement)

    def batch(self, dialect: SQLDialect) -> BatchStatement:
        """The statement running this field for many parameter sets at once."""
        if self._batch is None or self._batch.dialect is not dialect:
            self._batch = batch_statement(self.statement, len(self.parameters), dialect)
        return self._batch

    def parameter_list(self, values: Mapping[str, Any]) -> list[Any]:
        """`values` (from `values()`) in parameter order, as one set of `batch()`."""
        return [values[f"p{number}"] for number in range(len(self.parameters))]

    def values(self, variables: Mapping[str, Any], session: Session) -> dict[str, Any]:
        """The parameters of one execution, from its coerced variables and session.

        Raises `EngineError`: access-denied for a session variable the session lacks,
        validation-failed for one that is not a value of its scalar.
        """
        values: dict[str, Any] = {}
        for number, ref in enumerate(self.parameters):
            source = ref.source
            if source[0] == "session":
                raw = session.variables.get(source[1])
                if raw is None:
                    raise missing_session_variable(source[1], ref.path)
                values[f"p{number}"] = read_session_value(raw, ref.scalar or "String", ref.path)
            else:
                value: Any = variables
                for step in source[1:]:
                    value = value[step]
                values[f"p{number}"] = value
        return values

    async def fetch(
        self, conn: AsyncConnection, values: Mapping[str, Any], catalog: Catalog
    ) -> str | None:
        """Run the statement; the field's JSON text (None: a `_by_pk` that found no row).

        Raises `EngineError` for a database error (in Hasura's shape, see `dberrors`).
        """
        try:
            result = await self._driver.execute(conn, values)
        except DBAPIError as error:
            raise translate(error, catalog) from error
        return result.scalar()

    async def answer(
        self, database: EngineDatabase, values: Mapping[str, Any], catalog: Catalog
    ) -> str | None:
        """Run the statement on a pooled read connection and hold its answer to the row
        cap: the field's JSON text (None: a `_by_pk` that found no row). How long it took
        is kept in `seconds`.

        Raises `EngineError` (a database error, the row cap).
        """
        started = time.perf_counter()
        async with database.read() as conn:
            text = await self.fetch(conn, values, catalog)
        self.seconds = time.perf_counter() - started
        self.check(text)
        return text

    def check(self, text: str | None) -> None:
        """Raise the row cap's `EngineError` if the answer holds more rows than it allows."""
        if self.max_rows is None or text is None:
            return
        if exceeds_row_cap(text):
            raise row_cap_error(self.max_rows, self.table, self.path)
        # Counting nested rows means parsing the answer; an answer shorter than the cap's
        # worth of the smallest nested row cannot hold too many (the usual case).
        if self.nested and len(text) > self.max_rows * min(a.least_bytes for a in self.nested):
            for array, count in nested_array_counts(self.nested, orjson.loads(text)):
                if count > self.max_rows:
                    raise row_cap_error(self.max_rows, array.table, array.path)

    def charge(self, budget: ResponseBudget, text: str | None) -> None:
        """Charge the answer `text` to the request's response budget, refusing it (as the
        row-by-row path does) if it holds more rows and objects than the budget has left.

        The answer holds at most its length over `least_bytes` of them; it is parsed and
        counted only when that bound, with the others of the request, would overrun the
        budget (`ResponseBudget.charge_at_most`).
        """
        if text is None:
            return
        plan = self.plan
        budget.charge_at_most(
            len(text) // self.least_bytes,
            lambda: response_size(plan, orjson.loads(text)),
            self.path,
        )


@dataclass
class _Operation:
    """What the cache knows of one (document, root field, role)."""

    shape_paths: set[tuple[Any, ...]] = field(default_factory=set)
    """Leaves learned to shape the statement (`_ALL_LEAVES`: all of them)."""
    session_shapes: bool = False
    """Session variables shape the statement (are compiled in, and part of the key)."""

    def key(
        self,
        operation_key: tuple[Any, ...],
        variables: VariableValues,
        types: Mapping[str, Any],
        session: Session,
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
        """The cache key of a request (with the shape of its variables and, when they
        shape the statement, its session variables), and the paths of its parameter
        leaves."""
        shape, leaves = _shape(variables, types, self.shape_paths)
        by_session = tuple(sorted(session.variables.items())) if self.session_shapes else None
        return (operation_key, shape, by_session), leaves


class CompiledOperations:
    """The engine's cache of compiled root fields (see the module docstring)."""

    def __init__(self, engine: GraphQLEngine, size: int, compile_after: int = 1) -> None:
        self.engine = engine
        self.size = size
        self.compile_after = compile_after
        self._fields: OrderedDict[tuple[Any, ...], CompiledField | None] = OrderedDict()
        self._operations: dict[tuple[Any, ...], _Operation] = {}
        self._requests: dict[tuple[Any, ...], int] = {}
        """Requests so far per key not compiled yet (see `field`)."""
        self._documents: dict[int, tuple[OperationDefinitionNode, str, dict[str, Any]]] = {}
        self.compilations = 0
        """Statements built so far (each miss of the cache, and each retry for shape)."""
        self.hits = 0

    def field(
        self,
        info: GraphQLResolveInfo,
        kind: FieldKind,
        table: TableInfo,
        session: Session,
        *,
        repeated: bool = False,
    ) -> CompiledField | None:
        """The compiled statement of the root field `info` resolves (None: not buildable
        as one statement, or not asked for often enough yet; the row-by-row path answers).

        Compiling costs several times what answering row by row costs, so a root field is
        compiled at its `EngineConfig.compile_after`-th request with the same variable
        shape: documents sent once (literals written into them, a page's one-off batch)
        and shapes sent once (a filter combination tried once) stay row by row.
        `repeated` says the caller will run it again and again (a live query): compile
        at once.

        Raises `EngineError` for an invalid request (as the row-by-row path would).
        """
        document, variable_types = self._document(info.operation, info.fragments, info.schema)
        operation_key = (document, info.path.key, session.role)
        operation = self._operations.get(operation_key)
        if operation is None:
            if len(self._operations) >= 4 * max(self.size, 64):
                self._operations.clear()
            operation = self._operations[operation_key] = _Operation()
        key, leaves = operation.key(operation_key, info.variable_values, variable_types, session)
        if self.size and key in self._fields:
            self._fields.move_to_end(key)
            self.hits += 1
            return self._fields[key]
        if not repeated and self.compile_after > 1:
            requests = self._requests.get(key, 0) + 1
            if requests < self.compile_after:
                if len(self._requests) >= 4 * max(self.size, 64):
                    self._requests.clear()
                self._requests[key] = requests
                return None
        learned = (len(operation.shape_paths), operation.session_shapes)
        compiled = self._compile(info, kind, table, session, leaves, operation, key)
        if (len(operation.shape_paths), operation.session_shapes) != learned:
            # Leaves turned out to shape the statement: file it under the key later
            # requests compute (with those leaves' values in it).
            key, _ = operation.key(operation_key, info.variable_values, variable_types, session)
            if compiled is not None:
                compiled.key = key
        if self.size:
            self._fields[key] = compiled
            if len(self._fields) > self.size:
                self._fields.popitem(last=False)
        return compiled

    def cached(
        self,
        operation: OperationDefinitionNode,
        fragments: Mapping[str, FragmentDefinitionNode],
        schema: GraphQLSchema,
        response_key: str,
        variables: VariableValues,
        session: Session,
    ) -> CompiledField | None:
        """The compiled statement of root field `response_key` of `operation` for these
        variables' shape and this session, if the cache holds it (None: it does not, or
        the field is not buildable as one statement). Never compiles, never counts a
        request toward compiling (`field` does both)."""
        document, variable_types = self._document(operation, fragments, schema)
        operation_key = (document, response_key, session.role)
        state = self._operations.get(operation_key)
        if state is None:
            return None
        key, _ = state.key(operation_key, variables, variable_types, session)
        compiled = self._fields.get(key)
        if compiled is not None:
            self._fields.move_to_end(key)
            self.hits += 1
        return compiled

    def _document(
        self,
        operation: OperationDefinitionNode,
        fragments: Mapping[str, FragmentDefinitionNode],
        schema: GraphQLSchema,
    ) -> tuple[str, dict[str, Any]]:
        """The operation printed canonically, and its variables' input types.

        Printing costs about a millisecond: the parser cache hands every request with
        the same text the same operation node, so both are kept per node.
        """
        cached = self._documents.get(id(operation))
        if cached is not None and cached[0] is operation:
            return cached[1], cached[2]
        text = print_ast(DocumentNode(definitions=(operation, *fragments.values())))
        types = {
            definition.variable.name.value: type_from_ast(schema, definition.type)
            for definition in operation.variable_definitions or ()
        }
        if len(self._documents) >= 1024:
            self._documents.clear()
        self._documents[id(operation)] = (operation, text, types)
        return text, types

    def _compile(
        self,
        info: GraphQLResolveInfo,
        kind: FieldKind,
        table: TableInfo,
        session: Session,
        leaves: list[tuple[Any, ...]],
        operation: _Operation,
        key: tuple[Any, ...],
    ) -> CompiledField | None:
        """Build the field with parameters where possible (learning which leaves shape it)."""
        while True:
            self.compilations += 1
            session_parameters = not operation.session_shapes
            try:
                return self._build(info, kind, table, session, leaves, key, session_parameters)
            except NotBuildable:
                return None
            except NotParametric as error:
                source = error.ref.source
                if source[0] == "session":
                    operation.session_shapes = True
                elif source[1:] in leaves:
                    operation.shape_paths.add(source[1:])
                    leaves = [leaf for leaf in leaves if leaf != source[1:]]
                else:
                    operation.shape_paths.add(_ALL_LEAVES)
                    operation.session_shapes = True
                    leaves = []
            except Exception:
                # Some value was used in a way `ParamRef` cannot tell (a JSON encoding, say):
                # make the variables' values shape first, then the session's; an error that
                # remains is the request's own, and is its answer.
                if leaves:
                    operation.shape_paths.add(_ALL_LEAVES)
                    leaves = []
                elif session_parameters:
                    operation.session_shapes = True
                else:
                    raise

    def _build(
        self,
        info: GraphQLResolveInfo,
        kind: FieldKind,
        table: TableInfo,
        session: Session,
        leaves: list[tuple[Any, ...]],
        key: tuple[Any, ...],
        session_parameters: bool,
    ) -> CompiledField:
        engine = self.engine
        refs = {leaf: ParamRef(("variable", *leaf)) for leaf in leaves}
        variables = VariableValues(
            info.variable_values.sources, _substitute(info.variable_values.coerced, refs)
        )
        ctx = engine.compile_context(session)
        ctx.session_parameters = session_parameters
        planner = Planner(info.schema, info.fragments, variables, ctx)
        node = info.field_nodes[0]
        field_def = info.parent_type.fields[info.field_name]
        args = planner.arguments(field_def, node)
        path = root_path(engine, info)
        object_type = get_named_type(info.return_type)
        nested: list[NestedArray] = []
        if kind == "select":
            select_args = planner.select_args(table, args, node, path, field_def)
            plan = planner.row_plan(object_type, table, info.field_nodes, path)
            statement = list_document(ctx, plan, select_args)
            nested = nested_arrays(plan)
            plan_path = plan.path
            field_plan: RowPlan | AggregatePlan = plan
        elif kind == "select_by_pk":
            plan = planner.row_plan(object_type, table, info.field_nodes, path)
            primary_key = {table.columns_by_field[name].name: value for name, value in args.items()}
            statement = object_document(ctx, plan, primary_key_condition(primary_key))
            nested = nested_arrays(plan)
            plan_path = plan.path
            field_plan = plan
        else:
            select_args = planner.select_args(table, args, node, path, field_def)
            aggregate_plan = planner.aggregate_plan(object_type, table, info.field_nodes, path)
            statement = aggregate_document(ctx, aggregate_plan, select_args)
            nested = nested_arrays(aggregate_plan)
            plan_path = aggregate_plan.path
            field_plan = aggregate_plan
        tables = frozenset(root_tables(planner, ctx, field_def, info.field_nodes, path))
        statement, parameters = _named_parameters(statement)
        return CompiledField(
            key=key,
            kind=kind,
            statement=statement,
            parameters=parameters,
            table=table,
            path=plan_path,
            tables=tables,
            nested=nested,
            max_rows=ctx.max_rows,
            plan=field_plan,
            least_bytes=least_object_bytes(field_plan),
        )


def primary_key_condition(key: Mapping[str, Any]) -> Any:
    """The condition `alias` matches `key` (column name → value) for `_by_pk` fields."""

    def matches(alias: Any) -> Any:
        return sa.and_(
            *(
                alias.c[name] == sa.bindparam(None, value, type_=alias.c[name].type)
                for name, value in key.items()
            )
        )

    return matches


def _named_parameters(statement: Select[Any]) -> tuple[Select[Any], list[ParamRef]]:
    """`statement` with each `ParamRef` bound as a named parameter `p<n>`, and the refs.

    The binds are renamed in place: the statement was just built for this field and is
    shared with nothing, and copying its tree to rename them took about a third of a
    compilation. A `ParamRef` left anywhere but a bound value raises `NotParametric`.
    """
    numbers: dict[tuple[Any, ...], int] = {}
    parameters: list[ParamRef] = []
    for element in visitors.iterate(statement):
        if not isinstance(element, BindParameter):
            continue
        ref = element.value
        if not isinstance(ref, ParamRef):
            _refuse_refs_inside(ref)
            continue
        identity = (ref.source, ref.scalar)
        if identity not in numbers:
            numbers[identity] = len(parameters)
            parameters.append(ref)
        name_bind(element, f"p{numbers[identity]}")
    return statement, parameters


def _refuse_refs_inside(value: Any) -> None:
    """Raise `NotParametric` for a `ParamRef` inside a bound value (a list bound whole)."""
    if isinstance(value, ParamRef):
        raise NotParametric(value)
    if isinstance(value, list | tuple):
        for item in value:
            _refuse_refs_inside(item)
    elif isinstance(value, dict):
        for item in value.values():
            _refuse_refs_inside(item)


def _substitute(coerced: Mapping[str, Any], refs: Mapping[tuple[Any, ...], ParamRef]) -> Any:
    """A copy of `coerced` with the leaf at each path of `refs` replaced by its ref."""
    if not refs:
        return coerced
    result: Any = dict(coerced)
    for path, ref in refs.items():
        container = result
        for step in path[:-1]:
            child = container[step]
            child = dict(child) if isinstance(child, dict) else list(child)
            container[step] = child
            container = child
        container[path[-1]] = ref
    return result


def _shape(
    variables: VariableValues,
    types: Mapping[str, Any],
    shape_paths: set[tuple[Any, ...]],
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The shape of a request's variables (hashable) and the paths of its parameter leaves."""
    leaves: list[tuple[Any, ...]] = []
    all_shape = _ALL_LEAVES in shape_paths
    parts: list[Any] = []
    for name, value in variables.coerced.items():
        variable_type = types.get(name)
        if variable_type is None or all_shape or not _has_parameters(variable_type):
            source = variables.sources.get(name)
            raw = source.value if source is not None else value
            parts.append((name, _canonical(raw)))
            continue
        parts.append((name, _walk(value, variable_type, (name,), shape_paths, leaves)))
    return tuple(parts), leaves


def _walk(
    value: Any,
    type_: Any,
    path: tuple[Any, ...],
    shape_paths: set[tuple[Any, ...]],
    leaves: list[tuple[Any, ...]],
) -> Any:
    if value is None:
        return None
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if isinstance(type_, GraphQLList):
        if not isinstance(value, list):
            return ("?", _canonical(value))
        return (
            "l",
            tuple(
                _walk(item, type_.of_type, (*path, index), shape_paths, leaves)
                for index, item in enumerate(value)
            ),
        )
    if isinstance(type_, GraphQLInputObjectType):
        if not isinstance(value, dict):
            return ("?", _canonical(value))
        fields = type_.fields
        return (
            "o",
            tuple(
                (key, _walk(item, fields[key].type, (*path, key), shape_paths, leaves))
                if key in fields
                else (key, _canonical(item))
                for key, item in value.items()
            ),
        )
    if (
        isinstance(type_, GraphQLScalarType)
        and type_.name in PARAMETER_SCALARS
        and path not in shape_paths
    ):
        leaves.append(path)
        return ("p", type_.name)
    return ("v", _canonical(value))


_PARAMETER_TYPES: dict[int, tuple[Any, bool]] = {}


def _has_parameters(type_: GraphQLInputType) -> bool:
    """Whether values of `type_` can hold parameter leaves (else they are all shape)."""
    named = get_named_type(type_)
    cached = _PARAMETER_TYPES.get(id(named))
    if cached is not None and cached[0] is named:
        return cached[1]
    seen: set[int] = set()

    def search(candidate: Any) -> bool:
        if id(candidate) in seen:
            return False
        seen.add(id(candidate))
        if isinstance(candidate, GraphQLScalarType):
            return candidate.name in PARAMETER_SCALARS
        if isinstance(candidate, GraphQLEnumType):
            return False
        if isinstance(candidate, GraphQLInputObjectType):
            return any(search(get_named_type(f.type)) for f in candidate.fields.values())
        return False

    found = search(named)
    if len(_PARAMETER_TYPES) >= 4096:
        _PARAMETER_TYPES.clear()
    _PARAMETER_TYPES[id(named)] = (named, found)
    return found


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, default=str)


__all__ = ["CompiledField", "CompiledOperations", "FieldKind"]
