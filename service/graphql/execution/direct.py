"""Queries answered straight from their compiled statements, without the GraphQL executor.

A query whose every root field was answered by a cached compiled statement
(`execution.compiled`) needs nothing more of the executor the next time it is sent: its
text was parsed and validated for the role already, and its answer is the statements'
JSON texts side by side. Strawberry's extensions and graphql-core's executor cost 0.3 ms
(one `_by_pk`) to 1.2 ms (the upstream dashboard's four root fields) of a request above
its statements, and they send the statements one after another in document order, each
after the previous one's Python: a long statement last in the document started a
millisecond late (bench `graphql_latency`).

`DirectOperations` remembers, per (query text, operation name, role), a query the executor
answered that way (every root selection a plain field answered compiled, no error), and
answers the next request of it itself, as the executor would:

- variables coerced by graphql-core (`get_variable_values`, the executor's own), and
  variables the operation does not declare refused as `UndeclaredVariables` does: a
  request with an error there goes to the executor, which answers it;
- each root field's statement found by its variables' shape (`CompiledOperations.cached`):
  a shape not compiled yet goes to the executor, which counts it toward compiling;
- the statements sent together, each on its own pooled connection, the one that took
  longest last time first; each answer checked against the row cap and charged to the
  request's response budget, as the resolvers do;
- `EngineError`s raised doing so (a database error, the row cap, the budget) answered as
  the executor answers them; anything else goes to the executor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from graphql import FieldNode, GraphQLResolveInfo, GraphQLSchema, OperationType
from graphql.execution.values import get_variable_values
from graphql.language import FragmentDefinitionNode, OperationDefinitionNode
from strawberry.types import ExecutionResult

from service.graphql.errors import EngineError
from service.graphql.sql.budget import budget_scope, current_budget

if TYPE_CHECKING:
    from service.graphql.execution.auth import Session
    from service.graphql.execution.compiled import CompiledField
    from service.graphql.execution.engine import GraphQLEngine

DirectKey = tuple[str, str | None, str]
"""(query text, operation name, role)."""


@dataclass(frozen=True)
class _Answered:
    """A root field the executor answered by its compiled statement."""

    response_key: str
    operation: OperationDefinitionNode
    fragments: Mapping[str, FragmentDefinitionNode]
    schema: GraphQLSchema


_answered: ContextVar[list[_Answered] | None] = ContextVar("direct_answered", default=None)


def record_compiled(info: GraphQLResolveInfo) -> None:
    """Note that the root field `info` resolves was answered by its compiled statement
    (for `DirectOperations.remember`; nothing happens outside a recording)."""
    answered = _answered.get()
    if answered is not None and info.path.prev is None:
        answered.append(_Answered(info.path.key, info.operation, info.fragments, info.schema))


@dataclass(frozen=True)
class _DirectQuery:
    operation: OperationDefinitionNode
    fragments: Mapping[str, FragmentDefinitionNode]
    schema: GraphQLSchema
    declared: frozenset[str]
    response_keys: tuple[str, ...]
    """The root fields' response keys, in document order."""


class DirectOperations:
    """The queries the engine answers without the executor (see the module docstring)."""

    def __init__(self, engine: GraphQLEngine, size: int) -> None:
        self.engine = engine
        self.size = size
        self._queries: OrderedDict[DirectKey, _DirectQuery] = OrderedDict()
        self.answered = 0
        """Requests answered here so far."""

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[_Answered]]:
        """Collect the root fields answered compiled by the execution run inside."""
        answered: list[_Answered] = []
        token = _answered.set(answered)
        try:
            yield answered
        finally:
            _answered.reset(token)

    def remember(self, key: DirectKey, answered: list[_Answered], result: ExecutionResult) -> None:
        """Keep the query of `key` if its execution (`result`, recorded in `answered`)
        answered every root field by its compiled statement, without error."""
        if result.errors or not answered:
            return
        operation = answered[0].operation
        if operation.operation is not OperationType.QUERY:
            return
        keys: list[str] = []
        for selection in operation.selection_set.selections:
            if (
                not isinstance(selection, FieldNode)
                or selection.directives
                or selection.name.value.startswith("__")
            ):
                return
            keys.append((selection.alias or selection.name).value)
        if sorted(keys) != sorted(field.response_key for field in answered):
            return  # a field answered row by row, or one selected twice (merged)
        if len(set(keys)) != len(keys) or any(a.operation is not operation for a in answered):
            return
        declared = frozenset(
            definition.variable.name.value for definition in operation.variable_definitions or ()
        )
        self._queries[key] = _DirectQuery(
            operation, answered[0].fragments, answered[0].schema, declared, tuple(keys)
        )
        self._queries.move_to_end(key)
        if len(self._queries) > self.size:
            self._queries.popitem(last=False)

    async def execute(
        self, key: DirectKey, variables: Mapping[str, Any] | None, session: Session
    ) -> ExecutionResult | None:
        """The answer to a remembered query, or None: the executor answers it."""
        query = self._queries.get(key)
        if query is None:
            return None
        # The request's budget, or one of its own as `ResponseBudgetScope` opens when no
        # HTTP request opened one for a batch.
        with budget_scope(self.engine.config.max_response_nodes):
            return await self._execute(query, variables, session)

    async def _execute(
        self, query: _DirectQuery, variables: Mapping[str, Any] | None, session: Session
    ) -> ExecutionResult | None:
        budget = current_budget.get()  # None: no response budget (`max_response_nodes`)
        if query.schema is not self.engine.schema(session.role)._schema:
            return None
        if variables is not None and not isinstance(variables, Mapping):
            return None
        if variables and any(name not in query.declared for name in variables):
            return None
        coerced = get_variable_values(
            query.schema, query.operation.variable_definitions or (), dict(variables or {})
        )
        if isinstance(coerced, list):
            return None
        fields: list[CompiledField] = []
        for response_key in query.response_keys:
            compiled = self.engine.compiled.cached(
                query.operation, query.fragments, query.schema, response_key, coerced, session
            )
            if compiled is None:
                return None
            fields.append(compiled)
        try:
            values = [compiled.values(coerced.coerced, session) for compiled in fields]
        except Exception:  # the executor answers it, in its own words
            return None
        # Longest first: the others run beside it instead of delaying it.
        order = sorted(range(len(fields)), key=lambda index: -fields[index].seconds)
        answers = await asyncio.gather(
            *(
                fields[index].answer(self.engine.database, values[index], self.engine.catalog)
                for index in order
            ),
            return_exceptions=True,
        )
        texts: dict[int, str | None] = {}
        errors: list[EngineError] = []
        for index, answer in zip(order, answers, strict=True):
            if isinstance(answer, EngineError):
                errors.append(answer)
            elif isinstance(answer, BaseException):
                return None
            else:
                texts[index] = answer
        if not errors and budget is not None:
            try:
                for index, compiled in enumerate(fields):
                    compiled.charge(budget, texts[index])
            except EngineError as error:
                errors.append(error)
        if errors:
            return ExecutionResult(data=None, errors=[error.to_graphql() for error in errors])
        self.answered += 1
        data: dict[str, Any] = {}
        for index, response_key in enumerate(query.response_keys):
            text = texts[index]
            data[response_key] = None if text is None else orjson.Fragment(text)
        return ExecutionResult(data=data, errors=None)


__all__ = ["DirectKey", "DirectOperations", "record_compiled"]
