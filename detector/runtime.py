"""State shared by `listen_to`, `run` and log capture while an invocation runs.

The current invocation and event travel in `contextvars`, so `run()` called inside a
handler (or a job running in a worker thread) knows which invocation it belongs to
without any argument threading, and concurrent invocations never see each other.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import itertools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dispatch import PluginDispatcher
    from .jobs import JobRun
    from .plugins import CapturedLog, EventInfo, InvocationInfo
    from .results import EventResult

# Worker threads for sync detectors, handlers and jobs. asyncio's default executor has
# only cpu_count + 4 threads (6 on a 2-core machine); sync jobs are usually I/O-bound,
# and a sync job past its timeout keeps its thread, so the library uses its own pool.
WORKER_THREADS = int(os.environ.get("DETECTOR_WORKER_THREADS", "64"))
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()

# True while a plugin hook or the library's own bookkeeping runs: log lines and prints
# made there belong to no job (and capturing them could loop back into `on_log`).
capture_suspended: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "detector_capture_suspended", default=False
)


def worker_executor() -> ThreadPoolExecutor:
    """The library's thread pool for sync user code (created on first use)."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    max_workers=WORKER_THREADS, thread_name_prefix="detector-worker"
                )
    return _executor


def is_async_callable(fn: Any) -> bool:
    """True for coroutine functions, partials of them, and objects with an async `__call__`."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - we want the bound __call__ itself
    return call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


async def call_user_code(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a detector, handler or job function without blocking the loop.

    Coroutine functions are awaited here; plain functions run in a worker thread with a
    copy of the current contextvars (so log capture knows where their lines belong). An
    awaitable returned by a plain function (`return run(...)` in a sync handler) is
    awaited on the loop.
    """
    if is_async_callable(fn):
        return await fn(*args)
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    outcome = await loop.run_in_executor(
        worker_executor(), functools.partial(context.run, fn, *args)
    )
    if inspect.isawaitable(outcome):
        outcome = await outcome
    return outcome


def utcnow() -> datetime:
    """Current UTC time (timezone-aware)."""
    return datetime.now(UTC)


def ms_since(started: float) -> float:
    """Milliseconds elapsed since a `time.perf_counter()` reading."""
    return (time.perf_counter() - started) * 1000.0


class Phase(Enum):
    """Where an event module is in its run (used to finish it correctly if it is cut)."""

    PENDING = "pending"
    DETECTING = "detecting"
    HANDLING = "handling"
    DONE = "done"


class EventRuntime:
    """One event module being run within an invocation."""

    __slots__ = (
        "detect_started",
        "handler_started",
        "info",
        "job_runs",
        "phase",
        "result",
    )

    def __init__(self, info: EventInfo, result: EventResult) -> None:
        self.info = info
        self.result = result
        self.phase = Phase.PENDING
        self.job_runs: list[JobRun] = []
        self.detect_started = 0.0
        self.handler_started = 0.0

    @property
    def event_execution_id(self) -> str:
        return self.info.event_execution_id


class InvocationRuntime:
    """One `listen_to` call while it runs: ids, plugins, deadline, log sequence."""

    __slots__ = (
        "_seq",
        "closed",
        "cut",
        "cut_at",
        "deadline",
        "dispatcher",
        "events",
        "info",
        "job_tasks",
        "loop",
        "loop_thread",
        "pending_hooks",
    )

    def __init__(
        self,
        info: InvocationInfo,
        dispatcher: PluginDispatcher,
        deadline: float | None,
        safety_margin_ms: float,
    ) -> None:
        self.info = info
        self.dispatcher = dispatcher
        self.deadline = deadline
        self.cut_at = None if deadline is None else deadline - safety_margin_ms / 1000.0
        # Set when the deadline cut the invocation: cancelled jobs then count as `timeout`.
        self.cut = False
        # Set once results are final: later log lines are no longer delivered.
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.events: list[EventRuntime] = []
        self.job_tasks: set[asyncio.Task[Any]] = set()
        self.pending_hooks: set[asyncio.Task[Any]] = set()
        self._seq = itertools.count(1)

    @property
    def invocation_id(self) -> str:
        return self.info.invocation_id

    def next_seq(self) -> int:
        """Next log sequence number (thread-safe: `itertools.count` is atomic under the GIL)."""
        return next(self._seq)

    def deliver_log(self, record: CapturedLog) -> None:
        """Hand a captured line to the plugins' `on_log` (from any thread)."""
        if not self.closed:
            self.dispatcher.deliver_log(record, self)

    def remaining_before_cut(self) -> float | None:
        """Seconds left until the deadline minus the safety margin (None without deadline)."""
        if self.cut_at is None:
            return None
        return self.cut_at - time.monotonic()

    async def drain_hooks(self) -> None:
        """Wait for `on_log` coroutines scheduled from worker threads or tasks."""
        # Callbacks queued with call_soon_threadsafe need one loop turn to become tasks.
        await asyncio.sleep(0)
        while self.pending_hooks:
            await asyncio.gather(*list(self.pending_hooks), return_exceptions=True)
            await asyncio.sleep(0)


current_invocation: contextvars.ContextVar[InvocationRuntime | None] = contextvars.ContextVar(
    "detector_current_invocation", default=None
)
current_event: contextvars.ContextVar[EventRuntime | None] = contextvars.ContextVar(
    "detector_current_event", default=None
)
