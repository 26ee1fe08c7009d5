"""The engine: per-role schemas over one database, and the entry points others call.

`GraphQLEngine` owns the catalog (from `hasura/` and the models), one schema per role
(built on first use, cached), the database and the request limits. Its public surface:

- `await engine.execute(query, variables, operation_name, session)` runs an operation
  as `session`'s role and returns a Strawberry `ExecutionResult`; `engine.format(result)`
  gives Hasura's JSON body. The live-query engine re-executes operations through this.
- `engine.tables_read(query, variables, operation_name, session)` names the tables an
  operation reads (root tables, relationship targets, filter relationships, computed
  field sources), for change-driven re-execution.
- `engine.subscription_events(info, args)`: the async iterator that drives each
  subscription root field (default: one event, i.e. one result); the subscription
  engine replaces it.
- `engine.view()` / `engine.schemas`: the Strawberry ASGI view and the role dispatcher.

Schemas are built as graphql-core schemas (the type catalogue is generated) and wrapped in
a Strawberry `Schema`, so Strawberry's ASGI view, WebSocket protocols and extensions
(parser/validation caches, limits) stay the transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLResolveInfo, GraphQLSchema, get_named_type, parse
from graphql import print_schema as print_graphql_schema
from graphql.execution import Executor
from graphql.execution.values import get_variable_values
from graphql.language import DocumentNode, FragmentDefinitionNode, OperationDefinitionNode
from graphql.validation import validate
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionResult

from detector.observability.models import metadata as models_metadata
from service.graphql.catalog.metadata import ADMIN_ROLE, Catalog, load_catalog
from service.graphql.catalog.permissions import RolePermissions
from service.graphql.errors import format_errors, validation_failed
from service.graphql.execution.auth import ADMIN_SESSION, Authenticator, AuthError, Session
from service.graphql.execution.limits import engine_extensions, validation_rules
from service.graphql.execution.resolvers import Completed, SharedResult
from service.graphql.plan import (
    AggregatePlan,
    ArrayAggregateOut,
    ArrayRelationshipOut,
    ComputedOut,
    NodesOut,
    ObjectRelationshipOut,
    Planner,
    RowPlan,
)
from service.graphql.schema.builder import build_schema
from service.graphql.sql.compiling import CompileContext
from service.graphql.sql.filters import referenced_tables
from service.settings import Settings
from service.storage.database import Database


@dataclass
class RequestContext:
    """What resolvers know about the request: the engine and the caller's session.

    One per HTTP request and one per WebSocket connection (`connection_params` holds
    the connection_init payload). Nothing per execution lives here.
    """

    engine: GraphQLEngine
    session: Session = ADMIN_SESSION
    auth_error: AuthError | None = None
    request: Any = None
    response: Any = None
    connection_params: Mapping[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Free room for transports built on this context (e.g. the subscription engine)."""


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
        if type(source) is SharedResult and source.error is None:
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
        return await schema.execute(query, variable_values, context_value, *args, **kwargs)

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


async def _single_event(info: GraphQLResolveInfo, args: Mapping[str, Any]) -> AsyncIterator[Any]:
    yield None


