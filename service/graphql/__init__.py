"""A Hasura-compatible GraphQL engine over SQLAlchemy tables, on PostgreSQL and SQLite.

It stands on its own: it is built from an `EngineConfig` (the catalog of tables, limits,
authentication) and an `EngineDatabase`, and imports nothing from the app around it.
Its layers, in the order a request goes through them (see docs/architecture.md):

- `catalog/`: Hasura metadata joined with the tables (`metadata`), role permissions,
  scalars and computed fields;
- `schema/`: the GraphQL types and root fields per role (`builder`, `mutation_types`);
- `plan`: a selection set as a plan of row and aggregate levels (the engine's IR);
- `sql/`: plans and arguments as SQL (`filters`, `ordering`, `aggregates`, `selects`,
  `mutations`), one `dialect` object where PostgreSQL and SQLite differ, database errors;
- `execution/`: the engine, the request context, authentication, limits, resolvers and
  the per-request mutation transaction;
- `transport/`: Strawberry's HTTP view and both WebSocket protocols, and every override
  of Strawberry or graphql-core internals (`strawberry`).

`errors` (Hasura's error shape) and `config` are shared by all layers.
"""

from service.graphql.catalog.metadata import Catalog, MetadataError, load_catalog
from service.graphql.config import EngineConfig, EngineDatabase
from service.graphql.execution.auth import AuthError, Session
from service.graphql.execution.context import RequestContext
from service.graphql.execution.engine import GraphQLEngine
from service.graphql.transport.http import GraphQLView

__all__ = [
    "AuthError",
    "Catalog",
    "EngineConfig",
    "EngineDatabase",
    "GraphQLEngine",
    "GraphQLView",
    "MetadataError",
    "RequestContext",
    "Session",
    "load_catalog",
]
