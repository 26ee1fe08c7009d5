"""`listen_to`: run event modules against one Hasura event payload.

One call is one *invocation*: validate the payload, resolve the correlation id, run every
event module's detector concurrently, run each detected event's handler as soon as its
detector says yes, and report every step to plugins. With a deadline, whatever is still
running when the remaining time falls to the safety margin is cut, and the partial result
is returned with `timed_out=True`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._sync import run_coroutine_sync
from .correlation import correlation_id_problem, is_uuid, resolve_correlation
from .dispatch import PluginDispatcher, registered_plugins, remember_plugins
from .errors import ConfigurationError, DeadlineExceededError, EventModuleError, InvalidEventPayload
from .jobs import Job, error_message
from .logcapture import capture, log_scope
from .modules import (
    EventModule,
    EventRegistry,
    LoadedModule,
    MissingModule,
    ModuleSource,
    as_module_list,
    discover,
    forget_directory,
)
from .payload import HasuraEvent, parse_hasura_event
from .plugins import EventInfo, InvocationInfo, ListenOptions, Plugin
from .results import EventResult, JobResult, ListenResult, detection_status, handler_status
from .runtime import (
    EventRuntime,
    InvocationRuntime,
    Phase,
    call_user_code,
    current_event,
    current_invocation,
    ms_since,
    utcnow,
)
from .status import EventStatus, InvocationStatus, JobStatus

DEFAULT_EVENTS_DIR = "events"
DEFAULT_SAFETY_MARGIN_MS = 2000.0
# After cancelling at the deadline, how long cancelled work may take to record itself
# before the library finishes the records on its behalf.
MAX_CUT_GRACE_S = 0.2


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validated(options: ListenOptions) -> ListenOptions:
    """Check and normalise options; raises ConfigurationError naming the bad one."""
    events_dir = options.events_dir
    if events_dir is not None:
        if not isinstance(events_dir, str | Path):
            raise ConfigurationError(
                f"`events_dir` must be a path, got {type(events_dir).__name__}"
            )
        events_dir = Path(events_dir).expanduser()
        if not events_dir.is_absolute():
            events_dir = Path.cwd() / events_dir
    modules = options.modules
    if modules is not None:
        modules = as_module_list(modules)
    only = options.only
    if only is not None:
        if isinstance(only, str):
            only = [only]
        only = list(only)
        if not all(isinstance(name, str) and name for name in only):
            raise ConfigurationError("`only` must be a list of event names (non-empty strings)")
    if options.source_function is not None and (
        not isinstance(options.source_function, str) or not options.source_function.strip()
    ):
        raise ConfigurationError(
            f"`source_function` must be a non-empty string, got {options.source_function!r}"
        )
    context = options.context
    if context is None:
        context = {}
    elif not isinstance(context, Mapping):
        raise ConfigurationError(f"`context` must be a dict, got {type(context).__name__}")
    elif not isinstance(context, dict):
        context = dict(context)
    if options.correlation_id is not None:
        problem = correlation_id_problem(options.correlation_id)
        if problem is not None:
            raise ConfigurationError(f"`correlation_id` {problem}")
    invocation_id = options.invocation_id
    if invocation_id is not None:
        if not is_uuid(invocation_id):
            raise ConfigurationError(
                f"`invocation_id` must be a UUID string (it is the record's key), got {invocation_id!r}"
            )
        invocation_id = str(uuid.UUID(invocation_id))
    if options.deadline is not None and not _is_number(options.deadline):
        raise ConfigurationError(
            f"`deadline` must be absolute time.monotonic() seconds, got {options.deadline!r}"
        )
    if not _is_number(options.safety_margin_ms) or options.safety_margin_ms < 0:
        raise ConfigurationError(
            f"`safety_margin_ms` must be a number >= 0, got {options.safety_margin_ms!r}"
        )
    return dataclasses.replace(
        options,
        events_dir=events_dir,
        modules=modules,
        only=only,
        context=context,
        invocation_id=invocation_id,
        reload=bool(options.reload),
    )


def _deadline(deadline: float | None, time_budget_ms: float | None, now: float) -> float | None:
    if time_budget_ms is None:
        return deadline
    if deadline is not None:
        raise ConfigurationError("pass either `deadline` or `time_budget_ms`, not both")
    if not _is_number(time_budget_ms) or time_budget_ms < 0:
        raise ConfigurationError(f"`time_budget_ms` must be a number >= 0, got {time_budget_ms!r}")
    return now + time_budget_ms / 1000.0


def _plugins(plugins: Iterable[Plugin] | None) -> list[Plugin]:
    if plugins is None:
        return registered_plugins()
    chosen = list(plugins)
    for plugin in chosen:
        if not isinstance(plugin, Plugin):
            raise ConfigurationError(
                f"`plugins` must contain detector.Plugin instances, got {type(plugin).__name__}"
            )
    remember_plugins(chosen)
    return chosen


def _raw_trigger_name(payload: Any) -> str | None:
    """Best-effort trigger name of a payload that failed validation."""
    if isinstance(payload, Mapping):
        trigger = payload.get("trigger")
        if isinstance(trigger, Mapping) and isinstance(trigger.get("name"), str):
            return trigger["name"] or None
    return None


def _sources(options: ListenOptions) -> list[ModuleSource]:
    """The event modules to run, honouring `only`; raises ConfigurationError."""
    if options.modules is not None:
        sources: list[ModuleSource] = [LoadedModule(module) for module in options.modules]
        where = "the `modules` option"
    else:
        assert options.events_dir is not None
        if options.reload:
            forget_directory(options.events_dir)
        sources = list(discover(options.events_dir))
        where = f"events directory {str(options.events_dir)!r}"
    if options.only is None:
        return sources
    by_name = {source.name: source for source in sources}
    return [by_name.get(name) or MissingModule(name, where) for name in dict.fromkeys(options.only)]


async def listen_to(
    payload: Any,
    *,
    events_dir: str | Path | None = None,
    modules: Iterable[EventModule] | EventRegistry | None = None,
    only: Iterable[str] | str | None = None,
    source_function: str | None = None,
    context: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
    invocation_id: str | None = None,
    plugins: Iterable[Plugin] | None = None,
    deadline: float | None = None,
    time_budget_ms: float | None = None,
    safety_margin_ms: float = DEFAULT_SAFETY_MARGIN_MS,
    reload: bool = False,
) -> ListenResult:
    """Run the event modules against one Hasura event payload; one result per listened event.

    Options:
    - `events_dir`: directory of event module files (default `./events`, relative paths
      resolved against the current working directory); ignored when `modules` is given.
    - `modules`: explicit `EventModule`s or an `EventRegistry` (no directory loading).
    - `only`: event names to listen for (default all).
    - `source_function`: name of the calling function (default the payload's
      `trigger.name`, else `unknown`).
    - `context`: dict available to detectors, handlers and jobs as `event.context`.
    - `correlation_id`: any non-empty string of at most 200 printable characters (default:
      found in the payload, else a new UUID; see `detector.correlation`).
    - `invocation_id`: a UUID for this invocation's record (default a new UUID4).
    - `plugins`: plugins to report to (default the registered ones).
    - `deadline` (absolute `time.monotonic()` seconds) or `time_budget_ms`, with
      `safety_margin_ms` (default 2000): when the remaining time falls to the margin,
      outstanding work is cancelled (jobs `timeout`), plugins are flushed and the partial
      result returns with `timed_out=True` and status `timeout`.
    - `reload`: re-import the events directory's modules (development).

    Raises `InvalidEventPayload` (a ValueError naming the field) for a payload that is not
    a Hasura event, after plugins saw it as a `rejected` invocation; ConfigurationError for
    bad options (before any plugin is called) or a missing events directory (after plugins
    saw a `failed` invocation). Errors inside event modules and jobs never raise: they are
    in the result.
    """
    received_at = utcnow()
    started = time.perf_counter()
    options = _validated(
        ListenOptions(
            events_dir=(
                events_dir if events_dir is not None or modules is not None else DEFAULT_EVENTS_DIR
            ),
            modules=modules,  # type: ignore[arg-type]  # normalised by _validated
            only=only,  # type: ignore[arg-type]
            source_function=source_function,
            context=context,  # type: ignore[arg-type]
            correlation_id=correlation_id,
            invocation_id=invocation_id,
            deadline=_deadline(deadline, time_budget_ms, time.monotonic()),
            safety_margin_ms=safety_margin_ms,
            reload=reload,
        )
    )
    dispatcher = PluginDispatcher(_plugins(plugins))
    options = await dispatcher.configure(options, _validated)

    try:
        event = parse_hasura_event(payload)
    except InvalidEventPayload as error:
        await _reject(payload, error, options, dispatcher, received_at, started)
        raise

    correlation = resolve_correlation(options.correlation_id, event)
    event = dataclasses.replace(event, context=options.context)
    info = InvocationInfo(
        invocation_id=options.invocation_id or str(uuid.uuid4()),
        correlation_id=correlation.correlation_id,
        source_function=options.source_function or event.trigger_name or "unknown",
        payload=payload,
        event=event,
        options=options,
        received_at=received_at,
        started_at=utcnow(),
        source_job_id=correlation.source_job_id,
        delivery_attempt=event.delivery_info.attempt,
        source_tracking_token=correlation.token_text,
    )
    runtime = InvocationRuntime(info, dispatcher, options.deadline, options.safety_margin_ms)
    # Capturing costs a root handler and stream proxies: only when a plugin wants lines.
    capturing = dispatcher.wants("on_log")
    if capturing:
        capture.acquire()
    token = current_invocation.set(runtime)
    try:
        return await _run_invocation(runtime, options, event, started)
    finally:
        current_invocation.reset(token)
        if capturing:
            capture.release()


async def _reject(
    payload: Any,
    error: InvalidEventPayload,
    options: ListenOptions,
    dispatcher: PluginDispatcher,
    received_at: Any,
    started: float,
) -> None:
    """Let plugins record a rejected invocation for a payload that failed validation."""
    info = InvocationInfo(
        invocation_id=options.invocation_id or str(uuid.uuid4()),
        correlation_id=options.correlation_id or str(uuid.uuid4()),
        source_function=options.source_function or _raw_trigger_name(payload) or "unknown",
        payload=payload,
        event=None,
        options=options,
        received_at=received_at,
        started_at=utcnow(),
        error=error,
    )
    await dispatcher.call("on_invocation_start", info)
    result = ListenResult(
        invocation_id=info.invocation_id,
        correlation_id=info.correlation_id,
        duration_ms=ms_since(started),
        error=str(error),
        status=InvocationStatus.REJECTED,
    )
    await dispatcher.call("on_invocation_end", info, result)
    await dispatcher.call("flush")


async def _run_invocation(
    runtime: InvocationRuntime, options: ListenOptions, event: HasuraEvent, started: float
) -> ListenResult:
    dispatcher, info = runtime.dispatcher, runtime.info
    await dispatcher.call("on_invocation_start", info)
    try:
        sources = _sources(options)
    except ConfigurationError as error:
        await dispatcher.call("on_error", error, "invocation", info)
        result = _result(runtime, started, status=InvocationStatus.FAILED, error=str(error))
        await _end(runtime, result)
        raise

    for source in sources:
        event_execution_id = str(uuid.uuid4())
        event_info = EventInfo(event_execution_id, source.name, source.path, info, utcnow())
        runtime.events.append(
            EventRuntime(
                event_info,
                EventResult(
                    name=source.name, detected=False, event_execution_id=event_execution_id
                ),
            )
        )
    tasks = [
        asyncio.create_task(_run_event(runtime, one, source, event), name=f"detector:{source.name}")
        for one, source in zip(runtime.events, sources, strict=True)
    ]
    timed_out = False
    try:
        if tasks:
            remaining = runtime.remaining_before_cut()
            _, pending = await asyncio.wait(
                tasks, timeout=None if remaining is None else max(0.0, remaining)
            )
            if pending:
                timed_out = True
                await _cut(runtime, tasks, deadline=True)
    except asyncio.CancelledError:
        # The caller cancelled us: record what happened, then let the cancellation through.
        await _cut(runtime, tasks, deadline=False)
        await runtime.drain_hooks()
        result = _result(
            runtime, started, status=InvocationStatus.FAILED, error="the invocation was cancelled"
        )
        await _end(runtime, result)
        raise
    await runtime.drain_hooks()
    if timed_out:
        cut_jobs = sum(
            1
            for one in runtime.events
            for run in one.job_runs
            if run.result.status is JobStatus.TIMEOUT
        )
        result = _result(
            runtime,
            started,
            status=InvocationStatus.TIMEOUT,
            error=(
                f"deadline reached ({options.safety_margin_ms:g} ms safety margin): "
                f"outstanding work was cut, {cut_jobs} job(s) marked timeout"
            ),
            timed_out=True,
        )
    else:
        status, error = _outcome([one.result for one in runtime.events])
        result = _result(runtime, started, status=status, error=error)
    await _end(runtime, result)
    return result


def _result(
    runtime: InvocationRuntime,
    started: float,
    *,
    status: InvocationStatus,
    error: str | None,
    timed_out: bool = False,
) -> ListenResult:
    return ListenResult(
        invocation_id=runtime.info.invocation_id,
        correlation_id=runtime.info.correlation_id,
        events=[one.result for one in runtime.events],
        duration_ms=ms_since(started),
        timed_out=timed_out,
        error=error,
        status=status,
    )


async def _end(runtime: InvocationRuntime, result: ListenResult) -> None:
    runtime.closed = True
    await runtime.dispatcher.call("on_invocation_end", runtime.info, result)
    await runtime.dispatcher.call("flush")


_FAILED_EVENT_STATUSES = (
    EventStatus.DETECTION_FAILED,
    EventStatus.HANDLER_FAILED,
    EventStatus.FAILED,
)


def _outcome(events: list[EventResult]) -> tuple[InvocationStatus, str | None]:
    """`failed` with a short summary when any detector/handler raised or any job did not complete."""
    problems = []
    for one in events:
        if one.status in _FAILED_EVENT_STATUSES:
            problems.append(f"{one.name}: {one.error}")
        for result in one.jobs:
            if not result.completed:
                problems.append(f"{one.name} / job {result.name}: {result.status} ({result.error})")
    if not problems:
        return InvocationStatus.COMPLETED, None
    shown = "; ".join(problems[:3])
    if len(problems) > 3:
        shown += f"; and {len(problems) - 3} more"
    return InvocationStatus.FAILED, shown


async def _run_event(
    runtime: InvocationRuntime, one: EventRuntime, source: ModuleSource, event: HasuraEvent
) -> None:
    """Detect, and if detected handle, one event; every error ends up in its result.

    A module that declares tables or operations this event is not is skipped: its
    detector never runs, and plugins see `on_event_skipped` only.
    """
    current_event.set(one)  # this task's own context: run() inside the handler finds it
    dispatcher, name = runtime.dispatcher, one.info.name
    one.detect_started = time.perf_counter()
    # Loading is synchronous (cached after the first import): the declaration it reads
    # decides between skipping and detecting before any hook runs.
    try:
        module: EventModule | None = source.load()
        load_error: EventModuleError | None = None
    except EventModuleError as error:
        module, load_error = None, error
    if module is not None and not module.listens_to(event):
        one.phase = Phase.DONE
        one.result.status = EventStatus.SKIPPED
        await dispatcher.call("on_event_skipped", one.info)
        return
    one.phase = Phase.DETECTING
    one.result.status = EventStatus.DETECTING
    await dispatcher.call("on_detection_start", one.info)
    if module is None:
        await _finish_detection(runtime, one, False, load_error, scope="module")
        return
    try:
        with log_scope(runtime, one.event_execution_id):
            detected = bool(await call_user_code(module.detector, name, event))
    except Exception as error:
        await _finish_detection(runtime, one, False, error, scope="detector")
        return
    await _finish_detection(runtime, one, detected, None)
    if not detected:
        return
    await dispatcher.call("on_handler_start", one.info)
    try:
        with log_scope(runtime, one.event_execution_id):
            returned = await call_user_code(module.handler, name, event)
        jobs = _job_results(returned, name)
    except Exception as error:
        await _finish_handler(runtime, one, error, scope="handler")
        return
    await _finish_handler(runtime, one, None, jobs=jobs)


def _job_results(returned: Any, event_name: str) -> list[JobResult]:
    """Check what a handler returned: the list from `run()` (or None for no jobs)."""
    if returned is None:
        return []
    if isinstance(returned, JobResult):
        return [returned]
    if isinstance(returned, list | tuple):
        if all(isinstance(item, JobResult) for item in returned):
            return list(returned)
        if any(isinstance(item, Job) for item in returned):
            raise TypeError(
                f"the handler of `{event_name}` returned job descriptors without running them: "
                "return `await run(event_name, event, [job(...), ...])`"
            )
    raise TypeError(
        f"the handler of `{event_name}` must return the list from `run(...)` or None, "
        f"got {type(returned).__name__}"
    )


async def _finish_detection(
    runtime: InvocationRuntime,
    one: EventRuntime,
    detected: bool,
    error: BaseException | None,
    *,
    scope: str | None = None,
) -> None:
    """Record the detector's answer (once) and report it; `scope` names a real failure."""
    if one.phase is not Phase.DETECTING:
        return
    result = one.result
    result.detection_duration_ms = ms_since(one.detect_started)
    result.detected = detected and error is None
    result.status = detection_status(detected, error)
    if error is not None:
        result.error = error_message(error)
        result.exception = error
    if result.detected:
        one.phase = Phase.HANDLING
        one.handler_started = time.perf_counter()
    else:
        one.phase = Phase.DONE
    dispatcher = runtime.dispatcher
    if error is not None and scope is not None:
        await dispatcher.call("on_error", error, scope, runtime.info, one.info)
    await dispatcher.call(
        "on_detection_end", one.info, result.detected, result.detection_duration_ms, error
    )


