"""Jobs: the units of work a handler runs, concurrently, with timeouts and retries.

    async def handler(event_name, event):
        return await run(event_name, event, [
            job(send_email, timeout=5, retries=2, template="shipped"),
            job(update_ledger),
        ])

A job function is `fn(event_name, event, options)`, sync or async. `options` is a fresh
dict per job: the keyword options given to `job()` plus what the library adds
(`RESERVED_OPTIONS`): `correlation_id`, `invocation_id`, `job_execution_id`, `job_name`,
`source_function`, `logger` (a `logging.Logger` whose lines are captured for this job),
`deadline` (absolute `time.monotonic()` seconds, or None), `tracking_token` (the string
to write into `updated_by` of rows the job changes) and `attempt` (1, 2, … on retries).

Semantics:
- all jobs of one `run()` start concurrently; results keep input order; a failure never
  affects sibling jobs;
- sync functions run in worker threads (contextvars copied) so they never block the loop;
- `timeout` (seconds) per attempt: an async job is cancelled (`asyncio.timeout`) and
  marked `timeout`. A sync job cannot be stopped (Python cannot kill a thread): it is
  reported `timeout` at once and its thread runs on until the function returns;
  for that reason a timed-out sync attempt is not retried;
- `retries=N` gives up to N + 1 attempts, waiting `backoff * 2**(n-1)` seconds plus up to
  `backoff / 2` of random jitter (capped at 30 s) before retry n; no retry is started
  that could not finish before the invocation's deadline. `attempts` is recorded and,
  when there was more than one, each attempt (`JobResult.attempt_history`).
- inside `listen_to`, plugins see `on_job_start`/`on_job_end` (and `on_error` on
  failure) and the invocation's deadline cancels outstanding jobs (status `timeout`).
  Standalone (`await run(...)` outside `listen_to`) no plugin is called.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .correlation import format_token
from .errors import ConfigurationError, JobTimeoutError
from .logcapture import log_scope
from .payload import HasuraEvent, parse_hasura_event
from .plugins import JobInfo
from .results import JobAttempt, JobResult
from .runtime import (
    EventRuntime,
    InvocationRuntime,
    call_user_code,
    current_event,
    current_invocation,
    is_async_callable,
    ms_since,
    utcnow,
)
from .status import JobStatus

RESERVED_OPTIONS = frozenset(
    {
        "correlation_id",
        "invocation_id",
        "job_execution_id",
        "job_name",
        "source_function",
        "logger",
        "deadline",
        "tracking_token",
        "attempt",
    }
)
DEFAULT_BACKOFF = 0.2
MAX_BACKOFF = 30.0

# Job loggers live under `detector.jobs`; at INFO unless the application sets a level,
# so `options["logger"].info(...)` is captured even when logging was never configured.
_jobs_logger = logging.getLogger("detector.jobs")
if _jobs_logger.level == logging.NOTSET:
    _jobs_logger.setLevel(logging.INFO)


def job_name_for(fn: Callable[..., Any]) -> str:
    """Default job name: the function's `__name__` (through partials), else `anonymous`."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name or name == "<lambda>":
        return "anonymous"
    return name


def _function_name(fn: Callable[..., Any]) -> str | None:
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


@dataclass(frozen=True, slots=True)
class Job:
    """What `job()` returns: a function and how to run it. Run it with `run()`."""

    fn: Callable[..., Any]
    name: str
    timeout: float | None = None
    retries: int = 0
    backoff: float = DEFAULT_BACKOFF
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def function_name(self) -> str | None:
        """The function's qualified name (`send_email`, `Mailer.send`, `<lambda>`)."""
        return _function_name(self.fn)


def _number(value: Any, option: str, *, minimum: float, allow_equal: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"job option `{option}` must be a number of seconds, got {value!r}"
        )
    if value < minimum or (value == minimum and not allow_equal):
        bound = ">=" if allow_equal else ">"
        raise ConfigurationError(
            f"job option `{option}` must be {bound} {minimum:g}, got {value!r}"
        )
    return float(value)


