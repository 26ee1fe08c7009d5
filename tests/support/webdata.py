"""Data for the web client's browser tests, written by the real library and plugin.

`build_dataset(url)` runs the demo (the example event modules over the last 48 hours:
cascades, failures, timeouts, rejected payloads) and one invocation shaped for the
detail page: 50 event modules (3 detected, one detector raising), jobs that log at every
level, a failing job, a retried job, and a payload of tens of KB with a searchable token.
Expected numbers are always read back from the database (`tests.support.runtime`), never
taken from here.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from detector import EventModule, ListenResult, job, listen_to_sync, run
from detector.observability import ObservabilityPlugin
from service.operations.demo import populate_demo
from tests.support import runtime

BIG_EVENTS = 50
BIG_DETECTED = ("shipments.dispatched", "shipments.delayed", "shipments.audited")
BIG_RAISING = "shipments.broken_detector"


@dataclass(frozen=True)
class WebDataset:
    """What was written: the detail-page invocation, its search token and row id, and the
    end of the 24-hour window the tests look at (everything written is before it)."""

    url: str
    big_invocation_id: str
    needle: str
    row_id: str
    window_end: datetime

    @property
    def window_start(self) -> datetime:
        return self.window_end - timedelta(hours=24)

    def range_query(self) -> str:
        """The web client's URL parameters for the window."""
        start = self.window_start.isoformat().replace("+00:00", "Z")
        end = self.window_end.isoformat().replace("+00:00", "Z")
        return f"range=custom&from={start}&to={end}"


def percentile_cont(values: list[float], p: float) -> float | None:
    """PostgreSQL's percentile_cont over `values`."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * p
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def plugin_for(url: str) -> ObservabilityPlugin:
    return ObservabilityPlugin(
        url,
        environ={},
        flush_interval=0.1,
        handle_sigterm=False,
        auto_migrate=False,
        instance_report_interval=3600.0,
    )


def shipment_payload(row_id: str, needle: str) -> dict[str, Any]:
    """An UPDATE of a wide shipments row: 4 of its 24 columns change; ~45 KB of payload."""
    old = {f"attribute_{i:02d}": f"value {i}" for i in range(18)}
    old.update(
        id=row_id,
        status="packed",
        carrier="dhl",
        weight_grams=1200,
        notes=f"fragile; {needle}; " + "handle with care. " * 1200,
        updated_by="warehouse-7",
    )
    new = {**old, "status": "dispatched", "carrier": "ups", "weight_grams": 1250}
    new["updated_by"] = "dispatcher-2"
    return {
        "id": str(uuid.uuid4()),
        "created_at": datetime.now(UTC).replace(tzinfo=None).isoformat(),
        "trigger": {"name": "shipments_events"},
        "table": {"schema": "public", "name": "shipments"},
        "delivery_info": {"current_retry": 0, "max_retries": 3},
        "event": {
            "op": "UPDATE",
            "data": {"old": old, "new": new},
            "session_variables": {
                "x-hasura-role": "user",
                "x-hasura-user-email": "dispatch@example.com",
            },
        },
    }


def shipment_modules() -> list[EventModule]:
    """50 event modules: three detect the change, one detector raises, the rest say no."""
    log = logging.getLogger("tests.shipments")

    async def book_carrier(event_name: str, event: Any, options: dict[str, Any]) -> dict[str, Any]:
        options["logger"].debug("choosing a carrier slot")
        options["logger"].info("booking %s for %s", event.new["carrier"], event.new["id"])
        await asyncio.sleep(0.03)
        options["logger"].warning("carrier slot moved by 10 minutes")
        return {"booking": f"BK-{event.new['id']}", "slots": list(range(20))}

    async def update_ledger(event_name: str, event: Any, options: dict[str, Any]) -> None:
        await asyncio.sleep(0.02)
        options["logger"].error("ledger rejected the entry for %s", event.new["id"])
        raise RuntimeError("ledger unavailable")

    attempts = {"count": 0}

    async def notify_customer(
        event_name: str, event: Any, options: dict[str, Any]
    ) -> dict[str, Any]:
        attempts["count"] += 1
        await asyncio.sleep(0.01)
        if attempts["count"] == 1:
            raise ConnectionError("mail relay refused the connection")
        print("notified the customer")
        return {"sent": True}

    def handler_for(jobs: list[Any]) -> Any:
        async def handler(event_name: str, event: Any) -> Any:
            log.info("handling %s", event_name)
            return await run(event_name, event, jobs)

        return handler

    handlers = {
        BIG_DETECTED[0]: handler_for([job(book_carrier), job(update_ledger)]),
        BIG_DETECTED[1]: handler_for([job(notify_customer, retries=1, backoff=0.01)]),
        BIG_DETECTED[2]: handler_for([]),
    }

    def detector_for(name: str) -> Any:
        def detector(event_name: str, event: Any) -> bool:
            if name == BIG_RAISING:
                raise KeyError("promised_at")
            return name in BIG_DETECTED

        return detector

    names = [*BIG_DETECTED, BIG_RAISING]
    names += [f"shipments.rule_{i:02d}" for i in range(BIG_EVENTS - len(names))]
    return [
        EventModule(name, detector_for(name), handlers.get(name, handler_for([]))) for name in names
    ]


def build_dataset(url: str, *, demo_invocations: int = 160) -> WebDataset:
    """Fill `url` (already migrated or not) with the demo and the detail-page invocation."""
    populate_demo(url, seed=7, invocations=demo_invocations, hours=48.0)
    needle = f"needle-{uuid.uuid4().hex[:10]}"
    row_id = f"shp_{uuid.uuid4().hex[:8]}"
    plugin = plugin_for(url)
    try:
        result = listen_to_sync(
            shipment_payload(row_id, needle),
            modules=shipment_modules(),
            plugins=[plugin],
            source_function="shipments_events",
        )
    finally:
        plugin.shutdown_sync(30.0)
    window_end = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    return WebDataset(
        url=url,
        big_invocation_id=result.invocation_id,
        needle=needle,
        row_id=row_id,
        window_end=window_end,
    )


# Playwright's sync API runs an event loop in the test's thread: database reads and the
# library's own loop run on a helper thread.
def off_loop(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` on a helper thread (no event loop running there)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args, **kwargs).result()


def rows(url: str, statement: Any) -> list[dict[str, Any]]:
    """`runtime.rows` from a browser test."""
    return off_loop(runtime.rows, url, statement)


def count(url: str, table: Any, *where: Any) -> int:
    """`runtime.count` from a browser test."""
    return off_loop(runtime.count, url, table, *where)


def execute(url: str, statement: Any) -> None:
    """`runtime.execute` from a browser test."""
    off_loop(runtime.execute, url, statement)


def record_shipment(url: str, row_id: str, source_function: str) -> ListenResult:
    """One more invocation through the real library and plugin (three event modules),
    flushed before this returns."""
    plugin = plugin_for(url)
    try:
        return off_loop(
            listen_to_sync,
            shipment_payload(row_id, f"token-{row_id}"),
            modules=shipment_modules()[:3],
            plugins=[plugin],
            source_function=source_function,
        )
    finally:
        plugin.shutdown_sync(30.0)


def invocation_row(
    at: datetime, source_function: str, *, status: str = "completed", **columns: Any
) -> dict[str, Any]:
    """An `invocations` row as the plugin writes it, started `at`, with a fresh id."""
    invocation_id = str(uuid.uuid4())
    return {
        "id": invocation_id,
        "created_at": at,
        "updated_at": at,
        "correlation_id": f"{source_function}-{invocation_id[:8]}",
        "source_function": source_function,
        "status": status,
        **columns,
    }