async def _finish_handler(
    runtime: InvocationRuntime,
    one: EventRuntime,
    error: BaseException | None,
    *,
    jobs: list[JobResult] | None = None,
    scope: str | None = None,
) -> None:
    """Record the handler's outcome (once) and report it; without `jobs`, the jobs it ran."""
    if one.phase is not Phase.HANDLING:
        return
    one.phase = Phase.DONE
    result = one.result
    result.handler_duration_ms = ms_since(one.handler_started)
    result.jobs = jobs if jobs is not None else [run.result for run in one.job_runs]
    result.status = handler_status(error)
    if error is not None:
        result.error = error_message(error)
        result.exception = error
    dispatcher = runtime.dispatcher
    if error is not None and scope is not None:
        await dispatcher.call("on_error", error, scope, runtime.info, one.info)
    await dispatcher.call(
        "on_handler_end", one.info, result.jobs, result.handler_duration_ms, error
    )


async def _cut(
    runtime: InvocationRuntime, tasks: list[asyncio.Task[None]], *, deadline: bool
) -> None:
    """Cancel everything still running, then finish every record that is not finished.

    Cancelled work normally records itself (jobs become `timeout` at a deadline,
    `cancelled` otherwise); whatever has not done so after a short grace (a job that
    swallows cancellation, a detector still in its thread) is finished here.
    """
    runtime.cut = deadline
    running = [task for task in [*tasks, *runtime.job_tasks] if not task.done()]
    for task in running:
        task.cancel()
    if running:
        grace = MAX_CUT_GRACE_S
        if deadline:
            grace = min(grace, runtime.info.options.safety_margin_ms / 4000.0)
        await asyncio.wait(running, timeout=grace)
    for one in runtime.events:
        await _finish_cut_event(runtime, one, deadline)


