"""The plugin's in-memory buffer: bounded, coalescing, and dropping by priority.

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


class BoundedBuffer:
    """Coalescing execution patches plus a FIFO of log lines, within a memory bound."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._executions: OrderedDict[tuple[str, str], Patch] = OrderedDict()
        self._logs: deque[Patch] = deque()
        self._bytes = 0
        self.dropped: Counter[str] = Counter()
        self.recorded: Counter[str] = Counter()
        self.coalesced = 0

    def reset_after_fork(self) -> None:
        """A fresh lock and an empty buffer (the parent process writes its own records)."""
        self._lock = threading.Lock()
        self._executions.clear()
        self._logs.clear()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._executions) + len(self._logs)

    def oldest_age(self) -> float | None:
        """Seconds since the oldest buffered record was recorded, or None when empty."""
        with self._lock:
            oldest = [p.first_seen for p in (next(iter(self._executions.values()), None),) if p]
            if self._logs:
                oldest.append(self._logs[0].first_seen)
        return time.monotonic() - min(oldest) if oldest else None

    def add_execution(self, table: str, row_id: str, values: dict[str, Any]) -> int:
        """Merge `values` into the row's pending patch; returns the buffered record count."""
        size = estimate_size(values, 0)
        with self._lock:
            self.recorded[table] += 1
            key = (table, row_id)
            patch = self._executions.get(key)
            if patch is None:
                size += _RECORD_OVERHEAD
                self._executions[key] = Patch(table, row_id, values, size)
            else:
                patch.values.update(values)
                patch.size += size
                self.coalesced += 1
            self._bytes += size
            if self._bytes > self.max_bytes:
                self._make_room()
            return len(self._executions) + len(self._logs)

    def add_log(self, row_id: str, values: dict[str, Any]) -> int:
        """Append a log line; returns the buffered record count."""
        size = estimate_size(values, _LOG_OVERHEAD)
        with self._lock:
            self.recorded[LOG_TABLE] += 1
            self._logs.append(Patch(LOG_TABLE, row_id, values, size))
            self._bytes += size
            if self._bytes > self.max_bytes:
                self._make_room()
            return len(self._executions) + len(self._logs)

    def _make_room(self) -> None:
        # Called with the lock held.
        while self._bytes > self.max_bytes and self._logs:
            self._bytes -= self._logs.popleft().size
            self.dropped[DROP_LOG_LINES] += 1
        if self._bytes <= self.max_bytes:
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
            if self._bytes <= self.max_bytes:
                return
        while self._bytes > self.max_bytes and self._executions:
            _, patch = self._executions.popitem(last=False)
            self._bytes -= patch.size
            self.dropped[DROP_RECORDS] += 1

    def take(self, max_records: int) -> Batch:
        """Remove and return up to `max_records` records, oldest first, parents first."""
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
                    self._executions.move_to_end(key, last=False)
                    self._bytes += newer.size
                else:
                    self._executions[key] = patch
                    self._executions.move_to_end(key, last=False)
                    self._bytes += patch.size
            for patch in reversed(batch.logs):
                self._logs.appendleft(patch)
                self._bytes += patch.size
            if self._bytes > self.max_bytes:
                self._make_room()
