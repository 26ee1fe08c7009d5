"""An order was marked fulfilled (usually by `orders.shipped`'s `mark_fulfilled` job)."""

from __future__ import annotations

from detector import HasuraEvent, column_has_changed, job, run

from ._helpers import call_service

tables = ["orders"]
operations = ["UPDATE"]


def detector(event_name: str, event: HasuraEvent) -> bool:
    return (
        column_has_changed("fulfillment_status", event)
        and event.new is not None
        and event.new["fulfillment_status"] == "fulfilled"
    )


async def request_review(event_name: str, event: HasuraEvent, options: dict) -> dict:
    options["logger"].info("review request scheduled for %s", event.new["customer_email"])
    return await call_service("reviews")


async def handler(event_name: str, event: HasuraEvent) -> list:
    return await run(event_name, event, [job(request_review, delay_days=7)])
