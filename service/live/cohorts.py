"""Cohorts and subscribers: identical subscriptions share one execution.

A *cohort* is every open subscription with the same normalised document, operation
name, variables, role and the session variables the role's permissions use (and, for a
stream, the same cursor). The cohort runs its root field once per change and hands the
result to each subscriber as the same `SharedResult`; a result whose digest equals the
last one a subscriber was given is not sent again. Cohorts whose root field compiles to
the same statement (they differ only in its parameters: variable values, session
variables) run together, many in one SQL statement (see `queries.py`).

A *subscriber* is one subscription on one connection. It keeps only the latest result
it has not sent yet (a 1-deep, latest-wins slot), so a slow client never holds up the
cohort or the other subscribers: it skips intermediate results and gets the newest.
Stream subscribers are the exception: every batch must arrive, so a stream subscriber
leaves its cohort when it is handed a batch and joins the cohort of its new cursor once
the batch has been sent.

Subscribers are held weakly by their cohort and strongly by whoever iterates them (the
GraphQL transport): a subscription abandoned without being closed is collected and
counted out, never left running.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLResolveInfo

from service.graphql.execution.resolvers import Completed, SharedResult

if TYPE_CHECKING:
    from service.graphql.execution.auth import Session
    from service.graphql.execution.compiled import CompiledField


@dataclass(frozen=True)
class CohortKey:
    """What makes two subscriptions identical."""

    document: str
    operation_name: str | None
    variables: bytes
    role: str
    session: tuple[tuple[str, str], ...]
    cursor: bytes | None = None
    """Stream cohorts only: the position of the stream (canonical JSON)."""

    def at_cursor(self, cursor: Any) -> CohortKey:
        """The key of the same stream at another cursor position."""
        return CohortKey(
            self.document, self.operation_name, self.variables, self.role, self.session,
            canonical_json(cursor),
        )  # fmt: skip


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON for keys (sorted keys; non-JSON values by their text)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)


@dataclass
class LiveEvent:
    """What one run of a cohort produced.

    `result` is the `SharedResult` subscribers resolve their field to; `digest`
    identifies its content. Stream runs also carry the batch size and the next cursor
    (`None` when the batch was empty: nothing to send).
    """

    result: SharedResult
    digest: bytes
    rows: int = 0
    next_cursor: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.result.error is not None

    @classmethod
    def of_value(cls, value: Any, path: list[str | int]) -> LiveEvent:
        """The event of a root field that resolved to `value`; `path` holds its response
        key, after the namespace field's when the root fields are namespaced."""
        data = value.value if isinstance(value, Completed) else value
        encoded = orjson.dumps(data, default=str)
        return cls(SharedResult(value=value, payload=_payload(encoded, path)), _digest(encoded))

    @classmethod
    def of_json(cls, text: str | None, path: list[str | int]) -> LiveEvent:
        """The event of a root field whose JSON the database built (`text`; None for
        null); `path` as for `of_value`."""
        encoded = b"null" if text is None else text.encode()
        value = None if text is None else Completed(orjson.Fragment(encoded))
        return cls(SharedResult(value=value, payload=_payload(encoded, path)), _digest(encoded))

    @classmethod
    def of_error(cls, error: Exception, body: dict[str, Any]) -> LiveEvent:
        """The event of a root field that raised `error`; `body` is the response for it."""
        encoded = orjson.dumps(body, default=str)
        return cls(SharedResult(error=error, payload=encoded.decode()), _digest(encoded))


def _payload(encoded: bytes, path: list[str | int]) -> str:
    """The response body holding the root field's JSON `encoded` at `path`."""
    body = encoded
    for key in reversed(path):
        body = b"{" + orjson.dumps(key) + b":" + body + b"}"
    return (b'{"data":' + body + b"}").decode()


def _digest(encoded: bytes) -> bytes:
    return hashlib.blake2b(encoded, digest_size=16).digest()


# The resolver a cohort runs: (root value, resolve info, arguments) -> LiveEvent.
Runner = Callable[[Any, GraphQLResolveInfo, dict[str, Any]], Any]


