"""The two GraphQL-over-WebSocket protocols, as Hasura speaks them.

Strawberry implements both protocols; these subclasses change what Hasura does
differently, so a client written for Hasura sees the same frames:

Both protocols
- frames carry Hasura's response shape: `{"data": …}` or `{"errors": [{"message",
  "extensions": {"path", "code"}}]}`, also inside `error` frames;
- queries and mutations run over the socket too (one result, then `complete`);
- an invalid operation (syntax, validation, a bad stream cursor) is answered with an
  `error` frame, never by closing the socket;
- a per-connection limit on running operations (`websocket_max_operations`).

`graphql-transport-ws` (the graphql-ws library's protocol) keeps its close codes: 4400
for a malformed message (non-object JSON, a `subscribe` without a string query …), 4401
before `connection_ack`, 4403 when authentication fails, 4408 on the init timeout,
4409 for a duplicate id, 4429 for a second `connection_init`.

`graphql-ws` (legacy, Apollo's subscriptions-transport-ws), used when the client asks
for it or names no subprotocol:
- a message that is not JSON, not an object or of an unknown type gets
  `connection_error` ("parsing ClientMessage failed: …"); the socket stays open;
- failed authentication gets `connection_error` with the reason, and every later
  `start` an error ("cannot start as connection_init failed with : …") and `complete`;
- `start` before `connection_init`, or with an id already running, gets an error
  frame (code `start-failed`) and `complete`, like Hasura; the running operation goes on;
- `ka` right after `connection_ack` and every `websocket_keepalive` seconds;
- a socket that sends no `connection_init` within the timeout is closed with 4408.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import orjson
from graphql import GraphQLError
from starlette.websockets import WebSocketDisconnect
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from service.graphql.errors import VALIDATION_FAILED, format_errors, hasura_error
from service.graphql.execution.resolvers import DirectEvents, direct_events

if TYPE_CHECKING:
    from datetime import timedelta

    from service.graphql.execution.engine import GraphQLEngine

START_FAILED = "start-failed"


def limit_message(limit: int) -> str:
    return (
        f"too many operations on this connection: at most {limit} may run at once "
        "(EVENT_DETECTOR_WEBSOCKET_MAX_OPERATIONS)"
    )


async def send_text(websocket: Any, text: str) -> None:
    """Send an encoded frame on Strawberry's ASGI WebSocket adapter."""
    try:
        await websocket.ws.send_text(text)
    except WebSocketDisconnect as error:
        raise WebSocketDisconnected from error


def _payload_problem(payload: Any) -> str | None:
    """What is wrong with a subscribe/start payload, or None."""
    if not isinstance(payload, Mapping):
        return "'payload' must be an object"
    if not isinstance(payload.get("query"), str):
        return "'payload.query' must be a string"
    if payload.get("variables") is not None and not isinstance(payload["variables"], Mapping):
        return "'payload.variables' must be an object"
    name = payload.get("operationName")
    if name is not None and not isinstance(name, str):
        return "'payload.operationName' must be a string"
    return None


class GraphQLTransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """`graphql-transport-ws` with Hasura's frames."""

    @property
    def engine(self) -> GraphQLEngine:
        return self.view.engine  # type: ignore[attr-defined,no-any-return]

    async def handle_message(self, message: Any) -> None:
        if not isinstance(message, Mapping) or not isinstance(message.get("type"), str):
            await self.handle_invalid_message(
                "Invalid message received: expected an object with a string 'type'"
            )
            return
        await super().handle_message(cast(Any, message))

    async def handle_subscribe(self, message: Any) -> None:
        if not isinstance(message.get("id"), str) or not message["id"]:
            await self.handle_invalid_message("Invalid subscribe message: 'id' must be a string")
            return
        problem = _payload_problem(message.get("payload"))
        if problem is not None:
            await self.handle_invalid_message(f"Invalid subscribe message: {problem}")
            return
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and message["id"] not in self.operations
            and limit is not None
            and len(self.operations) >= limit
        ):
            await self.send_message(
                {
                    "id": message["id"],
                    "type": "error",
                    "payload": [hasura_error(limit_message(limit), VALIDATION_FAILED)],
                }
            )
            return
        await super().handle_subscribe(message)

    async def _send_result_stream(self, operation: Operation[Any, Any], result_source: Any) -> None:
        slot = DirectEvents()
        direct_events.set(slot)
        first = True
        try:
            async for result in result_source:
                if first and isinstance(result, PreExecutionError):
                    await self._send_errors(operation, result.errors or [])
                    return
                if not isinstance(result, ExecutionResult):
                    await self._send_errors(
                        operation,
                        [GraphQLError("incremental delivery (@defer/@stream) is not supported")],
                    )
                    return
                first = False
                await operation.send_operation_message(
                    {"id": operation.id, "type": "next", "payload": self.engine.format(result)}
                )
                if slot.available:
                    # A live subscription: later results arrive encoded once for their
                    # whole cohort, and go out as they are.
                    prefix = (
                        '{"id":' + orjson.dumps(operation.id).decode() + ',"type":"next","payload":'
                    )
                    async for event in slot.events:
                        if operation.completed:
                            return
                        try:
                            await send_text(self.websocket, prefix + event.payload + "}")
                        except WebSocketDisconnected:
                            operation.completed = True  # nothing more can be sent
                            return
                    return
        except GraphQLError as error:
            # Strawberry lets a syntax error raised by the parser cache escape its stream.
            await self._send_errors(operation, [error])

    async def _send_errors(
        self, operation: Operation[Any, Any], errors: list[GraphQLError]
    ) -> None:
        # An `error` frame ends the operation: no `complete` follows it.
        await operation.send_operation_message(
            {"id": operation.id, "type": "error", "payload": format_errors(errors)}
        )


