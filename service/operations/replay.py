"""`event-detector replay`: re-run a recorded invocation's payload against current code.

`replay(url, invocation_id)` loads the invocation's stored payload and what happened
then (events detected, their status, the jobs that ran), runs the detectors of the
current event modules on that payload (no jobs, unless `run_jobs=True`: then the real
`listen_to` runs, side effects included), and compares event by event. It also lists
every delivery of the same Hasura event (redeliveries, duplicates) and jobs that ran
more than once for it.

The payload must have been captured (`capture_payload`, not dropped by retention); the
stored payload is the redacted one, so detectors reading a redacted key see
`"[redacted]"` (the report counts them).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from detector import EventStatus, ListenResult, listen_to
from detector.observability.capture import REDACTED
from detector.observability.migrate import redact_url
from service.operations.inventory import declared_jobs, detectors_only
from service.storage.maintenance import event_executions, invocations, job_executions, open_engine


class ReplayError(Exception):
    """The invocation cannot be replayed; the message says why.

    `reason` names the cause for programs (`invalid_id`, `not_found`, `no_payload`,
    `truncated`, `no_events_dir`); the re-run endpoint answers it per invocation.
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StoredInput:
    """A recorded invocation's payload, ready to run again.

    `payload` has `session_variables` rebuilt when they were redacted whole;
    `redacted_values` counts the `"[redacted]"` values it still holds (detectors and jobs
    see that text instead of the original values).
    """

    payload: Any
    redacted_values: int
    rebuilt_session_variables: dict[str, str] | None


def invocation_uuid(text: str) -> str:
    """`text` as a canonical invocation id; raises ReplayError (`invalid_id`) otherwise."""
    try:
        return str(uuid.UUID(text))
    except (ValueError, TypeError, AttributeError):
        raise ReplayError(
            f"{text!r} is not an invocation id (a UUID)", reason="invalid_id"
        ) from None


def stored_input(row: Mapping[str, Any]) -> StoredInput:
    """The stored payload of an `invocations` row, checked and ready to run again.

    `row` needs `id`, `source_event_payload`, `source_user_role` and `source_user_email`.
    Raises ReplayError (`no_payload`: not captured or cleared by retention; `truncated`:
    cut at `max_value_bytes` when recorded).
    """
    invocation_id = row["id"]
    payload = row["source_event_payload"]
    if payload is None:
        raise ReplayError(
            f"invocation {invocation_id} has no stored payload: it was recorded with "
            "capture_payload off, or retention dropped it (retention --payload-days)",
            reason="no_payload",
        )
    if isinstance(payload, dict) and payload.get("_truncated"):
        raise ReplayError(
            f"invocation {invocation_id}'s payload was truncated when recorded "
            f"({payload.get('_original_size')} characters over max_value_bytes): raise "
            "OBSERVABILITY_MAX_VALUE_BYTES to replay such payloads",
            reason="truncated",
        )
    redacted = count_redacted(payload)
    payload, rebuilt = _restore_session_variables(payload, row)
    return StoredInput(payload, redacted, rebuilt)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an event module decided: `detected`, `not detected`, `skipped` (it listens to
    other tables or operations), a failure, or `absent`."""

    outcome: str
    error: str | None = None
    jobs: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.outcome if self.error is None else f"{self.outcome}: {self.error}"


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """One event: then → now."""

    event: str
    then: Verdict
    now: Verdict

    @property
    def changed(self) -> bool:
        # Skipped and not detected run nothing alike: declaring tables changes no outcome.
        quiet = {"skipped": "not detected"}
        if quiet.get(self.then.outcome, self.then.outcome) != quiet.get(
            self.now.outcome, self.now.outcome
        ):
            return True
        return self.then.jobs != self.now.jobs and self.now.outcome == "detected"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One recorded delivery of the same Hasura event."""

    invocation_id: str
    attempt: int
    created_at: datetime
    status: str


