"""Plugins: the narrow interface through which the library reports every step.

A plugin subclasses `Plugin` and overrides the hooks it needs; every hook is optional.
Hooks are `async` (a plugin may also override them with plain `def` methods; the
library awaits whatever is awaitable). They run in registration order, and a hook that
raises is isolated: it is counted, reported once through `logging`, and never breaks
the invocation.

The objects handed to hooks (`InvocationInfo`, `EventInfo`, `JobInfo`, `CapturedLog`)
carry the ids the library assigned, so a plugin never has to key anything by name.

Threading: `on_log` is called from the thread that logged (a sync job runs in a worker
thread). If a plugin's `on_log` is a plain method it is called right there and must be
thread-safe and non-blocking; if it is a coroutine function it is scheduled on the
invocation's event loop.

A plugin instance may opt out of a hook its class implements by setting the instance
attribute to None (`self.on_log = None`): the library then treats the hook as absent
(for `on_log`, no log capture is installed on its behalf).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .status import LogLevel

if TYPE_CHECKING:
    from .modules import EventModule
    from .payload import HasuraEvent
    from .results import JobResult, ListenResult


@dataclass(slots=True)
class ListenOptions:
    """Resolved options of one `listen_to` call (see `listen_to` for each)."""

    events_dir: Path | None = None
    modules: list[EventModule] | None = None
    only: list[str] | None = None
    source_function: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    invocation_id: str | None = None
    deadline: float | None = None
    safety_margin_ms: float = 2000.0
    reload: bool = False


@dataclass(slots=True)
class InvocationInfo:
    """One `listen_to` call, as plugins see it.

    `event` is None for a rejected payload (then `error` says why). `received_at` and
    `started_at` are UTC wall-clock times. `source_job_id` is the job execution that
    caused this row change (from a tracking token), if any; `source_tracking_token` is
    that token as found in the row. `delivery_attempt` is Hasura's
    `delivery_info.current_retry` + 1.
    """

    invocation_id: str
    correlation_id: str
    source_function: str
    payload: Any
    event: HasuraEvent | None
    options: ListenOptions
    received_at: datetime
    started_at: datetime
    source_job_id: str | None = None
    delivery_attempt: int = 1
    error: BaseException | None = None
    source_tracking_token: str | None = None

    @property
    def context(self) -> dict[str, Any]:
        """The `context` option (a dict, empty when none was given)."""
        return self.options.context


@dataclass(slots=True)
class EventInfo:
    """One event module checked during an invocation."""

    event_execution_id: str
    name: str
    module_path: str | None
    invocation: InvocationInfo
    started_at: datetime


@dataclass(slots=True)
class JobInfo:
    """One job run. `options` are the options the user gave to `job()` (no injected keys)."""

    job_execution_id: str
    name: str
    function_name: str | None
    options: Mapping[str, Any]
    event: EventInfo
    started_at: datetime
    timeout: float | None = None
    retries: int = 0
    attempt: int = 1

    @property
    def invocation(self) -> InvocationInfo:
        """The invocation this job belongs to."""
        return self.event.invocation


@dataclass(slots=True)
class CapturedLog:
    """One log line captured inside a detector, handler or job.

    `seq` increases within an invocation, so lines keep their order even with equal
    timestamps. `source` is the logger name, or `stdout`/`stderr` for print output.
    """

    invocation_id: str
    event_execution_id: str | None
    job_execution_id: str | None
    level: LogLevel
    message: str
    created_at: datetime
    seq: int
    source: str | None = None
    line_number: int | None = None
    data: dict[str, Any] | None = None


ErrorScope = Literal["invocation", "module", "detector", "handler", "job"]


class Plugin:
    """Base class of plugins. Override any hook; the defaults do nothing.

    A rejected payload (`InvalidEventPayload`) still gets `on_configure` →
    `on_invocation_start` (with `event=None`) → `on_invocation_end` (status `rejected`) →
    `flush`, and then the error is raised to the caller.

    Hook order for one invocation: `on_configure` → `on_invocation_start` → per event
    (concurrently across events) either `on_event_skipped` (the module declares tables or
    operations this event is not) or `on_detection_start` → `on_detection_end` → if detected
    `on_handler_start` → per job `on_job_start` → `on_job_end` → `on_handler_end` →
    `on_invocation_end`. `on_log` and `on_error` fire whenever they happen. `flush` runs at
    the end of every invocation (and when a deadline cuts it); `shutdown` when the plugin
    is unregistered or the process exits.
    """

    name: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__

    async def on_configure(self, options: ListenOptions) -> ListenOptions | None:
        """Inspect or change the options before the invocation starts.

        Return new `ListenOptions`, a dict of changes, or None (changes made in place are
        kept). Runs before the payload is validated; options that fail validation are
        dropped and counted as an error of this hook.
        """
        return None

    async def on_invocation_start(self, invocation: InvocationInfo) -> None:
        """The payload was validated (or rejected: `invocation.event is None`)."""

    async def on_event_skipped(self, event: EventInfo) -> None:
        """The module does not listen to this event's table or operation: its detector
        does not run, and no other hook is called for it."""

    async def on_detection_start(self, event: EventInfo) -> None:
        """An event module is about to be loaded and its detector run."""

    async def on_detection_end(
        self, event: EventInfo, detected: bool, duration_ms: float, error: BaseException | None
    ) -> None:
        """The detector answered (`error` set if it raised or the module failed to load)."""

    async def on_handler_start(self, event: EventInfo) -> None:
        """A detected event's handler is about to run."""

    async def on_handler_end(
        self,
        event: EventInfo,
        jobs: list[JobResult],
        duration_ms: float,
        error: BaseException | None,
    ) -> None:
        """The handler returned (or raised: `error`); `jobs` are the results it returned."""

    async def on_job_start(self, job: JobInfo) -> None:
        """A job's first attempt is about to run."""

    async def on_job_end(self, job: JobInfo, result: JobResult) -> None:
        """A job finished: completed, failed, timed out or cancelled, after all attempts."""

    async def on_log(self, record: CapturedLog) -> None:
        """A log line was captured (see the module docstring for threading)."""

    async def on_error(
        self,
        error: BaseException,
        scope: ErrorScope,
        invocation: InvocationInfo,
        event: EventInfo | None = None,
        job: JobInfo | None = None,
    ) -> None:
        """Something raised inside the invocation: a module import, detector, handler or job."""

    async def on_invocation_end(self, invocation: InvocationInfo, result: ListenResult) -> None:
        """The invocation finished; `result.status` is its final status."""

    async def flush(self) -> None:
        """Send buffered data now (called at the end of each invocation)."""

    async def shutdown(self) -> None:
        """Flush and release resources; the plugin may be used again afterwards."""
