"""The Hasura-compatible GraphQL engine over the observability tables.

Modules, by concept: `metadata` (hasura/ + models → catalog), `permissions`, `scalars`,
`schema` (types per role), `plan` (selection → plan), `filters` (`compile_where`),
`ordering`, `aggregates`, `computed`, `loaders` (one statement per plan level),
`resolvers`, `mutations`, `auth`, `errors`, `dberrors`, `limits`, `engine`, `view`.
"""

from service.graphql.execution.auth import Session
from service.graphql.execution.engine import GraphQLEngine, RequestContext

__all__ = ["GraphQLEngine", "RequestContext", "Session"]
