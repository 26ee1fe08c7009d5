"""ObservabilityPlugin: records every invocation, event, job and log line (SPEC §1.7).

Recording is an append to an in-memory buffer: each hook turns what it is told into the
columns it knows (redacted, serialised and capped right there) and merges them into the
row's pending patch. Nothing on that path does I/O or waits. A background thread writes
the buffer (see `flusher.py`); `stats()` says what was recorded, written, dropped and
quarantined. The host never sees an exception from this plugin.

    from detector.observability import ObservabilityPlugin
    plugin = ObservabilityPlugin("postgresql://…")          # or sqlite:///…, or graphql_url=…
    result = await listen_to(payload, plugins=[plugin])
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import traceback
import uuid
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..plugins import CapturedLog, EventInfo, InvocationInfo, JobInfo, ListenOptions, Plugin
from ..results import JobResult, ListenResult
from ..status import EventStatus, InvocationStatus, JobStatus, Operation
from .buffer import BoundedBuffer
from .capture import Sanitizer, truncate_text
from .config import ObservabilityConfig
from .flusher import BackgroundFlusher
from .writers import Writer, writer_for

log = logging.getLogger("detector.observability")

DROP_LOG_CAP = "log_lines_over_per_job_cap"
_OPERATIONS = {op.value for op in Operation}
_LOG_COLUMNS = (
    "id",
    "invocation_id",
    "event_execution_id",
    "job_execution_id",
    "created_at",
    "seq",
    "level",
    "message",
    "data",
    "source",
    "line_number",
)


def _ms(value: float | None) -> int | None:
    return None if value is None else round(value)


def _uuid_or_none(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


class _LogCap:
    """Log lines seen and dropped for one job (or one event's / invocation's own lines)."""

    __slots__ = ("dropped", "event_id", "first_dropped_seq", "invocation_id", "job_id", "seen")

    def __init__(self, record: CapturedLog) -> None:
        self.seen = 0
        self.dropped = 0
        self.first_dropped_seq = 0
        self.invocation_id = record.invocation_id
        self.event_id = record.event_execution_id
        self.job_id = record.job_execution_id


class ObservabilityPlugin(Plugin):
    """Buffered recording of invocations, events, jobs and logs into SQL or GraphQL.

    `database_url` (`sqlite:///path.db`, `postgresql://…`) or `graphql_url` (+
    `admin_secret`) choose the store; every other option is a field of
    `ObservabilityConfig`, also settable as `OBSERVABILITY_<NAME>` in the environment.
    With neither URL, the embedded default `sqlite:///event-detector.db` is used.
    `writer` replaces the store entirely (for tests and custom stores).
    Raises `ConfigurationError` for bad options; never raises after that.
    """

    name = "observability"

    def __init__(
        self,
        database_url: str | None = None,
        *,
        graphql_url: str | None = None,
        admin_secret: str | None = None,
        writer: Writer | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        arguments = {
            "database_url": database_url,
            "graphql_url": graphql_url,
            "admin_secret": admin_secret,
            **options,
        }
        self.config = config = ObservabilityConfig.build(arguments, environ)
        self.sanitizer = Sanitizer(
            redact_keys=config.deny_words,
            redact=config.redact,
            max_value_bytes=config.max_value_bytes,
        )
        self.buffer = BoundedBuffer(config.max_buffer_bytes)
        if writer is None:
            writer = writer_for(config.database_url, config.graphql_url, config.admin_secret)
            if config.database_url and config.database_url.startswith("sqlite:"):
                writer.auto_migrate = config.should_migrate  # type: ignore[attr-defined]
        self.writer = writer
        self.flusher = BackgroundFlusher(self.buffer, writer, config)
        self._log_lock = threading.Lock()
        self._log_caps: dict[str, _LogCap] = {}
        self.hook_errors = 0
        _register(self)

    # -- public API ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What the plugin recorded, wrote, dropped (by reason) and quarantined, and its
        buffer and flush health. Counts are since the plugin was created."""
        f = self.flusher
        age = self.buffer.oldest_age()
        dropped = dict(self.buffer.dropped)
        return {
            "writer": self.writer.name,
            "instance_id": f.instance_id,
            "buffered_records": len(self.buffer),
            "buffered_bytes": self.buffer.nbytes,
            "recorded": dict(self.buffer.recorded),
            "coalesced": self.buffer.coalesced,
            "written": dict(f.written),
            "dropped": dropped,
            "dropped_total": sum(dropped.values()),
            "quarantined": f.quarantined_total,
            "flushes": f.flushes,
            "failed_flushes": f.failed_flushes,
            "last_flush_at": f.last_flush_at.isoformat() if f.last_flush_at else None,
            "flush_lag_ms": None if age is None else int(age * 1000),
            "last_error": f.last_error,
            "hook_errors": self.hook_errors,
            "redaction_errors": self.sanitizer.redaction_errors,
        }

    @property
    def quarantined_records(self) -> list[dict[str, Any]]:
        """The most recent quarantined records (at most 1000), whole, with their errors."""
        return list(self.flusher.quarantined)

    def force_flush(self, timeout: float | None = None) -> bool:
        """Write everything buffered now, waiting at most `timeout` seconds (default
        `flush_timeout`); True when the buffer is empty afterwards. Thread-safe; blocks."""
        try:
            return self.flusher.flush(self.config.flush_timeout if timeout is None else timeout)
        except Exception:
            return False

    def shutdown_sync(self, timeout: float | None = None) -> bool:
        """Flush within `timeout` (default `shutdown_timeout`), stop the writer thread and
        close connections. The plugin may record again afterwards (it restarts)."""
        try:
            return self.flusher.stop(self.config.shutdown_timeout if timeout is None else timeout)
        except Exception:
            return False

    # -- hooks: flushing -------------------------------------------------------------

    async def flush(self) -> None:
        """End of an invocation: in serverless mode wait for the write (bounded by
        `flush_timeout`); otherwise return at once (the writer flushes on its interval)."""
        if not self.config.enabled or not self.config.serverless or not len(self.buffer):
            return
        import asyncio

        try:
            future = self.flusher.flush_future(self.config.flush_timeout)
            if future is not None:
                await asyncio.wait_for(asyncio.wrap_future(future), self.config.flush_timeout + 1)
        except Exception:
            pass

    async def shutdown(self) -> None:
        """Flush and stop without blocking the caller's loop."""
        import asyncio

        try:
            await asyncio.to_thread(self.shutdown_sync)
        except Exception:
            pass

    # -- hooks: recording ------------------------------------------------------------

    def _record(self, table: str, row_id: str, values: dict[str, Any]) -> None:
        flusher = self.flusher
        if not flusher.started:
            flusher.ensure_started()
        if self.buffer.add_execution(table, row_id, values) >= self.config.batch_size:
            flusher.wake()

    def _failed_hook(self, hook: str, exc: BaseException) -> None:
        self.hook_errors += 1
        if self.hook_errors == 1:
            log.warning(
                "observability: %s failed (%s); recording goes on", hook, type(exc).__name__
            )

    def _stack(self, error: BaseException | None) -> str | None:
        if error is None or not self.config.capture_error_stacks:
            return None
        text = "".join(traceback.format_exception(error))
        return truncate_text(text, self.config.max_error_chars * 4)

    def _message(self, error: BaseException | str | None) -> str | None:
        if error is None:
            return None
        text = error if isinstance(error, str) else (str(error) or type(error).__name__)
        return truncate_text(text, self.config.max_error_chars)

    async def on_configure(self, options: ListenOptions) -> ListenOptions | None:
        return None

    async def on_invocation_start(self, invocation: InvocationInfo) -> None:
        if not self.config.enabled:
            return
        try:
            self._record("invocations", invocation.invocation_id, self._invocation_row(invocation))
        except Exception as exc:
            self._failed_hook("on_invocation_start", exc)

    def _invocation_row(self, invocation: InvocationInfo) -> dict[str, Any]:
        config = self.config
        event = invocation.event
        options = invocation.options
        payload = invocation.payload
        row: dict[str, Any] = {
            "id": invocation.invocation_id,
            "created_at": invocation.started_at,
            "correlation_id": invocation.correlation_id,
            "source_function": invocation.source_function or "unknown",
            "source_system": "hasura",
            "source_job_id": _uuid_or_none(invocation.source_job_id),
            "delivery_attempt": invocation.delivery_attempt,
            "received_at": invocation.received_at,
            "auto_load_modules": options.modules is None,
            "event_modules_directory": (
                str(options.events_dir) if options.modules is None and options.events_dir else None
            ),
            "source_event_payload": self.sanitizer.to_json(payload)
            if config.capture_payload
            else None,
            "context_data": (
                self.sanitizer.to_json(options.context)
                if config.capture_context and options.context
                else None
            ),
            "status": InvocationStatus.RUNNING.value,
        }
        if event is not None:
            session = event.session_variables
            row.update(
                source_table=str(event.table) if event.table else None,
                source_operation=str(event.op.value if hasattr(event.op, "value") else event.op),
                source_trigger_name=event.trigger_name,
                source_event_id=None if event.id is None else str(event.id),
                source_event_time=event.created_at,
                source_user_email=session.get("x-hasura-user-email")
                or session.get("x-hasura-user-id"),
                source_user_role=session.get("x-hasura-role"),
                trace_id=event.trace_context.trace_id if event.trace_context else None,
            )
        else:
            row.update(_best_effort_source(payload))
        if invocation.error is not None:
            row["status"] = (
                InvocationStatus.REJECTED.value if event is None else InvocationStatus.FAILED.value
            )
            row["error_message"] = self._message(invocation.error)
            row["error_stack"] = self._stack(invocation.error)
        return row

    async def on_detection_start(self, event: EventInfo) -> None:
        if not self.config.enabled:
            return
        try:
            invocation = event.invocation
            self._record(
                "event_executions",
                event.event_execution_id,
                {
                    "id": event.event_execution_id,
                    "invocation_id": invocation.invocation_id,
                    "created_at": event.started_at,
                    "correlation_id": invocation.correlation_id,
                    "event_name": event.name,
                    "event_module_path": event.module_path,
                    "status": EventStatus.DETECTING.value,
                },
            )
        except Exception as exc:
            self._failed_hook("on_detection_start", exc)

    def _event_identity(self, event: EventInfo) -> dict[str, Any]:
        # Every patch carries the NOT NULL identity columns: it must be insertable alone.
        return {
            "id": event.event_execution_id,
            "invocation_id": event.invocation.invocation_id,
            "created_at": event.started_at,
            "correlation_id": event.invocation.correlation_id,
            "event_name": event.name,
        }

    async def on_detection_end(
        self, event: EventInfo, detected: bool, duration_ms: float, error: BaseException | None
    ) -> None:
        if not self.config.enabled:
            return
        try:
            if error is not None:
                status = EventStatus.DETECTION_FAILED
            elif detected:
                status = EventStatus.HANDLING
            else:
                status = EventStatus.NOT_DETECTED
            row = self._event_identity(event)
            row.update(
                detected=bool(detected) and error is None,
                detection_duration_ms=_ms(duration_ms),
                status=status.value,
            )
            if error is not None:
                row["detection_error"] = self._message(error)
                row["detection_error_stack"] = self._stack(error)
            self._record("event_executions", event.event_execution_id, row)
        except Exception as exc:
            self._failed_hook("on_detection_end", exc)

    async def on_handler_start(self, event: EventInfo) -> None:
        return None

    async def on_handler_end(
        self,
        event: EventInfo,
        jobs: list[JobResult],
        duration_ms: float,
        error: BaseException | None,
    ) -> None:
        if not self.config.enabled:
            return
        try:
            jobs = list(jobs or [])
            succeeded = sum(1 for job in jobs if job.status == JobStatus.COMPLETED)
            row = self._event_identity(event)
            row.update(
                detected=True,
                handler_duration_ms=_ms(duration_ms),
                jobs_count=len(jobs),
                jobs_succeeded=succeeded,
                jobs_failed=len(jobs) - succeeded,
                status=(EventStatus.HANDLER_FAILED if error else EventStatus.COMPLETED).value,
            )
            if error is not None:
                row["handler_error"] = self._message(error)
                row["handler_error_stack"] = self._stack(error)
            self._record("event_executions", event.event_execution_id, row)
        except Exception as exc:
            self._failed_hook("on_handler_end", exc)

    def _job_identity(self, job: JobInfo) -> dict[str, Any]:
        invocation = job.event.invocation
        return {
            "id": job.job_execution_id,
            "invocation_id": invocation.invocation_id,
            "event_execution_id": job.event.event_execution_id,
            "created_at": job.started_at,
            "correlation_id": invocation.correlation_id,
            "job_name": job.name,
        }

    async def on_job_start(self, job: JobInfo) -> None:
        if not self.config.enabled:
            return
        try:
            row = self._job_identity(job)
            row.update(
                job_function_name=job.function_name,
                started_at=job.started_at,
                attempts=job.attempt,
                status=JobStatus.RUNNING.value,
            )
            if self.config.capture_job_options:
                row["job_options"] = self.sanitizer.to_json(dict(job.options))
            self._record("job_executions", job.job_execution_id, row)
        except Exception as exc:
            self._failed_hook("on_job_start", exc)

    async def on_job_end(self, job: JobInfo, result: JobResult) -> None:
        if not self.config.enabled:
            return
        try:
            status = result.status.value if hasattr(result.status, "value") else str(result.status)
            row = self._job_identity(job)
            row.update(
                job_function_name=job.function_name,
                started_at=result.started_at or job.started_at,
                ended_at=result.ended_at,
                duration_ms=_ms(result.duration_ms),
                attempts=result.attempts,
                status=status,
                error_type=result.error_type,
                error_message=self._message(result.error),
            )
            if self.config.capture_results:
                row["result"] = self.sanitizer.to_json(result.result)
            self._record("job_executions", job.job_execution_id, row)
            self._close_log_cap(job.job_execution_id)
        except Exception as exc:
            self._failed_hook("on_job_end", exc)

    async def on_error(
        self,
        error: BaseException,
        scope: Any,
        invocation: InvocationInfo,
        event: EventInfo | None = None,
        job: JobInfo | None = None,
    ) -> None:
        if not self.config.enabled:
            return
        try:
            if scope == "job" and job is not None:
                row = self._job_identity(job)
                row.update(
                    error_type=type(error).__name__,
                    error_message=self._message(error),
                    error_stack=self._stack(error),
                )
                self._record("job_executions", job.job_execution_id, row)
            elif scope in ("detector", "module") and event is not None:
                row = self._event_identity(event)
                row.update(
                    detection_error=self._message(error),
                    detection_error_stack=self._stack(error),
                )
                self._record("event_executions", event.event_execution_id, row)
            elif scope == "handler" and event is not None:
                row = self._event_identity(event)
                row.update(
                    handler_error=self._message(error), handler_error_stack=self._stack(error)
                )
                self._record("event_executions", event.event_execution_id, row)
            else:
                self._record(
                    "invocations",
                    invocation.invocation_id,
                    {
                        "id": invocation.invocation_id,
                        "created_at": invocation.started_at,
                        "source_function": invocation.source_function or "unknown",
                        "error_message": self._message(error),
                        "error_stack": self._stack(error),
                    },
                )
        except Exception as exc:
            self._failed_hook("on_error", exc)

    async def on_invocation_end(self, invocation: InvocationInfo, result: ListenResult) -> None:
        if not self.config.enabled:
            return
        try:
            jobs = [job for event in result.events for job in event.jobs]
            succeeded = sum(1 for job in jobs if job.status == JobStatus.COMPLETED)
            status = result.status.value if hasattr(result.status, "value") else str(result.status)
            row: dict[str, Any] = {
                "id": invocation.invocation_id,
                "created_at": invocation.started_at,
                "source_function": invocation.source_function or "unknown",
                "correlation_id": result.correlation_id or invocation.correlation_id,
                "total_duration_ms": _ms(result.duration_ms),
                "events_detected_count": sum(1 for event in result.events if event.detected),
                "total_jobs_run": len(jobs),
                "total_jobs_succeeded": succeeded,
                "total_jobs_failed": len(jobs) - succeeded,
                "status": status,
            }
            # Never overwrite an error recorded earlier with nothing (upstream's bug).
            if result.error:
                row["error_message"] = self._message(result.error)
            elif result.timed_out:
                row["error_message"] = "the invocation's deadline was reached"
            self._record("invocations", invocation.invocation_id, row)
            self._close_log_caps_of(invocation.invocation_id)
        except Exception as exc:
            self._failed_hook("on_invocation_end", exc)

    def on_log(self, record: CapturedLog) -> None:  # type: ignore[override]
        """Buffer one log line (plain method: called from whichever thread logged)."""
        config = self.config
        if not config.enabled or not config.capture_logs:
            return
        try:
            key = record.job_execution_id or record.event_execution_id or record.invocation_id
            with self._log_lock:
                cap = self._log_caps.get(key)
                if cap is None:
                    cap = self._log_caps[key] = _LogCap(record)
                cap.seen += 1
                if cap.seen > config.max_logs_per_job:
                    if not cap.dropped:
                        cap.first_dropped_seq = record.seq
                    cap.dropped += 1
                    self.buffer.dropped[DROP_LOG_CAP] += 1
                    return
            self._add_log(
                record.invocation_id,
                record.event_execution_id,
                record.job_execution_id,
                record.created_at,
                record.seq,
                record.level.value if hasattr(record.level, "value") else str(record.level),
                truncate_text(record.message, config.max_log_line_chars),
                self.sanitizer.to_json(record.data) if record.data else None,
                record.source,
                record.line_number,
            )
        except Exception as exc:
            self._failed_hook("on_log", exc)

    def _add_log(self, *values: Any) -> None:
        row = dict(
            zip(
                _LOG_COLUMNS,
                (str(uuid.UUID(bytes=os.urandom(16), version=4)), *values),
                strict=True,
            )
        )
        if not self.flusher.started:
            self.flusher.ensure_started()
        if self.buffer.add_log(row["id"], row) >= self.config.batch_size:
            self.flusher.wake()

    def _close_log_cap(self, key: str) -> None:
        with self._log_lock:
            cap = self._log_caps.pop(key, None)
        if cap is not None and cap.dropped:
            self._cap_marker(cap)

    def _close_log_caps_of(self, invocation_id: str) -> None:
        with self._log_lock:
            keys = [k for k, cap in self._log_caps.items() if cap.invocation_id == invocation_id]
            caps = [self._log_caps.pop(k) for k in keys]
        for cap in caps:
            if cap.dropped:
                self._cap_marker(cap)

    def _cap_marker(self, cap: _LogCap) -> None:
        # An explicit line where the dropped ones would have been.
        self._add_log(
            cap.invocation_id,
            cap.event_id,
            cap.job_id,
            datetime.now(UTC),
            cap.first_dropped_seq,
            "warn",
            f"[{cap.dropped} more log lines not recorded: cap of "
            f"{self.config.max_logs_per_job} lines per job]",
            None,
            "event-detector",
            None,
        )


