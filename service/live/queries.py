"""The live-query engine: change-driven re-execution of subscriptions, shared per cohort.

`LiveQueries` plugs into the GraphQL engine as its `subscription_events` hook: every
subscription root field (`T`, `T_by_pk`, `T_aggregate`, `T_stream`) asks it for the
events that drive it. It groups identical subscriptions into cohorts (see `cohorts.py`),
records the tables each cohort reads, and re-runs a cohort only when a change source
(see `changes.py`) reports a change to one of those tables:

- a change marks the cohorts reading the table dirty; a dirty cohort runs once a short
  debounce has passed since the first change (more changes fold into the same run),
  and at most once per `min_interval` whatever the write rate;
- one run serves the whole cohort; unchanged results are not sent;
- cohorts whose root field compiles to the same statement (the same document, operation
  and role, differing only in variable values and session variables) run together: up
  to `batch_size` of them in one SQL statement, each answered under its own parameters
  (Hasura's multiplexing, `service.graphql.sql.multiplex`); if that statement fails,
  each cohort of the batch runs alone, so an error reaches only the cohorts it concerns;
- nothing runs while nothing changes, except an optional slow safety poll (and, while
  the change source is down, polling at `degraded_poll_interval`, as Hasura does);
- at most `max_concurrent_runs` cohorts run at once (PostgreSQL: the pool's size;
  SQLite: 2).

Streams (`T_stream`) are cohorts keyed by their cursor too: a batch goes to every
subscriber at that cursor, then each continues from the new cursor in the cohort of
that position once its batch has been sent, so every row arrives once, in cursor order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLResolveInfo, located_error, print_ast
from graphql.language import DocumentNode

from service.graphql.catalog.permissions import SessionVariable
from service.graphql.errors import UNEXPECTED, EngineError, format_errors
from service.graphql.execution.context import RequestContext
from service.graphql.execution.resolvers import Completed, fetch_stream_batch
from service.graphql.sql.budget import ResponseBudget, budget_scope
from service.live.changes import (
    ChangeSource,
    PostgresChangeListener,
    SQLiteChangeWatcher,
    wait_event,
)
from service.live.cohorts import Cohort, CohortKey, LiveEvent, Subscriber, canonical_json

if TYPE_CHECKING:
    from service.graphql.execution.auth import Session
    from service.graphql.execution.compiled import CompiledField
    from service.graphql.execution.engine import GraphQLEngine
    from service.settings import Settings
    from service.storage.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveSettings:
    """Timing of re-execution, in seconds (see `Settings` for what each means)."""

    min_interval: float = 0.2
    debounce: float = 0.025
    safety_poll_interval: float = 60.0
    degraded_poll_interval: float = 1.0
    sqlite_poll_interval: float = 0.05
    postgres_ping_interval: float = 10.0
    max_concurrent_runs: int = 10
    batch_size: int = 100
    listen_url: str | None = None
    """PostgreSQL: where the LISTEN connection goes (a direct URL when the pool goes
    through a transaction pooler); None: the database's URL."""

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveSettings:
        return cls(
            min_interval=settings.live_min_interval,
            debounce=settings.live_debounce,
            safety_poll_interval=settings.live_safety_poll_interval,
            degraded_poll_interval=settings.live_degraded_poll_interval,
            sqlite_poll_interval=settings.sqlite_change_poll_interval,
            postgres_ping_interval=settings.postgres_listener_ping_interval,
            batch_size=settings.live_batch_size,
            listen_url=settings.session_database_url,
            # SQLite runs in this process: concurrent runs only contend for the GIL and
            # delay the loop that sends the results (measured: 2 beats 10 by ~40% p50).
            max_concurrent_runs=(
                min(2, settings.db_pool_size)
                if settings.database_url.startswith("sqlite")
                else settings.db_pool_size
            ),
        )


@dataclass(frozen=True)
class LiveStats:
    """A snapshot of the engine, for `/metrics` and tests."""

    subscriptions: int
    cohorts: int
    executions: int
    """Cohort runs so far (one run serves every subscriber of its cohort)."""
    batches: int
    """Statements that ran many cohorts at once (each counts its cohorts in `executions`)."""
    change_signals: int
    """Change reports received (tables or everything)."""
    change_source_healthy: bool


