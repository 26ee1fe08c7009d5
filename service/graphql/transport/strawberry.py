"""The seam with Strawberry and graphql-core: every use of their internals lives here.

The engine builds graphql-core schemas itself (one per role) and runs them through
Strawberry, so Strawberry's HTTP view, WebSocket protocols and extensions (parser and
validation caches, limits) stay the transport. Joining the two needs a few overrides of
non-public hooks; they are all in this module and `transport/websocket.py`, and
`tests/test_strawberry_contract.py` checks each against the installed releases, failing
with a message that names the hook when a release moves it:

- `EngineSchema`: a `strawberry.Schema` whose graphql-core schema (`_schema`) is replaced
  by the engine's generated one (Strawberry requires a query type to initialise: the
  `_Placeholder`), and whose `process_errors` stays quiet (client errors are answered,
  not logged);
- `EngineExecutor`: a subclass of Strawberry's graphql-core execution context
  (`execute_field`, `complete_value`, `build_resolve_info`) that passes the engine's
  completed values through without walking them again;
- `RoleSchemas`: the object Strawberry's view takes as its schema, dispatching each
  request to the schema of the caller's role;
- `EngineValidationRules`: an extension that sets the operation's validation rules and
  parser token limit (`execution_context.validation_rules`, `parse_options`);
- `EngineValidationCache`: validation results kept per parsed document by identity
  (Strawberry's `validate_document`, which adds its own rules to ours).
- `UndeclaredVariables`: an extension that refuses variables the operation does not
  declare, as Hasura does, once the document is validated (it reads
  `execution_context.pre_execution_errors`, `graphql_document`, `operation_name` and
  `variables`, and sets `pre_execution_errors`);
- `ResponseBudgetScope`: an extension that opens each operation's response budget
  (`sql.budget`) when no HTTP request opened one for a whole batch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import strawberry
from graphql import GraphQLError, GraphQLSchema
from graphql import print_schema as print_graphql_schema
from graphql.execution import Executor
from graphql.validation import ASTValidationRule
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, validate_document
from strawberry.types import ExecutionResult

from service.graphql.catalog.metadata import ADMIN_ROLE
from service.graphql.errors import validation_failed
from service.graphql.execution.auth import ADMIN_SESSION
from service.graphql.execution.batching import RowBatching
from service.graphql.execution.context import RequestContext
from service.graphql.execution.limits import undeclared_variables
from service.graphql.execution.namespace import is_namespace
from service.graphql.execution.resolvers import Completed, SharedResult
from service.graphql.execution.transaction import MutationTransaction
from service.graphql.sql.budget import budget_scope

if TYPE_CHECKING:
    from service.graphql.execution.engine import GraphQLEngine


class EngineExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core executor that trusts the engine's completed values.

    Root resolvers return `Completed` results already shaped per response key and
    serialised; walking them again field by field would only cost time. Resolvers also
    get graphql-core's full `VariableValues` (Strawberry passes only the coerced dict),
    which the planner needs to coerce nested arguments and keep `order_by` key order.
    """

    build_resolve_info = Executor.build_resolve_info

    def execute_field(
        self,
        parent_type: Any,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        if (
            type(source) is SharedResult
            and source.error is None
            # A namespace field passes the event down to the root field inside it.
            and not is_namespace(parent_type.fields[field_details_list[0].node.name.value])
        ):
            # A subscription event the live-query engine resolved once for a whole cohort:
            # the value is final. Skipping the field's argument coercion matters, as it
            # would otherwise run for every subscriber at every change.
            value = source.value
            if type(value) is Completed:
                return value.value
            if value is None:
                return None
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def complete_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        if type(result) is Completed:
            return result.value
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )


@strawberry.type(name="query_root")
class _Placeholder:
    """Strawberry needs a query type to initialise; the engine's schema replaces it."""

    placeholder: str = ""


class EngineSchema(strawberry.Schema):
    """A Strawberry schema whose graphql-core schema is the engine's generated one."""

    def __init__(
        self, graphql_schema: GraphQLSchema, *, extensions: list[Any], config: StrawberryConfig
    ) -> None:
        super().__init__(
            query=_Placeholder,
            extensions=extensions,
            config=config,
            execution_context_class=EngineExecutor,
        )
        self._schema = graphql_schema
        graphql_schema._strawberry_schema = self  # type: ignore[attr-defined]

    def as_str(self) -> str:
        return print_graphql_schema(self._schema)

    __str__ = as_str

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # Client errors are answered in the response; only unexpected ones are logged
        # (see errors.format_error).
        return None


