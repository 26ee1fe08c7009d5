"""Demo data: the example event modules run for real, spread over the last 48 hours.

`populate_demo(database_url)` builds a deterministic stream of Hasura deliveries (given
`seed`): orders created, shipped (whose `mark_fulfilled` job cascades into an
`orders.fulfilled` invocation through its tracking token), cancelled (a refund that
succeeds on retry), failed payments (a failing job, a job that needs three attempts, a job
cut by its timeout), users signing up and changing email, deletes nothing listens to,
Hasura redeliveries (`current_retry` > 0), invocations cut by their deadline, and a few
payloads that are not Hasura events (`rejected`). Each delivery runs through the real
`listen_to` with the real `ObservabilityPlugin` writing to `database_url`.

Everything runs now, concurrently, in a few seconds; then every row of the demo is
back-dated so the invocations spread over the last `hours` hours (the rows' `updated_at`
keep the real time they were written). Finally the rollup refreshes `metrics_hourly` and
`dashboard_stats`, so the dashboard has data at once. The default 48 hours cover the
console's default period (24 h) and the period it is compared with (the 24 h before), so
the comparison stays meaningful while the demo ages.

The invocations are the planned deliveries (root deliveries plus Hasura redeliveries of
some of them) and the cascades the jobs' row changes trigger while they run.

Demo invocations carry `{"event_detector_demo": {"seed": …}}` in their context, so a
new run first removes the previous demo (and only it): re-running never duplicates it,
and the window always ends now. The same seed gives the same deliveries, invocation
ids, correlation ids, times and outcomes (job execution ids and measured durations are
real, so they differ).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from detector import InvalidEventPayload, ListenResult, listen_to
from detector._sync import run_coroutine_sync
from detector.observability import ObservabilityPlugin
from detector.observability.migrate import upgrade_async
from detector.observability.rollup import rollup
from service import assets
from service.storage.maintenance import (
    dialect_of,
    event_executions,
    invocations,
    job_executions,
    job_logs,
    metrics_hourly,
    open_engine,
)

# The example event modules: the checkout's, or the copy installed with the package.
EXAMPLE_EVENTS_DIR = assets.default_path("examples/events")
DEMO_MARKER = "event_detector_demo"
DEFAULT_SEED = 7
DEFAULT_INVOCATIONS = 320
DEFAULT_HOURS = 48.0

ProgressCallback = Callable[[int, int], None]
T = TypeVar("T")

_FIRST = ["maria", "jonas", "aiko", "sam", "lea", "omar", "ines", "piotr", "nora", "tariq"]
_LAST = ["lopez", "berg", "tanaka", "okafor", "moreau", "haddad", "silva", "novak", "kim"]
_SKUS = ["MUG-BLUE-350", "TEA-EARLGREY-100G", "KETTLE-STEEL-1L", "CUP-SET-4", "FILTER-100"]
_CANCEL_REASONS = ["customer changed their mind", "found it cheaper", None, "ordered twice"]
_FAILURE_CODES = ["insufficient_funds", "card_expired", "do_not_honor", "processing_error"]

# (scenario, weight): how often each kind of delivery appears.
_SCENARIOS: tuple[tuple[str, float], ...] = (
    ("order_created", 5.0),
    ("order_created_manual", 0.6),
    ("order_shipped", 4.0),
    ("order_cancelled", 1.6),
    ("payment_failed", 1.6),
    ("user_signed_up", 2.4),
    ("user_email_changed", 1.6),
    ("user_deleted", 1.0),
    ("payment_deadline", 0.4),
    ("not_a_hasura_event", 0.5),
)
REDELIVERY_RATE = 0.05


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What `populate_demo` did.

    `invocations` = `deliveries` (the planned Hasura deliveries, `redeliveries` among
    them) + `cascades` (invocations triggered by rows the jobs wrote).
    """

    seed: int
    invocations: int
    by_status: dict[str, int]
    jobs: int
    cascades: int
    redeliveries: int
    removed_previous: int
    seconds: float
    deliveries: int = 0
    hours: float = DEFAULT_HOURS


