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

Shutdown keeps to its timeout, everything included (`stop`): it flushes until a deadline
that leaves a reserve for the health report; a write still under way then is aborted
(its connections dropped, so the server keeps nothing half-done) rather than waited
for; whatever is not written is counted as dropped (`shutdown_timeout`), said once in a
warning, and reported in the `plugin_instances` row if the store answers in time.
Nothing ever shares the writer with a write in progress: all of it runs on the writer
thread under the write lock.
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
from .writers.base import RecordsRejected, WriteError

if TYPE_CHECKING:
    from .config import ObservabilityConfig
    from .writers import Writer

log = logging.getLogger("detector.observability")

DROP_SHUTDOWN = "shutdown_timeout"
"""Drop reason: records not written when `stop()`'s timeout ran out."""
# The part of a shutdown's time kept for the final health report: at most this many
# seconds, and at most REPORT_SHARE of the timeout.
REPORT_RESERVE = 1.0
REPORT_SHARE = 0.2
# How long an aborted write gets to notice its dropped connection before it is cancelled.
ABORT_GRACE = 0.05

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
        self._writing: asyncio.Task[Any] | None = None
        """The task holding the write lock (a flush), for a shutdown to cut short."""
        self._stop = False
        self._closing = False
        # Each start of the thread is a generation: a thread outlived by a restart (stuck
        # in a blocking store call at shutdown) must not write or close for its successor.
        self._generation = 0
        # Hands the write under way over to a shutdown that gave up waiting for it.
        self._flight_lock = threading.Lock()
        self._flight_abandoned = False
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
        self._reported_with_write = False
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
            self._stop = self._closing = False
            self._generation += 1
            self._thread = threading.Thread(
                target=self._run,
                args=(ready, self._generation),
                name="event-detector-observability",
                daemon=True,
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
        self._flight_lock = threading.Lock()
        self._flight_abandoned = False
        self.in_flight = 0
        # The parent's connections belong to the parent.
        forget = getattr(self.writer, "forget", None)
        if forget is not None:
            forget()

    def _run(self, ready: threading.Event, generation: int) -> None:
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
                if generation == self._generation:  # not restarted meanwhile
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
            if self._closing or (self._failures and time.monotonic() < self._next_attempt):
                continue
            flush = asyncio.ensure_future(self._flush(deadline=None))
            try:
                await flush
            except asyncio.CancelledError:
                # A shutdown cut this flush short; the loop goes on until it stops.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise

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
            return future.result(timeout)
        except Exception:  # the timeout among them: the write goes on in the background
            return False

    def stop(self, timeout: float) -> bool:
        """Flush, report health, stop the thread and close the writer, all within `timeout`
        seconds; True when everything was written.

        What is not written by then (buffered, or in a write that had to be aborted) is
        dropped and counted as `shutdown_timeout` in `buffer.dropped`, with one warning.
        Records of an aborted write may have reached the store all the same (a commit
        whose answer was cut off): counted, never lost uncounted. The plugin starts again
        if it records afterwards.
        """
        deadline = time.monotonic() + timeout
        if not self.started:
            return len(self.buffer) == 0
        loop, thread = self._loop, self._thread
        flushed = False
        if loop is not None and not loop.is_closed() and thread is not threading.current_thread():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(deadline, timeout), loop)
            try:
                flushed = future.result(max(0.0, deadline - time.monotonic()))
            except Exception:
                # The writer thread is stuck in a blocking call (an SQLite busy wait):
                # give up on it; what it holds is counted below.
                future.cancel()
        if not flushed:
            self._drop_leftovers(timeout, from_outside=True)
        self._stop = True
        self.wake_pending = False
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake_set)
            except RuntimeError:
                pass
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._start_lock:
            self.started = False
            self._thread = self._loop = None
        ACTIVE.discard(self)
        return flushed

    async def _shutdown(self, deadline: float, allowed: float) -> bool:
        """On the writer thread: flush until the deadline minus the report's reserve,
        abort a write still under way, count what is left, report, close. `allowed`: the
        seconds the caller gave (for the warning)."""
        assert self._write_lock is not None
        self._closing = True  # the background loop starts no more flushes
        # Cutting a step short takes up to ABORT_GRACE: keep it inside the timeout.
        end = deadline - ABORT_GRACE
        reserve = min(REPORT_RESERVE, max(0.0, end - time.monotonic()) * REPORT_SHARE)
        flush = asyncio.ensure_future(self._flush(deadline=end - reserve, report=False))
        flushed = await self._finish_by(flush, end - reserve) is True
        async with self._write_lock:
            left = self._drop_leftovers(allowed, from_outside=False)
            await self._finish_by(asyncio.ensure_future(self._report(force=True)), end)
            await self._finish_by(asyncio.ensure_future(self.writer.close()), end)
        return flushed and not left

    async def _finish_by(self, task: asyncio.Task[Any], deadline: float) -> Any:
        """`task`'s result if it finishes by `deadline` (None if it fails). Otherwise the
        write under way is aborted: the writer drops its connections, which fails any
        operation on them at once; what still runs after a short grace (connecting, or a
        writer that cannot abort) is cancelled."""
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
        if not done:
            abort = getattr(self.writer, "abort", None)
            if abort is not None:
                try:
                    abort()
                except Exception:
                    pass
            done, _ = await asyncio.wait({task}, timeout=ABORT_GRACE)
            if not done:
                holder = self._writing
                if holder is not None and holder is not task:
                    holder.cancel()
                task.cancel()
                await asyncio.wait({task})
        if task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    def _drop_leftovers(self, timeout: float, *, from_outside: bool) -> int:
        """Count everything not written as dropped (`shutdown_timeout`) and forget it.

        From outside the writer thread (stuck, or slower than the deadline), the write it
        holds is counted too, and marked so that it is not put back when it ends. Counting
        and its warning are one step under a lock: the two threads never both count, and
        the warning is out when either returns.
        """
        with self._flight_lock:
            dropped = 0
            if from_outside and self.in_flight and not self._flight_abandoned:
                dropped += self.in_flight
                self.buffer.count_dropped(DROP_SHUTDOWN, self.in_flight)
                self._flight_abandoned = True
                self.in_flight = 0  # handed over: counted as dropped, no longer in flight
            dropped += self.buffer.discard_all(DROP_SHUTDOWN)
            if not dropped:
                return 0
            log.warning(
                "observability: the shutdown timeout (%.1f s) ran out with %d records not "
                "written (the store is slow or down); counted in plugin.stats()['dropped']"
                "['shutdown_timeout']",
                timeout,
                dropped,
            )
        return dropped

    # -- writing ---------------------------------------------------------------------

    async def _flush(self, deadline: float | None, *, report: bool = True) -> bool:
        """Write batches until the buffer is empty; with a deadline, retry until then
        (and start no write after it). Reports health when due, unless `report` is off
        or the flusher is closing."""
        assert self._write_lock is not None
        generation = self._generation
        async with self._write_lock:
            self._writing = asyncio.current_task()
            try:
                return await self._flush_locked(deadline, report and not self._closing, generation)
            finally:
                self._writing = None

    async def _flush_locked(self, deadline: float | None, report: bool, generation: int) -> bool:
        self.wake_pending = False
        self._reported_with_write = False
        while len(self.buffer):
            if generation != self._generation:
                return False  # this thread was given up on and replaced
            if deadline is not None and time.monotonic() >= deadline:
                return False
            batch = self.buffer.take(self.config.batch_size)
            if not len(batch):
                break
            started = time.monotonic()
            patches = batch.all()
            self.in_flight = len(patches)
            try:
                left = await self._write_converting(patches, self._instance_if_due(len(patches)))
            except BaseException:  # cancelled by a shutdown: nothing confirmed written
                self._land(patches)
                raise
            self._land(left)
            if left:
                self._failed()
                if deadline is None:
                    if report:
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
        if report and not self._reported_with_write:
            await self._report()
        return len(self.buffer) == 0

    def _land(self, unwritten: list[Patch]) -> None:
        """The write under way is over: put back what it did not write, unless a shutdown
        that gave up waiting has counted it as dropped already."""
        with self._flight_lock:
            abandoned, self._flight_abandoned = self._flight_abandoned, False
            self.in_flight = 0
            if unwritten and not abandoned:
                self.buffer.requeue(_as_batch(unwritten))

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
        await self.writer.open()

    async def _write_converting(
        self, patches: list[Patch], instance: dict[str, Any] | None = None
    ) -> list[Patch]:
        """`_write_isolating`, converting inbox entries for the next batch meanwhile.

        While the store works on this batch (PostgreSQL: a COPY on the server), this
        thread turns the next entries into records, a chunk at a time, so conversion and
        writing overlap instead of taking turns. Order is kept: entries are converted in
        posting order, and the next batch is only taken after this one is written.
        """
        write = asyncio.ensure_future(self._write_isolating(patches, instance))
        buffer, batch_size = self.buffer, self.config.batch_size
        while not write.done() and buffer.inbox_depth and buffer.records < batch_size:
            buffer.absorb(ABSORB_CHUNK)
            await asyncio.sleep(0)
        return await write

    async def _write_isolating(
        self, patches: list[Patch], instance: dict[str, Any] | None = None
    ) -> list[Patch]:
        """Write `patches` (and the health row `instance` with them, when given); returns
        those not written because the store is unavailable."""
        try:
            await self._open()
            if instance is None:
                await self.writer.write(_as_batch(patches))
            else:
                await self.writer.write(_as_batch(patches), instance=instance)
                self._last_report = time.monotonic()
                self._reported_with_write = True
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

    def _report_due(self) -> bool:
        return time.monotonic() - self._last_report >= self.config.instance_report_interval

    def _instance_if_due(self, pending: int) -> dict[str, Any] | None:
        """The health row to write with a batch of `pending` records, when a report is
        due (it then costs no round trip of its own)."""
        return self.instance_row(pending=pending) if self._report_due() else None

    async def _report(self, force: bool = False) -> None:
        """Upsert this process's `plugin_instances` row (throttled). Callers hold the
        write lock."""
        if not force and not self._report_due():
            return
        self._last_report = time.monotonic()
        row = self.instance_row()
        try:
            await self._open()
            await self.writer.write_instance(row)
        except Exception as exc:
            self._error(f"could not report plugin health: {str(exc)[:150]}")

    def instance_row(self, pending: int = 0) -> dict[str, Any]:
        """This process's health row. `pending`: records of the batch the row is written
        with (atomically: if the row is stored, so are they)."""
        age = self.buffer.oldest_age()
        dropped = dict(self.buffer.dropped)
        written = sum(self.written.values()) + pending
        return {
            "id": self.instance_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "writer": self.writer.name,
            "buffer_depth": len(self.buffer),
            "records_written": written,
            "records_dropped": sum(dropped.values()),
            "dropped_by_reason": json.dumps(dropped),
            "records_quarantined": self.quarantined_total,
            "last_flush_at": datetime.now(UTC) if pending else self.last_flush_at,
            "flush_lag_ms": None if age is None else int(age * 1000),
            "last_error": self.last_error,
        }


def _as_batch(patches: list[Patch]) -> Batch:
    executions = [p for p in patches if p.table != "job_logs"]
    logs = [p for p in patches if p.table == "job_logs"]
    return Batch(executions, logs)
