"""The request context: who is asking, handed to every resolver."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from service.graphql.execution.auth import ADMIN_SESSION, AuthError, Session

if TYPE_CHECKING:
    from service.graphql.execution.engine import GraphQLEngine


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
    json_text: bool = True
    """Root fields whose JSON the database built answer it as text (`orjson.Fragment`),
    which the transport's encoder embeds as is; False: as Python values."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free room for transports built on this context (e.g. the subscription engine)."""