@dataclass(slots=True)
class _Delivery:
    """One planned Hasura delivery and the time it should appear at."""

    at: datetime
    scenario: str
    payload: Any
    invocation_id: str
    correlation_id: str | None
    context: dict[str, Any]
    time_budget_ms: float | None = None
    redelivery_id: str | None = None


def populate_demo(
    database_url: str,
    *,
    seed: int = DEFAULT_SEED,
    invocations: int = DEFAULT_INVOCATIONS,
    hours: float = DEFAULT_HOURS,
    now: datetime | None = None,
    events_dir: Path = EXAMPLE_EVENTS_DIR,
    concurrency: int = 48,
    progress: ProgressCallback | None = None,
) -> DemoSummary:
    """Fill `database_url` with demo invocations (see the module docstring); sync face.

    Migrates the database first, removes a previous demo, runs `invocations` root
    deliveries (plus their cascades and redeliveries), back-dates them over the last
    `hours` hours before `now` (default: the current time), and rolls up. `progress` is
    called with (done, total) after each delivery. Safe to call from a thread that runs
    an event loop (the work then runs on a helper thread). Raises ValueError for an
    unsupported URL and the driver's error when the database cannot be reached.
    """
    return run_coroutine_sync(
        lambda: populate_demo_async(
            database_url,
            seed=seed,
            invocations=invocations,
            hours=hours,
            now=now,
            events_dir=events_dir,
            concurrency=concurrency,
            progress=progress,
        ),
        thread_name="event-detector-demo",
    )


async def populate_demo_async(
    database_url: str,
    *,
    seed: int = DEFAULT_SEED,
    invocations: int = DEFAULT_INVOCATIONS,
    hours: float = DEFAULT_HOURS,
    now: datetime | None = None,
    events_dir: Path = EXAMPLE_EVENTS_DIR,
    concurrency: int = 48,
    progress: ProgressCallback | None = None,
) -> DemoSummary:
    """`populate_demo` for async callers."""
    started = time.perf_counter()
    if invocations < 1:
        raise ValueError("invocations must be at least 1")
    now = now or datetime.now(UTC)
    await upgrade_async(database_url)
    removed = await remove_demo(database_url)
    plan = _plan(random.Random(seed), seed, invocations, hours, now)
    total = len(plan)
    plugin = ObservabilityPlugin(
        database_url,
        environ={},
        flush_interval=0.25,
        auto_migrate=False,
        handle_sigterm=False,
        instance_report_interval=3600.0,
    )
    results: dict[str, ListenResult | None] = {}
    targets: dict[str, datetime] = {}
    done = 0
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def deliver(delivery: _Delivery) -> None:
        nonlocal done
        async with semaphore:
            await _deliver(delivery, plugin, events_dir, results, targets)
        done += 1
        if progress is not None:
            progress(done, total)

    try:
        await asyncio.gather(*(deliver(delivery) for delivery in plan))
    finally:
        await asyncio.to_thread(plugin.shutdown_sync, 30.0)
    await _backdate(database_url, targets)
    await rollup(database_url)
    statuses = Counter(
        result.status.value if result is not None else "rejected" for result in results.values()
    )
    return DemoSummary(
        seed=seed,
        invocations=len(results),
        by_status=dict(sorted(statuses.items())),
        jobs=sum(len(result.jobs) for result in results.values() if result is not None),
        cascades=_cascades(results, plan),
        redeliveries=sum(1 for d in plan if d.redelivery_id is not None),
        removed_previous=removed,
        seconds=round(time.perf_counter() - started, 2),
        deliveries=total,
        hours=hours,
    )


def _cascades(results: dict[str, ListenResult | None], plan: list[_Delivery]) -> int:
    # Children are discovered while running; `plan` only knows the roots.
    roots = {d.invocation_id for d in plan}
    return sum(1 for invocation_id in results if invocation_id not in roots)