def _best_effort_source(payload: Any) -> dict[str, Any]:
    """Columns of a rejected payload, taken only where they are well-formed."""
    out: dict[str, Any] = {}
    if not isinstance(payload, Mapping):
        return out
    table = payload.get("table")
    if isinstance(table, Mapping) and isinstance(table.get("name"), str):
        schema = table.get("schema") if isinstance(table.get("schema"), str) else "public"
        out["source_table"] = f"{schema}.{table['name']}"
    trigger = payload.get("trigger")
    if isinstance(trigger, Mapping) and isinstance(trigger.get("name"), str):
        out["source_trigger_name"] = trigger["name"]
    if isinstance(payload.get("id"), str | int):
        out["source_event_id"] = str(payload["id"])
    event = payload.get("event")
    if isinstance(event, Mapping) and event.get("op") in _OPERATIONS:
        out["source_operation"] = event["op"]
    return out


# -- process-wide hooks: exit, SIGTERM, fork -------------------------------------------

_plugins: weakref.WeakSet[ObservabilityPlugin] = weakref.WeakSet()
_process_hooks_installed = False


def _register(plugin: ObservabilityPlugin) -> None:
    global _process_hooks_installed
    _plugins.add(plugin)
    if _process_hooks_installed:
        return
    _process_hooks_installed = True
    atexit.register(_flush_all_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
    if plugin.config.handle_sigterm:
        _install_sigterm_handler()


def _flush_all_at_exit() -> None:
    from .flusher import ACTIVE

    for flusher in list(ACTIVE):
        try:
            flusher.stop(flusher.config.shutdown_timeout)
        except Exception:
            pass


def _after_fork_in_child() -> None:
    from .flusher import ACTIVE

    for flusher in list(ACTIVE):
        flusher.buffer.reset_after_fork()
        flusher.reset_after_fork()
    for plugin in list(_plugins):
        plugin.buffer.reset_after_fork()
        plugin.flusher.reset_after_fork()
        plugin._log_lock = threading.Lock()
        plugin._log_caps.clear()


def _install_sigterm_handler() -> None:
    """Turn SIGTERM into a normal interpreter exit (so atexit flushes), if nobody else
    handles it. A host with its own handler (uvicorn, gunicorn) exits normally anyway."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def _exit(signum: int, frame: Any) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, _exit)
    except (ValueError, OSError):
        pass