def job(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    timeout: float | None = None,
    retries: int = 0,
    backoff: float = DEFAULT_BACKOFF,
    **options: Any,
) -> Job:
    """Describe a job: `fn(event_name, event, options)` plus how to run it.

    `name` defaults to the function's name (`anonymous` for lambdas). `timeout` and
    `backoff` are seconds; `retries` is how many times a failure is retried. Other keyword
    arguments are the job's own options, passed to `fn` in `options`; the names in
    `RESERVED_OPTIONS` are the library's and raise ConfigurationError.
    """
    if not callable(fn):
        raise ConfigurationError(f"job() needs a callable, got {type(fn).__name__}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigurationError(f"job option `name` must be a non-empty string, got {name!r}")
    if timeout is not None:
        timeout = _number(timeout, "timeout", minimum=0, allow_equal=False)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"job option `retries` must be an integer >= 0, got {retries!r}")
    backoff = _number(backoff, "backoff", minimum=0, allow_equal=True)
    reserved = sorted(RESERVED_OPTIONS & options.keys())
    if reserved:
        raise ConfigurationError(
            f"job options {', '.join(map(repr, reserved))} are set by the library; rename yours"
        )
    return Job(fn, name or job_name_for(fn), timeout, retries, backoff, dict(options))


def error_message(error: BaseException) -> str:
    """A one-line description of an exception (its message, else its class name)."""
    text = str(error).strip()
    return text if text else type(error).__name__