async def _deliver(
    delivery: _Delivery,
    plugin: ObservabilityPlugin,
    events_dir: Path,
    results: dict[str, ListenResult | None],
    targets: dict[str, datetime],
) -> None:
    """Run one delivery, then the follow-up invocations its jobs' row changes trigger."""
    targets[delivery.invocation_id] = delivery.at
    try:
        result = await listen_to(
            delivery.payload,
            events_dir=events_dir,
            invocation_id=delivery.invocation_id,
            correlation_id=delivery.correlation_id,
            context=delivery.context,
            plugins=[plugin],
            time_budget_ms=delivery.time_budget_ms,
            safety_margin_ms=2000.0,
        )
    except InvalidEventPayload:
        results[delivery.invocation_id] = None
        return
    results[delivery.invocation_id] = result
    # A job that wrote a row returns the Hasura event that write fires (see the examples).
    for job in result.jobs:
        cascade = job.result.get("cascade_payload") if isinstance(job.result, dict) else None
        if not isinstance(cascade, dict) or not job.completed:
            continue
        child_id = _uuid(random.Random(f"{delivery.invocation_id}/{job.name}"))
        child_at = delivery.at + timedelta(seconds=1.5)
        cascade["created_at"] = child_at.replace(tzinfo=None).isoformat()
        child = _Delivery(
            at=child_at,
            scenario="cascade",
            payload=cascade,
            invocation_id=child_id,
            correlation_id=None,  # taken from the tracking token the job wrote
            context=delivery.context,
        )
        await _deliver(child, plugin, events_dir, results, targets)


# -- the plan: deterministic deliveries ------------------------------------------------


def _plan(
    rng: random.Random, seed: int, count: int, hours: float, now: datetime
) -> list[_Delivery]:
    names = [name for name, _ in _SCENARIOS]
    weights = [weight for _, weight in _SCENARIOS]
    plan: list[_Delivery] = []
    for _ in range(count):
        at = _moment(rng, hours, now)
        scenario = rng.choices(names, weights)[0]
        payload = _payload(rng, scenario, at)
        context: dict[str, Any] = {DEMO_MARKER: {"seed": seed}, "region": rng.choice(["eu", "us"])}
        if scenario == "user_signed_up":
            context["trial_plan"] = rng.choice(["pro", "team"])
        delivery = _Delivery(
            at=at,
            scenario=scenario,
            payload=payload,
            invocation_id=_uuid(rng),
            correlation_id=_uuid(rng),
            context=context,
            # 2150 ms with the 2000 ms safety margin: 150 ms, less than the slow jobs need.
            time_budget_ms=2150.0 if scenario == "payment_deadline" else None,
        )
        plan.append(delivery)
        if scenario != "not_a_hasura_event" and rng.random() < REDELIVERY_RATE:
            again = json.loads(json.dumps(payload))
            again["delivery_info"]["current_retry"] += 1
            plan.append(
                _Delivery(
                    at=at + timedelta(seconds=rng.uniform(10, 90)),
                    scenario=scenario,
                    payload=again,
                    invocation_id=_uuid(rng),
                    correlation_id=delivery.correlation_id,
                    context=context,
                    time_budget_ms=delivery.time_budget_ms,
                    redelivery_id=delivery.invocation_id,
                )
            )
    return plan


