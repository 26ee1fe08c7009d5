"""The library's exceptions: one small hierarchy, each message saying what was wrong."""

from __future__ import annotations


class DetectorError(Exception):
    """Base class of every error this library raises on purpose."""


class InvalidEventPayload(DetectorError, ValueError):
    """The payload is not a Hasura event payload.

    `field` names the offending field as a dotted path (`event.data.new`), so a webhook
    can answer 400 with it and a developer can fix the sender.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"invalid Hasura event payload: `{field}` {problem}")


class EventModuleError(DetectorError):
    """An event module could not be loaded or does not have the expected shape."""

    def __init__(self, name: str, path: str | None, problem: str) -> None:
        self.name = name
        self.path = path
        self.problem = problem
        where = f" ({path})" if path else ""
        super().__init__(f"event module `{name}`{where}: {problem}")


class JobTimeoutError(DetectorError, TimeoutError):
    """A job ran past its `timeout` (seconds) or past the invocation's deadline and was cancelled."""

    def __init__(self, job_name: str, seconds: float | None, *, deadline: bool = False) -> None:
        self.job_name = job_name
        self.seconds = seconds
        self.deadline = deadline
        # True for a sync job: its worker thread cannot be stopped and may still run.
        self.thread_still_running = False
        if deadline:
            message = f"job `{job_name}` was cancelled: the invocation's deadline was reached"
        else:
            message = f"job `{job_name}` exceeded its timeout of {seconds:g} s and was cancelled"
        super().__init__(message)


class ConfigurationError(DetectorError, ValueError):
    """An option passed to the library is invalid; the message names it."""


class InvalidTrackingToken(DetectorError, ValueError):
    """A string is not a tracking token (`source|correlation_id|job_execution_id`)."""

    def __init__(self, text: object, problem: str) -> None:
        self.text = text
        self.problem = problem
        shown = repr(text) if not isinstance(text, str) else repr(text[:80])
        super().__init__(f"invalid tracking token {shown}: {problem}")


class DeadlineExceededError(DetectorError, TimeoutError):
    """The invocation's deadline (minus its safety margin) was reached before this step ended."""
