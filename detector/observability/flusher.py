"""BackgroundFlusher: the plugin's writer thread and its retry, isolation and reporting.

A dedicated daemon thread runs its own event loop, so writing works whatever loop the
host has (including `listen_to_sync`, which makes a loop per call) and never competes
with the host's loop. It wakes every `flush_interval`, when a batch fills, or when asked
to flush; takes batches from the buffer; writes them; and on failure:

- store unavailable: puts the batch back and retries later with exponential backoff and
  full jitter (`retry_initial_delay` doubling up to `retry_max_delay`);
- records rejected: bisects the batch until the offending records are alone, quarantines
  them (in memory, and in `quarantined_records` when the store takes them), and writes
  the rest.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .buffer import ABSORB_CHUNK, Batch, BoundedBuffer, Patch
from .writers.base import RecordsRejected, StoreUnavailable, WriteError

if TYPE_CHECKING:
    from .config import ObservabilityConfig
    from .writers import Writer

log = logging.getLogger("detector.observability")

# Flushers with a running thread, held strongly: a plugin the host dropped may still hold
# buffered records, and interpreter exit must flush them.
ACTIVE: set[BackgroundFlusher] = set()


class _InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs executor work (DNS lookups) inline on the writer thread.

    Blocking that dedicated thread is harmless, and it keeps working during interpreter
    exit, when thread pools refuse new work.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _jsonable(patch: Patch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, value in patch.values.items():
        if isinstance(value, datetime):
            out[column] = value.isoformat()
        elif isinstance(value, str) and value[:1] in "{[" and value[-1:] in "}]":
            try:
                out[column] = json.loads(value)
            except ValueError:
                out[column] = value
        else:
            out[column] = value
    return out


class BackgroundFlusher:
    """Owns the writer thread; every method except `_`-prefixed coroutines is thread-safe."""

    def __init__(self, buffer: BoundedBuffer, writer: Writer, config: ObservabilityConfig) -> None:
        self.buffer = buffer
        self.writer = writer
        self.config = config
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._write_lock: asyncio.Lock | None = None
        self._stop = False
        self.wake_pending = False
        self.started = False
        # Health, read by stats().
        self.written: Counter[str] = Counter()
        self.quarantined: deque[dict[str, Any]] = deque(maxlen=1000)
        self.quarantined_total = 0
        self.in_flight = 0
        """Records taken from the buffer by the write under way (0 between writes)."""
        self._quarantine_pending: deque[dict[str, Any]] = deque(maxlen=1000)
        self.flushes = 0
        self.failed_flushes = 0
        self.last_flush_at: datetime | None = None
        self.last_error: str | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self._last_report = 0.0
        self._migrated = False
        self._drops_seen = 0

    # -- lifecycle -------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start the writer thread if it is not running (after a fork or a shutdown too)."""
        if self.started:
            return
        with self._start_lock:
            if self.started:
                return
            ready = threading.Event()
            self._stop = False
            self._thread = threading.Thread(
                target=self._run, args=(ready,), name="event-detector-observability", daemon=True
            )
            self._thread.start()
            ready.wait(5)
            self.started = True
            ACTIVE.add(self)

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's thread; the next record starts one."""
        self._start_lock = threading.Lock()
        self._thread = self._loop = self._wake = self._write_lock = None
        self.started = False
        ACTIVE.discard(self)
        self.wake_pending = False
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        # The parent's connection belongs to the parent.
        if hasattr(self.writer, "_conn"):
            self.writer._conn = None  # type: ignore[attr-defined]
        if hasattr(self.writer, "_client"):
            self.writer._client = None  # type: ignore[attr-defined]

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        loop.set_default_executor(_InlineExecutor(max_workers=1))
        self._loop = loop
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        ready.set()
        try:
            loop.run_until_complete(self._main())
        finally:
            try:
                loop.run_until_complete(self.writer.close())
            except Exception:
                pass
            loop.close()

    async def _main(self) -> None:
        assert self._wake is not None
        while not self._stop:
            delay = self.config.flush_interval
            if self._failures:
                delay = max(0.0, self._next_attempt - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._stop:
                break
            if self._failures and time.monotonic() < self._next_attempt:
                continue
            await self._flush(deadline=None)

    def wake(self) -> None:
        """Ask the writer thread to flush now (called when a batch has filled)."""
        loop = self._loop
        if loop is None or self.wake_pending:
            return
        self.wake_pending = True
        try:
            loop.call_soon_threadsafe(self._wake_set)
        except RuntimeError:  # the loop is closing
            self.wake_pending = False

    def _wake_set(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def flush_future(self, timeout: float) -> concurrent.futures.Future[bool] | None:
        """Schedule a flush that retries until `timeout` seconds pass; None if not running."""
        self.ensure_started()
        loop = self._loop
        if loop is None or loop.is_closed():
            return None
        deadline = time.monotonic() + timeout
        return asyncio.run_coroutine_threadsafe(self._flush(deadline=deadline), loop)

    def flush(self, timeout: float) -> bool:
        """Write everything buffered, waiting at most `timeout` seconds; True if all written.

        Must not be called from the writer thread itself.
        """
        if threading.current_thread() is self._thread:
            return False
        future = self.flush_future(timeout)
        if future is None:
            return len(self.buffer) == 0
        try:
            return future.result(timeout + 1)
        except Exception:
            return False

    def stop(self, timeout: float) -> bool:
        """Flush (within `timeout`), then stop the thread and close the writer."""
        if not self.started:
            return len(self.buffer) == 0
        flushed = self.flush(timeout)
        self._report_from_outside(timeout=1.0)
        self._stop = True
        self.wake_pending = False
        loop, thread = self._loop, self._thread
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake_set)
            except RuntimeError:
                pass
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)
        with self._start_lock:
            self.started = False
            self._thread = self._loop = None
        ACTIVE.discard(self)
        return flushed

    def _report_from_outside(self, timeout: float) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._report(force=True), loop)
        try:
            future.result(timeout)
        except Exception:
            pass

    # -- writing ---------------------------------------------------------------------

    async def _flush(self, deadline: float | None) -> bool:
        """Write batches until the buffer is empty; with a deadline, retry until then."""
        assert self._write_lock is not None
        async with self._write_lock:
            self.wake_pending = False
            while len(self.buffer):
                batch = self.buffer.take(self.config.batch_size)
                if not len(batch):
                    break
                started = time.monotonic()
                self.in_flight = len(batch)
                try:
                    left = await self._write_converting(batch.all())
                finally:
                    self.in_flight = 0
                if left:
                    self.buffer.requeue(_as_batch(left))
                    self._failed()
                    if deadline is None:
                        await self._report()
                        return False
                    pause = min(self._backoff(), deadline - time.monotonic())
                    if pause <= 0:
                        return False
                    await asyncio.sleep(pause)
                    continue
                self._succeeded(time.monotonic() - started)
            await self._write_quarantine()
            self._warn_about_drops()
            await self._report()
            return len(self.buffer) == 0

    def _warn_about_drops(self) -> None:
        """Say so when the bounded buffer dropped records since the last flush."""
        dropped = self.buffer.dropped
        full = sum(count for reason, count in dropped.items() if reason.endswith("_buffer_full"))
        if full > self._drops_seen:
            log.warning(
                "observability: the buffer was full (the store is down or slower than records "
                "arrive): %d records dropped so far, log lines first (plugin.stats()['dropped'])",
                full,
            )
        self._drops_seen = full

    async def _open(self) -> None:
        if self.config.should_migrate and not self._migrated and self.config.database_url:
            if not self.config.database_url.startswith("sqlite:"):
                from .migrate import upgrade_async

                try:
                    await upgrade_async(self.config.database_url)
                except Exception as exc:
                    raise StoreUnavailable(f"migration failed: {type(exc).__name__}") from None
            self._migrated = True
        await self.writer.open()

    async def _write_converting(self, patches: list[Patch]) -> list[Patch]:
        """`_write_isolating`, converting inbox entries for the next batch meanwhile.

        While the store works on this batch (PostgreSQL: a COPY on the server), this
        thread turns the next entries into records, a chunk at a time, so conversion and
        writing overlap instead of taking turns. Order is kept: entries are converted in
        posting order, and the next batch is only taken after this one is written.
        """
        write = asyncio.ensure_future(self._write_isolating(patches))
        buffer, batch_size = self.buffer, self.config.batch_size
        while not write.done() and buffer.inbox_depth and buffer.records < batch_size:
            buffer.absorb(ABSORB_CHUNK)
            await asyncio.sleep(0)
        return await write

    async def _write_isolating(self, patches: list[Patch]) -> list[Patch]:
        """Write `patches`; returns those not written because the store is unavailable."""
        try:
            await self._open()
            await self.writer.write(_as_batch(patches))
        except RecordsRejected as exc:
            return await self._isolate(patches, str(exc))
        except WriteError as exc:  # StoreUnavailable among them: kept for a retry
            self._error(str(exc))
            return patches
        except Exception as exc:
            # A bug or an unforeseen driver error: isolate rather than block the buffer.
            return await self._isolate(patches, f"{type(exc).__name__} while writing")
        for patch in patches:
            self.written[patch.table] += 1
        return []

    async def _isolate(self, patches: list[Patch], error: str) -> list[Patch]:
        """Write the halves of a refused batch apart, down to the records to quarantine.

        A single refused patch is quarantined with `error`. Returns the patches not
        written because the store became unavailable (in order), as `_write_isolating`.
        """
        if len(patches) == 1:
            self._quarantine(patches[0], error)
            return []
        middle = len(patches) // 2
        left = await self._write_isolating(patches[:middle])
        if left:
            return left + patches[middle:]
        return await self._write_isolating(patches[middle:])

    def _quarantine(self, patch: Patch, error: str) -> None:
        row = {
            "table_name": patch.table,
            "record_id": patch.id,
            "record": _jsonable(patch),
            "error": error[:300],
        }
        self.quarantined.append(row)
        self._quarantine_pending.append(row)
        self.quarantined_total += 1
        self._error(f"quarantined a {patch.table} record: {error[:200]}")
        log.warning(
            "observability: a %s record was rejected and quarantined: %s", patch.table, error[:200]
        )

    async def _write_quarantine(self) -> None:
        if not self._quarantine_pending:
            return
        rows = list(self._quarantine_pending)
        try:
            await self.writer.write_quarantined(rows)
        except Exception as exc:
            self._error(f"could not store quarantined records: {str(exc)[:150]}")
            return
        for _ in rows:
            self._quarantine_pending.popleft()

    def _error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("observability: %s", message)
        self.last_error = message

    def _failed(self) -> None:
        self.failed_flushes += 1
        self._failures += 1
        self._next_attempt = time.monotonic() + self._backoff()

    def _backoff(self) -> float:
        ceiling = min(
            self.config.retry_max_delay,
            self.config.retry_initial_delay * (2 ** min(self._failures - 1, 20)),
        )
        return random.uniform(ceiling / 2, ceiling)

    def _succeeded(self, seconds: float) -> None:
        self.flushes += 1
        if self._failures:
            self.last_error = None
        self._failures = 0
        self.last_flush_at = datetime.now(UTC)

    async def _report(self, force: bool = False) -> None:
        """Upsert this process's `plugin_instances` row (throttled)."""
        now = time.monotonic()
        if not force and now - self._last_report < self.config.instance_report_interval:
            return
        self._last_report = now
        row = self.instance_row()
        try:
            await self._open()
            await self.writer.write_instance(row)
        except Exception as exc:
            self._error(f"could not report plugin health: {str(exc)[:150]}")

    def instance_row(self) -> dict[str, Any]:
        age = self.buffer.oldest_age()
        dropped = dict(self.buffer.dropped)
        return {
            "id": self.instance_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "writer": self.writer.name,
            "buffer_depth": len(self.buffer),
            "records_written": sum(self.written.values()),
            "records_dropped": sum(dropped.values()),
            "dropped_by_reason": json.dumps(dropped),
            "records_quarantined": self.quarantined_total,
            "last_flush_at": self.last_flush_at,
            "flush_lag_ms": None if age is None else int(age * 1000),
            "last_error": self.last_error,
        }


def _as_batch(patches: list[Patch]) -> Batch:
    executions = [p for p in patches if p.table != "job_logs"]
    logs = [p for p in patches if p.table == "job_logs"]
    return Batch(executions, logs)
