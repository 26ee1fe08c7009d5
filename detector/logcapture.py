"""Log capture: lines logged or printed inside a detector, handler or job go to `on_log`.

While at least one invocation runs, one handler sits on the root logger and
`sys.stdout`/`sys.stderr` are wrapped in a pass-through proxy (both reference-counted, so
concurrent invocations share them and the last one out removes them). Each line is
attributed to the detector, handler or job whose *log scope* is current in the
`contextvars` of the code that wrote it; worker threads get a copy of that context, so
attribution is right for concurrent jobs and for sync jobs in threads. Lines written
outside any scope (or by plugin hooks) are not captured. Output always still reaches
the original stream.

Levels: DEBUG → debug, INFO → info, WARNING → warn, ERROR/CRITICAL → error; `stdout`
lines are info and `stderr` lines are warn (stderr carries warnings and progress as often
as errors; real failures are recorded as job and handler errors anyway). A printed
partial line is held until its newline or the end of the scope; blank lines are skipped.

Only records that reach the root logger are seen: a logger with `propagate = False`, or
a record below its logger's effective level, is never captured.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from .plugins import CapturedLog
from .runtime import InvocationRuntime, capture_suspended, utcnow
from .status import LogLevel

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def level_for(levelno: int) -> LogLevel:
    """Fold a `logging` level number into the four captured levels."""
    if levelno >= logging.ERROR:
        return LogLevel.ERROR
    if levelno >= logging.WARNING:
        return LogLevel.WARN
    if levelno >= logging.INFO:
        return LogLevel.INFO
    return LogLevel.DEBUG


class LogScope:
    """Where lines written now belong: an invocation, and maybe an event and a job."""

    __slots__ = (
        "_lock",
        "_partial",
        "closed",
        "event_execution_id",
        "invocation",
        "job_execution_id",
    )

    def __init__(
        self,
        invocation: InvocationRuntime,
        event_execution_id: str | None,
        job_execution_id: str | None,
    ) -> None:
        self.invocation = invocation
        self.event_execution_id = event_execution_id
        self.job_execution_id = job_execution_id
        self.closed = False
        self._lock = threading.RLock()
        self._partial: dict[str, str] = {}

    def emit(
        self,
        level: LogLevel,
        message: str,
        *,
        source: str | None,
        line_number: int | None = None,
        data: dict[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> None:
        """Deliver one captured line to the invocation's plugins."""
        invocation = self.invocation
        if invocation.closed:
            return
        record = CapturedLog(
            invocation_id=invocation.invocation_id,
            event_execution_id=self.event_execution_id,
            job_execution_id=self.job_execution_id,
            level=level,
            message=message,
            created_at=created_at or utcnow(),
            seq=invocation.next_seq(),
            source=source,
            line_number=line_number,
            data=data,
        )
        invocation.deliver_log(record)

    def write(self, stream: str, text: str) -> None:
        """Add printed text; complete lines are emitted, a partial line waits."""
        with self._lock:
            buffered = self._partial.pop(stream, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                if self.closed:  # the scope ended (abandoned thread): nothing will flush it
                    lines.append(rest)
                else:
                    self._partial[stream] = rest
            for line in lines:
                self._emit_line(stream, line)

    def close(self) -> None:
        """End of the scope: emit what is left of partial lines."""
        with self._lock:
            self.closed = True
            partial, self._partial = self._partial, {}
            for stream, rest in partial.items():
                self._emit_line(stream, rest)

    def _emit_line(self, stream: str, line: str) -> None:
        line = line.rstrip("\r")
        if not line.strip():
            return
        level = LogLevel.INFO if stream == "stdout" else LogLevel.WARN
        self.emit(level, line, source=stream)


_scope: contextvars.ContextVar[LogScope | None] = contextvars.ContextVar(
    "detector_log_scope", default=None
)


def current_scope() -> LogScope | None:
    """The scope lines written now would be attributed to (None when not capturing)."""
    if capture_suspended.get():
        return None
    return _scope.get()


@contextmanager
def log_scope(
    invocation: InvocationRuntime,
    event_execution_id: str | None,
    job_execution_id: str | None = None,
) -> Iterator[LogScope]:
    """Attribute lines written inside the block (and in threads it starts) to these ids."""
    scope = LogScope(invocation, event_execution_id, job_execution_id)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)
        scope.close()


class CaptureHandler(logging.Handler):
    """Root-logger handler turning records made inside a scope into `CapturedLog`s."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        # No handler lock: emit is thread-safe, and a lock would serialise every thread.
        self.emit(record)
        self._keep_last_resort(record)
        return True

    def _keep_last_resort(self, record: logging.LogRecord) -> None:
        """Print what Python would have printed had this handler not been installed.

        With no handler configured anywhere, `logging` prints WARNING and above through
        `logging.lastResort`; our handler on the root logger would silence that.
        """
        last_resort = logging.lastResort
        if last_resort is None or record.levelno < last_resort.level:
            return
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return
            if not logger.propagate:
                break
            logger = logger.parent
        # It writes to sys.stderr (our proxy): the line is captured already, as a record.
        token = capture_suspended.set(True)
        try:
            last_resort.handle(record)
        finally:
            capture_suspended.reset(token)

    def emit(self, record: logging.LogRecord) -> None:
        scope = current_scope()
        if scope is None:
            return
        try:
            message = record.getMessage()
        except Exception:  # bad %-args: keep what we can rather than lose the line
            message = f"{record.msg} {record.args!r}"
        data = {
            key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES
        }
        if record.exc_info and record.exc_info[0] is not None:
            data["exc_info"] = logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            data["stack_info"] = record.stack_info
        scope.emit(
            level_for(record.levelno),
            message,
            source=record.name,
            line_number=record.lineno,
            data=data or None,
            created_at=datetime.fromtimestamp(record.created, UTC),
        )


class StreamProxy:
    """Stands in for `sys.stdout`/`sys.stderr`: passes everything through, captures in scope."""

    def __init__(self, original: TextIO, name: str) -> None:
        self._original = original
        self._name = name

    @property
    def original(self) -> TextIO:
        """The stream this proxy writes to."""
        return self._original

    def write(self, text: str) -> int:
        written = self._original.write(text)
        scope = current_scope()
        if scope is not None and text:
            token = capture_suspended.set(True)
            try:
                scope.write(self._name, text)
            finally:
                capture_suspended.reset(token)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._original.flush()

    def __getattr__(self, name: str) -> Any:
        # encoding, fileno, isatty, buffer, …: whatever the original stream offers.
        return getattr(self._original, name)


class _Installation:
    """Reference-counted installation of the root handler and the stream proxies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self.handler = CaptureHandler()
        self._stdout: StreamProxy | None = None
        self._stderr: StreamProxy | None = None

    @property
    def users(self) -> int:
        return self._users

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1:
                logging.getLogger().addHandler(self.handler)
                self._stdout = self._wrap("stdout")
                self._stderr = self._wrap("stderr")

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                logging.getLogger().removeHandler(self.handler)
                self._unwrap("stdout", self._stdout)
                self._unwrap("stderr", self._stderr)
                self._stdout = self._stderr = None

    @staticmethod
    def _wrap(name: str) -> StreamProxy | None:
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, StreamProxy):
            return None
        proxy = StreamProxy(stream, name)
        setattr(sys, name, proxy)
        return proxy

    @staticmethod
    def _unwrap(name: str, proxy: StreamProxy | None) -> None:
        # Only undo our own wrapping: if someone replaced the stream since, leave theirs.
        if proxy is not None and getattr(sys, name) is proxy:
            setattr(sys, name, proxy.original)


capture = _Installation()
