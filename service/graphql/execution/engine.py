"""The engine: per-role schemas over one database, and the entry points others call.

`GraphQLEngine(config, database)` serves the catalog of `config` (see
`service.graphql.config`): one schema per role (built on first use, cached), the request
limits and authentication. Its public surface:

- `await engine.execute(query, variables, operation_name, session)` runs an operation
  as `session`'s role and returns a Strawberry `ExecutionResult`; `engine.format(result)`
  gives Hasura's JSON body. The live-query engine re-executes operations through this.
- `engine.tables_read(query, variables, operation_name, session)` names the tables an
  operation reads (root tables, relationship targets, filter relationships, computed
  field sources), for change-driven re-execution.
- `engine.subscription_events(info, args)`: the async iterator that drives each
  subscription root field (default: one event, i.e. one result); the subscription
  engine replaces it.
- `engine.schemas`: the role dispatcher a transport serves (see
  `service.graphql.transport.http.GraphQLView(engine)`).

Schemas are built as graphql-core schemas (the type catalogue is generated) and wrapped in
a Strawberry `Schema` (`service.graphql.transport.strawberry`), so Strawberry's ASGI view,
WebSocket protocols and extensions (parser/validation caches, limits) stay the transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from graphql import GraphQLResolveInfo, get_named_type, parse
from graphql.execution.values import get_variable_values
from graphql.language import DocumentNode, FragmentDefinitionNode, OperationDefinitionNode
from graphql.validation import validate
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult

from service.graphql.catalog.metadata import ADMIN_ROLE, Catalog
from service.graphql.catalog.naming import CUSTOMIZATION_KEYS
from service.graphql.catalog.permissions import RolePermissions
from service.graphql.config import EngineConfig, EngineDatabase
from service.graphql.errors import format_errors, validation_failed
from service.graphql.execution.auth import ADMIN_SESSION, Authenticator, Session
from service.graphql.execution.compiled import CompiledOperations
from service.graphql.execution.context import RequestContext
from service.graphql.execution.direct import DirectOperations
from service.graphql.execution.limits import validation_rules
from service.graphql.execution.namespace import is_namespace
from service.graphql.execution.reads import root_tables
from service.graphql.execution.resolvers import root_path
from service.graphql.plan import Planner
from service.graphql.schema.builder import build_schema
from service.graphql.schema.names import name_map
from service.graphql.sql.budget import current_budget
from service.graphql.sql.compiling import CompileContext
from service.graphql.sql.dialect import dialect_named
from service.graphql.transport.strawberry import EngineSchema, RoleSchemas, engine_extensions


async def _single_event(info: GraphQLResolveInfo, args: Mapping[str, Any]) -> AsyncIterator[Any]:
    yield None


class GraphQLEngine:
    """The Hasura-compatible GraphQL engine over the observability database."""

    def __init__(self, config: EngineConfig, database: EngineDatabase) -> None:
        self.config = config
        self.database = database
        self.catalog: Catalog = config.customized_catalog()
        self.dialect = dialect_named(database.dialect)
        self.authenticator = Authenticator(
            admin_secret=config.admin_secret,
            unauthorized_role=config.unauthorized_role,
            jwt_secret=config.jwt_secret,
        )
        self.strawberry_config = StrawberryConfig(
            auto_camel_case=False,
            batching_config={"max_operations": config.max_batch_operations},
        )
        self.validation_rules = validation_rules(
            max_depth=config.max_query_depth, max_aliases=config.max_aliases
        )
        self.extensions: list[Any] = engine_extensions(
            self.validation_rules,
            max_tokens=config.max_tokens,
            cache_size=config.parser_cache_size,
            max_response_nodes=config.max_response_nodes,
        )
        self._schemas: dict[str, EngineSchema] = {}
        self._permissions: dict[str, RolePermissions] = {}
        self._name_maps: dict[str, dict[str, Any]] = {}
        self.schemas = RoleSchemas(self)
        self.subscription_events = _single_event
        """Events that (re-)run a subscription root field: `(info, args) -> AsyncIterator`."""
        self.compiled = CompiledOperations(self, config.compiled_cache_size, config.compile_after)
        """Root fields compiled once per (document, operation, role, variable shape)."""
        self.direct = (
            DirectOperations(self, config.parser_cache_size) if config.direct_execution else None
        )
        """Queries answered from their compiled statements without the executor."""

    # --- schemas ------------------------------------------------------------------------------

    def permissions(self, role: str) -> RolePermissions:
        """What `role` may read (built once per role)."""
        if role not in self._permissions:
            self._permissions[role] = RolePermissions(self.catalog, role)
        return self._permissions[role]

    def schema(self, role: str) -> EngineSchema:
        """The Strawberry schema of `role` (built on first use)."""
        if role not in self._schemas:
            graphql_schema = build_schema(
                self.catalog, self.permissions(role), federation=self.config.apollo_federation
            )
            self._schemas[role] = EngineSchema(
                graphql_schema, extensions=self.extensions, config=self.strawberry_config
            )
        return self._schemas[role]

    def name_map(self, role: str) -> dict[str, Any]:
        """The names `role`'s schema serves, by Hasura's default names (JSON; see
        `service.graphql.schema.names`): how a client written in the default names, like
        the web console, adapts its operations to any customization."""
        if role not in self._name_maps:
            default = self.catalog.customized(**dict.fromkeys(CUSTOMIZATION_KEYS, ""))
            default_schema = build_schema(default, RolePermissions(default, role))
            self._name_maps[role] = name_map(
                default_schema, self.schema(role)._schema, self.catalog.naming.namespace
            )
        return self._name_maps[role]

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
            dialect=self.dialect,
            session_variables=session.variables,
            stringify_numeric=self.config.stringify_numeric_types,
            max_rows=self.config.max_rows,
            budget=current_budget.get(),
        )

    # --- execution -------------------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str], *, cross_site: bool = False) -> Session:
        """The session for request headers (`cross_site`: a browser request from a page of
        another origin, see `Authenticator.authenticate`); raises `AuthError`."""
        return self.authenticator.authenticate(headers, cross_site=cross_site)

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
        """Run one operation as `session`'s role (admin when omitted).

        For in-process callers: `result.data` holds Python values (a transport sends the
        JSON the database built as it is; see `RequestContext.json_text`).
        """
        context = context or self.context(session)
        context.json_text = False
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
        for nodes in planner.collect(root_type, [operation]).values():  # type: ignore[list-item]
            tables |= self._fields_tables(planner, ctx, root_type, nodes, "$")
        return frozenset(tables)

    def _fields_tables(
        self, planner: Planner, ctx: CompileContext, parent: Any, nodes: list[Any], path: str
    ) -> set[str]:
        name = nodes[0].name.value
        if name.startswith("__"):
            return set()
        field_def = parent.fields[name]
        here = f"{path}.selectionSet.{name}"
        if is_namespace(field_def):
            inner = get_named_type(field_def.type)
            tables: set[str] = set()
            for inner_nodes in planner.collect(inner, nodes).values():
                tables |= self._fields_tables(planner, ctx, inner, inner_nodes, here)
            return tables
        return root_tables(planner, ctx, field_def, nodes, here)

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
        path = root_path(self, info)
        return frozenset(root_tables(planner, ctx, field_def, info.field_nodes, path))