@dataclass(slots=True)
class ReplayReport:
    """The comparison, plus the context a reader needs."""

    invocation_id: str
    source_function: str
    recorded_at: datetime
    recorded_status: str
    events_dir: Path
    run_jobs: bool
    rows: list[ReplayRow]
    result: ListenResult
    redacted_values: int = 0
    rebuilt_session_variables: dict[str, str] | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    repeated_jobs: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> list[ReplayRow]:
        return [row for row in self.rows if row.changed]


async def replay(
    database_url: str,
    invocation_id: str,
    *,
    events_dir: Path | None = None,
    run_jobs: bool = False,
) -> ReplayReport:
    """Replay one recorded invocation (see the module docstring).

    `events_dir` defaults to the directory recorded with the invocation when it exists
    here, else `./events`. Raises ReplayError (unknown id, payload not captured or
    truncated, no events directory).
    """
    invocation_id = invocation_uuid(invocation_id)
    recorded = await _load(database_url, invocation_id)
    row = recorded["invocation"]
    stored = stored_input(row)
    directory = _events_dir(events_dir, row["event_modules_directory"])
    payload = stored.payload

    if run_jobs:
        result = await listen_to(
            payload, events_dir=directory, source_function=row["source_function"], plugins=[]
        )
    else:
        result = await listen_to(
            payload,
            modules=detectors_only(directory),
            source_function=row["source_function"],
            plugins=[],
        )
    then = _then_verdicts(recorded["events"], recorded["jobs"])
    now = _now_verdicts(result, directory, run_jobs)
    names = sorted(set(then) | set(now))
    absent = Verdict("absent")
    rows = [ReplayRow(name, then.get(name, absent), now.get(name, absent)) for name in names]
    return ReplayReport(
        invocation_id=invocation_id,
        source_function=row["source_function"],
        recorded_at=row["created_at"],
        recorded_status=row["status"],
        events_dir=directory,
        run_jobs=run_jobs,
        rows=rows,
        result=result,
        redacted_values=stored.redacted_values,
        rebuilt_session_variables=stored.rebuilt_session_variables,
        deliveries=recorded["deliveries"],
        repeated_jobs=recorded["repeated_jobs"],
    )


def _events_dir(given: Path | None, recorded: str | None) -> Path:
    if given is not None:
        directory = given.expanduser().resolve()
        if not directory.is_dir():
            raise ReplayError(f"events directory {str(directory)!r} does not exist")
        return directory
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    fallback = Path("events").resolve()
    if fallback.is_dir():
        return fallback
    where = f" (recorded: {recorded})" if recorded else ""
    raise ReplayError(
        f"no events directory found{where}: pass --events-dir", reason="no_events_dir"
    )


def _then_verdicts(events: list[dict[str, Any]], jobs: list[dict[str, Any]]) -> dict[str, Verdict]:
    jobs_by_event: dict[str, list[str]] = {}
    for job in jobs:
        jobs_by_event.setdefault(job["event_execution_id"], []).append(job["job_name"])
    verdicts = {}
    for event in events:
        status = event["status"]
        if status == EventStatus.SKIPPED.value:
            verdict = Verdict("skipped")
        elif status == EventStatus.DETECTION_FAILED.value:
            verdict = Verdict("detection failed", event["detection_error"])
        elif event["detected"]:
            names = tuple(sorted(jobs_by_event.get(event["id"], [])))
            verdict = Verdict("detected", None, names)
        else:
            verdict = Verdict("not detected")
        verdicts[event["event_name"]] = verdict
    return verdicts


def _now_verdicts(result: ListenResult, directory: Path, run_jobs: bool) -> dict[str, Verdict]:
    verdicts = {}
    for event in result.events:
        if event.status == EventStatus.SKIPPED:
            verdicts[event.name] = Verdict("skipped")
        elif event.status == EventStatus.DETECTION_FAILED:
            verdicts[event.name] = Verdict("detection failed", event.error)
        elif event.detected:
            if run_jobs:
                names = tuple(sorted(job.name for job in event.jobs))
            else:
                names = _declared(directory / f"{event.name}.py")
            verdicts[event.name] = Verdict("detected", None, names)
        else:
            verdicts[event.name] = Verdict("not detected")
    return verdicts