@dataclass(eq=False)
class Cohort:
    """The subscriptions sharing one execution, and the state of that execution."""

    key: CohortKey
    info: GraphQLResolveInfo
    """Resolve info of the root field, with a context of its own (no connection)."""
    args: dict[str, Any]
    session: Session
    tables: frozenset[str]
    stream: bool = False
    root: Any = None
    """Root value of each run: None, or a stream's cursor position."""
    batch_size: int = 0
    compiled: CompiledField | None = None
    """The root field's compiled statement: cohorts sharing it run together (multiplexed)."""
    parameters: list[Any] | None = None
    """This cohort's values of the compiled statement's parameters."""
    subscribers: weakref.WeakSet[Subscriber] = field(default_factory=weakref.WeakSet)
    last_event: LiveEvent | None = None
    dirty: bool = False
    urgent: bool = False
    dirty_since: float = 0.0
    running: bool = False
    last_started: float = float("-inf")
    executions: int = 0
    closed: bool = False

    def due(self, debounce: float, min_interval: float) -> float:
        """When the next run may start (monotonic seconds)."""
        if self.urgent:
            return self.dirty_since
        return max(self.dirty_since + debounce, self.last_started + min_interval)

    def deliver(self, event: LiveEvent) -> list[Subscriber]:
        """Hand `event` to the subscribers; returns the stream subscribers that left.

        Live cohorts: subscribers whose last sent result differs get it (latest wins).
        Stream cohorts: a non-empty batch goes to every member, and they all leave to
        continue from the new cursor; an empty batch sends nothing.
        """
        self.last_event = event
        members = list(self.subscribers)
        if self.stream and event.next_cursor is not None:
            self.subscribers = weakref.WeakSet()
            for subscriber in members:
                subscriber.offer(event)
            return members
        if not self.stream or event.failed:
            for subscriber in members:
                subscriber.offer(event)
        else:
            for subscriber in members:
                subscriber.settle()
        return []


class Subscriber:
    """One subscription: an async iterator of `SharedResult`s for the GraphQL executor.

    `close()` (also through `aclose()`, which the transport calls when the operation
    ends) leaves the cohort at once; collection without closing does the same.
    """

    def __init__(
        self,
        cohort: Cohort,
        on_leave: Callable[[Subscriber], None],
        release: Callable[[], None],
    ) -> None:
        self.cohort = cohort
        self.stream = cohort.stream
        self.pending: LiveEvent | None = None
        self.sent_digest: bytes | None = None
        self.settled = False
        """True once the subscription's first run finished (whatever it produced)."""
        self.cursor: dict[str, Any] | None = None
        self.rejoin: Callable[[Subscriber], None] | None = None
        self.batches = 0
        self.created = time.monotonic()
        self._ready = asyncio.Event()
        self._handed_batch = False
        self._closed = False
        self._on_leave = on_leave
        # `release` runs exactly once: at close, or when an abandoned subscriber is
        # collected (the cohort holds it weakly, so it then drops out by itself).
        self._finalizer = weakref.finalize(self, release)

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, event: LiveEvent) -> None:
        """Make `event` the next thing to send (replacing an unsent older one)."""
        self.settled = True
        if self.stream and not event.failed:
            self.pending = event
            self.cursor = event.next_cursor
            self.batches += 1
        elif event.digest == self.sent_digest:
            self.pending = None  # the client already has this content
        else:
            self.pending = event
        self._ready.set()

    def settle(self) -> None:
        """The first run finished without anything to send (an empty stream batch)."""
        self.settled = True
        self._ready.set()

    async def first_run(self) -> LiveEvent | None:
        """Wait until the subscription's first run has finished; its pending event."""
        while not self.settled and not self._closed:
            self._ready.clear()
            await self._ready.wait()
        return self.pending

    direct = True
    """Every event is a `SharedResult` with its encoded payload (see `DirectEvents`)."""

    def __aiter__(self) -> AsyncIterator[SharedResult]:
        return self

    async def __anext__(self) -> SharedResult:
        if self._handed_batch and self.rejoin is not None:
            # The executor asks for the next value only after the previous batch was
            # sent: now the stream continues from the new cursor.
            self._handed_batch = False
            self.rejoin(self)
        while True:
            if self._closed:
                raise StopAsyncIteration
            event = self.pending
            if event is not None:
                self.pending = None
                self.sent_digest = event.digest
                if self.stream and not event.failed:
                    self._handed_batch = True
                return event.result
            self._ready.clear()
            await self._ready.wait()

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """End the subscription: leave the cohort (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        self._on_leave(self)
        self._finalizer()
