"""What `listen_to` and `run` return: plain dataclasses, serialisable with `.to_dict()`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from .errors import DeadlineExceededError
from .jsonsafe import json_safe
from .status import EventStatus, InvocationStatus, JobStatus


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _plain(value: Any, camel: bool) -> Any:
    if isinstance(value, _Serialisable):
        return value.to_dict(camel=camel)
    if isinstance(value, list) and value and isinstance(value[0], _Serialisable):
        return [_plain(item, camel) for item in value]
    # A job's result is whatever the job returned: cycles, bytes, any object.
    return json_safe(value)


def detection_status(detected: bool, error: BaseException | None) -> EventStatus:
    """An event's status once its detector answered (`error`: it raised, its module did
    not load, or the deadline cut it)."""
    if isinstance(error, DeadlineExceededError):
        return EventStatus.TIMEOUT  # as the invocation and its outstanding jobs
    if error is not None:
        return EventStatus.DETECTION_FAILED
    return EventStatus.HANDLING if detected else EventStatus.NOT_DETECTED


def handler_status(error: BaseException | None) -> EventStatus:
    """An event's status once its handler returned or raised (or the deadline cut it)."""
    if isinstance(error, DeadlineExceededError):
        return EventStatus.TIMEOUT
    return EventStatus.COMPLETED if error is None else EventStatus.HANDLER_FAILED


class _Serialisable:
    def to_dict(self, *, camel: bool = False) -> dict[str, Any]:
        """JSON-ready dict, always: `json.dumps` accepts it whatever jobs returned
        (datetimes as ISO-8601, cycles, bytes and other objects described by
        `detector.jsonsafe`, as the observability plugin records them); `camel=True`
        gives camelCase keys to the result's own fields."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            if not f.metadata.get("serialise", True):
                continue
            key = _camel(f.name) if camel else f.name
            out[key] = _plain(getattr(self, f.name), camel)
        return out


@dataclass(slots=True)
class JobAttempt(_Serialisable):
    """One attempt of a job that was tried more than once.

    `status` is how this attempt ended (`completed`, `failed`, `timeout`, `cancelled`);
    `error` and `error_type` are its exception's message and class name. Milliseconds.
    """

    attempt: int
    started_at: datetime
    ended_at: datetime
    duration_ms: float
    status: JobStatus
    error: str | None = None
    error_type: str | None = None


@dataclass(slots=True)
class JobResult(_Serialisable):
    """Outcome of one job (all its attempts).

    `completed` is True only for status `completed`. `result` is what the job function
    returned (unchanged here; `to_dict()` gives its JSON-safe form). `error` is the last attempt's
    error message, `error_type` its exception class name. Durations are milliseconds.
    `attempt_history` lists every attempt, oldest first, only when there was more than
    one (None otherwise: a single attempt is the job itself).
    """

    name: str
    completed: bool
    status: JobStatus
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    attempts: int = 1
    duration_ms: float = 0.0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    job_execution_id: str | None = None
    attempt_history: list[JobAttempt] | None = None
    # The exception itself, for plugins (stack traces); never serialised.
    exception: BaseException | None = field(
        default=None, repr=False, compare=False, metadata={"serialise": False}
    )


@dataclass(slots=True)
class EventResult(_Serialisable):
    """Outcome of one listened event, detected or not.

    `error` is the detection error (status `detection_failed`) or the handler error
    (status `handler_failed`, `detected` stays True), or says where the deadline cut it
    (status `timeout`). `skipped`: the module declares tables or operations this event
    is not, so its detector did not run.
    """

    name: str
    detected: bool
    error: str | None = None
    jobs: list[JobResult] = field(default_factory=list)
    status: EventStatus = EventStatus.NOT_DETECTED
    event_execution_id: str | None = None
    detection_duration_ms: float | None = None
    handler_duration_ms: float | None = None
    # The detection or handler exception, for plugins (stack traces); never serialised.
    exception: BaseException | None = field(
        default=None, repr=False, compare=False, metadata={"serialise": False}
    )


@dataclass(slots=True)
class ListenResult(_Serialisable):
    """Outcome of one `listen_to` call: one `EventResult` per listened event.

    `timed_out` is True when the deadline cut the invocation; completed jobs keep their
    results and outstanding ones are marked `timeout`. `status` follows SPEC §5a.
    """

    invocation_id: str
    correlation_id: str
    events: list[EventResult] = field(default_factory=list)
    duration_ms: float = 0.0
    timed_out: bool = False
    error: str | None = None
    status: InvocationStatus = InvocationStatus.COMPLETED

    @property
    def detected_events(self) -> list[EventResult]:
        """The events whose detector said yes."""
        return [event for event in self.events if event.detected]

    @property
    def jobs(self) -> list[JobResult]:
        """Every job of every event, in event order."""
        return [job for event in self.events for job in event.jobs]
