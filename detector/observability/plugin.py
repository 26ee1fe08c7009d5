"""ObservabilityPlugin: records every invocation, event, job and log line (SPEC §1.7).

Recording is an append to an in-memory inbox: each hook posts what it was told (the
library's objects, plus a snapshot of user values taken as compact JSON text by the C
encoder, so later mutations of those values cannot change the record) and returns. The
writer thread (see `flusher.py`) converts entries into rows — redaction, safe
serialisation, size caps, error stacks, log line caps — before anything is written, so
nothing leaves the process unredacted; then it writes the rows in batches. With a
`redact` callback, user values are cleaned on the calling thread instead, so the
callback sees them exactly as they were. `stats()` says what was recorded, written,
dropped and quarantined. The host never sees an exception from this plugin.

    from detector.observability import ObservabilityPlugin
    plugin = ObservabilityPlugin("postgresql://…")          # or sqlite:///…, or graphql_url=…
    result = await listen_to(payload, plugins=[plugin])
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import signal
import threading
import traceback
import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..plugins import CapturedLog, EventInfo, InvocationInfo, JobInfo, Plugin
from ..results import JobAttempt, JobResult, ListenResult, detection_status, handler_status
from ..status import EventStatus, InvocationStatus, JobStatus, Operation
from .buffer import BoundedBuffer
from .capture import Sanitizer, SnapshotEncoder, truncate_text
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


def _new_id() -> str:
    """A random (version 4) UUID as text; what `str(uuid.uuid4())` gives, 3x faster."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


# The variant bits (10xx) over the first hex digit of the fourth group.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def _uuid_or_none(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