class JobRun:
    """One job being run: its result record, options, and the plugin view of it."""

    __slots__ = (
        "_is_async",
        "announced",
        "done",
        "event",
        "event_name",
        "event_runtime",
        "info",
        "invocation",
        "job",
        "options",
        "result",
        "started",
    )

    def __init__(
        self,
        descriptor: Job,
        event_name: str,
        event: HasuraEvent,
        invocation: InvocationRuntime | None,
        event_runtime: EventRuntime | None,
        correlation_id: str,
    ) -> None:
        job_execution_id = str(uuid.uuid4())
        started_at = utcnow()
        self.job = descriptor
        self.event_name = event_name
        self.event = event
        self.invocation = invocation
        self.event_runtime = event_runtime
        self.done = False
        self.announced = False  # on_job_start was called
        self.started: float | None = None
        self._is_async = is_async_callable(descriptor.fn)
        self.result = JobResult(
            name=descriptor.name,
            completed=False,
            status=JobStatus.RUNNING,
            attempts=0,
            started_at=started_at,
            job_execution_id=job_execution_id,
        )
        source_function = invocation.info.source_function if invocation else None
        options = dict(descriptor.options)
        options.update(
            correlation_id=correlation_id,
            invocation_id=invocation.invocation_id if invocation else None,
            job_execution_id=job_execution_id,
            job_name=descriptor.name,
            source_function=source_function,
            logger=logging.getLogger(f"detector.jobs.{descriptor.name}"),
            deadline=invocation.deadline if invocation else None,
            attempt=1,
        )
        # Same as TrackingToken.for_job(options).format(), minus re-validating our own ids.
        options["tracking_token"] = format_token(
            source_function or descriptor.name, correlation_id, job_execution_id
        )
        self.options = options
        # Plugins only hear about jobs that belong to an event of an invocation.
        self.info: JobInfo | None = None
        if invocation is not None and event_runtime is not None:
            self.info = JobInfo(
                job_execution_id=job_execution_id,
                name=descriptor.name,
                function_name=descriptor.function_name,
                options=descriptor.options,
                event=event_runtime.info,
                started_at=started_at,
                timeout=descriptor.timeout,
                retries=descriptor.retries,
            )

    async def execute(self) -> JobResult:
        """Run all attempts and finish the record; re-raises only cancellation."""
        invocation = self.invocation if self.info is not None else None
        self.started = time.perf_counter()
        self.result.started_at = utcnow()
        try:
            if invocation is None:
                value = await self._attempts()
            else:
                if invocation.cut:
                    raise JobTimeoutError(self.job.name, None, deadline=True)
                await self._announce()
                with log_scope(
                    invocation, self.info.event.event_execution_id, self.info.job_execution_id
                ):
                    value = await self._attempts()
        except JobTimeoutError as error:
            await self.finish(JobStatus.TIMEOUT, error=error)
        except asyncio.CancelledError:
            await self.finish_cancelled()
            raise
        except Exception as error:
            await self.finish(JobStatus.FAILED, error=error)
        else:
            await self.finish(JobStatus.COMPLETED, value=value)
        return self.result

    async def _announce(self) -> None:
        if self.announced or self.invocation is None or self.info is None:
            return
        self.announced = True
        if self.invocation.dispatcher.wants("on_job_start"):
            await self.invocation.dispatcher.call("on_job_start", self.info)

    async def finish_cancelled(self) -> None:
        """Finish a job that was cancelled: `timeout` if the deadline did it, else `cancelled`."""
        if self.invocation is not None and self.invocation.cut:
            await self.finish(
                JobStatus.TIMEOUT, error=JobTimeoutError(self.job.name, None, deadline=True)
            )
        else:
            await self.finish(
                JobStatus.CANCELLED,
                error=asyncio.CancelledError(
                    f"job `{self.job.name}` was cancelled before it ended"
                ),
            )

    async def finish(
        self, status: JobStatus, *, value: Any = None, error: BaseException | None = None
    ) -> None:
        """Record the outcome and tell plugins, once (later calls are ignored)."""
        if self.done:
            return
        self.done = True
        result = self.result
        result.status = status
        result.completed = status is JobStatus.COMPLETED
        result.result = value
        if error is not None:
            result.error = error_message(error)
            result.error_type = type(error).__name__
            result.exception = error
        result.ended_at = utcnow()
        result.duration_ms = ms_since(self.started) if self.started is not None else 0.0
        invocation, info = self.invocation, self.info
        if invocation is None or info is None:
            return
        await self._announce()  # a job cut before it started still gets its start hook
        dispatcher = invocation.dispatcher
        if error is not None and dispatcher.wants("on_error"):
            await dispatcher.call("on_error", error, "job", invocation.info, info.event, info)
        if dispatcher.wants("on_job_end"):
            await dispatcher.call("on_job_end", info, result)

    def _begin_attempt(self, number: int) -> None:
        self.result.attempts = number
        self.options["attempt"] = number
        if self.info is not None:
            self.info.attempt = number

    async def _attempts(self) -> Any:
        if self.job.retries == 0:
            self._begin_attempt(1)
            return await self._attempt()
        # tenacity loads with the first job that retries, not with the library.
        from tenacity import (
            AsyncRetrying,
            retry_if_exception,
            stop_after_attempt,
            wait_exponential_jitter,
        )

        backoff = self.job.backoff
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.job.retries + 1) | self._no_time_to_retry,
            wait=wait_exponential_jitter(multiplier=backoff, jitter=backoff / 2, max=MAX_BACKOFF),
            retry=retry_if_exception(self._retryable),
            reraise=True,
        )
        history: list[JobAttempt] = []
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                self._begin_attempt(number)
                if number == 2:
                    # One attempt is the job itself: only a retried job keeps its history.
                    # Set now, so a job cut by the deadline reports the attempts it made.
                    self.result.attempt_history = history
                return await self._recorded_attempt(number, history)
        raise AssertionError("tenacity ended without a result or an error")  # pragma: no cover

    async def _recorded_attempt(self, number: int, history: list[JobAttempt]) -> Any:
        """One attempt of a job that may retry, appended to `history` however it ends."""
        started_at = utcnow()
        began = time.perf_counter()
        try:
            value = await self._attempt()
        except BaseException as error:
            history.append(
                JobAttempt(
                    number,
                    started_at,
                    utcnow(),
                    ms_since(began),
                    self._attempt_status(error),
                    error_message(error),
                    type(error).__name__,
                )
            )
            raise
        history.append(
            JobAttempt(number, started_at, utcnow(), ms_since(began), JobStatus.COMPLETED)
        )
        return value

    def _attempt_status(self, error: BaseException) -> JobStatus:
        if isinstance(error, JobTimeoutError):
            return JobStatus.TIMEOUT
        if isinstance(error, asyncio.CancelledError):
            cut = self.invocation is not None and self.invocation.cut
            return JobStatus.TIMEOUT if cut else JobStatus.CANCELLED
        return JobStatus.FAILED

    def _retryable(self, error: BaseException) -> bool:
        if not isinstance(error, Exception):
            return False
        if isinstance(error, JobTimeoutError) and error.thread_still_running:
            return False  # retrying would run the job twice at once
        return not (self.invocation is not None and self.invocation.cut)

    def _no_time_to_retry(self, retry_state: Any) -> bool:
        """Stop retrying when the backoff would end past the invocation's cut-off."""
        if self.invocation is None:
            return False
        remaining = self.invocation.remaining_before_cut()
        return remaining is not None and retry_state.upcoming_sleep >= remaining

    async def _attempt(self) -> Any:
        fn, timeout = self.job.fn, self.job.timeout
        args = (self.event_name, self.event, self.options)
        if timeout is None:
            return await call_user_code(fn, *args)
        try:
            async with asyncio.timeout(timeout) as window:
                return await call_user_code(fn, *args)
        except TimeoutError:
            if not window.expired():
                raise  # the job's own TimeoutError, not ours
            error = JobTimeoutError(self.job.name, timeout)
            error.thread_still_running = not self._is_async
            raise error from None


