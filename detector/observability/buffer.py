"""The plugin's in-memory buffer: bounded, coalescing, and dropping by priority.

Two stages. Hooks `post` raw entries into an *inbox* (an append under a lock held for
a few instructions: the only work on the host's path). The writer thread `absorb`s the
inbox: a converter turns each entry into rows (redacted, serialised, capped) that merge
into the record buffer below. Absorbing is serialised, so entries are applied in the
order they were posted (a job's end never lands before its start). If the inbox grows
past its share of the memory bound (the writer is far behind), the posting thread
absorbs it itself: the host then pays the conversion (backpressure) and the drop policy
below applies as usual.

Execution records (invocations, event and job executions) are *patches*: the columns a
hook knows, keyed by (table, id). A patch for a row already in the buffer merges into it,
so a row started and finished between two flushes is written once. Log lines are
insert-only and kept in arrival order.

The buffer holds at most `max_bytes` (an estimate of the memory the records take). Over
the bound it makes room in this order (SPEC §1.7): log lines, oldest first; then payload
bodies (the large JSON columns) of execution records, oldest first; then execution
records themselves, oldest first. Every drop is counted by reason.

All methods are thread-safe (one lock, held briefly): hooks append from the host's
threads, the writer thread takes batches.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

EXECUTION_TABLES = ("invocations", "event_executions", "job_executions")
LOG_TABLE = "job_logs"
# JSON columns whose bodies go before the records themselves when memory runs out.
BODY_COLUMNS = ("source_event_payload", "context_data", "job_options", "result")
BODY_DROPPED = '{"_dropped":"buffer full: body not recorded"}'

# Rough per-record overhead of a dict of a dozen columns in CPython, in bytes.
_RECORD_OVERHEAD = 1200
_LOG_OVERHEAD = 700

# Share of the memory bound the inbox may hold before the posting thread absorbs it.
INBOX_SHARE = 4
# What an inbox entry costs beyond the deferred JSON text it carries (tuple, references).
INBOX_ENTRY_BYTES = 200
# Entries converted at a time when converting only part of the inbox: a few hundred
# microseconds, so that a write in flight is never kept waiting long for its replies.
ABSORB_CHUNK = 32

DROP_LOG_LINES = "log_lines_buffer_full"
DROP_BODIES = "payload_bodies_buffer_full"
DROP_RECORDS = "execution_records_buffer_full"


@dataclass(slots=True)
class Patch:
    """Columns of one row, to be upserted (execution tables) or inserted (log lines)."""

    table: str
    id: str
    values: dict[str, Any]
    size: int = 0
    first_seen: float = field(default_factory=time.monotonic)
    # The row was started in this buffer and never written: writers may insert it
    # straight (COPY), falling back to the upsert if it turns out to exist.
    new: bool = False


# The columns that can be large; the rest are small and covered by the overhead.
_SIZED_COLUMNS = (
    *BODY_COLUMNS,
    "message",
    "data",
    "error_message",
    "error_stack",
    "detection_error_stack",
    "handler_error_stack",
)


def estimate_size(values: dict[str, Any], overhead: int) -> int:
    """Approximate memory of a record: fixed overhead plus the length of its large strings
    (JSON bodies, messages, errors and stacks)."""
    size = overhead
    get = values.get
    for column in _SIZED_COLUMNS:
        value = get(column)
        if value is not None and value.__class__ is str:
            size += len(value)
    return size


@dataclass(slots=True)
class Batch:
    """Records taken from the buffer for one write, parents before children."""

    executions: list[Patch]
    logs: list[Patch]

    def __len__(self) -> int:
        return len(self.executions) + len(self.logs)

    def all(self) -> list[Patch]:
        return [*self.executions, *self.logs]


Converter = Callable[[Any], None]
"""Turns one inbox entry into records (calling `add_execution`/`add_log`); never raises."""


class BoundedBuffer:
    """Coalescing execution patches plus a FIFO of log lines, within a memory bound.

    `max_bytes` bounds the records and the inbox together: the inbox may hold up to a
    quarter of it (when a `converter` is given), the records the rest.
    """

    def __init__(self, max_bytes: int, converter: Converter | None = None) -> None:
        self.max_bytes = max_bytes
        self._converter = converter
        self.inbox_max_bytes = max_bytes // INBOX_SHARE if converter is not None else 0
        # The bound the converted records are held to.
        self._limit = max_bytes - self.inbox_max_bytes
        self._lock = threading.Lock()
        self._inbox_lock = threading.Lock()
        self._absorb_lock = threading.Lock()
        self._inbox: list[Any] = []
        self._inbox_bytes = 0
        self._executions: OrderedDict[tuple[str, str], Patch] = OrderedDict()
        self._logs: deque[Patch] = deque()
        self._bytes = 0
        self.dropped: Counter[str] = Counter()
        self.recorded: Counter[str] = Counter()
        self.coalesced = 0
        self.absorbed_by_posters = 0

    def reset_after_fork(self) -> None:
        """Fresh locks and an empty buffer (the parent process writes its own records)."""
        self._lock = threading.Lock()
        self._inbox_lock = threading.Lock()
        self._absorb_lock = threading.Lock()
        self._inbox = []
        self._inbox_bytes = 0
        self._executions.clear()
        self._logs.clear()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Estimated memory of the buffered records and of the inbox."""
        return self._bytes + self._inbox_bytes

    def __len__(self) -> int:
        return len(self._executions) + len(self._logs) + len(self._inbox)

    @property
    def inbox_depth(self) -> int:
        """Entries posted and not yet converted."""
        return len(self._inbox)

    def post(self, entry: Any, nbytes: int = INBOX_ENTRY_BYTES) -> int:
        """Add a raw entry to the inbox (the host's path: no conversion, no I/O).

        `nbytes` is what the entry holds beyond references (its deferred JSON texts).
        Returns the inbox depth. Over the inbox's share of the bound, converts the inbox
        right here (backpressure) so that the drop policy keeps memory bounded.
        """
        with self._inbox_lock:
            inbox = self._inbox
            inbox.append(entry)
            self._inbox_bytes += nbytes
            over = self._inbox_bytes > self.inbox_max_bytes
        if over:
            self.absorbed_by_posters += 1
            self.absorb()
        return len(inbox)

    def absorb(self, limit: int | None = None) -> int:
        """Convert the oldest `limit` entries of the inbox (all by default) into records,
        in posting order; returns how many.

        Serialised: two threads absorbing at once apply their entries one after the other.
        """
        converter = self._converter
        if converter is None:
            return 0
        with self._absorb_lock:
            with self._inbox_lock:
                inbox = self._inbox
                if limit is None or limit >= len(inbox):
                    entries: Iterable[Any] = inbox
                    self._inbox = []
                    self._inbox_bytes = 0
                else:
                    entries = inbox[:limit]
                    del inbox[:limit]
                    # Entry sizes are not kept (the host's path stays an append): the
                    # bytes leave in proportion, and reach 0 with the last entry.
                    self._inbox_bytes -= self._inbox_bytes * limit // (limit + len(inbox))
                count = len(entries)  # type: ignore[arg-type]
            for entry in entries:
                converter(entry)
        return count

    @property
    def records(self) -> int:
        """Converted records waiting to be written (the inbox not included)."""
        return len(self._executions) + len(self._logs)

    def oldest_age(self) -> float | None:
        """Seconds since the oldest buffered record was recorded, or None when empty."""
        with self._lock:
            oldest = [p.first_seen for p in (next(iter(self._executions.values()), None),) if p]
            if self._logs:
                oldest.append(self._logs[0].first_seen)
        return time.monotonic() - min(oldest) if oldest else None

    def add_execution(
        self, table: str, row_id: str, values: dict[str, Any], *, new: bool = False
    ) -> int:
        """Merge `values` into the row's pending patch; returns the buffered record count.

        `new=True` says these values start the row (nothing wrote it before); it marks
        the patch only when it creates it.
        """
        size = estimate_size(values, 0)
        with self._lock:
            self.recorded[table] += 1
            key = (table, row_id)
            patch = self._executions.get(key)
            if patch is None:
                size += _RECORD_OVERHEAD
                self._executions[key] = Patch(table, row_id, values, size, new=new)
            else:
                patch.values.update(values)
                patch.size += size
                self.coalesced += 1
            self._bytes += size
            if self._bytes > self._limit:
                self._make_room()
            return len(self._executions) + len(self._logs)

    def add_log(self, row_id: str, values: dict[str, Any]) -> int:
        """Append a log line; returns the buffered record count."""
        size = estimate_size(values, _LOG_OVERHEAD)
        with self._lock:
            self.recorded[LOG_TABLE] += 1
            self._logs.append(Patch(LOG_TABLE, row_id, values, size))
            self._bytes += size
            if self._bytes > self._limit:
                self._make_room()
            return len(self._executions) + len(self._logs)

    def _make_room(self) -> None:
        # Called with the lock held.
        limit = self._limit
        while self._bytes > limit and self._logs:
            self._bytes -= self._logs.popleft().size
            self.dropped[DROP_LOG_LINES] += 1
        if self._bytes <= limit:
            return
        for patch in self._executions.values():
            stripped = 0
            for column in BODY_COLUMNS:
                value = patch.values.get(column)
                if isinstance(value, str) and len(value) > len(BODY_DROPPED):
                    patch.values[column] = BODY_DROPPED
                    stripped += len(value) - len(BODY_DROPPED)
            if stripped:
                patch.size -= stripped
                self._bytes -= stripped
                self.dropped[DROP_BODIES] += 1
            if self._bytes <= limit:
                return
        while self._bytes > limit and self._executions:
            _, patch = self._executions.popitem(last=False)
            self._bytes -= patch.size
            self.dropped[DROP_RECORDS] += 1

    def take(self, max_records: int) -> Batch:
        """Remove and return up to `max_records` records, oldest first, parents first.

        Converts inbox entries first, oldest first, until there are `max_records`
        records or the inbox is empty: every record posted before the call can be taken,
        and entries beyond a full batch wait (the writer converts them while the batch
        is written; see `BackgroundFlusher`).
        """
        while self._inbox and self.records < max_records:
            self.absorb(max(ABSORB_CHUNK, max_records - self.records))
        with self._lock:
            executions: list[Patch] = []
            while self._executions and len(executions) < max_records:
                executions.append(self._executions.popitem(last=False)[1])
            logs: list[Patch] = []
            room = max_records - len(executions)
            while self._logs and len(logs) < room:
                logs.append(self._logs.popleft())
            self._bytes -= sum(p.size for p in executions) + sum(p.size for p in logs)
        # Within a batch, write parents before children whatever order rows arrived in.
        order = {table: rank for rank, table in enumerate(EXECUTION_TABLES)}
        executions.sort(key=lambda p: order.get(p.table, len(order)))
        return Batch(executions, logs)

    def count_dropped(self, reason: str, count: int) -> None:
        """Count `count` records dropped for `reason` outside the buffer (a write given up)."""
        with self._lock:
            self.dropped[reason] += count

    def discard_all(self, reason: str) -> int:
        """Drop every record and inbox entry (converted first, so that records are what is
        counted), counting them as dropped for `reason`; returns how many."""
        self.absorb()
        with self._lock:
            count = len(self._executions) + len(self._logs)
            self._executions.clear()
            self._logs.clear()
            self._bytes = 0
            if count:
                self.dropped[reason] += count
        return count

    def requeue(self, batch: Batch) -> None:
        """Put back records whose write failed, under any newer patches of the same rows.

        They go to the front (they are the oldest), and count against the bound again.
        """
        with self._lock:
            for patch in reversed(batch.executions):
                key = (patch.table, patch.id)
                newer = self._executions.get(key)
                if newer is not None:
                    merged = {**patch.values, **newer.values}
                    self._bytes -= newer.size
                    newer.values = merged
                    newer.size = estimate_size(merged, _RECORD_OVERHEAD)
                    newer.first_seen = min(newer.first_seen, patch.first_seen)
                    newer.new = patch.new  # the failed write created nothing
                    self._executions.move_to_end(key, last=False)
                    self._bytes += newer.size
                else:
                    self._executions[key] = patch
                    self._executions.move_to_end(key, last=False)
                    self._bytes += patch.size
            for patch in reversed(batch.logs):
                self._logs.appendleft(patch)
                self._bytes += patch.size
            if self._bytes > self._limit:
                self._make_room()
