"""The Hasura webhook receiver: `POST /hooks/<function>` runs `listen_to` on each delivery.

Point a Hasura event trigger at `https://<service>/hooks/<function>` and add the header
`x-event-detector-secret: <EVENT_DETECTOR_WEBHOOK_SECRET>` to it. Each delivery:

1. is checked against the shared secret (constant-time comparison) → 401 if wrong; a
   browser request from a web page of another origin (`service.graphql.transport.origin`)
   → 403 when there is no secret to check, and a body that is not JSON → 415: a page on
   another site cannot make its visitors' browsers deliver events;
2. must name a known function: one with a sub-directory of `EVENT_DETECTOR_EVENTS_DIR`
   holding event modules (which it runs), or one named in
   `EVENT_DETECTOR_WEBHOOK_FUNCTIONS` or with invocations recorded already (which run the
   modules at the top of the events directory, the shared flat layout) → 404 listing the
   known functions otherwise, so a typo in a trigger's URL fails loudly instead of
   recording a new "function";
3. is parsed as JSON → 400 naming `body` when it is not, or when it nests deeper than
   `max_json_depth` (still recorded as `rejected`);
4. runs `listen_to(payload, events_dir=…, source_function=<function>)` with the service's
   observability plugin → 400 naming the field for a payload that is not a Hasura event
   (recorded as `rejected` by the library), else 200 with the result.

Anything unexpected on the way is logged with its traceback and answered 500 with a
short body (never a traceback). Deliveries are counted in
`event_detector_webhook_deliveries_total{function, outcome}`: `function` is the known
function's name, or `_refused` for every delivery refused before one was known (no or
wrong secret, unknown function, webhook off), so no caller can grow the label set.

Answering 200 when jobs failed is deliberate: Hasura retries non-2xx answers, and a retry
re-runs every job; failures are in the body and in the recorded invocation. Each delivery
is its own invocation: a Hasura retry (`delivery_info.current_retry`) is recorded with
its `delivery_attempt`, and duplicates share `source_event_id`. Deliveries run
concurrently on the server's event loop; the library and the plugin are safe for that.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from detector import (
    ConfigurationError,
    InvalidEventPayload,
    InvocationStatus,
    ListenOptions,
    ListenResult,
    Plugin,
    listen_to,
)
from detector.dispatch import PluginDispatcher
from detector.observability.capture import Sanitizer
from detector.plugins import InvocationInfo
from service.endpoints.metrics import ServiceMetrics
from service.graphql.transport.bodies import JSONTooDeep, nesting_exceeds
from service.graphql.transport.origin import is_cross_site, json_content_type_error
from service.settings import FUNCTION_NAME, Settings
from service.storage.database import Database
from service.storage.maintenance import invocations

log = logging.getLogger("service.endpoints.webhook")

MAX_REMEMBERED_FUNCTIONS = 10_000
REFUSED_LABEL = "_refused"
"""The `function` label of deliveries refused before a known function was found (no
function name can start with `_`)."""
INVOCATION_HEADER = "x-event-detector-invocation-id"


class WebhookReceiver:
    """Runs Hasura deliveries through `listen_to`; `handle` is the Starlette endpoint.

    `plugins` are passed to every `listen_to` call (the observability plugin first); the
    receiver does not own them (the app shuts them down).
    """

    def __init__(
        self,
        settings: Settings,
        plugins: Sequence[Plugin],
        metrics: ServiceMetrics | None = None,
        database: Database | None = None,
    ) -> None:
        self.settings = settings
        self.plugins = list(plugins)
        self.metrics = metrics
        self.database = database
        self._recorded: set[str] = set()
        self._response_sanitizer = Sanitizer(max_value_bytes=256 * 1024)
        if settings.events_dir is not None and settings.webhook_secret is None:
            log.warning(
                "webhook: no EVENT_DETECTOR_WEBHOOK_SECRET set, deliveries to /hooks/* are "
                "accepted without the %s header",
                settings.webhook_secret_header,
            )

    def known_functions(self) -> list[str]:
        """The functions deliveries may name: configured, and sub-directories holding
        event modules (read now, so a directory added while serving is picked up)."""
        base = self.settings.events_dir
        names = set(self.settings.webhook_functions) | self._recorded
        if base is not None and base.is_dir():
            names.update(
                path.name
                for path in base.iterdir()
                if path.is_dir() and FUNCTION_NAME.match(path.name) and _holds_modules(path)
            )
        return sorted(names)

    def events_dir_for(self, function: str, *, recorded: bool = False) -> Path | None:
        """The events directory serving `function`, or None when it is not known.

        A function's own sub-directory serves it; a configured function (or, with
        `recorded`, one that has invocations recorded already, as re-runs have) runs the
        shared modules at the top of the events directory.
        """
        base = self.settings.events_dir
        if base is None or not FUNCTION_NAME.match(function) or ".." in function:
            return None
        own = base / function
        if own.is_dir() and _holds_modules(own):
            return own
        if (recorded or function in self.settings.webhook_functions) and _holds_modules(base):
            return base
        return None

    async def is_recorded(self, function: str) -> bool:
        """Whether `function` has invocations recorded in the service's database.

        One indexed lookup per name not yet seen (names found are remembered: a recorded
        function stays recorded); False without a database, or when it cannot be read.
        """
        if function in self._recorded:
            return True
        if self.database is None or not FUNCTION_NAME.match(function):
            return False
        statement = (
            sa.select(invocations.c.id).where(invocations.c.source_function == function).limit(1)
        )
        try:
            async with self.database.read() as conn:
                found = (await conn.execute(statement)).first() is not None
        except Exception as exc:  # the store may be down: the function is just not known
            log.warning("webhook: cannot read recorded functions (%s)", type(exc).__name__)
            return False
        if found and len(self._recorded) < MAX_REMEMBERED_FUNCTIONS:
            self._recorded.add(function)
        return found

    def no_events_dir_message(self, function: str) -> str:
        """Why `function` has no events directory (for answers that refuse it)."""
        known = ", ".join(self.known_functions()) or "none"
        return (
            f"unknown function `{function}`: this webhook serves {known}. A function is "
            f"a sub-directory of {self.settings.events_dir}/ holding event modules, or a "
            "name in EVENT_DETECTOR_WEBHOOK_FUNCTIONS (served by the modules at the top of "
            "that directory)"
        )

    async def deliver(
        self,
        payload: Any,
        function: str,
        events_dir: Path,
        *,
        invocation_id: str,
        context: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> ListenResult:
        """Run one parsed delivery the way the webhook does: same plugins, same budget.

        `events_dir` comes from `events_dir_for(function)`. Raises what `listen_to` raises
        (`InvalidEventPayload` after the invocation was recorded as `rejected`,
        `ConfigurationError`); re-runs (`service.endpoints.rerun`) pass `context` and
        `correlation_id` to link the new invocation to the one it repeats.
        """
        return await listen_to(
            payload,
            events_dir=events_dir,
            source_function=function,
            invocation_id=invocation_id,
            context=context,
            correlation_id=correlation_id,
            plugins=self.plugins,
            time_budget_ms=self.settings.webhook_time_budget_ms,
        )

    async def handle(self, request: Request) -> JSONResponse:
        """`POST /hooks/{function}`: one Hasura delivery."""
        function = str(request.path_params["function"])
        started = time.perf_counter()
        label = REFUSED_LABEL
        try:
            response, label = await self._handle(request, function)
        except Exception as exc:  # our own fault: logged, never a traceback in the answer
            log.exception("webhook %s: the delivery failed", function[:128])
            response = _error(
                500,
                "internal_error",
                f"the event detector failed ({type(exc).__name__}); see the service log",
            )
        if self.metrics is not None:
            outcome = response.headers.get("x-event-detector-outcome", "error")
            self.metrics.webhook_deliveries.labels(label, outcome).inc()
        log.debug(
            "delivery to %s answered %d in %.1f ms",
            function,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    async def _handle(self, request: Request, function: str) -> tuple[JSONResponse, str]:
        """The answer, and the metrics label: the function once known, else `_refused`."""
        if self.settings.events_dir is None:
            return _error(
                404,
                "webhook_disabled",
                "the webhook is off: set EVENT_DETECTOR_EVENTS_DIR (or serve --events-dir)",
                outcome="not_found",
            ), REFUSED_LABEL
        if not self._authorized(request):
            return _error(
                401,
                "unauthorized",
                f"missing or wrong `{self.settings.webhook_secret_header}` header",
                outcome="unauthorized",
            ), REFUSED_LABEL
        if self.settings.webhook_secret is None and is_cross_site(request.headers):
            return _error(
                403,
                "cross_site",
                "deliveries come from Hasura, not from web pages: a browser request from "
                "another origin is refused (set EVENT_DETECTOR_WEBHOOK_SECRET to accept "
                "deliveries that carry it)",
                outcome="unauthorized",
            ), REFUSED_LABEL
        not_json = json_content_type_error(request.headers.get("content-type"))
        if not_json is not None:
            return _error(
                415, "unsupported_media_type", not_json, outcome="rejected"
            ), REFUSED_LABEL
        events_dir = self.events_dir_for(function)
        if events_dir is None and await self.is_recorded(function):
            events_dir = self.events_dir_for(function, recorded=True)
        if events_dir is None:
            return _error(
                404,
                "unknown_function",
                self.no_events_dir_message(function),
                outcome="not_found",
                extra={"functions": self.known_functions()},
            ), REFUSED_LABEL
        return await self._deliver_known(request, function, events_dir), function

    async def _deliver_known(
        self, request: Request, function: str, events_dir: Path
    ) -> JSONResponse:
        try:
            body = await self._read_body(request)
        except _BodyTooLarge:
            limit = self.settings.webhook_max_body_bytes
            return _error(
                413,
                "payload_too_large",
                f"the delivery is larger than {limit} bytes (EVENT_DETECTOR_WEBHOOK_MAX_BODY_BYTES)",
                field="body",
                outcome="rejected",
            )
        except ClientDisconnect:
            return _error(400, "client_disconnected", "the sender went away", outcome="rejected")

        try:
            payload = json.loads(body)
            if nesting_exceeds(payload, self.settings.max_json_depth):
                raise JSONTooDeep(self.settings.max_json_depth, "the delivery")
        except (ValueError, RecursionError) as exc:
            text = body.decode("utf-8", errors="replace")
            reason = (
                str(exc)
                if isinstance(exc, JSONTooDeep)
                else f"is not JSON: {exc}"
                if isinstance(exc, ValueError)
                else f"nests arrays and objects more than {self.settings.max_json_depth} "
                "levels deep (the server's max_json_depth setting)"
            )
            error = InvalidEventPayload("body", reason)
            invocation_id = await self._record_unparsable(text, error, function, events_dir)
            return _error(
                400,
                "invalid_payload",
                str(error),
                field="body",
                outcome="rejected",
                invocation_id=invocation_id,
            )

        invocation_id = str(uuid.uuid4())
        try:
            result = await self.deliver(payload, function, events_dir, invocation_id=invocation_id)
        except InvalidEventPayload as exc:
            return _error(
                400,
                "invalid_payload",
                str(exc),
                field=exc.field,
                outcome="rejected",
                invocation_id=invocation_id,
            )
        except ConfigurationError as exc:
            log.error("webhook %s: configuration error: %s", function, exc)
            return _error(500, "configuration_error", str(exc)[:300], invocation_id=invocation_id)
        except Exception as exc:  # our own fault: never a traceback or a payload in the answer
            log.exception("webhook %s: delivery failed", function)
            return _error(
                500,
                "internal_error",
                f"the event detector failed ({type(exc).__name__}); see the service log",
                invocation_id=invocation_id,
            )
        return self._ok(result)

    def _authorized(self, request: Request) -> bool:
        secret = self.settings.webhook_secret
        if secret is None:
            return True
        given = request.headers.get(self.settings.webhook_secret_header)
        if given is None:
            return False
        return hmac.compare_digest(given.encode(), secret.encode())

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.webhook_max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def _record_unparsable(
        self, text: str, error: InvalidEventPayload, function: str, events_dir: Path
    ) -> str:
        """Let the plugins record a body that is not JSON as a `rejected` invocation.

        `listen_to` only sees parsed payloads, so this plays the hooks the library plays
        for a rejected payload (start → end → flush), with the JSON error as the reason.
        """
        dispatcher = PluginDispatcher(self.plugins)
        now = datetime.now(UTC)
        info = InvocationInfo(
            invocation_id=str(uuid.uuid4()),
            correlation_id=str(uuid.uuid4()),
            source_function=function,
            payload=text,
            event=None,
            options=ListenOptions(events_dir=events_dir),
            received_at=now,
            started_at=now,
            error=error,
        )
        result = ListenResult(
            invocation_id=info.invocation_id,
            correlation_id=info.correlation_id,
            error=str(error),
            status=InvocationStatus.REJECTED,
        )
        await dispatcher.call("on_invocation_start", info)
        await dispatcher.call("on_invocation_end", info, result)
        await dispatcher.call("flush")
        return info.invocation_id

    def _ok(self, result: ListenResult) -> JSONResponse:
        body = self._response_sanitizer.clean(result.to_dict())
        response = JSONResponse(body, status_code=200)
        response.headers[INVOCATION_HEADER] = result.invocation_id
        status = result.status.value  # ListenResult.status is an InvocationStatus
        response.headers["x-event-detector-outcome"] = status
        return response


class _BodyTooLarge(Exception):
    pass


def _is_event_module(path: Path) -> bool:
    return path.suffix == ".py" and not path.name.startswith(("_", ".")) and path.is_file()


def _holds_modules(directory: Path) -> bool:
    return directory.is_dir() and any(_is_event_module(path) for path in directory.iterdir())


def _error(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    outcome: str = "error",
    invocation_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message, **(extra or {})}
    if field is not None:
        body["field"] = field
    if invocation_id is not None:
        body["invocation_id"] = invocation_id
    response = JSONResponse(body, status_code=status)
    response.headers["x-event-detector-outcome"] = outcome
    if invocation_id is not None:
        response.headers[INVOCATION_HEADER] = invocation_id
    return response
