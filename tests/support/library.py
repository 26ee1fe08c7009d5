"""Helpers for the library's tests: payload builders and a plugin that records every hook."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from detector import (
    CapturedLog,
    EventInfo,
    InvocationInfo,
    JobInfo,
    JobResult,
    ListenOptions,
    ListenResult,
    Plugin,
    registered_plugins,
    reset_plugin_hook_errors,
    unregister_plugin,
)

ORDER_PACKED = {"id": 7, "status": "packed", "email": "ana@example.com", "total_cents": 1999}


def hasura_payload(
    op: str = "UPDATE",
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    *,
    table: str = "orders",
    trigger: str | None = "orders_events",
    session_variables: dict[str, Any] | None = None,
    trace_id: str | None = None,
    current_retry: int = 0,
) -> dict[str, Any]:
    """A Hasura event payload; UPDATE packed → shipped by default."""
    if old is None and new is None and op == "UPDATE":
        old = copy.deepcopy(ORDER_PACKED)
        new = {**ORDER_PACKED, "status": "shipped"}
    event: dict[str, Any] = {
        "op": op,
        "data": {"old": old, "new": new},
        "session_variables": session_variables
        if session_variables is not None
        else {"x-hasura-role": "user", "x-hasura-user-id": "u-1"},
    }
    if trace_id is not None:
        event["trace_context"] = {"trace_id": trace_id, "span_id": "00f067aa0ba902b7"}
    payload: dict[str, Any] = {
        "id": "5c2d4f4e-9a5b-4bb0-9d35-1b1c7c0e2a10",
        "created_at": "2026-03-04T08:05:42.900113",
        "table": {"schema": "public", "name": table},
        "delivery_info": {"current_retry": current_retry, "max_retries": 3},
        "event": event,
    }
    if trigger is not None:
        payload["trigger"] = {"name": trigger}
    return payload


def write_module(directory: Path, name: str, source: str) -> Path:
    """Write an event module file `<name>.py` into `directory`."""
    path = directory / f"{name}.py"
    path.write_text(source)
    return path


class RecordingPlugin(Plugin):
    """Records every hook call in order (thread-safe); `on_log` is a plain method."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.logs: list[CapturedLog] = []
        self._lock = threading.Lock()

    def _record(self, hook: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((hook, args))

    def hooks(self) -> list[str]:
        """Names of the hooks called, in order."""
        return [hook for hook, _ in self.calls]

    def args(self, hook: str) -> list[tuple[Any, ...]]:
        """Arguments of every call of `hook`."""
        return [args for name, args in self.calls if name == hook]

    async def on_configure(self, options: ListenOptions) -> None:
        self._record("on_configure", options)

    async def on_invocation_start(self, invocation: InvocationInfo) -> None:
        self._record("on_invocation_start", invocation)

    async def on_event_skipped(self, event: EventInfo) -> None:
        self._record("on_event_skipped", event)

    async def on_detection_start(self, event: EventInfo) -> None:
        self._record("on_detection_start", event)

    async def on_detection_end(
        self, event: EventInfo, detected: bool, duration_ms: float, error: BaseException | None
    ) -> None:
        self._record("on_detection_end", event, detected, duration_ms, error)

    async def on_handler_start(self, event: EventInfo) -> None:
        self._record("on_handler_start", event)

    async def on_handler_end(
        self,
        event: EventInfo,
        jobs: list[JobResult],
        duration_ms: float,
        error: BaseException | None,
    ) -> None:
        self._record("on_handler_end", event, jobs, duration_ms, error)

    async def on_job_start(self, job: JobInfo) -> None:
        self._record("on_job_start", job)

    async def on_job_end(self, job: JobInfo, result: JobResult) -> None:
        self._record("on_job_end", job, result)

    def on_log(self, record: CapturedLog) -> None:
        with self._lock:
            self.logs.append(record)

    async def on_error(
        self,
        error: BaseException,
        scope: str,
        invocation: InvocationInfo,
        event: EventInfo | None = None,
        job: JobInfo | None = None,
    ) -> None:
        self._record("on_error", error, scope, invocation, event, job)

    async def on_invocation_end(self, invocation: InvocationInfo, result: ListenResult) -> None:
        self._record("on_invocation_end", invocation, result)

    async def flush(self) -> None:
        self._record("flush")

    async def shutdown(self) -> None:
        self._record("shutdown")


@contextmanager
def clean_plugin_state() -> Iterator[None]:
    """Leave the global plugin registry and hook error counts as they were found."""
    before = registered_plugins()
    reset_plugin_hook_errors()
    try:
        yield
    finally:
        for plugin in registered_plugins():
            if all(plugin is not kept for kept in before):
                unregister_plugin(plugin)
        reset_plugin_hook_errors()