class LiveQueries:
    """Shared, change-driven execution of subscriptions for one `GraphQLEngine`.

    `start()` opens the change source for the database (SQLite watcher or PostgreSQL
    listener) and installs `events` as the engine's `subscription_events`; `stop()`
    undoes both. `on_count(n)` is called whenever the number of open subscriptions
    changes (e.g. to move a Prometheus gauge).
    """

    def __init__(
        self,
        engine: GraphQLEngine,
        settings: LiveSettings | None = None,
        *,
        on_count: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.database: Database = engine.database
        self.settings = settings or LiveSettings()
        self.on_count = on_count
        self.source: ChangeSource | None = None
        self._cohorts: dict[CohortKey, Cohort] = {}
        self._by_table: dict[str, set[Cohort]] = {}
        self._dirty: set[Cohort] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.settings.max_concurrent_runs)
        self._scheduler: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._session_variables: dict[str, tuple[str, ...]] = {}
        self._documents: dict[int, tuple[Any, str]] = {}
        self._subscriptions = 0
        self.executions = 0
        self.batches = 0
        self.change_signals = 0
        self._previous_hook: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop the engine runs on (set by `start`)."""

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the change source and the scheduler; become the engine's subscription hook."""
        self.loop = asyncio.get_running_loop()
        self._previous_hook = self.engine.subscription_events
        self.engine.subscription_events = self.events
        if self.database.is_sqlite:
            self.source = SQLiteChangeWatcher(
                self.database,
                interval=self.settings.sqlite_poll_interval,
                tables_changed=self.tables_changed,
                everything_changed=self.everything_changed,
            )
        else:
            self.source = PostgresChangeListener(
                self.settings.listen_url or self.database.url,
                tables_changed=self.tables_changed,
                everything_changed=self.everything_changed,
                ping_interval=self.settings.postgres_ping_interval,
            )
        await self.source.start()
        self._scheduler = asyncio.create_task(self._schedule(), name="live-scheduler")
        self._poller = asyncio.create_task(self._poll(), name="live-poller")

    async def stop(self) -> None:
        """Stop scheduling and the change source; open subscriptions stop receiving."""
        if self._previous_hook is not None:
            self.engine.subscription_events = self._previous_hook
        for task in (self._scheduler, self._poller, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._scheduler, self._poller, *list(self._tasks)):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._scheduler = self._poller = None
        if self.source is not None:
            await self.source.stop()

    def stats(self) -> LiveStats:
        """Open subscriptions, cohorts, runs so far, change signals, source health."""
        return LiveStats(
            subscriptions=self._subscriptions,
            cohorts=len(self._cohorts),
            executions=self.executions,
            batches=self.batches,
            change_signals=self.change_signals,
            change_source_healthy=self.source is not None and self.source.healthy,
        )

    # --- change signals ----------------------------------------------------------------------

    def tables_changed(self, tables: Iterable[str]) -> None:
        """Tables changed: their cohorts run again (after the debounce / min interval)."""
        self.change_signals += 1
        now = time.monotonic()
        for table in tables:
            for cohort in self._by_table.get(table, ()):
                self._mark_dirty(cohort, now)

    def everything_changed(self) -> None:
        """Anything may have changed (signals were lost): every cohort runs again."""
        self.change_signals += 1
        now = time.monotonic()
        for cohort in list(self._cohorts.values()):
            self._mark_dirty(cohort, now)

    def _mark_dirty(self, cohort: Cohort, now: float, *, urgent: bool = False) -> None:
        if not cohort.dirty:
            cohort.dirty = True
            cohort.dirty_since = now
        cohort.urgent = cohort.urgent or urgent
        self._dirty.add(cohort)
        self._wake.set()

    # --- subscribing ---------------------------------------------------------------------------

    async def events(self, info: GraphQLResolveInfo, args: Mapping[str, Any]) -> Subscriber:
        """The event stream of one subscription root field (the engine's hook).

        Joins (or creates) the subscription's cohort and waits for its first result: an
        error in it is raised, so the transport answers with an error frame, as Hasura
        does for an invalid subscription. Later errors are sent as results.
        """
        context = info.context
        session = context.session if isinstance(context, RequestContext) else None
        if session is None:
            session = self.engine.context().session
        field_def = info.parent_type.fields[info.field_name]
        stream = bool((field_def.extensions or {}).get("stream"))
        key = self._key(info, session, args if stream else None)
        cohort = self._cohorts.get(key)
        if cohort is None:
            cohort = self._create(key, info, args, session, stream)
        subscriber = self._join(cohort)
        try:
            first = await subscriber.first_run()
        except BaseException:
            subscriber.close()
            raise
        if first is not None and first.failed and not subscriber.batches:
            subscriber.close()
            error = first.result.error
            assert error is not None
            raise error
        return subscriber

    def _key(
        self, info: GraphQLResolveInfo, session: Session, stream_args: Mapping[str, Any] | None
    ) -> CohortKey:
        document = self._normalised_document(info)
        used = self._used_session_variables(session.role)
        return CohortKey(
            document=document,
            operation_name=info.operation.name.value if info.operation.name else None,
            variables=canonical_json(info.variable_values.coerced),
            role=session.role,
            session=tuple((name, str(session.variables.get(name))) for name in used),
            cursor=None if stream_args is None else canonical_json(stream_args.get("cursor")),
        )

    def _normalised_document(self, info: GraphQLResolveInfo) -> str:
        """The operation and its fragments printed canonically (whitespace, comments gone).

        Printing costs about a millisecond; the parser cache hands every subscription
        with the same text the same operation node, so the text is kept per node.
        """
        cached = self._documents.get(id(info.operation))
        if cached is not None and cached[0] is info.operation:
            return cached[1]
        document = print_ast(DocumentNode(definitions=(info.operation, *info.fragments.values())))
        if len(self._documents) >= 1024:
            self._documents.clear()
        self._documents[id(info.operation)] = (info.operation, document)
        return document

    def _used_session_variables(self, role: str) -> tuple[str, ...]:
        """Session variables the role's permission filters read (they change results)."""
        if role not in self._session_variables:
            found: set[str] = set()
            for access in self.engine.permissions(role).tables:
                _collect_session_variables(access.filter, found)
            self._session_variables[role] = tuple(sorted(found))
        return self._session_variables[role]

    def _create(
        self,
        key: CohortKey,
        info: GraphQLResolveInfo,
        args: Mapping[str, Any],
        session: Session,
        stream: bool,
    ) -> Cohort:
        own_info = _detached_info(info, RequestContext(engine=self.engine, session=session))
        batch_size = int(args.get("batch_size") or 0) if stream else 0
        compiled, parameters = (None, None) if stream else self._compiled(own_info, session)
        cohort = Cohort(
            key=key,
            info=own_info,
            args=dict(args),
            session=session,
            tables=(
                compiled.tables
                if compiled is not None
                else self.engine.field_tables(own_info, session)
            ),
            stream=stream,
            batch_size=batch_size,
            compiled=compiled,
            parameters=parameters,
        )
        self._register(cohort)
        self._mark_dirty(cohort, time.monotonic(), urgent=True)
        return cohort

    def _compiled(
        self, info: GraphQLResolveInfo, session: Session
    ) -> tuple[CompiledField | None, list[Any] | None]:
        """The root field's compiled statement and this cohort's parameters, or Nones
        (then the cohort runs alone, and its own run reports any error)."""
        engine = self.engine
        extensions = info.parent_type.fields[info.field_name].extensions or {}
        kind = extensions.get("root")
        if kind is None or not engine.config.json_in_database:
            return None, None
        try:
            table = engine.catalog.tables[extensions["table"]]
            compiled = engine.compiled.field(info, kind, table, session, repeated=True)
            if compiled is None:
                return None, None
            values = compiled.values(info.variable_values.coerced, session)
        except Exception:  # an invalid subscription: its first run answers the error
            return None, None
        return compiled, compiled.parameter_list(values)

    def _register(self, cohort: Cohort) -> None:
        self._cohorts[cohort.key] = cohort
        for table in cohort.tables:
            self._by_table.setdefault(table, set()).add(cohort)

    def _drop(self, cohort: Cohort) -> None:
        if cohort.closed:
            return
        cohort.closed = True
        if self._cohorts.get(cohort.key) is cohort:
            del self._cohorts[cohort.key]
        for table in cohort.tables:
            members = self._by_table.get(table)
            if members is not None:
                members.discard(cohort)
                if not members:
                    del self._by_table[table]
        self._dirty.discard(cohort)

    def _join(self, cohort: Cohort) -> Subscriber:
        self._subscriptions += 1
        self._publish_count()
        subscriber = Subscriber(cohort, self._leave, self._release)
        subscriber.rejoin = self._rejoin
        cohort.subscribers.add(subscriber)
        last = cohort.last_event
        if last is None or (cohort.dirty and cohort.urgent):
            pass  # the first run is on its way
        elif last.failed:
            # Errors are not cached for newcomers: try again for them.
            self._mark_dirty(cohort, time.monotonic(), urgent=True)
        elif cohort.stream:
            subscriber.settle()  # the last run at this cursor found nothing new
        else:
            subscriber.offer(last)  # a live result is current until a change says not
        return subscriber

    def _leave(self, subscriber: Subscriber) -> None:
        cohort = subscriber.cohort
        cohort.subscribers.discard(subscriber)
        if not cohort.subscribers:
            self._drop(cohort)

    def _release(self) -> None:
        self._subscriptions -= 1
        self._publish_count()

    def _publish_count(self) -> None:
        if self.on_count is not None:
            self.on_count(self._subscriptions)

    def _rejoin(self, subscriber: Subscriber) -> None:
        """A stream subscriber sent its batch: continue in the cohort of its new cursor."""
        if subscriber.closed or subscriber.cursor is None:
            return
        old = subscriber.cohort
        key = old.key.at_cursor(subscriber.cursor)
        cohort = self._cohorts.get(key)
        if cohort is None:
            cohort = Cohort(
                key=key,
                info=old.info,
                args=old.args,
                session=old.session,
                tables=old.tables,
                stream=True,
                root=subscriber.cursor,
                batch_size=old.batch_size,
            )
            self._register(cohort)
        subscriber.cohort = cohort
        cohort.subscribers.add(subscriber)
        # Rows may have been committed since the batch was read: look now. After a full
        # batch more rows are likely waiting, so skip the debounce.
        full = old.last_event is not None and old.last_event.rows >= old.batch_size > 0
        self._mark_dirty(cohort, time.monotonic(), urgent=full)

    # --- running -------------------------------------------------------------------------------

    async def _schedule(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait = self._start_due(time.monotonic())
            except Exception:  # a bug here must not stop every live query for good
                log.exception("live queries: scheduling failed")
                wait = 0.1
            await wait_event(self._wake, wait)

    def _start_due(self, now: float) -> float | None:
        """Start the dirty cohorts that are due; seconds until the next one is (or None).

        Due cohorts sharing a compiled statement start together, `batch_size` a batch.
        """
        settings = self.settings
        wait: float | None = None
        together: dict[Any, list[Cohort]] = {}
        waiting: list[tuple[float, Cohort]] = []
        for cohort in list(self._dirty):
            if cohort.running:
                continue  # it runs again when this run ends
            if cohort.closed or not cohort.subscribers:
                self._drop(cohort)
                continue
            due = cohort.due(settings.debounce, settings.min_interval)
            if due > now:
                waiting.append((due, cohort))
            elif cohort.compiled is not None:
                together.setdefault(cohort.compiled.key, []).append(cohort)
            else:
                self._launch([cohort], now, self._run(cohort))
        for due, cohort in waiting:
            # A dirty cohort joins a batch of its statement starting now, even before its
            # own turn: it costs a parameter set, not a statement.
            joined = together.get(cohort.compiled.key) if cohort.compiled is not None else None
            if joined is not None:
                joined.append(cohort)
            else:
                wait = due - now if wait is None else min(wait, due - now)
        size = max(settings.batch_size, 1)
        for cohorts in together.values():
            for start in range(0, len(cohorts), size):
                batch = cohorts[start : start + size]
                self._launch(batch, now, self._run_batch(batch))
        return wait

    def _launch(self, cohorts: list[Cohort], now: float, run: Any) -> None:
        for cohort in cohorts:
            self._dirty.discard(cohort)
            cohort.dirty = cohort.urgent = False
            cohort.running = True
            cohort.last_started = now
        task = asyncio.create_task(run, name="live-run")
        self._tasks.add(task)
        task.add_done_callback(self._run_done)

    def _run_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("live queries: a run failed", exc_info=task.exception())

    async def _run(self, cohort: Cohort) -> None:
        try:
            # Each run has a response budget of its own (no HTTP request opened one).
            async with self._slots:
                with budget_scope(self.engine.config.max_response_nodes, inherit=False):
                    event = await self._execute(cohort)
        finally:
            cohort.running = False
        self._finish(cohort, event)

    async def _run_batch(self, cohorts: list[Cohort]) -> None:
        try:
            async with self._slots:
                events = await self._execute_batch(cohorts)
        finally:
            for cohort in cohorts:
                cohort.running = False
        for cohort, event in zip(cohorts, events, strict=True):
            self._finish(cohort, event)

    def _finish(self, cohort: Cohort, event: LiveEvent) -> None:
        """Hand a run's event to the cohort's subscribers."""
        self.executions += 1
        cohort.executions += 1
        if cohort.closed:
            return
        left = cohort.deliver(event)
        if left:
            # A stream batch: its subscribers continue at the new cursor once sent.
            self._drop(cohort)
        if cohort.dirty:
            self._wake.set()

    async def _execute_batch(self, cohorts: list[Cohort]) -> list[LiveEvent]:
        """Run cohorts sharing a compiled statement in one SQL statement; an event each."""
        compiled = cohorts[0].compiled
        assert compiled is not None
        batch = compiled.batch(self.engine.dialect)
        path = cohorts[0].info.path.as_list()
        limit = self.engine.config.max_response_nodes
        try:
            values = batch.values([cohort.parameters or [] for cohort in cohorts])
            async with self.database.read() as conn:
                answers = dict((await conn.execute(batch.statement, values)).all())
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # One cohort's parameters (or the database) failed the batch: run each alone,
            # so the error reaches only the subscriptions it concerns.
            log.info(
                "live queries: a batch of %d failed (%s); running each alone",
                len(cohorts),
                type(error).__name__,
            )
            return [await self._execute(cohort) for cohort in cohorts]
        self.batches += 1
        events: list[LiveEvent] = []
        for number, cohort in enumerate(cohorts):
            text = answers.get(number)
            try:
                compiled.check(text)
                if limit is not None:  # each run has a response budget of its own
                    compiled.charge(ResponseBudget(limit), text)
            except EngineError as error:
                events.append(_error_event(cohort.info, error))
                continue
            events.append(LiveEvent.of_json(text, path))
        return events

    async def _execute(self, cohort: Cohort) -> LiveEvent:
        info = cohort.info
        path = info.path.as_list()
        field_def = info.parent_type.fields[info.field_name]
        try:
            if cohort.stream:
                table = self.engine.catalog.tables[field_def.extensions["table"]]
                batch = await fetch_stream_batch(table, cohort.root, info, cohort.args)
                event = LiveEvent.of_value(Completed(batch.rows), path)
                event.rows = len(batch.rows)
                event.next_cursor = batch.cursor
                return event
            value = field_def.resolve(cohort.root, info, **cohort.args)
            if info.is_awaitable(value):
                value = await value
            return LiveEvent.of_value(value, path)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if not isinstance(error, EngineError | GraphQLError):
                # Logged once for the cohort, answered as Hasura's "unexpected" to each.
                log.exception("live queries: a subscription failed to run")
                error = EngineError(UNEXPECTED, "unexpected error while executing the request")
            return _error_event(info, error)

    async def _poll(self) -> None:
        """The safety poll, and polling while the change source is down."""
        settings = self.settings
        while True:
            healthy = self.source is not None and self.source.healthy
            interval = settings.safety_poll_interval if healthy else settings.degraded_poll_interval
            await asyncio.sleep(min(interval / 4, 1.0) if interval > 0 else 1.0)
            now = time.monotonic()
            for cohort in list(self._cohorts.values()):
                if not cohort.subscribers:
                    self._drop(cohort)  # its subscribers were abandoned, not closed
                elif interval > 0 and now - cohort.last_started >= interval:
                    self._mark_dirty(cohort, now)


def _error_event(info: GraphQLResolveInfo, error: Exception) -> LiveEvent:
    """The event answering `error` for the root field of `info`."""
    located = located_error(error, info.field_nodes, info.path.as_list())
    return LiveEvent.of_error(error, {"errors": format_errors([located])})


def _collect_session_variables(value: Any, found: set[str]) -> None:
    if isinstance(value, SessionVariable):
        found.add(value.name)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect_session_variables(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_session_variables(item, found)


def _detached_info(info: GraphQLResolveInfo, context: RequestContext) -> GraphQLResolveInfo:
    """`info` for a cohort's runs: its own context, nothing of the first subscriber's
    connection or executor kept alive."""
    return GraphQLResolveInfo(
        info.field_name,
        info.field_nodes,
        info.return_type,
        info.parent_type,
        info.path,
        info.schema,
        info.fragments,
        None,
        info.operation,
        info.variable_values,
        context,
        _is_awaitable,
        None,
        None,  # type: ignore[arg-type]
    )


def _is_awaitable(value: Any) -> bool:
    return asyncio.iscoroutine(value) or isinstance(value, asyncio.Future)
