"""Hosts and deliveries for the reliability tests and the soak benchmark (`bench/soak.py`).

- `Host`: a thread calling the real `listen_to_sync` in a loop (a detector that fires, jobs
  that each log one line), every result kept in a `Ledger` for the conservation check;
- `order(n)`: a Hasura payload for it; `example(name)`: an example payload with a fresh id;
- `deliver(base_url, payloads)`: concurrent webhook deliveries;
- `through(proxy, url)`: a database URL routed through a `FaultProxy`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from detector import EventModule, Plugin, job, listen_to_sync
from detector import run as run_jobs
from tests.support.conservation import Ledger
from tests.support.library import hasura_payload
from tests.support.proxy import FaultProxy
from tests.support.runtime import EXAMPLES_EVENTS

EXAMPLE_PAYLOADS = EXAMPLES_EVENTS.parent / "payloads"
# Example deliveries whose jobs all finish within a second.
DELIVERIES = [
    "orders.created.insert.json",
    "orders.shipped.update.json",
    "orders.cancelled.update.json",
    "users.signed_up.insert.json",
    "payments.failed.update.json",
]


def example(name: str) -> dict[str, Any]:
    """An example payload (`examples/payloads/<name>`) with a fresh Hasura event id."""
    payload = json.loads((EXAMPLE_PAYLOADS / name).read_text())
    payload["id"] = str(uuid.uuid4())
    return payload


def order(n: int, **new: Any) -> dict[str, Any]:
    """A Hasura payload: order `n` went from packed to shipped."""
    return hasura_payload(
        old={"id": n, "status": "packed"}, new={"id": n, "status": "shipped", **new}
    )


def through(proxy: FaultProxy, url: str) -> str:
    """`url` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    if parts.password:
        user = f"{parts.username}:{parts.password}@"
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))


async def _work(event_name: str, event: Any, options: dict[str, Any]) -> dict[str, Any]:
    options["logger"].info("working on %s", event.new["id"])
    await asyncio.sleep(options.get("sleep", 0))
    return {"done": event.new["id"], "card_number": "4111 1111 1111 1111"}


def modules(jobs: int = 2, sleep: float = 0.0) -> list[EventModule]:
    """One event module that always fires and runs `jobs` jobs (each logs one line and
    sleeps `sleep` seconds)."""

    async def detector(event_name: str, event: Any) -> bool:
        return True

    async def handler(event_name: str, event: Any) -> Any:
        return await run_jobs(
            event_name, event, [job(_work, name=f"job{n}", sleep=sleep) for n in range(jobs)]
        )

    return [EventModule("orders.shipped", detector, handler)]


class Host(threading.Thread):
    """A host calling `listen_to_sync` in a loop (at most `rate` invocations a second)
    until stopped; every result goes into `ledger`, every exception into `errors`, every
    invocation's wall time into `durations` (with its start, `started_at`)."""

    def __init__(self, plugin: Plugin, rate: float = 50.0) -> None:
        super().__init__(name="host", daemon=True)
        self.plugin = plugin
        self.rate = rate
        self.ledger = Ledger()
        self.errors: list[BaseException] = []
        self.durations: list[float] = []
        self.started_at: list[float] = []
        self._stop_event = threading.Event()
        self._modules = modules()

    def run(self) -> None:
        n = 0
        while not self._stop_event.is_set():
            n += 1
            started = time.perf_counter()
            try:
                result = listen_to_sync(order(n), modules=self._modules, plugins=[self.plugin])
            except BaseException as exc:
                self.errors.append(exc)
                continue
            self.started_at.append(time.monotonic())
            self.durations.append(time.perf_counter() - started)
            self.ledger.add_result(result, lines_per_job=1)
            self._stop_event.wait(max(0.0, 1 / self.rate - (time.perf_counter() - started)))

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(30)


def deliver(
    base_url: str, payloads: list[dict[str, Any]], headers: dict[str, str], function: str
) -> list[httpx.Response]:
    """POST `payloads` to `/hooks/<function>` concurrently; the answers, in order."""

    async def deliver_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            return await asyncio.gather(
                *(client.post(f"/hooks/{function}", json=p, headers=headers) for p in payloads)
            )

    return asyncio.run(deliver_all())
