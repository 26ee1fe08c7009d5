"""What the engine is given: its configuration and the database it reads.

The engine knows nothing of the app that embeds it (settings, HTTP, CLI): it is built
from an `EngineConfig` (the catalog of tables it serves, request limits, authentication,
numeric stringification) and an object that satisfies `EngineDatabase`. The service
builds both from its `Settings` in `service.app`; a test or another host builds them
directly:

    catalog = load_catalog(Path("hasura/metadata"), models.metadata)
    engine = GraphQLEngine(EngineConfig(catalog=catalog), database)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from service.graphql.catalog.metadata import Catalog
from service.graphql.catalog.naming import CUSTOMIZATION_KEYS


class EngineDatabase(Protocol):
    """The database interface the engine needs: a dialect name and connections.

    `dialect` is `"postgresql"` or `"sqlite"` (SQLite connections must have the
    functions of `service.graphql.sql.sqlite_functions` registered). `read()` yields a
    connection in autocommit for queries; `connect()` returns a connection on which the
    engine begins, commits or rolls back a mutation's transaction and then closes it.
    """

    @property
    def dialect(self) -> str: ...

    def read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]: ...

    async def connect(self) -> AsyncConnection: ...


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Everything the engine's behaviour depends on besides the database.

    Limits are answered with Hasura-style `validation-failed` errors; the defaults are
    the service's (see docs/configuration.md for what each means). The customization
    fields override the catalog's (`customized_catalog()`).
    """

    catalog: Catalog
    """The tables served, with relationships, computed fields and permissions."""

    admin_secret: str | None = None
    """`x-hasura-admin-secret`; None makes every request admin, as in Hasura."""
    unauthorized_role: str | None = None
    jwt_secret: str | None = None
    """Hasura's JSON form: `{"type": "HS256", "key": "..."}`."""

    stringify_numeric_types: bool = False

    # Source customization over the metadata's (`databases.yaml`'s `customization`):
    # None keeps the metadata's value, "" removes it. See docs/graphql-api.md.
    namespace: str | None = None
    """`root_fields.namespace`: every root field under one field of this name."""
    root_field_prefix: str | None = None
    root_field_suffix: str | None = None
    type_name_prefix: str | None = None
    type_name_suffix: str | None = None
    naming_convention: str | None = None
    """`hasura-default` or `graphql-default`."""
    apollo_federation: bool = False
    """Serve an Apollo Federation 2 subgraph (`_service`, `_entities`): tables with
    `apollo_federation_config: {enable: v1}` become entities."""

    max_query_depth: int = 12
    max_aliases: int = 200
    max_tokens: int = 20_000
    max_rows: int = 50_000
    max_response_nodes: int | None = 100_000
    """Row objects one HTTP request (a batch counts once) or one other operation may
    produce, nested relationships expanded (`sql.budget`); None: unbounded."""
    max_batch_operations: int = 20
    max_request_bytes: int = 1024 * 1024
    """Largest GraphQL request body over HTTP (larger: 413) or WebSocket message."""
    max_json_depth: int = 64
    """Deepest nesting of arrays and objects in a request body (deeper: parse-failed)."""
    parser_cache_size: int = 256

    json_in_database: bool = True
    """Build each root field's response JSON in the database, in one statement
    (`sql/documents.py`); False: one statement per level, rows shaped in Python
    (`sql/selects.py`), kept for what one statement cannot express and for comparison."""
    compiled_cache_size: int = 512
    """Root fields kept compiled per (document, operation, role, variable shape); 0
    compiles every request anew."""
    direct_execution: bool = True
    """Answer a query whose every root field was answered by a cached compiled statement
    straight from those statements next time, without the GraphQL executor
    (`execution/direct.py`); False: always through the executor (for comparison)."""
    compile_after: int = 2
    """Requests of a root field (per document, operation, role and variable shape) answered
    row by row before it is compiled (1: compile at the first); live queries compile at
    once."""

    websocket_keepalive: float = 5.0
    websocket_connection_init_timeout: float = 3.0
    websocket_max_operations: int = 200

    def customized_catalog(self) -> Catalog:
        """The catalog with this configuration's customization over the metadata's.

        Raises `CustomizationError` naming a value Hasura would refuse.
        """
        return self.catalog.customized(**{key: getattr(self, key) for key in CUSTOMIZATION_KEYS})