def _declared(path: Path) -> tuple[str, ...]:
    try:
        return tuple(sorted(job.name for job in declared_jobs(path)))
    except (OSError, SyntaxError):
        return ()


def _restore_session_variables(
    payload: Any, row: Mapping[str, Any]
) -> tuple[Any, dict[str, str] | None]:
    """Rebuild `event.session_variables` when redaction replaced the whole object.

    A deny-list word matching the key (a user's `session`, or records made when the
    default list held it) stores `"session_variables": "[redacted]"`, which is not a
    valid Hasura payload.
    The role and user were recorded in their own columns: replay uses those (and says so).
    """
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, dict) or event.get("session_variables") != REDACTED:
        return payload, None
    variables: dict[str, str] = {}
    if row.get("source_user_role"):
        variables["x-hasura-role"] = row["source_user_role"]
    user = row.get("source_user_email")
    if user:
        variables["x-hasura-user-email" if "@" in user else "x-hasura-user-id"] = user
    return {**payload, "event": {**event, "session_variables": variables}}, variables


def count_redacted(value: Any) -> int:
    """How many `"[redacted]"` values a stored JSON value holds (at any depth)."""
    if value == REDACTED:
        return 1
    if isinstance(value, dict):
        return sum(count_redacted(item) for item in value.values())
    if isinstance(value, list):
        return sum(count_redacted(item) for item in value)
    return 0


async def _load(database_url: str, invocation_id: str) -> dict[str, Any]:
    engine = open_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = (
                await conn.execute(sa.select(invocations).where(invocations.c.id == invocation_id))
            ).first()
            if found is None:
                raise ReplayError(
                    f"no invocation {invocation_id} in {_shown(database_url)}", reason="not_found"
                )
            invocation = dict(found._mapping)
            events = [
                dict(r._mapping)
                for r in await conn.execute(
                    sa.select(event_executions).where(
                        event_executions.c.invocation_id == invocation_id
                    )
                )
            ]
            jobs = [
                dict(r._mapping)
                for r in await conn.execute(
                    sa.select(job_executions.c.event_execution_id, job_executions.c.job_name).where(
                        job_executions.c.invocation_id == invocation_id
                    )
                )
            ]
            deliveries: list[Delivery] = []
            repeated: dict[str, int] = {}
            if invocation["source_event_id"] is not None:
                same_event = invocations.c.source_event_id == invocation["source_event_id"]
                if invocation["source_trigger_name"] is not None:
                    same_event = sa.and_(
                        same_event,
                        invocations.c.source_trigger_name == invocation["source_trigger_name"],
                    )
                deliveries = [
                    Delivery(r.id, r.delivery_attempt, r.created_at, r.status)
                    for r in await conn.execute(
                        sa.select(
                            invocations.c.id,
                            invocations.c.delivery_attempt,
                            invocations.c.created_at,
                            invocations.c.status,
                        )
                        .where(same_event)
                        .order_by(invocations.c.created_at, invocations.c.id)
                    )
                ]
                if len(deliveries) > 1:
                    names = Counter(
                        r.job_name
                        for r in await conn.execute(
                            sa.select(job_executions.c.job_name).where(
                                job_executions.c.invocation_id.in_(
                                    [d.invocation_id for d in deliveries]
                                ),
                                job_executions.c.status == "completed",
                            )
                        )
                    )
                    repeated = {name: n for name, n in sorted(names.items()) if n > 1}
    finally:
        await engine.dispose()
    return {
        "invocation": invocation,
        "events": events,
        "jobs": jobs,
        "deliveries": deliveries,
        "repeated_jobs": repeated,
    }


def _shown(url: str) -> str:
    return redact_url(url)