def _moment(rng: random.Random, hours: float, now: datetime) -> datetime:
    """A time in the last `hours`: busier in two daily waves and in the last few hours.

    The shape depends only on how long ago, never on the clock, so a seed gives the same
    plan (the same random draws) whenever it runs.
    """
    while True:
        if rng.random() < 0.25:
            ago = rng.uniform(0.0, min(hours, 3.0))
        else:
            ago = rng.uniform(0.0, hours)
        wave = 0.5 + 0.5 * math.sin(ago / 24 * 4 * math.pi)
        if rng.random() < 0.35 + 0.65 * wave:
            return now - timedelta(hours=ago)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _person(rng: random.Random) -> tuple[str, str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return _uuid(rng), f"{first}.{last}@example.com", f"{first.title()} {last.title()}"


def _order(rng: random.Random, status: str, at: datetime) -> dict[str, Any]:
    customer_id, email, _ = _person(rng)
    items = [
        {"sku": sku, "quantity": rng.randint(1, 3)} for sku in rng.sample(_SKUS, rng.randint(1, 3))
    ]
    return {
        "id": f"ord_{rng.randint(10000, 99999)}",
        "customer_id": customer_id,
        "customer_email": email,
        "status": status,
        "fulfillment_status": "unfulfilled",
        "total_cents": rng.randint(900, 40000),
        "currency": "EUR",
        "tracking_number": None,
        "cancel_reason": None,
        "items": items,
        "created_at": (at - timedelta(days=rng.randint(0, 3))).isoformat(),
        "updated_at": at.isoformat(),
        "updated_by": email,
    }


def _hasura(
    rng: random.Random,
    table: str,
    op: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    at: datetime,
    session: dict[str, str],
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "op": op,
        "data": {"old": old, "new": new},
        "session_variables": session,
    }
    if rng.random() < 0.5:  # Hasura EE tracing on for some triggers
        event["trace_context"] = {
            "trace_id": f"{rng.getrandbits(128):032x}",
            "span_id": f"{rng.getrandbits(64):016x}",
            "sampling_state": "1",
        }
    return {
        "id": _uuid(rng),
        "created_at": at.replace(tzinfo=None).isoformat(),
        "trigger": {"name": f"{table}_events"},
        "table": {"schema": "public", "name": table},
        "delivery_info": {"current_retry": 0, "max_retries": 3},
        "event": event,
    }


def _payload(rng: random.Random, scenario: str, at: datetime) -> Any:
    if scenario in ("order_created", "order_created_manual"):
        order = _order(rng, "pending", at)
        op = "INSERT" if scenario == "order_created" else "MANUAL"
        session = {
            "x-hasura-role": "user" if op == "INSERT" else "admin",
            "x-hasura-user-id": order["customer_id"],
            "x-hasura-user-email": order["customer_email"],
        }
        return _hasura(rng, "orders", op, None, order, at, session)
    if scenario == "order_shipped":
        old = _order(rng, "packed", at)
        new = {
            **old,
            "status": "shipped",
            "tracking_number": f"1Z{rng.getrandbits(48):012X}",
            "updated_by": f"warehouse-scanner-{rng.randint(1, 9):02d}",
        }
        return _hasura(rng, "orders", "UPDATE", old, new, at, {"x-hasura-role": "warehouse"})
    if scenario == "order_cancelled":
        old = _order(rng, rng.choice(["pending", "packed"]), at)
        new = {**old, "status": "cancelled", "cancel_reason": rng.choice(_CANCEL_REASONS)}
        if rng.random() < 0.3:
            new["items"] = []
        session = {"x-hasura-role": "user", "x-hasura-user-email": old["customer_email"]}
        return _hasura(rng, "orders", "UPDATE", old, new, at, session)
    if scenario in ("payment_failed", "payment_deadline"):
        old = {
            "id": f"pay_{rng.randint(10000, 99999)}",
            "order_id": f"ord_{rng.randint(10000, 99999)}",
            "amount_cents": rng.randint(900, 40000),
            "currency": "EUR",
            "status": "pending",
            "failure_code": None,
            "backup_card_last4": f"{rng.randint(0, 9999):04d}",
        }
        new = {**old, "status": "failed", "failure_code": rng.choice(_FAILURE_CODES)}
        session = {"x-hasura-role": "service", "x-correlation-id": f"checkout-{old['order_id']}"}
        return _hasura(rng, "payments", "UPDATE", old, new, at, session)
    if scenario in ("user_signed_up", "user_email_changed", "user_deleted"):
        user_id, email, display = _person(rng)
        row = {
            "id": user_id,
            "email": email,
            "display_name": display,
            "plan": rng.choice(["free", "pro"]),
            "created_at": at.isoformat(),
        }
        if scenario == "user_signed_up":
            return _hasura(rng, "users", "INSERT", None, row, at, {"x-hasura-role": "anonymous"})
        session = {"x-hasura-role": "user", "x-hasura-user-id": user_id}
        if scenario == "user_email_changed":
            new = {**row, "email": email.replace("@example.com", "@newmail.example")}
            return _hasura(rng, "users", "UPDATE", row, new, at, session)
        return _hasura(rng, "users", "DELETE", row, None, at, {"x-hasura-role": "admin"})
    # Not a Hasura event: shapes that reach webhooks by mistake.
    broken = _hasura(rng, "orders", "UPDATE", {"id": "ord_1"}, {"id": "ord_1"}, at, {})
    variant = rng.randrange(3)
    if variant == 0:
        del broken["event"]["op"]
    elif variant == 1:
        broken["event"]["data"]["new"] = "shipped"
    else:
        broken = {"type": "order.shipped", "order_id": f"ord_{rng.randint(10000, 99999)}"}
    return broken


# -- removing and back-dating rows -----------------------------------------------------


def _demo_filter(dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.func.jsonb_exists(invocations.c.context_data, DEMO_MARKER)
    return sa.func.json_extract(invocations.c.context_data, f"$.{DEMO_MARKER}").is_not(None)


async def remove_demo(database_url: str) -> int:
    """Delete every demo invocation (with its events, jobs and log lines); returns how many.

    The hourly rollup rows of the hours they were in are deleted too, so the next rollup
    recomputes those hours from what is left. Other invocations are never touched.
    """
    engine = open_engine(database_url)
    try:
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(invocations.c.id, invocations.c.created_at).where(
                        _demo_filter(dialect_of(database_url))
                    )
                )
            ).all()
            ids = [row.id for row in rows]
            hours = {row.created_at.replace(minute=0, second=0, microsecond=0) for row in rows}
            for chunk in _chunks(ids, 500):
                await conn.execute(sa.delete(job_logs).where(job_logs.c.invocation_id.in_(chunk)))
                await conn.execute(
                    sa.delete(job_executions).where(job_executions.c.invocation_id.in_(chunk))
                )
                await conn.execute(
                    sa.delete(event_executions).where(event_executions.c.invocation_id.in_(chunk))
                )
                await conn.execute(sa.delete(invocations).where(invocations.c.id.in_(chunk)))
            for chunk in _chunks(sorted(hours), 500):
                await conn.execute(
                    sa.delete(metrics_hourly).where(metrics_hourly.c.hour_bucket.in_(chunk))
                )
        return len(ids)
    finally:
        await engine.dispose()


