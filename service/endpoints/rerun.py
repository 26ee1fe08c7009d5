"""Re-run recorded invocations: `POST /v1/rerun` runs stored payloads again as new deliveries.

Recovery from the console (or any admin client): pick failed invocations, one or many, and
run their stored Hasura payloads again through the webhook's path against the current
event modules. Each re-run is recorded as a new invocation that says what it repeats.

- **Who.** Admin only, by the GraphQL endpoint's rule (`service.graphql.execution.auth`): the admin
  secret, or a JWT (or `x-hasura-role`) resolving to the admin role; with no admin secret
  configured every request is admin, as in Hasura. No credentials → 401; valid
  credentials of another role → 403; both with Hasura's error body
  `{"path", "error", "code"}`. A browser request from a page of another origin is admin
  only with the admin secret or a JWT, even with no admin secret configured
  (`service.graphql.transport.origin`).
- **What.** `{"invocation_ids": [...], "allow_redacted": false, "dry_run": false}`, at most
  `EVENT_DETECTOR_RERUN_MAX_INVOCATIONS` (default 100) ids; duplicates run once. Filters
  are resolved to ids by the client through GraphQL first.
- **Per id**, refused with a `reason` and a message naming the cause, nothing recorded:
  `invalid_id`, `not_found`, `no_payload` (not captured, or cleared by retention),
  `truncated` (cut at `max_value_bytes`), `no_events_dir` (the webhook serves no directory
  for its function), `redacted` (the stored payload holds `"[redacted]"` values; jobs
  would see that text: sent again with `"allow_redacted": true` they run, and the answer
  counts them). Otherwise the payload runs through `WebhookReceiver.deliver` (same
  events-directory resolution, plugins and time budget as a delivery) under a new
  invocation id, with `context` `{..., "rerun_of": "<old id>"}` (the old context merged
  in), the old correlation id (the re-run joins the original's flow) and the payload's
  Hasura event id (it is one more delivery of that event).
- **How.** One after another, oldest recorded first, so re-runs touching the same rows
  happen in their original order; the answer keeps the request's order. The webhook's
  observability plugin is flushed before answering, so the new invocations are readable.
- **Answer** 200: `{"results": [{invocation_id, rerun_invocation_id, status,
  redacted_values} | {invocation_id, error, reason}], "started": n, "refused": n}`.
  `"dry_run": true` checks without running (`status: "ready"`, `"ready": n`), so a client
  can say what would happen before asking to confirm. A body sent as anything but JSON
  (`Content-Type`) is refused with 415 before it is read.
- `GET /v1/rerun` (admin): `{"enabled", "max"}` (plus `message` when disabled). Without
  an events directory (`EVENT_DETECTOR_EVENTS_DIR`) re-runs are off: `POST` answers 409.

Re-runs are counted in `/metrics` as `event_detector_reruns_total{outcome}`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from detector import ConfigurationError, InvalidEventPayload
from detector.observability import ObservabilityPlugin
from service.endpoints.metrics import ServiceMetrics
from service.endpoints.webhook import WebhookReceiver
from service.graphql.execution.auth import AuthError, Session
from service.graphql.transport.origin import is_cross_site, json_content_type_error
from service.operations.replay import ReplayError, count_redacted, invocation_uuid, stored_input
from service.settings import Settings
from service.storage.database import Database
from service.storage.maintenance import invocations

log = logging.getLogger("service.endpoints.rerun")

RERUN_PATH = "/v1/rerun"
RERUN_OF = "rerun_of"
MAX_BODY_BYTES = 256 * 1024
CREDENTIAL_HEADERS = ("x-hasura-admin-secret", "x-hasura-access-key", "authorization")
FLUSH_TIMEOUT_S = 10.0
REQUEST_FIELDS = ("invocation_ids", "allow_redacted", "dry_run")

_COLUMNS = (
    invocations.c.id,
    invocations.c.created_at,
    invocations.c.correlation_id,
    invocations.c.source_function,
    invocations.c.source_event_payload,
    invocations.c.source_user_role,
    invocations.c.source_user_email,
    invocations.c.context_data,
)


class Authenticate(Protocol):
    """`GraphQLEngine.authenticate`: request headers (and whether a page of another
    origin sent them) → `Session`, or `AuthError`."""

    def __call__(self, headers: Mapping[str, str], *, cross_site: bool = ...) -> Session: ...


class RerunRequestError(ValueError):
    """A request body the endpoint refuses; `path` points into it (Hasura's JSONPath)."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


@dataclass(frozen=True, slots=True)
class RerunRequest:
    """A checked `POST /v1/rerun` body: ids as given (duplicates dropped), in order."""

    invocation_ids: list[str]
    allow_redacted: bool = False
    dry_run: bool = False

    @classmethod
    def parse(cls, body: Any, maximum: int) -> RerunRequest:
        """Check a decoded JSON body; raises RerunRequestError naming the bad part."""
        if not isinstance(body, dict):
            raise RerunRequestError('expected a JSON object {"invocation_ids": [...]}')
        for key in body:
            if key == "where":
                raise RerunRequestError(
                    "filters are not accepted here: resolve them to ids through GraphQL "
                    "(invocations(where: …) { id }) and send `invocation_ids`",
                    "$.where",
                )
            if key not in REQUEST_FIELDS:
                raise RerunRequestError(
                    f"unknown field `{key}`: expected {', '.join(REQUEST_FIELDS)}", f"$.{key}"
                )
        ids = body.get("invocation_ids")
        if not isinstance(ids, list) or not ids:
            raise RerunRequestError(
                "`invocation_ids` must be a non-empty list of invocation ids", "$.invocation_ids"
            )
        for index, item in enumerate(ids):
            if not isinstance(item, str):
                raise RerunRequestError(
                    f"expected a string (an invocation id), got {type(item).__name__}",
                    f"$.invocation_ids[{index}]",
                )
        unique = list(dict.fromkeys(ids))
        if len(unique) > maximum:
            raise RerunRequestError(
                f"at most {maximum} invocations per request "
                f"(EVENT_DETECTOR_RERUN_MAX_INVOCATIONS), got {len(unique)}: send them in batches",
                "$.invocation_ids",
            )
        flags = {}
        for name in ("allow_redacted", "dry_run"):
            value = body.get(name, False)
            if not isinstance(value, bool):
                raise RerunRequestError(f"`{name}` must be true or false", f"$.{name}")
            flags[name] = value
        return cls(unique, **flags)


@dataclass(slots=True)
class _Planned:
    """One invocation that passed the checks, with what its re-run needs."""

    invocation_id: str
    created_at: Any
    source_function: str
    payload: Any
    context: dict[str, Any]
    correlation_id: str | None
    redacted_values: int


class InvocationRerunner:
    """Re-runs recorded invocations through the webhook's path (see the module docstring).

    `authenticate` is the GraphQL engine's (`GraphQLEngine.authenticate`); `webhook` runs
    the payloads; `observability` (the webhook's plugin) is flushed after each batch.
    """

    def __init__(
        self,
        settings: Settings,
        database: Database,
        authenticate: Authenticate,
        webhook: WebhookReceiver,
        metrics: ServiceMetrics | None = None,
        observability: ObservabilityPlugin | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.authenticate = authenticate
        self.webhook = webhook
        self.metrics = metrics
        self.observability = observability

    @property
    def enabled(self) -> bool:
        """Whether re-runs can run: the webhook has an events directory."""
        return self.settings.events_dir is not None

    @property
    def maximum(self) -> int:
        return self.settings.rerun_max_invocations

    def routes(self) -> list[Route]:
        return [
            Route(RERUN_PATH, self.status, methods=["GET"]),
            Route(RERUN_PATH, self.handle, methods=["POST"]),
        ]

    # -- HTTP -------------------------------------------------------------------------------

    async def status(self, request: Request) -> JSONResponse:
        """`GET /v1/rerun`: whether re-runs are possible, and how many per request."""
        refused = self._refuse_non_admin(request)
        if refused is not None:
            return refused
        body: dict[str, Any] = {"enabled": self.enabled, "max": self.maximum}
        if not self.enabled:
            body["message"] = _DISABLED
        return JSONResponse(body)

    async def handle(self, request: Request) -> JSONResponse:
        """`POST /v1/rerun`: re-run (or, with `dry_run`, check) the invocations named."""
        refused = self._refuse_non_admin(request)
        if refused is not None:
            return refused
        if not self.enabled:
            return _hasura_error(409, "not-supported", _DISABLED)
        not_json = json_content_type_error(request.headers.get("content-type"))
        if not_json is not None:
            return _hasura_error(415, "invalid-headers", not_json)
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return _hasura_error(
                413, "validation-failed", f"the request is larger than {MAX_BODY_BYTES} bytes"
            )
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _hasura_error(400, "invalid-json", f"the body is not JSON: {exc}")
        try:
            parsed = RerunRequest.parse(decoded, self.maximum)
        except RerunRequestError as exc:
            return _hasura_error(400, "validation-failed", exc.message, exc.path)
        results = await self.rerun(
            parsed.invocation_ids, allow_redacted=parsed.allow_redacted, dry_run=parsed.dry_run
        )
        refused_count = sum("error" in result for result in results)
        done = "ready" if parsed.dry_run else "started"
        return JSONResponse(
            {"results": results, done: len(results) - refused_count, "refused": refused_count}
        )

    def _refuse_non_admin(self, request: Request) -> JSONResponse | None:
        try:
            session = self.authenticate(request.headers, cross_site=is_cross_site(request.headers))
        except AuthError as exc:
            return _hasura_error(401, exc.code, exc.message)
        if session.is_admin:
            return None
        if not any(name in request.headers for name in CREDENTIAL_HEADERS):
            return _hasura_error(
                401,
                "access-denied",
                "re-runs need admin credentials: x-hasura-admin-secret, or a JWT with the "
                "admin role",
            )
        return _hasura_error(
            403,
            "access-denied",
            f"role `{session.role}` may not re-run invocations: re-runs are for the admin role",
        )

    # -- the work ---------------------------------------------------------------------------

    async def rerun(
        self, invocation_ids: Sequence[str], *, allow_redacted: bool = False, dry_run: bool = False
    ) -> list[dict[str, Any]]:
        """Re-run each invocation (or only check, with `dry_run`); one answer per id, in order.

        Runs one after another, oldest recorded first. Never raises for one invocation:
        refusals and failures are in its answer (`error`, `reason`).
        """
        # Answers by canonical id (one run for `ABC…` and `abc…`), or by the text given
        # when it is no id at all.
        answers: dict[str, dict[str, Any]] = {}
        key_of: dict[str, str] = {}
        for given in invocation_ids:
            try:
                key_of[given] = invocation_uuid(given)
            except ReplayError as exc:
                key_of[given] = given
                answers[given] = _refusal(given, str(exc), exc.reason)

        wanted = sorted({key for key in key_of.values() if key not in answers})
        rows = await self._load(wanted)
        plans: list[_Planned] = []
        for invocation_id in wanted:
            row = rows.get(invocation_id)
            if row is None:
                message = f"no invocation {invocation_id} is recorded"
                answers[invocation_id] = _refusal(invocation_id, message, "not_found")
                continue
            try:
                plans.append(self._plan(row, allow_redacted))
            except ReplayError as exc:
                answers[invocation_id] = _refusal(invocation_id, str(exc), exc.reason)

        if dry_run:
            for plan in plans:
                answers[plan.invocation_id] = {
                    "invocation_id": plan.invocation_id,
                    "status": "ready",
                    "source_function": plan.source_function,
                    "redacted_values": plan.redacted_values,
                }
        else:
            plans.sort(key=lambda plan: (plan.created_at, plan.invocation_id))
            for plan in plans:
                answers[plan.invocation_id] = await self._run(plan)
            if plans:
                await self._flush()
            self._count(answers.values())
        return [answers[key] for key in dict.fromkeys(key_of[given] for given in invocation_ids)]

    def _plan(self, row: Mapping[str, Any], allow_redacted: bool) -> _Planned:
        invocation_id = str(row["id"])
        stored = stored_input({**row, "id": invocation_id})
        context = row["context_data"]
        if not isinstance(context, dict):
            context = {}
        if context.get("_truncated"):
            raise ReplayError(
                f"invocation {invocation_id}'s context was truncated when recorded: raise "
                "OBSERVABILITY_MAX_VALUE_BYTES to re-run such invocations",
                reason="truncated",
            )
        function = row["source_function"]
        if self.webhook.events_dir_for(function, recorded=True) is None:
            raise ReplayError(self.webhook.no_events_dir_message(function), "no_events_dir")
        redacted = stored.redacted_values + count_redacted(context)
        if redacted and not allow_redacted:
            raise ReplayError(
                f"invocation {invocation_id}'s stored payload holds {redacted} redacted "
                'value(s) ("[redacted]" replaced them when it was recorded): its detectors '
                'and jobs would see that text. Send "allow_redacted": true to re-run it anyway',
                reason="redacted",
            )
        return _Planned(
            invocation_id=invocation_id,
            created_at=row["created_at"],
            source_function=function,
            payload=stored.payload,
            context={**context, RERUN_OF: invocation_id},
            correlation_id=row["correlation_id"],
            redacted_values=redacted,
        )

    async def _run(self, plan: _Planned) -> dict[str, Any]:
        events_dir = self.webhook.events_dir_for(plan.source_function, recorded=True)
        if events_dir is None:  # the directory went away since the check
            message = self.webhook.no_events_dir_message(plan.source_function)
            return _refusal(plan.invocation_id, message, "no_events_dir")
        new_id = str(uuid.uuid4())
        answer: dict[str, Any] = {
            "invocation_id": plan.invocation_id,
            "rerun_invocation_id": new_id,
            "redacted_values": plan.redacted_values,
        }
        try:
            result = await self.webhook.deliver(
                plan.payload,
                plan.source_function,
                events_dir,
                invocation_id=new_id,
                context=plan.context,
                correlation_id=plan.correlation_id,
            )
        except InvalidEventPayload as exc:
            # Recorded by the library as a `rejected` invocation, like a bad delivery.
            return {**answer, "status": "rejected", "message": str(exc)}
        except ConfigurationError as exc:
            log.error("re-run of %s: configuration error: %s", plan.invocation_id, exc)
            return _refusal(plan.invocation_id, str(exc)[:300], "configuration_error")
        except Exception as exc:  # our own fault: the reason, never a traceback
            log.exception("re-run of %s failed", plan.invocation_id)
            message = f"the event detector failed ({type(exc).__name__}); see the service log"
            return _refusal(plan.invocation_id, message, "internal_error")
        status = result.status.value  # ListenResult.status is an InvocationStatus
        return {**answer, "status": status}

    async def _load(self, invocation_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not invocation_ids:
            return {}
        async with self.database.read() as conn:
            result = await conn.execute(
                sa.select(*_COLUMNS).where(invocations.c.id.in_(invocation_ids))
            )
            return {str(row.id): dict(row._mapping) for row in result}

    async def _flush(self) -> None:
        if self.observability is None:
            return
        if not await asyncio.to_thread(self.observability.force_flush, FLUSH_TIMEOUT_S):
            log.warning(
                "re-runs: the observability plugin did not flush within %ss", FLUSH_TIMEOUT_S
            )

    def _count(self, answers: Any) -> None:
        if self.metrics is None:
            return
        for answer in answers:
            if "status" in answer:
                outcome = answer["status"]
            elif answer.get("reason") in ("internal_error", "configuration_error"):
                outcome = "error"
            else:
                outcome = "refused"
            self.metrics.reruns.labels(outcome).inc()


_DISABLED = (
    "re-runs are off: they run through the webhook, which needs an events directory "
    "(set EVENT_DETECTOR_EVENTS_DIR, or serve --events-dir)"
)


def _refusal(invocation_id: str, message: str, reason: str) -> dict[str, Any]:
    return {"invocation_id": invocation_id, "error": message, "reason": reason}


def _hasura_error(status: int, code: str, message: str, path: str = "$") -> JSONResponse:
    """Hasura's error body for its non-GraphQL endpoints (`/v1/metadata`, `/v1/query`)."""
    return JSONResponse({"path": path, "error": message, "code": code}, status_code=status)