class _CleanJSON:
    """JSON text already redacted and capped on the calling thread (the writer keeps it)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


# A user value as an entry carries it: None, raw JSON text (redacted and capped by the
# writer thread), or text cleaned already.
Snapshot = str | _CleanJSON | None

# Inbox entry kinds (the first item of each entry tuple).
_INVOCATION_START = 0
_DETECTION_START = 1
_DETECTION_END = 2
_HANDLER_END = 3
_JOB_START = 4
_JOB_END = 5
_LOG = 6
_INVOCATION_ERROR = 7
_INVOCATION_END = 8
_EVENT_SKIPPED = 9
_ENTRY_BYTES = 200


class _LogCap:
    """Log lines seen and dropped for one job (or one event's / invocation's own lines)."""

    __slots__ = ("dropped", "event_id", "first_dropped_seq", "invocation_id", "job_id", "seen")

    def __init__(self, invocation_id: str, event_id: str | None, job_id: str | None) -> None:
        self.seen = 0
        self.dropped = 0
        self.first_dropped_seq = 0
        self.invocation_id = invocation_id
        self.event_id = event_id
        self.job_id = job_id


class ObservabilityPlugin(Plugin):
    """Buffered recording of invocations, events, jobs and logs into SQL or GraphQL.

    `database_url` (`sqlite:///path.db`, `postgresql://…`) or `graphql_url` (+
    `admin_secret`) choose the store; every other option is a field of
    `ObservabilityConfig`, also settable as `OBSERVABILITY_<NAME>` in the environment.
    With neither URL, the embedded default `sqlite:///event-detector.db` is used.
    `writer` replaces the store entirely (for tests and custom stores).
    Raises `ConfigurationError` for bad options; never raises after that.

    The recording hooks are plain methods (the library calls them without awaiting);
    they are thread-safe.
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
        self._snapshot_encoder = SnapshotEncoder()
        # A redact callback must see values as they were: clean them on the calling thread.
        self._eager = config.redact is not None
        # Snapshots this long are truncated anyway: clean them now, keep the inbox small.
        self._eager_over = 4 * config.max_value_bytes
        self._enabled = config.enabled
        self._capture_options = config.capture_job_options
        self._capture_results = config.capture_results
        self._capture_logs = config.enabled and config.capture_logs
        self._wake_at = config.batch_size
        self.buffer = BoundedBuffer(config.max_buffer_bytes, converter=self._convert)
        if writer is None:
            writer = writer_for(
                config.database_url,
                config.graphql_url,
                config.admin_secret,
                auto_migrate=config.should_migrate,
                transaction_pooling=config.transaction_pooling,
            )
        self.writer = writer
        self.flusher = BackgroundFlusher(self.buffer, writer, config)
        # Owned by the converter (absorbing is serialised): no lock needed.
        self._log_caps: dict[str, _LogCap] = {}
        self._converters: dict[int, Callable[..., None]] = {
            _INVOCATION_START: self._convert_invocation_start,
            _DETECTION_START: self._convert_detection_start,
            _DETECTION_END: self._convert_detection_end,
            _HANDLER_END: self._convert_handler_end,
            _JOB_START: self._convert_job_start,
            _JOB_END: self._convert_job_end,
            _LOG: self._convert_log,
            _INVOCATION_ERROR: self._convert_invocation_error,
            _INVOCATION_END: self._convert_invocation_end,
            _EVENT_SKIPPED: self._convert_event_skipped,
        }
        self.hook_errors = 0
        self.conversion_errors = 0
        if not self._capture_logs:
            # Opt out of on_log: the library then installs no log capture for this plugin.
            self.on_log = None  # type: ignore[assignment]
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
            "inbox_depth": self.buffer.inbox_depth,
            "in_flight_records": f.in_flight,
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
            "conversion_errors": self.conversion_errors,
            "redaction_errors": self.sanitizer.redaction_errors,
            "absorbed_by_host": self.buffer.absorbed_by_posters,
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
        """Flush, stop the writer thread and close connections, all within `timeout`
        seconds (default `shutdown_timeout`); True when everything was written.

        Records not written by then are counted in `stats()["dropped"]["shutdown_timeout"]`
        (with one warning) and in the health row if the store answers in time. The plugin
        may record again afterwards (it restarts)."""
        try:
            return self.flusher.stop(self.config.shutdown_timeout if timeout is None else timeout)
        except Exception:
            return False

    # -- hooks: flushing -------------------------------------------------------------

    async def flush(self) -> None:
        """End of an invocation: in serverless mode wait for the write (bounded by
        `flush_timeout`); otherwise return at once (the writer flushes on its interval)."""
        if not self._enabled or not self.config.serverless or not len(self.buffer):
            return
        try:
            future = self.flusher.flush_future(self.config.flush_timeout)
            if future is not None:
                await asyncio.wait_for(asyncio.wrap_future(future), self.config.flush_timeout)
        except Exception:
            pass

    async def shutdown(self) -> None:
        """Flush and stop without blocking the caller's loop (a no-op when nothing runs)."""
        if not self.flusher.started and not len(self.buffer):
            return
        try:
            await asyncio.to_thread(self.shutdown_sync)
        except RuntimeError:
            # At interpreter exit thread pools refuse work; the exit hook flushes instead.
            self.shutdown_sync()
        except Exception:
            pass

    # -- hooks: recording (the host's path: post an entry, nothing else) ---------------

    def _post(self, entry: tuple[Any, ...], nbytes: int = _ENTRY_BYTES) -> None:
        flusher = self.flusher
        if not flusher.started:
            flusher.ensure_started()
        if self.buffer.post(entry, nbytes) >= self._wake_at:
            flusher.wake()

    def _snapshot(self, value: Any) -> Snapshot:
        """`value` frozen as it is now: raw JSON text, or cleaned text when it must be."""
        if value is None:
            return None
        if not self._eager:
            try:
                text = self._snapshot_encoder.encode(value)
            except Exception:  # circular, odd keys, too deep: the sanitizer describes them
                text = None
            if text is not None and len(text) <= self._eager_over:
                return text
        cleaned = self.sanitizer.to_json(value)
        return None if cleaned is None else _CleanJSON(cleaned)

    def _failed_hook(self, hook: str, exc: BaseException) -> None:
        self.hook_errors += 1
        if self.hook_errors == 1:
            log.warning(
                "observability: %s failed (%s); recording goes on", hook, type(exc).__name__
            )

    def on_invocation_start(self, invocation: InvocationInfo) -> None:  # type: ignore[override]
        if not self._enabled:
            return
        try:
            config = self.config
            payload = self._snapshot(invocation.payload) if config.capture_payload else None
            context = invocation.options.context
            context = self._snapshot(context) if config.capture_context and context else None
            error = invocation.error
            # A rejected payload has no parsed event: read what is well-formed now.
            source = None if invocation.event else _best_effort_source(invocation.payload)
            self._post(
                (
                    _INVOCATION_START,
                    invocation,
                    payload,
                    context,
                    source,
                    None if error is None else self._message(error),
                    error,
                ),
                _ENTRY_BYTES + _text_size(payload) + _text_size(context),
            )
        except Exception as exc:
            self._failed_hook("on_invocation_start", exc)

    def on_event_skipped(self, event: EventInfo) -> None:  # type: ignore[override]
        if self._enabled:
            self._post((_EVENT_SKIPPED, event))

    def on_detection_start(self, event: EventInfo) -> None:  # type: ignore[override]
        if self._enabled:
            self._post((_DETECTION_START, event))

    def on_detection_end(  # type: ignore[override]
        self, event: EventInfo, detected: bool, duration_ms: float, error: BaseException | None
    ) -> None:
        if not self._enabled:
            return
        try:
            message = None if error is None else self._message(error)
            self._post((_DETECTION_END, event, bool(detected), duration_ms, message, error))
        except Exception as exc:
            self._failed_hook("on_detection_end", exc)

    def on_handler_end(  # type: ignore[override]
        self,
        event: EventInfo,
        jobs: list[JobResult],
        duration_ms: float,
        error: BaseException | None,
    ) -> None:
        if not self._enabled:
            return
        try:
            jobs = jobs or []
            succeeded = sum(1 for job in jobs if job.status == JobStatus.COMPLETED)
            message = None if error is None else self._message(error)
            self._post((_HANDLER_END, event, len(jobs), succeeded, duration_ms, message, error))
        except Exception as exc:
            self._failed_hook("on_handler_end", exc)

    def on_job_start(self, job: JobInfo) -> None:  # type: ignore[override]
        if not self._enabled:
            return
        try:
            options = job.options
            snapshot = self._snapshot(options) if self._capture_options and options else None
            if snapshot is None:
                self._post((_JOB_START, job, None))
            else:
                self._post((_JOB_START, job, snapshot), _ENTRY_BYTES + _text_size(snapshot))
        except Exception as exc:
            self._failed_hook("on_job_start", exc)

    def on_job_end(self, job: JobInfo, result: JobResult) -> None:  # type: ignore[override]
        if not self._enabled:
            return
        try:
            value = self._snapshot(result.result) if self._capture_results else None
            # The result's fields are read now: the caller owns the object afterwards.
            self._post(
                (
                    _JOB_END,
                    job,
                    result.status,
                    result.started_at,
                    result.ended_at,
                    result.duration_ms,
                    result.attempts,
                    result.error,
                    result.error_type,
                    result.exception,
                    value,
                    # A retried job's attempts (None for most jobs); a copy, read now.
                    None if result.attempt_history is None else tuple(result.attempt_history),
                ),
                _ENTRY_BYTES + _text_size(value),
            )
        except Exception as exc:
            self._failed_hook("on_job_end", exc)

    def on_error(  # type: ignore[override]
        self,
        error: BaseException,
        scope: Any,
        invocation: InvocationInfo,
        event: EventInfo | None = None,
        job: JobInfo | None = None,
    ) -> None:
        """Invocation-level errors (a missing events directory). Module, detector,
        handler and job errors arrive with their end hooks, exception included."""
        if not self._enabled or scope not in ("invocation", None):
            return
        try:
            self._post((_INVOCATION_ERROR, invocation, self._message(error), error))
        except Exception as exc:
            self._failed_hook("on_error", exc)

    def on_invocation_end(  # type: ignore[override]
        self, invocation: InvocationInfo, result: ListenResult
    ) -> None:
        if not self._enabled:
            return
        try:
            jobs = [job for event in result.events for job in event.jobs]
            succeeded = sum(1 for job in jobs if job.status == JobStatus.COMPLETED)
            detected = sum(1 for event in result.events if event.detected)
            if result.error:
                message = self._message(result.error)
            elif result.timed_out:
                message = "the invocation's deadline was reached"
            else:
                message = None
            self._post(
                (
                    _INVOCATION_END,
                    invocation,
                    result.correlation_id,
                    result.duration_ms,
                    detected,
                    len(jobs),
                    succeeded,
                    result.status,
                    message,
                )
            )
        except Exception as exc:
            self._failed_hook("on_invocation_end", exc)

    def on_log(self, record: CapturedLog) -> None:  # type: ignore[override]
        """Post one log line (plain method: called from whichever thread logged)."""
        try:
            data = record.data
            if data:
                data = self._snapshot(data)
                self._post((_LOG, record, data), _ENTRY_BYTES + _text_size(data))
            else:
                self._post((_LOG, record, None))
        except Exception as exc:
            self._failed_hook("on_log", exc)

    def _message(self, error: BaseException | str) -> str:
        text = error if isinstance(error, str) else (str(error).strip() or type(error).__name__)
        return truncate_text(text, self.config.max_error_chars)

    # -- conversion (the writer thread, one entry at a time, in posting order) ---------

    def _convert(self, entry: tuple[Any, ...]) -> None:
        try:
            self._converters[entry[0]](*entry[1:])
        except Exception as exc:
            # A bug must not stop the writer: count it, say it once.
            self.conversion_errors += 1
            if self.conversion_errors == 1:
                log.warning(
                    "observability: could not convert a record (%s); later failures are "
                    "only counted in plugin.stats()['conversion_errors']",
                    type(exc).__name__,
                    exc_info=exc,
                )

    def _add(self, table: str, row_id: str, values: dict[str, Any], new: bool = False) -> None:
        self.buffer.add_execution(table, row_id, values, new=new)

    def _json(self, snapshot: Snapshot) -> str | None:
        """Final JSON text of a snapshot: redacted, made safe, capped."""
        if snapshot is None:
            return None
        if snapshot.__class__ is _CleanJSON:
            return snapshot.text  # type: ignore[union-attr]
        return self.sanitizer.snapshot_to_json(snapshot)  # type: ignore[arg-type]

    def _attempts_json(self, history: tuple[JobAttempt, ...]) -> str:
        """`job_executions.attempt_history`: one object per attempt, oldest first."""
        return json.dumps(
            [
                {
                    "attempt": attempt.attempt,
                    "started_at": attempt.started_at.isoformat(),
                    "ended_at": attempt.ended_at.isoformat(),
                    "duration_ms": _ms(attempt.duration_ms),
                    "status": attempt.status.value,
                    "error_type": attempt.error_type,
                    "error_message": None
                    if attempt.error is None
                    else self._message(attempt.error),
                }
                for attempt in history
            ],
            separators=(",", ":"),
        )

    def _stack(self, error: BaseException | None) -> str | None:
        if error is None or not self.config.capture_error_stacks:
            return None
        text = "".join(traceback.format_exception(error))
        return truncate_text(text, self.config.max_error_chars * 4)

    def _convert_invocation_start(
        self,
        invocation: InvocationInfo,
        payload: Snapshot,
        context: Snapshot,
        source: dict[str, Any] | None,
        message: str | None,
        error: BaseException | None,
    ) -> None:
        event = invocation.event
        options = invocation.options
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
            "source_event_payload": self._json(payload),
            "context_data": self._json(context),
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
            row.update(source or {})
        if error is not None:
            row["status"] = (
                InvocationStatus.REJECTED.value if event is None else InvocationStatus.FAILED.value
            )
            row["error_message"] = message
            row["error_stack"] = self._stack(error)
        self._add("invocations", invocation.invocation_id, row, new=True)

    def _event_identity(self, event: EventInfo) -> dict[str, Any]:
        # Every patch carries the NOT NULL identity columns: it must be insertable alone.
        invocation = event.invocation
        return {
            "id": event.event_execution_id,
            "invocation_id": invocation.invocation_id,
            "created_at": event.started_at,
            "correlation_id": invocation.correlation_id,
            "event_name": event.name,
        }

    def _convert_detection_start(self, event: EventInfo) -> None:
        row = self._event_identity(event)
        row["event_module_path"] = event.module_path
        row["status"] = EventStatus.DETECTING.value
        self._add("event_executions", event.event_execution_id, row, new=True)

    def _convert_event_skipped(self, event: EventInfo) -> None:
        row = self._event_identity(event)
        row.update(
            event_module_path=event.module_path,
            detected=False,
            status=EventStatus.SKIPPED.value,
        )
        self._add("event_executions", event.event_execution_id, row, new=True)

    def _convert_detection_end(
        self,
        event: EventInfo,
        detected: bool,
        duration_ms: float,
        message: str | None,
        error: BaseException | None,
    ) -> None:
        status = detection_status(detected, error)
        row = self._event_identity(event)
        row.update(
            event_module_path=event.module_path,
            detected=detected and error is None,
            detection_duration_ms=_ms(duration_ms),
            status=status.value,
        )
        if error is not None:
            row["detection_error"] = message
            row["detection_error_stack"] = self._stack(error)
        self._add("event_executions", event.event_execution_id, row)
        if status is not EventStatus.HANDLING:
            self._close_log_cap(event.event_execution_id)

    def _convert_handler_end(
        self,
        event: EventInfo,
        jobs_count: int,
        succeeded: int,
        duration_ms: float,
        message: str | None,
        error: BaseException | None,
    ) -> None:
        row = self._event_identity(event)
        row.update(
            detected=True,
            handler_duration_ms=_ms(duration_ms),
            jobs_count=jobs_count,
            jobs_succeeded=succeeded,
            jobs_failed=jobs_count - succeeded,
            status=handler_status(error).value,
        )
        if error is not None:
            row["handler_error"] = message
            row["handler_error_stack"] = self._stack(error)
        self._add("event_executions", event.event_execution_id, row)
        self._close_log_cap(event.event_execution_id)

    def _job_identity(self, job: JobInfo) -> dict[str, Any]:
        event = job.event
        invocation = event.invocation
        return {
            "id": job.job_execution_id,
            "invocation_id": invocation.invocation_id,
            "event_execution_id": event.event_execution_id,
            "created_at": job.started_at,
            "correlation_id": invocation.correlation_id,
            "job_name": job.name,
        }

    def _convert_job_start(self, job: JobInfo, options: Snapshot) -> None:
        row = self._job_identity(job)
        row["job_function_name"] = job.function_name
        row["started_at"] = job.started_at
        row["attempts"] = 1
        row["status"] = JobStatus.RUNNING.value
        if options is not None:
            row["job_options"] = self._json(options)
        self._add("job_executions", job.job_execution_id, row, new=True)

    def _convert_job_end(
        self,
        job: JobInfo,
        status: Any,
        started_at: datetime | None,
        ended_at: datetime | None,
        duration_ms: float,
        attempts: int,
        error: str | None,
        error_type: str | None,
        exception: BaseException | None,
        value: Snapshot,
        history: tuple[JobAttempt, ...] | None,
    ) -> None:
        row = self._job_identity(job)
        row.update(
            job_function_name=job.function_name,
            started_at=started_at or job.started_at,
            ended_at=ended_at,
            duration_ms=_ms(duration_ms),
            attempts=attempts,
            status=status.value if hasattr(status, "value") else str(status),
            error_type=error_type,
            error_message=None if error is None else self._message(error),
        )
        if exception is not None:
            row["error_stack"] = self._stack(exception)
        if self._capture_results:
            row["result"] = self._json(value)
        if history is not None:
            row["attempt_history"] = self._attempts_json(history)
        self._add("job_executions", job.job_execution_id, row)
        self._close_log_cap(job.job_execution_id)

    def _convert_invocation_error(
        self, invocation: InvocationInfo, message: str, error: BaseException
    ) -> None:
        self._add(
            "invocations",
            invocation.invocation_id,
            {
                "id": invocation.invocation_id,
                "created_at": invocation.started_at,
                "source_function": invocation.source_function or "unknown",
                "error_message": message,
                "error_stack": self._stack(error),
            },
        )

    def _convert_invocation_end(
        self,
        invocation: InvocationInfo,
        correlation_id: str | None,
        duration_ms: float,
        detected: int,
        jobs_run: int,
        succeeded: int,
        status: Any,
        message: str | None,
    ) -> None:
        row: dict[str, Any] = {
            "id": invocation.invocation_id,
            "created_at": invocation.started_at,
            "source_function": invocation.source_function or "unknown",
            "correlation_id": correlation_id or invocation.correlation_id,
            "total_duration_ms": _ms(duration_ms),
            "events_detected_count": detected,
            "total_jobs_run": jobs_run,
            "total_jobs_succeeded": succeeded,
            "total_jobs_failed": jobs_run - succeeded,
            "status": status.value if hasattr(status, "value") else str(status),
        }
        # Never overwrite an error recorded earlier with nothing (upstream's bug).
        if message:
            row["error_message"] = message
        self._add("invocations", invocation.invocation_id, row)
        self._close_log_caps_of(invocation.invocation_id)

    def _convert_log(self, record: CapturedLog, data: Snapshot) -> None:
        config = self.config
        key = record.job_execution_id or record.event_execution_id or record.invocation_id
        cap = self._log_caps.get(key)
        if cap is None:
            cap = self._log_caps[key] = _LogCap(
                record.invocation_id, record.event_execution_id, record.job_execution_id
            )
        cap.seen += 1
        if cap.seen > config.max_logs_per_job:
            if not cap.dropped:
                cap.first_dropped_seq = record.seq
            cap.dropped += 1
            self.buffer.dropped[DROP_LOG_CAP] += 1
            return
        level = record.level
        self._add_log(
            record.invocation_id,
            record.event_execution_id,
            record.job_execution_id,
            record.created_at,
            record.seq,
            level.value if hasattr(level, "value") else str(level),
            truncate_text(record.message, config.max_log_line_chars),
            self._json(data),
            record.source,
            record.line_number,
        )

    def _add_log(self, *values: Any) -> None:
        row_id = _new_id()
        self.buffer.add_log(row_id, dict(zip(_LOG_COLUMNS, (row_id, *values), strict=True)))

    def _close_log_cap(self, key: str) -> None:
        cap = self._log_caps.pop(key, None)
        if cap is not None and cap.dropped:
            self._cap_marker(cap)

    def _close_log_caps_of(self, invocation_id: str) -> None:
        keys = [k for k, cap in self._log_caps.items() if cap.invocation_id == invocation_id]
        for key in keys:
            self._close_log_cap(key)

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


def _text_size(snapshot: Snapshot) -> int:
    if snapshot is None:
        return 0
    if snapshot.__class__ is _CleanJSON:
        return len(snapshot.text)  # type: ignore[union-attr]
    return len(snapshot)  # type: ignore[arg-type]


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
