"""Status and level values: the one place they are defined.

The library writes these values, the database CHECK constraints accept exactly these
values (`schema.sql` and the models are tested against this module), and the web
client's filters list them.
"""

from __future__ import annotations

from enum import StrEnum


class InvocationStatus(StrEnum):
    """Outcome of one `listen_to` call (SPEC §5a "Counting")."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    REJECTED = "rejected"


class EventStatus(StrEnum):
    """Lifecycle of one event module checked during an invocation.

    `skipped`: the module declares tables or operations this event is not (its detector
    never ran). `timeout`: the invocation's deadline cut its detector or handler, as its
    outstanding jobs are `timeout` and the invocation is `timeout`.
    """

    DETECTING = "detecting"
    NOT_DETECTED = "not_detected"
    HANDLING = "handling"
    COMPLETED = "completed"
    FAILED = "failed"
    DETECTION_FAILED = "detection_failed"
    HANDLER_FAILED = "handler_failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"


class JobStatus(StrEnum):
    """Lifecycle of one job run."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class LogLevel(StrEnum):
    """Level of a captured log line (the standard `logging` levels folded to four)."""

    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class Operation(StrEnum):
    """Hasura event operations (`event.op`)."""

    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    MANUAL = "MANUAL"


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The string values of a status enum, in declaration order."""
    return tuple(member.value for member in enum)
