"""Correlation ids and tracking tokens: how one business flow is followed across invocations.

A job that changes a row writes a `TrackingToken` (`source|correlation_id|job_execution_id`)
into the row's `updated_by` column. The invocation that this row change triggers finds the
token, shares its correlation id and records the job as its `source_job_id`, so a UI can
draw the cascade.

Correlation id precedence (SPEC §5a): the explicit option, then a tracking token in the
new row (`updated_by`/`updatedBy`), then the `x-correlation-id` session variable, then
Hasura's `trace_context.trace_id`, then a new UUID. Ids found in the payload that are not
valid correlation ids are skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, InvalidTrackingToken
from .payload import HasuraEvent

MAX_CORRELATION_ID_LENGTH = 200
# Columns a job writes its token into; `updatedby` is how older upstream rows spell it.
TOKEN_COLUMNS = ("updated_by", "updatedBy", "updatedby")
CORRELATION_SESSION_VARIABLE = "x-correlation-id"

_SEPARATOR = "|"
_ESCAPE = "\\"


def correlation_id_problem(value: Any) -> str | None:
    """Why `value` is not a valid correlation id, or None when it is.

    Valid: a string of 1 to 200 printable characters that is not only whitespace.
    """
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value.strip():
        return "must not be empty or blank"
    if len(value) > MAX_CORRELATION_ID_LENGTH:
        return f"must be at most {MAX_CORRELATION_ID_LENGTH} characters, got {len(value)}"
    if not value.isprintable():
        return "must contain only printable characters (no newlines, tabs or control characters)"
    return None


def validate_correlation_id(value: Any, option: str = "correlation_id") -> str:
    """Return `value` unchanged if it is a valid correlation id, else raise ConfigurationError."""
    problem = correlation_id_problem(value)
    if problem is not None:
        shown = repr(value[:60]) if isinstance(value, str) else type(value).__name__
        raise ConfigurationError(f"`{option}` {problem} (got {shown})")
    return value


def is_uuid(value: Any) -> bool:
    """True when `value` is a string holding a UUID (any case, with or without braces)."""
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _escape(part: str) -> str:
    return part.replace(_ESCAPE, _ESCAPE * 2).replace(_SEPARATOR, _ESCAPE + _SEPARATOR)


def format_token(source: str, correlation_id: str, job_execution_id: str | None = None) -> str:
    """`TrackingToken(...).format()` without re-validating parts the caller knows are valid."""
    parts = (
        (source, correlation_id)
        if job_execution_id is None
        else (source, correlation_id, job_execution_id)
    )
    return _SEPARATOR.join(_escape(part) for part in parts)


def _split(text: str) -> list[str]:
    """Split on unescaped separators, undoing the escapes."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == _ESCAPE:
            following = next(chars, None)
            if following is None:
                raise InvalidTrackingToken(text, "ends with a lone escape character")
            current.append(following)
        elif char == _SEPARATOR:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True, slots=True)
class TrackingToken:
    """`source|correlation_id|job_execution_id`: who changed a row, in which flow, by which job.

    `source` names the writer (by default the function that ran the job),
    `correlation_id` is the flow's correlation id, `job_execution_id` (a UUID, optional)
    is the job that wrote the row. A `|` or `\\` inside a part is escaped with `\\`, so
    any parts round-trip exactly through `format()`/`parse()`.
    """

    source: str
    correlation_id: str
    job_execution_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise InvalidTrackingToken(self.source, "`source` must be a non-empty string")
        problem = correlation_id_problem(self.correlation_id)
        if problem is not None:
            raise InvalidTrackingToken(self.correlation_id, f"`correlation_id` {problem}")
        if self.job_execution_id is not None and not is_uuid(self.job_execution_id):
            raise InvalidTrackingToken(self.job_execution_id, "`job_execution_id` must be a UUID")

    def format(self) -> str:
        """The token as the string a job writes into `updated_by`."""
        return format_token(self.source, self.correlation_id, self.job_execution_id)

    def __str__(self) -> str:
        return self.format()

    def with_job(self, job_execution_id: str | None) -> TrackingToken:
        """The same token naming another job execution."""
        return TrackingToken(self.source, self.correlation_id, job_execution_id)

    @classmethod
    def parse(cls, text: Any) -> TrackingToken:
        """Parse a token string; raises `InvalidTrackingToken` saying what is wrong.

        Two parts (`source|correlation_id`) or three (`…|job_execution_id`, a UUID).
        """
        if not isinstance(text, str):
            raise InvalidTrackingToken(text, f"must be a string, got {type(text).__name__}")
        parts = _split(text)
        if len(parts) not in (2, 3):
            raise InvalidTrackingToken(
                text, f"must have 2 or 3 parts separated by `|`, got {len(parts)}"
            )
        job_execution_id = parts[2] if len(parts) == 3 else None
        return cls(parts[0], parts[1], job_execution_id or None)

    @classmethod
    def try_parse(cls, value: Any) -> TrackingToken | None:
        """Like `parse`, but None for anything that is not a valid token."""
        if not isinstance(value, str) or _SEPARATOR not in value:
            return None
        try:
            return cls.parse(value)
        except InvalidTrackingToken:
            return None

    @classmethod
    def for_job(cls, options: Mapping[str, Any], *, source: str | None = None) -> TrackingToken:
        """The token a job writes into the rows it changes, built from the job's `options`.

        `options` is the dict the library passes to a job function. `source` defaults to
        the invocation's `source_function`, else the job name, else `system`.
        """
        correlation_id = options.get("correlation_id")
        if correlation_id is None:
            raise ConfigurationError(
                "TrackingToken.for_job needs the options dict the library passed to the job "
                "(it has no `correlation_id`)"
            )
        writer = source or options.get("source_function") or options.get("job_name") or "system"
        return cls(str(writer), str(correlation_id), options.get("job_execution_id"))


@dataclass(frozen=True, slots=True)
class Correlation:
    """What `resolve_correlation` found: the id, where it came from, and the cascade link."""

    correlation_id: str
    origin: str  # "option", "tracking_token", "session_variable", "trace_context", "generated"
    token: TrackingToken | None = None
    token_text: str | None = None

    @property
    def source_job_id(self) -> str | None:
        """The job execution that wrote the row (from the tracking token), if any."""
        return self.token.job_execution_id if self.token else None


def find_tracking_token(event: HasuraEvent) -> tuple[TrackingToken, str] | None:
    """The first valid tracking token in the new row's `updated_by`-like columns."""
    row = event.new
    if not row:
        return None
    for column in TOKEN_COLUMNS:
        text = row.get(column)
        token = TrackingToken.try_parse(text)
        if token is not None:
            return token, text
    return None


def resolve_correlation(explicit: str | None, event: HasuraEvent) -> Correlation:
    """Apply the correlation id precedence to one event (see the module docstring).

    `explicit` must already be valid (`validate_correlation_id`). The tracking token is
    reported (for `source_job_id`) even when another source wins.
    """
    found = find_tracking_token(event)
    token, token_text = found if found else (None, None)
    if explicit is not None:
        return Correlation(explicit, "option", token, token_text)
    if token is not None:
        return Correlation(token.correlation_id, "tracking_token", token, token_text)
    session_value = event.session_variables.get(CORRELATION_SESSION_VARIABLE)
    if session_value is not None and correlation_id_problem(session_value) is None:
        return Correlation(session_value, "session_variable")
    trace = event.trace_context
    if trace is not None and trace.trace_id and correlation_id_problem(trace.trace_id) is None:
        return Correlation(trace.trace_id, "trace_context")
    return Correlation(str(uuid.uuid4()), "generated")
