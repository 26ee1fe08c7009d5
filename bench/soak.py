"""Soak: the store is down for minutes while the service and a host keep working.

The long version of `tests/test_reliability.py`'s 20-second outage. A TCP fault proxy
(`tests/support/proxy.py`) stands between PostgreSQL and everything that writes to it:
the service (uvicorn, in this process: the webhook and its observability plugin, GraphQL,
the background rollup) and a host thread calling `listen_to` with its own
`ObservabilityPlugin`. Phases: healthy, then the store down for the outage (minutes in
full mode), then back until every buffered record is written.

Measured: what the host and the webhook produced, the peak buffer during the outage,
how long the backlog took to drain once the store was back, the host's invocation time
before and during the outage, and the conservation check (`tests/support/conservation.py`):
every execution record produced is in the store, or counted as a designed drop.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from .report import Section, Target, percentile

TITLE = "Soak: the store down for minutes under load (conservation check)"
SECRET = "soak-secret"
HEADERS = {"x-event-detector-secret": SECRET}


class Watch(threading.Thread):
    """Samples plugins' buffers once a second: the peak depth and bytes."""

    def __init__(self, *plugins: Any) -> None:
        super().__init__(daemon=True)
        self.plugins = plugins
        self.peak_records = 0
        self.peak_bytes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(1.0):
            for plugin in self.plugins:
                stats = plugin.stats()
                self.peak_records = max(self.peak_records, stats["buffered_records"])
                self.peak_bytes = max(self.peak_bytes, stats["buffered_bytes"])

    def stop(self) -> None:
        self._stop_event.set()


def run(quick: bool) -> Section:
    from detector.observability import ObservabilityPlugin
    from service.settings import Settings
    from tests.support import db
    from tests.support.conservation import Ledger
    from tests.support.faults import DELIVERIES, Host, deliver, example, through
    from tests.support.pgserver import running_postgres
    from tests.support.proxy import FaultProxy
    from tests.support.runtime import EXAMPLES_EVENTS
    from tests.support.server import serving

    healthy, outage = (3.0, 8.0) if quick else (15.0, 120.0)
    host_rate, delivery_rate = 25.0, 4.0
    max_delay = 1.0 if quick else 5.0  # the retry backoff's ceiling, seconds
    retry = {
        "OBSERVABILITY_RETRY_INITIAL_DELAY": "0.2",
        "OBSERVABILITY_RETRY_MAX_DELAY": str(max_delay),
    }
    with running_postgres() as server, FaultProxy(("127.0.0.1", server.port)) as proxy:
        host_db = db.run(db.create_postgres_database(server.url()))
        service_db = db.run(db.create_postgres_database(server.url()))
        for url in (host_db, service_db):
            db.run(db.prepare_database(url))
        settings = Settings(
            database_url=through(proxy, service_db),
            events_dir=EXAMPLES_EVENTS,
            webhook_functions=["soak"],
            webhook_secret=SECRET,
            rollup_interval=10,
            observability_environ=retry,
        )
        plugin = ObservabilityPlugin(
            through(proxy, host_db),
            retry_initial_delay=0.2,
            retry_max_delay=max_delay,
            handle_sigterm=False,
        )
        host = Host(plugin, rate=host_rate)
        deliveries = Ledger()
        answers: dict[str, int] = {}
        with serving(settings) as service:
            webhook_plugin = service.app.state.runtime.observability
            watch = Watch(plugin, webhook_plugin)
            watch.start()
            host.start()
            phases: dict[str, float] = {"start": time.monotonic()}

            def feed(until: float) -> None:
                while time.monotonic() < until:
                    batch = [example(DELIVERIES[i % len(DELIVERIES)]) for i in range(4)]
                    for answer in deliver(service.base_url, batch, HEADERS, "soak"):
                        answers[str(answer.status_code)] = (
                            answers.get(str(answer.status_code), 0) + 1
                        )
                        if answer.status_code == 200:
                            deliveries.add_result(answer.json())
                    time.sleep(4 / delivery_rate)

            feed(time.monotonic() + healthy)
            proxy.down()
            phases["down"] = time.monotonic()
            feed(time.monotonic() + outage)
            proxy.up()
            phases["up"] = time.monotonic()
            # The host keeps going; the backlog is written once the next retry finds
            # the store (backoff: up to `max_delay` after it came back).
            while time.monotonic() - phases["up"] < 600 and (
                plugin.stats()["buffered_records"] > 200
                or webhook_plugin.stats()["buffered_records"] > 200
            ):
                time.sleep(0.1)
            phases["drained"] = time.monotonic()
            feed(time.monotonic() + (1 if quick else 5))
            host.stop()
            drained = plugin.force_flush(600) and webhook_plugin.force_flush(600)
            watch.stop()
            host_stats, service_stats = plugin.stats(), webhook_plugin.stats()
        plugin.shutdown_sync(10)
        host_report = host.ledger.check(through(proxy, host_db), host_stats)
        service_report = deliveries.check(through(proxy, service_db), service_stats)

    before = [d for t, d in zip(host.started_at, host.durations, strict=True) if t < phases["down"]]
    during = [
        d
        for t, d in zip(host.started_at, host.durations, strict=True)
        if phases["down"] <= t < phases["up"]
    ]
    problems = host_report.problems() + service_report.problems()
    drain = phases["drained"] - phases["up"]

    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:.1f}" if values else "-"

    body = "\n".join(
        [
            f"PostgreSQL behind a TCP fault proxy. {healthy:.0f} s healthy, then the store "
            f"down (connections refused and cut) for {outage:.0f} s, then back. Meanwhile a "
            f"host calls `listen_to` {host_rate:.0f} times/s (2 jobs that log each) with its "
            f"own plugin, and the service takes {delivery_rate:.0f} webhook deliveries/s "
            "(example payloads) and runs its rollup every 10 s. Plugins retry with backoff "
            f"(0.2 s doubling to {max_delay:.0f} s).",
            "",
            "| | host plugin | webhook plugin |",
            "|---|---|---|",
            f"| invocations produced | {len(host.ledger.invocations):,} | "
            f"{len(deliveries.invocations):,} |",
            f"| conservation | {host_report.summary()} | {service_report.summary()} |",
            f"| failed flushes (retries) | {host_stats['failed_flushes']:,} | "
            f"{service_stats['failed_flushes']:,} |",
            "",
            f"Webhook answers by status: {answers}. Host exceptions: {len(host.errors)}. "
            f"Peak buffer during the outage (either plugin): {watch.peak_records:,} records, "
            f"{watch.peak_bytes / 1e6:.1f} MB. Backlog written (both buffers back to their "
            f"steady level) {drain:.1f} s after the store came back. Host invocation time p50/p99: before the outage "
            f"{ms(before, 50)}/{ms(before, 99)} ms, during it {ms(during, 50)}/{ms(during, 99)} "
            f"ms (median of {statistics.median(host.durations) * 1000 if host.durations else 0:.1f} ms "
            "over the run).",
            "",
            "Problems found by the conservation check: " + ("; ".join(problems) or "none."),
        ]
    )
    targets = [
        Target(
            f"store down {outage:.0f} s: every execution record stored or counted",
            "0 lost beyond counted drops",
            f"{len(problems)} problems; dropped host {host_report.dropped or 0}, "
            f"webhook {service_report.dropped or 0}",
            not problems and drained,
        ),
        Target(
            "the host never sees an exception; deliveries answered",
            "0 exceptions, every delivery 200",
            f"{len(host.errors)} exceptions, answers {answers}",
            not host.errors and set(answers) == {"200"},
        ),
    ]
    return Section("soak", TITLE, body, targets)