class GraphQLEngine:
    """The Hasura-compatible GraphQL engine over the observability database."""

    def __init__(
        self, settings: Settings, database: Database, catalog: Catalog | None = None
    ) -> None:
        self.settings = settings
        self.database = database
        self.catalog = catalog or load_catalog(settings.hasura_metadata_dir, models_metadata)
        self.authenticator = Authenticator(
            admin_secret=settings.admin_secret,
            unauthorized_role=settings.unauthorized_role,
            jwt_secret=settings.jwt_secret,
        )
        self.strawberry_config = StrawberryConfig(
            auto_camel_case=False,
            batching_config={"max_operations": settings.max_batch_operations},
        )
        self.validation_rules = validation_rules(
            max_depth=settings.max_query_depth, max_aliases=settings.max_aliases
        )
        self.extensions: list[Any] = engine_extensions(settings, self.validation_rules)
        self._schemas: dict[str, EngineSchema] = {}
        self._permissions: dict[str, RolePermissions] = {}
        self.schemas = RoleSchemas(self)
        self.subscription_events = _single_event
        """Events that (re-)run a subscription root field: `(info, args) -> AsyncIterator`."""

    # --- schemas ------------------------------------------------------------------------------

    def permissions(self, role: str) -> RolePermissions:
        """What `role` may read (built once per role)."""
        if role not in self._permissions:
            self._permissions[role] = RolePermissions(self.catalog, role)
        return self._permissions[role]

    def schema(self, role: str) -> EngineSchema:
        """The Strawberry schema of `role` (built on first use)."""
        if role not in self._schemas:
            graphql_schema = build_schema(self.catalog, self.permissions(role))
            self._schemas[role] = EngineSchema(
                graphql_schema, extensions=self.extensions, config=self.strawberry_config
            )
        return self._schemas[role]

    def warm_up(self) -> None:
        """Build the schema of admin and of every role in the metadata now."""
        for role in (ADMIN_ROLE, *sorted(self.catalog.roles)):
            self.schema(role)

    def sdl(self, role: str = ADMIN_ROLE) -> str:
        """The schema of `role` in SDL."""
        return self.schema(role).as_str()

    def compile_context(self, session: Session) -> CompileContext:
        return CompileContext(
            catalog=self.catalog,
            permissions=self.permissions(session.role),
            dialect=self.database.dialect,
            session_variables=session.variables,
            stringify_numeric=self.settings.stringify_numeric_types,
            max_rows=self.settings.max_rows,
        )

    # --- execution -------------------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str]) -> Session:
        """The session for request headers; raises `AuthError`."""
        return self.authenticator.authenticate(headers)

    def context(self, session: Session | None = None, **kwargs: Any) -> RequestContext:
        return RequestContext(engine=self, session=session or ADMIN_SESSION, **kwargs)

    async def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        session: Session | None = None,
        context: RequestContext | None = None,
    ) -> ExecutionResult:
        """Run one operation as `session`'s role (admin when omitted)."""
        context = context or self.context(session)
        return await self.schemas.execute(
            query, dict(variables) if variables else None, context, None, operation_name
        )

    def format(self, result: ExecutionResult | Any) -> dict[str, Any]:
        """Hasura's response body for a result: `{"data"}` or `{"errors"}` (never both)."""
        if result.errors:
            return {"errors": format_errors(result.errors)}
        body: dict[str, Any] = {"data": result.data}
        return body

    def tables_read(
        self,
        query: str | DocumentNode,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        session: Session | None = None,
    ) -> frozenset[str]:
        """Names of the tables an operation reads.

        Raises `EngineError` (validation-failed) when the operation is not valid for the
        role. Variables matter: a `where` passed as a variable may filter through
        relationships.
        """
        session = session or ADMIN_SESSION
        schema = self.schema(session.role)._schema
        document = parse(query) if isinstance(query, str) else query
        errors = validate(schema, document, self.validation_rules)
        if errors:
            raise validation_failed(errors[0].message)
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is not None:
            operations = [o for o in operations if o.name and o.name.value == operation_name]
        if len(operations) != 1:
            raise validation_failed("cannot tell which operation to run: give operationName")
        operation = operations[0]
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        coerced = get_variable_values(
            schema, operation.variable_definitions or (), dict(variables or {})
        )
        if isinstance(coerced, list):
            raise validation_failed(coerced[0].message)
        ctx = self.compile_context(session)
        planner = Planner(schema, fragments, coerced, ctx)
        root_type = schema.get_root_type(operation.operation)
        assert root_type is not None
        tables: set[str] = set()
        # collect() walks the selection sets of the nodes it is given; so does an operation.
        for key, nodes in planner.collect(root_type, [operation]).items():  # type: ignore[list-item]
            node = nodes[0]
            if node.name.value.startswith("__"):
                continue
            field_def = root_type.fields[node.name.value]
            tables |= _root_tables(planner, ctx, field_def, nodes, key)
        return frozenset(tables)

    def field_tables(
        self, info: GraphQLResolveInfo, session: Session | None = None
    ) -> frozenset[str]:
        """Names of the tables the root field being resolved reads (as `tables_read`).

        For a resolver or subscription hook that already has graphql-core's resolve info
        (the operation is validated and its variables coerced). `session` defaults to
        the one in `info.context`.
        """
        if session is None:
            context = info.context
            session = context.session if isinstance(context, RequestContext) else ADMIN_SESSION
        ctx = self.compile_context(session)
        planner = Planner(info.schema, info.fragments, info.variable_values, ctx)
        field_def = info.parent_type.fields[info.field_name]
        return frozenset(_root_tables(planner, ctx, field_def, info.field_nodes, info.path.key))

    # --- transport -------------------------------------------------------------------------------

    def view(self, **options: Any) -> Any:
        """A Strawberry ASGI view serving this engine (HTTP, WebSocket, GraphiQL)."""
        from service.graphql.transport.http import GraphQLView

        return GraphQLView(self, **options)


def _root_tables(
    planner: Planner, ctx: CompileContext, field_def: Any, nodes: list[Any], key: str
) -> set[str]:
    table_name = (field_def.extensions or {}).get("table")
    table = ctx.catalog.tables.get(table_name) if table_name else None
    if table is None:
        return set()
    tables = {table.name}
    args = planner.arguments(field_def, nodes[0])
    tables |= referenced_tables(ctx, table, args.get("where"))
    output = get_named_type(field_def.type)
    path = f"$.selectionSet.{key}"
    if output.name == f"{table.type_name}_aggregate":
        tables |= _aggregate_tables(ctx, planner.aggregate_plan(output, table, nodes, path))
    elif output.name == table.type_name:
        tables |= _plan_tables(ctx, planner.row_plan(output, table, nodes, path))
    return tables


def _plan_tables(ctx: CompileContext, plan: RowPlan) -> set[str]:
    tables = {plan.table.name}
    for output in plan.outputs:
        if isinstance(output, ComputedOut):
            tables.update(output.computed.function.reads)
        elif isinstance(output, ObjectRelationshipOut):
            tables |= _plan_tables(ctx, output.plan)
        elif isinstance(output, ArrayRelationshipOut):
            tables |= _plan_tables(ctx, output.plan)
            tables |= referenced_tables(ctx, output.plan.table, output.args.where)
        elif isinstance(output, ArrayAggregateOut):
            tables |= _aggregate_tables(ctx, output.plan)
            tables |= referenced_tables(ctx, output.plan.table, output.args.where)
    return tables


def _aggregate_tables(ctx: CompileContext, plan: AggregatePlan) -> set[str]:
    tables = {plan.table.name}
    for output in plan.outputs:
        if isinstance(output, NodesOut):
            tables |= _plan_tables(ctx, output.plan)
    return tables