class LegacyGraphQLWSHandler(BaseGraphQLWSHandler[Any, Any]):
    """The legacy `graphql-ws` protocol with Hasura's behaviour (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry gives the legacy handler no init timeout; Hasura has one (3 s).
        self.connection_init_wait_timeout: timedelta = self.view.connection_init_wait_timeout
        self.connection_init_received = False
        self.init_error: str | None = None
        self._init_timeout: asyncio.Task[None] | None = None

    @property
    def engine(self) -> GraphQLEngine:
        return self.view.engine  # type: ignore[attr-defined,no-any-return]

    async def handle(self) -> None:
        self._init_timeout = asyncio.create_task(self._close_without_init())
        try:
            while True:
                try:
                    async for message in self.websocket.iter_json():
                        await self.handle_message(message)
                    break  # the client went away
                except NonJsonMessageReceived as error:
                    reason = error.__cause__ or error
                    await self.send_connection_error(f"parsing ClientMessage failed: {reason}")
                except NonTextMessageReceived:
                    await self.websocket.close(
                        code=1002, reason="WebSocket message type must be text"
                    )
                    break
        except WebSocketDisconnected:
            pass
        finally:
            for task in (self._init_timeout, self.keep_alive_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            await self.cleanup()

    async def _close_without_init(self) -> None:
        await asyncio.sleep(self.connection_init_wait_timeout.total_seconds())
        if not self.connection_init_received:
            with contextlib.suppress(Exception):
                await self.websocket.close(code=4408, reason="Connection initialisation timeout")

    async def send_connection_error(self, message: str) -> None:
        await self.send_message({"type": "connection_error", "payload": message})  # type: ignore[typeddict-item]

    async def handle_message(self, message: Any) -> None:
        if not isinstance(message, Mapping):
            await self.send_connection_error("parsing ClientMessage failed: expected an object")
            return
        kind = message.get("type")
        if kind == "connection_init":
            await self.handle_connection_init(cast(Any, message))
        elif kind == "start":
            operation_id = message.get("id")
            problem = _payload_problem(message.get("payload"))
            if not isinstance(operation_id, str):
                problem = "'id' must be a string"
            if problem is not None:
                await self.send_connection_error(f"parsing ClientMessage failed: {problem}")
                return
            await self.handle_start(cast(Any, message))
        elif kind == "stop":
            if not isinstance(message.get("id"), str):
                await self.send_connection_error(
                    "parsing ClientMessage failed: 'id' must be a string"
                )
                return
            await self.handle_stop(cast(Any, message))
        elif kind == "connection_terminate":
            await self.handle_connection_terminate(cast(Any, message))
        else:
            await self.send_connection_error(
                f"parsing ClientMessage failed: unexpected type for ClientMessage: {kind!r}"
            )

    async def handle_connection_init(self, message: Any) -> None:
        self.connection_init_received = True
        payload = message.get("payload")
        if payload is not None and not isinstance(payload, Mapping):
            await self.send_connection_error(
                "parsing ClientMessage failed: connection_init's 'payload' must be an object"
            )
            return
        self.context.connection_params = payload
        try:
            ack = await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError as rejection:
            reason = rejection.payload.get("message") if rejection.payload else None
            self.init_error = str(reason or "connection rejected")
            self.connection_acknowledged = False
            await self.send_connection_error(self.init_error)
            return
        self.init_error = None
        if isinstance(ack, Mapping):
            await self.send_message({"type": "connection_ack", "payload": dict(ack)})  # type: ignore[typeddict-item]
        else:
            await self.send_message({"type": "connection_ack"})
        already = self.connection_acknowledged
        self.connection_acknowledged = True
        if self.keep_alive and not already:
            self.keep_alive_task = asyncio.create_task(self.handle_keep_alive())

    async def handle_connection_terminate(self, message: Any) -> None:
        # The client may already be gone: closing is then a no-op, not an error.
        with contextlib.suppress(Exception):
            await self.websocket.close(code=1000, reason="")

    async def _start_failed(self, operation_id: str, message: str) -> None:
        await self.send_message(
            {"type": "error", "id": operation_id, "payload": hasura_error(message, START_FAILED)}  # type: ignore[typeddict-item]
        )
        await self.send_message({"type": "complete", "id": operation_id})

    async def handle_start(self, message: Any) -> None:
        operation_id: str = message["id"]
        if not self.connection_acknowledged:
            if self.init_error is not None:
                reason = f"cannot start as connection_init failed with : {self.init_error}"
            else:
                reason = "start received before the connection is initialised"
            await self._start_failed(operation_id, reason)
            return
        if operation_id in self.tasks:
            await self._start_failed(
                operation_id, f"an operation already exists with this id: {operation_id}"
            )
            return
        limit = self.max_subscriptions_per_connection
        if limit is not None and len(self.tasks) >= limit:
            await self._start_failed(operation_id, limit_message(limit))
            return
        payload = message["payload"]
        self.tasks[operation_id] = asyncio.create_task(
            self.handle_async_results(
                operation_id,
                payload["query"],
                payload.get("operationName"),
                payload.get("variables"),
            )
        )

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        slot = DirectEvents()
        direct_events.set(slot)
        try:
            # `stream` runs queries and mutations too (Hasura accepts them on the socket).
            result_source = await self.schema.stream(
                query=query,
                variable_values=variables,
                operation_name=operation_name,
                context_value=self.context,
                root_value=self.root_value,
            )
            self.subscriptions[operation_id] = result_source
            async with aclosing(result_source):
                await self._send_results(operation_id, result_source, slot)
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            # Stopped by the client: confirm with `complete` (gql and Apollo wait for it).
            with contextlib.suppress(Exception):
                await self.send_message({"type": "complete", "id": operation_id})
        except WebSocketDisconnected:
            pass
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)

    async def _send_results(
        self, operation_id: str, result_source: Any, slot: DirectEvents
    ) -> None:
        first = True
        try:
            async for result in result_source:
                if first and isinstance(result, PreExecutionError):
                    await self._send_error(operation_id, result.errors or [])
                    return
                first = False
                await self.send_data_message(result, operation_id)
                if slot.available:
                    # A live subscription: later results arrive encoded once for their
                    # whole cohort, and go out as they are.
                    prefix = (
                        '{"type":"data","id":' + orjson.dumps(operation_id).decode() + ',"payload":'
                    )
                    async for event in slot.events:
                        await send_text(self.websocket, prefix + event.payload + "}")
                    return
        except GraphQLError as error:
            # Strawberry lets a syntax error raised by the parser cache escape.
            await self._send_error(operation_id, [error])

    async def _send_error(self, operation_id: str, errors: list[GraphQLError]) -> None:
        await self.send_message(
            {"type": "error", "id": operation_id, "payload": {"errors": format_errors(errors)}}  # type: ignore[typeddict-item]
        )

    async def send_data_message(self, execution_result: ExecutionResult, operation_id: str) -> None:
        await self.send_message(
            {"type": "data", "id": operation_id, "payload": self.engine.format(execution_result)}  # type: ignore[typeddict-item]
        )
