"""How `serve` runs the app on uvicorn: timeouts, limits and the header-read deadline.

uvicorn closes an idle kept-alive connection after `timeout_keep_alive`, but it has no
deadline for reading a request's headers: a client that connects and sends nothing, or
one header byte a minute, holds its connection forever, and enough of them exhaust the
connection limit for everyone. `HeaderDeadlineProtocol` closes a connection that has
not sent a request's headers within `http_header_timeout` seconds (for its first request,
and for each next one on a kept-alive connection). The request body and the handler are
not timed here: the body has its size limit, the handler's statements their time limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from service.settings import Settings

DEFAULT_HEADER_TIMEOUT = 10.0


class HeaderDeadlineProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol (httptools, or h11 without it) with a header-read deadline.

    The deadline comes from the uvicorn config's `http_header_timeout` attribute (set by
    `uvicorn_config`; the config is what uvicorn hands to every worker process).
    """

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._waiting_for_headers():
            self._arm_header_deadline()

    def handle_websocket_upgrade(self, *args: Any) -> None:
        # From here on the connection is a WebSocket, with its own ping timeouts.
        self._disarm_header_deadline()
        super().handle_websocket_upgrade(*args)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _waiting_for_headers(self) -> bool:
        # No request yet, or the last one answered (a pipelined one would be in flight).
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        timeout = getattr(self.config, "http_header_timeout", DEFAULT_HEADER_TIMEOUT)
        self._header_timer = self.loop.call_later(timeout, self._header_deadline_passed)

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self._waiting_for_headers() and not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """A uvicorn config serving `app` with the service's limits from `settings`.

    `options` (host, port, log_level, …) go to `uvicorn.Config` as given. Applied:
    `max_connections` (uvicorn's `limit_concurrency`: beyond it, requests are answered
    503 at once), the keep-alive timeout, the header-read deadline, and WebSocket
    messages no larger than a GraphQL request body may be, and permessage-deflate only
    when `websocket_compression` is on (uvicorn accepts it by default).
    """
    options.setdefault("host", settings.host)
    options.setdefault("port", settings.port)
    config = uvicorn.Config(
        app,
        http=HeaderDeadlineProtocol,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.http_keepalive_timeout,  # type: ignore[arg-type]
        ws_max_size=settings.max_request_bytes,
        ws_per_message_deflate=settings.websocket_compression,
        **options,
    )
    config.http_header_timeout = settings.http_header_timeout  # type: ignore[attr-defined]
    return config
