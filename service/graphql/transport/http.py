"""The Strawberry ASGI view serving the engine: HTTP GET/POST, WebSocket, GraphiQL.

What it adds to Strawberry's view:
- authentication per request (headers) and per WebSocket connection (headers of the
  handshake, overridden by `connection_init.payload.headers` as Hasura clients send
  them), resolved to a session whose role selects the schema;
- Hasura's response shape (`{"data"}` or `{"errors"}` with `extensions.code/path`),
  also for malformed requests (`parse-failed`), answered with HTTP 200 as Hasura does;
- bounded requests: a body over `max_request_bytes` is refused with 413 before it is
  read whole, JSON nested deeper than `max_json_depth` is `parse-failed` naming the
  limit (`bodies.py`), and each request runs under one response budget
  (`sql.budget`), which the operations of a batch share;
- browser requests from pages of other origins are never admin without credentials
  (`origin.is_cross_site`), and POST bodies that are not JSON are refused (415) before
  anything runs, so such pages cannot send operations as simple (unpreflighted) requests;
- GraphiQL from the page the app gives (`ide_page`), instead of Strawberry's CDN page;
- WebSocket handshakes from pages of other origins accepted when `websocket_origins`
  allows their origin (Strawberry refuses them all by default);
- `names`, the endpoint that tells a client the names the schema serves (customization).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult

from service.graphql.errors import INVALID_HEADERS, PARSE_FAILED, error_response
from service.graphql.execution.auth import AuthError
from service.graphql.execution.context import RequestContext
from service.graphql.sql.budget import budget_scope
from service.graphql.transport.bodies import JSONTooDeep, load_json
from service.graphql.transport.origin import is_cross_site, json_content_type_error
from service.graphql.transport.websocket import GraphQLTransportWSHandler, LegacyGraphQLWSHandler

if TYPE_CHECKING:
    from service.graphql.execution.engine import GraphQLEngine

logger = logging.getLogger(__name__)


class _BodyTooLarge(Exception):
    """The request body grew past the limit while it was read."""


def _bounded(receive: Receive, limit: int) -> Receive:
    """`receive` that raises `_BodyTooLarge` once the body has passed `limit` bytes
    (for bodies sent without a Content-Length, or with a false one)."""
    received = 0

    async def bounded() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge
        return message

    return bounded


class GraphQLView(GraphQL):
    """Strawberry's ASGI GraphQL app, speaking Hasura's dialect of errors and auth.

    WebSocket: both protocols with Hasura's behaviour (`websocket.py`); the legacy
    `graphql-ws` also when the client names no subprotocol (or none we speak); keep-alive,
    init timeout and the per-connection operation limit from the engine's config.
    `ide_page` answers a browser's GET (GraphiQL); without it, Strawberry's own page.
    `websocket_origins` says whether a page of another origin may open a WebSocket (the
    app's CORS domains); without it, only the same origin may.
    """

    graphql_transport_ws_handler_class = GraphQLTransportWSHandler
    graphql_ws_handler_class = LegacyGraphQLWSHandler

    def __init__(
        self,
        engine: GraphQLEngine,
        *,
        ide_page: Callable[[Request], Awaitable[Response]] | None = None,
        websocket_origins: Callable[[str], bool] | None = None,
        **options: Any,
    ) -> None:
        config = engine.config
        options.setdefault("graphql_ide", "graphiql")
        options.setdefault("allow_queries_via_get", True)
        options.setdefault("keep_alive", True)
        options.setdefault("keep_alive_interval", config.websocket_keepalive)
        options.setdefault(
            "connection_init_wait_timeout",
            timedelta(seconds=config.websocket_connection_init_timeout),
        )
        options.setdefault("max_subscriptions_per_connection", config.websocket_max_operations)
        super().__init__(engine.schemas, **options)  # type: ignore[arg-type]
        self.engine = engine
        self.ide_page = ide_page
        self.websocket_origins = websocket_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        limit = self.engine.config.max_request_bytes
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._too_large(limit)(scope, receive, send)
            return
        request = Request(scope=scope, receive=_bounded(receive, limit))
        refused = _non_json_body(request)
        if refused is not None:
            await JSONResponse(error_response(refused, INVALID_HEADERS), status_code=415)(
                scope, receive, send
            )
            return
        try:
            # One response budget for the whole request: a batch's operations share it.
            with budget_scope(self.engine.config.max_response_nodes):
                response = await self.run(request)
        except _BodyTooLarge:
            response = self._too_large(limit)
        except HTTPException as error:
            if error.status_code in (400, 415):
                # Malformed bodies get Hasura's error shape, not plain text.
                response = JSONResponse(error_response(error.reason, PARSE_FAILED))
            else:
                response = Response(error.reason, status_code=error.status_code)
        await response(scope, receive, send)

    @staticmethod
    def _too_large(limit: int) -> Response:
        message = (
            f"the request body is larger than {limit} bytes (the server's max_request_bytes "
            "setting)"
        )
        return JSONResponse(error_response(message, PARSE_FAILED), status_code=413)

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry words every JSON error alike; a body nested too deep says so.
        try:
            return self.decode_json(data)
        except JSONTooDeep as error:
            raise HTTPException(400, str(error)) from None
        except json.JSONDecodeError:
            raise HTTPException(400, "Unable to parse request body as JSON") from None

    def decode_json(self, data: str | bytes) -> object:
        # HTTP bodies and WebSocket messages alike (a message too deep closes the socket
        # as any unparsable message does).
        return load_json(data, self.engine.config.max_json_depth)

    async def pick_websocket_subprotocol(self, request: WebSocket) -> str | None:
        # Hasura: graphql-transport-ws when asked for, else the legacy protocol (also for
        # clients that name none, where Strawberry would close with 4406).
        offered = list(request.scope.get("subprotocols") or ())
        for protocol in offered:
            if protocol in (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL):
                return protocol
        return GRAPHQL_WS_PROTOCOL

    async def create_websocket_response(
        self, request: WebSocket, subprotocol: str | None
    ) -> WebSocket:
        # Answer with a subprotocol only if the client offered it: a client that offered
        # none must not get one back (browsers and `websockets` reject the handshake).
        offered = request.scope.get("subprotocols") or ()
        await request.accept(subprotocol=subprotocol if subprotocol in offered else None)
        return request

    async def get_context(
        self, request: Request | WebSocket, response: Any = None
    ) -> RequestContext:
        context = RequestContext(engine=self.engine, request=request, response=response)
        self._authenticate(context, request.headers)
        return context

    async def render_graphql_ide(self, request: Request) -> Response:
        if self.ide_page is not None:
            return await self.ide_page(request)
        return await super().render_graphql_ide(request)

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        # Called by Strawberry for cross-origin handshakes only.
        if self.websocket_origins is not None:
            return self.websocket_origins(origin)
        return super().is_websocket_origin_allowed(request, origin)

    def _authenticate(self, context: RequestContext, headers: Mapping[str, str]) -> None:
        # Where the request comes from is the browser's word in the request's (or the
        # WebSocket handshake's) own headers, never in headers a client sent in a message.
        request = context.request
        cross_site = request is not None and is_cross_site(request.headers)
        try:
            context.session = self.engine.authenticate(headers, cross_site=cross_site)
            context.auth_error = None
        except AuthError as error:
            context.auth_error = error

    async def on_ws_connect(self, context: RequestContext) -> Any:
        """Authenticate a WebSocket from `connection_init`'s payload headers (Hasura)."""
        params = context.connection_params if isinstance(context.connection_params, Mapping) else {}
        given = params.get("headers")
        if not isinstance(given, Mapping):
            # Some clients put the headers straight into the payload.
            given = {k: v for k, v in params.items() if isinstance(v, str)}
        headers: dict[str, str] = {}
        if context.request is not None:
            headers.update(context.request.headers)
        headers.update({str(k): str(v) for k, v in given.items()})
        self._authenticate(context, headers)
        if context.auth_error is not None:
            raise ConnectionRejectionError(
                {"message": context.auth_error.message, "code": context.auth_error.code}
            )
        return await super().on_ws_connect(context)

    async def names(self, request: Request) -> Response:
        """`GET <graphql path>/names`: the names the caller's schema serves, by Hasura's
        default names (`GraphQLEngine.name_map`), for clients written in the default names
        to adapt their operations to the server's customization. Authenticated as a
        GraphQL request is; an authentication error is answered in Hasura's shape."""
        try:
            session = self.engine.authenticate(request.headers)
        except AuthError as error:
            return JSONResponse(error_response(error.message, error.code))
        return Response(
            orjson.dumps(self.engine.name_map(session.role)), media_type="application/json"
        )

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:  # type: ignore[override]
        return self.engine.format(result)

    def encode_json(self, data: object) -> str:
        # Large results (thousands of nodes) encode ~10x faster with orjson. Text, not
        # bytes: WebSocket frames must stay text frames for the GraphQL protocols.
        return orjson.dumps(data).decode()


def _non_json_body(request: Request) -> str | None:
    """Why a POST's body is refused before Strawberry parses it, or None."""
    if request.method != "POST":
        return None
    return json_content_type_error(request.headers.get("content-type"))