class RoleSchemas:
    """The schema object Strawberry's view talks to: picks the caller's role schema.

    Implements the parts of Strawberry's `BaseSchema` the view and the WebSocket
    handlers use (`execute`, `subscribe`, `stream`, `config`), delegating to the schema
    of `context.session.role`. A request that failed authentication gets its error.
    """

    def __init__(self, engine: GraphQLEngine) -> None:
        self.engine = engine

    @property
    def config(self) -> StrawberryConfig:
        return self.engine.strawberry_config

    def _schema(self, context: Any) -> EngineSchema | None:
        if isinstance(context, RequestContext) and context.auth_error is not None:
            return None
        session = context.session if isinstance(context, RequestContext) else ADMIN_SESSION
        return self.engine.schema(session.role)

    @staticmethod
    def _denied(context: RequestContext) -> ExecutionResult:
        error = context.auth_error
        assert error is not None
        return ExecutionResult(
            data=None,
            errors=[GraphQLError(error.message, extensions={"code": error.code, "path": "$"})],
        )

    @classmethod
    def _denied_stream(cls, context: RequestContext) -> AsyncIterator[ExecutionResult]:
        """The authentication error as the one result of a subscription or stream."""
        denied = cls._denied(context)

        async def refuse() -> AsyncIterator[ExecutionResult]:
            yield denied

        return refuse()

    async def execute(
        self,
        query: str | None,
        variable_values: Any = None,
        context_value: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> ExecutionResult:
        schema = self._schema(context_value)
        if schema is None:
            return self._denied(context_value)
        direct = self.engine.direct
        if (
            direct is None
            or query is None
            or not isinstance(context_value, RequestContext)
            or not context_value.json_text
        ):
            return await schema.execute(query, variable_values, context_value, *args, **kwargs)
        # Strawberry's view passes operation_name by name; in-process callers by position
        # (after root_value).
        operation_name = kwargs.get("operation_name", args[1] if len(args) > 1 else None)
        key = (query, operation_name, context_value.session.role)
        answer = await direct.execute(key, variable_values, context_value.session)
        if answer is not None:
            return answer
        with direct.recording() as answered:
            result = await schema.execute(query, variable_values, context_value, *args, **kwargs)
        direct.remember(key, answered, result)
        return result

    async def subscribe(
        self,
        query: str | None,
        variable_values: Any = None,
        context_value: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        schema = self._schema(context_value)
        if schema is None:
            return self._denied_stream(context_value)
        return await schema.subscribe(query, variable_values, context_value, *args, **kwargs)

    async def stream(
        self,
        query: str | None,
        variable_values: Any = None,
        context_value: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        schema = self._schema(context_value)
        if schema is None:
            return self._denied_stream(context_value)
        return await schema.stream(query, variable_values, context_value, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine.schema(ADMIN_ROLE), name)


class EngineValidationRules(SchemaExtension):
    """Use the engine's rules (built once) for every operation."""

    def __init__(self, rules: tuple[type[ASTValidationRule], ...], max_tokens: int) -> None:
        super().__init__()
        self.rules = rules
        self.max_tokens = max_tokens

    def on_operation(self) -> Iterator[None]:
        self.execution_context.validation_rules = self.rules
        self.execution_context.parse_options["max_tokens"] = self.max_tokens
        yield


class ValidatedDocuments:
    """Validation results by (schema, parsed document) identity, least recently used out.

    Strawberry's `ValidationCache` keys its LRU by the document's hash, which walks the
    whole syntax tree on every request (about 0.2 ms for a console query). The parser
    cache hands every request with the same text the same document object, so its
    identity is a key as good and free.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._results: OrderedDict[tuple[int, int], tuple[Any, Any, list[GraphQLError]]] = (
            OrderedDict()
        )

    def validate(
        self,
        schema: GraphQLSchema,
        document: Any,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        key = (id(schema), id(document))
        found = self._results.get(key)
        if found is not None and found[0] is schema and found[1] is document:
            self._results.move_to_end(key)
            return found[2]
        errors = validate_document(schema, document, rules)
        self._results[key] = (schema, document, errors)
        if len(self._results) > self.size:
            self._results.popitem(last=False)
        return errors


class EngineValidationCache(SchemaExtension):
    """Validate each parsed document once per schema (see `ValidatedDocuments`)."""

    def __init__(self, documents: ValidatedDocuments) -> None:
        super().__init__()
        self.documents = documents

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.pre_execution_errors = self.documents.validate(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        yield


class UndeclaredVariables(SchemaExtension):
    """Refuse variables the operation does not declare (`unexpected variables in
    variableValues: y`, validation-failed at `$`), as Hasura does.

    Listed after `EngineValidationCache`, whose `on_validate` has set the document's validation
    errors by then: a document that is invalid keeps its own error.
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if not context.pre_execution_errors and context.graphql_document is not None:
            names = undeclared_variables(
                context.graphql_document, context.operation_name, context.variables
            )
            if names:
                message = f"unexpected variables in variableValues: {', '.join(names)}"
                context.pre_execution_errors = [validation_failed(message).to_graphql()]
        yield


class ResponseBudgetScope(SchemaExtension):
    """Open the operation's response budget, unless its HTTP request opened one."""

    def __init__(self, limit: int | None) -> None:
        super().__init__()
        self.limit = limit

    def on_operation(self) -> Iterator[None]:
        with budget_scope(self.limit):
            yield


def engine_extensions(
    rules: tuple[type[ASTValidationRule], ...],
    *,
    max_tokens: int,
    cache_size: int,
    max_response_nodes: int | None = None,
) -> list[Any]:
    """Extension factories for a schema: limits, then the parser and validation caches,
    then the check of variables (which needs the validation's outcome)."""
    validated = ValidatedDocuments(cache_size)
    return [
        lambda: EngineValidationRules(rules, max_tokens),
        lambda: ResponseBudgetScope(max_response_nodes),
        lambda: ParserCache(maxsize=cache_size),
        lambda: EngineValidationCache(validated),
        UndeclaredVariables,
        MutationTransaction,
        RowBatching,
    ]
