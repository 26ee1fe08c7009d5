"""One transaction per request for every mutation field in it, as in Hasura.

`MutationTransaction` (a Strawberry extension) opens a `MutationScope` per execution;
mutation resolvers take their connection from `mutation_connection(info)`. The
transaction is opened on the first mutation field and committed only when the whole
execution succeeded; otherwise it is rolled back. The fields use the connection one at a
time, in the order graphql-core starts them: root mutation fields run one after another
anyway, and fields inside a namespace (started together) then run in document order too.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator

from graphql import GraphQLResolveInfo
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction
from strawberry.extensions import SchemaExtension

from service.graphql.config import EngineDatabase


class MutationScope:
    """The transaction shared by the mutation fields of one request (opened lazily)."""

    def __init__(self, database: EngineDatabase) -> None:
        self.database = database
        self.conn: AsyncConnection | None = None
        self.transaction: AsyncTransaction | None = None
        self.turn = asyncio.Lock()
        """Held by the field using the connection (asyncio locks are fair: FIFO)."""

    async def connection(self) -> AsyncConnection:
        if self.conn is None:
            self.conn = await self.database.connect()
            self.transaction = await self.conn.begin()
        return self.conn

    async def finish(self, commit: bool) -> None:
        if self.conn is None or self.transaction is None:
            return
        try:
            if commit:
                await self.transaction.commit()
            else:
                await self.transaction.rollback()
        finally:
            await self.conn.close()
            self.conn = self.transaction = None


_current_scope: contextvars.ContextVar[MutationScope | None] = contextvars.ContextVar(
    "mutation_scope", default=None
)


class MutationTransaction(SchemaExtension):
    """Runs every mutation field of an execution in one transaction."""

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        context = self.execution_context.context
        engine = getattr(context, "engine", None)
        if engine is None:
            yield
            return
        scope = MutationScope(engine.database)
        token = _current_scope.set(scope)
        try:
            yield
        finally:
            _current_scope.reset(token)
            result = self.execution_context.result
            errors = getattr(result, "errors", None) or self.execution_context.pre_execution_errors
            await scope.finish(commit=result is not None and not errors)


@contextlib.asynccontextmanager
async def mutation_connection(info: GraphQLResolveInfo) -> AsyncIterator[AsyncConnection]:
    """The request's mutation transaction, or a transaction of this field alone."""
    scope = _current_scope.get()
    if scope is not None:
        async with scope.turn:
            yield await scope.connection()
        return
    # Executed without the extension (e.g. a bare graphql-core call): own transaction.
    own = MutationScope(info.context.engine.database)
    conn = await own.connection()
    try:
        yield conn
    except BaseException:
        await own.finish(commit=False)
        raise
    await own.finish(commit=True)