def _cut_error(deadline: bool, message: str) -> BaseException:
    if deadline:
        return DeadlineExceededError(f"the invocation's deadline was reached {message}")
    return asyncio.CancelledError(f"the invocation was cancelled {message}")


async def _finish_cut_event(runtime: InvocationRuntime, one: EventRuntime, deadline: bool) -> None:
    dispatcher = runtime.dispatcher
    if one.phase is Phase.PENDING:
        one.phase = Phase.DETECTING
        one.detect_started = time.perf_counter()
        await dispatcher.call("on_detection_start", one.info)
    if one.phase is Phase.DETECTING:
        error = _cut_error(deadline, f"before the detector of `{one.info.name}` answered")
        await _finish_detection(runtime, one, False, error)
        return
    for run in one.job_runs:
        if not run.done:
            await run.finish_cancelled()
    if one.phase is Phase.HANDLING:
        error = _cut_error(deadline, f"before the handler of `{one.info.name}` returned")
        await _finish_handler(runtime, one, error)


def listen_to_sync(payload: Any, **options: Any) -> ListenResult:
    """`listen_to` for sync callers: same options, same result, same errors.

    Runs a fresh event loop for the call (like `asyncio.run`), so it works in any thread.
    Called from a thread whose event loop is running (sync code inside async code), it
    runs the invocation on a helper thread and blocks until it ends; prefer
    `await listen_to(...)` there.
    """
    return run_coroutine_sync(
        lambda: listen_to(payload, **options), thread_name="detector-listen", keep_context=True
    )