# Columns that say when something happened (updated_at keeps the real write time).
_TIME_COLUMNS = {
    "invocations": ("created_at", "received_at"),
    "event_executions": ("created_at",),
    "job_executions": ("created_at", "started_at", "ended_at"),
    "job_logs": ("created_at",),
}


async def _backdate(database_url: str, targets: dict[str, datetime]) -> None:
    """Move each demo invocation's rows so that the invocation starts at its target time."""
    engine = open_engine(database_url)
    try:
        async with engine.begin() as conn:
            ids = list(targets)
            offsets: dict[str, timedelta] = {}
            for chunk in _chunks(ids, 500):
                for row in await conn.execute(
                    sa.select(invocations.c.id, invocations.c.created_at).where(
                        invocations.c.id.in_(chunk)
                    )
                ):
                    offsets[row.id] = targets[row.id] - row.created_at
            for table in (invocations, event_executions, job_executions, job_logs):
                columns = _TIME_COLUMNS[table.name]
                owner = table.c.id if table is invocations else table.c.invocation_id
                statement = (
                    sa.update(table)
                    .where(table.c.id == sa.bindparam("row_id"))
                    .values({name: sa.bindparam(f"new_{name}") for name in columns})
                )
                for chunk in _chunks(list(offsets), 500):
                    selected = await conn.execute(
                        sa.select(
                            table.c.id, owner.label("owner"), *(table.c[c] for c in columns)
                        ).where(owner.in_(chunk))
                    )
                    updates = []
                    for row in selected:
                        offset = offsets[row.owner]
                        values = {"row_id": row.id}
                        for name in columns:
                            moment = getattr(row, name)
                            values[f"new_{name}"] = None if moment is None else moment + offset
                        updates.append(values)
                    if updates:
                        await conn.execute(statement, updates)
    finally:
        await engine.dispose()


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
