"""A detector run in its own OS process, recording into a database: "another function".

    python -m tests.support.detector_process <database_url> <source_function> [invocations]

Runs `invocations` (default 1) Hasura deliveries through `listen_to_sync` with one event
module (always detected, one job logging a line) and an `ObservabilityPlugin` writing
straight to `database_url` (serverless mode: each invocation is flushed before the next),
then shuts the plugin down. It prints the invocation ids, one per line. Tests use it to
prove that writes made outside the service reach its subscribers.
"""

from __future__ import annotations

import logging
import sys

from detector import EventModule, job, listen_to_sync, run
from detector.observability import ObservabilityPlugin


async def _ship(event_name: str, event: object, options: dict[str, object]) -> dict[str, bool]:
    logging.getLogger("orders").info("shipping")
    return {"shipped": True}


def _detect(event_name: str, event: object) -> bool:
    return True


async def _handle(event_name: str, event: object) -> object:
    return await run(event_name, event, [job(_ship, name="ship")])


def payload(number: int) -> dict[str, object]:
    return {
        "id": f"evt-{number}",
        "created_at": "2026-11-24T10:15:30.123456",
        "trigger": {"name": "orders_changed"},
        "table": {"schema": "public", "name": "orders"},
        "delivery_info": {"current_retry": 0, "max_retries": 3},
        "event": {
            "op": "UPDATE",
            "session_variables": {"x-hasura-role": "admin"},
            "data": {
                "old": {"id": number, "status": "packed"},
                "new": {"id": number, "status": "shipped"},
            },
        },
    }


def main(argv: list[str]) -> int:
    url, function = argv[0], argv[1]
    count = int(argv[2]) if len(argv) > 2 else 1
    plugin = ObservabilityPlugin(
        database_url=url, serverless=True, handle_sigterm=False, instance_report_interval=3600
    )
    module = EventModule("orders.shipped", _detect, _handle)
    try:
        for number in range(count):
            result = listen_to_sync(
                payload(number), modules=[module], plugins=[plugin], source_function=function
            )
            print(result.invocation_id, flush=True)
    finally:
        plugin.shutdown_sync()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