def _as_jobs(jobs: Iterable[Job | Callable[..., Any] | None]) -> list[Job]:
    if isinstance(jobs, Job):
        return [jobs]
    try:
        items = list(jobs)
    except TypeError:
        raise ConfigurationError(
            f"run() takes a list of job(...) descriptors, got {type(jobs).__name__}"
        ) from None
    out = []
    for item in items:
        if item is None:  # `job(x) if condition else None` in a list
            continue
        if isinstance(item, Job):
            out.append(item)
        elif callable(item):
            out.append(job(item))
        else:
            raise ConfigurationError(
                f"run() takes job(...) descriptors or functions, got {type(item).__name__}"
            )
    return out


async def run(
    event_name: str,
    event: HasuraEvent | Mapping[str, Any],
    jobs: Iterable[Job | Callable[..., Any] | None],
) -> list[JobResult]:
    """Run jobs concurrently and return their results in input order.

    `jobs` holds `job(...)` descriptors (a bare function counts as `job(fn)`, None entries
    are skipped). `event` is the `HasuraEvent` the handler received (a raw payload is
    validated first). Never raises for a failing job: its `JobResult` says what happened.
    Raises ConfigurationError for arguments that are not jobs.
    """
    if not isinstance(event_name, str) or not event_name:
        raise ConfigurationError(f"run() needs the event name first, got {event_name!r}")
    parsed = parse_hasura_event(event)
    descriptors = _as_jobs(jobs)
    if not descriptors:
        return []
    invocation = current_invocation.get()
    event_runtime = current_event.get() if invocation is not None else None
    correlation_id = invocation.info.correlation_id if invocation else str(uuid.uuid4())
    runs = [
        JobRun(descriptor, event_name, parsed, invocation, event_runtime, correlation_id)
        for descriptor in descriptors
    ]
    if event_runtime is not None:
        event_runtime.job_runs.extend(runs)
    tasks = [asyncio.ensure_future(one.execute()) for one in runs]
    if invocation is not None:
        invocation.job_tasks.update(tasks)
        for task in tasks:
            task.add_done_callback(invocation.job_tasks.discard)
    await asyncio.gather(*tasks)
    return [one.result for one in runs]
