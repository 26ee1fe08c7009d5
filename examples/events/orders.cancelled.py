"""An order was cancelled (from any status but `cancelled`)."""

from __future__ import annotations

import sys

from detector import HasuraEvent, job, run

from ._helpers import call_service, money, status_changed

# What this module listens to: other tables and operations skip it (its detector never runs).
tables = ["orders"]
operations = ["UPDATE"]


def detector(event_name: str, event: HasuraEvent) -> bool:
    return status_changed(event, "cancelled")


async def refund_payment(event_name: str, event: HasuraEvent, options: dict) -> dict:
    """The payment gateway times out on the first attempt; the retry goes through."""
    amount = money(event.new["total_cents"])
    if options["attempt"] == 1:
        options["logger"].warning("gateway timeout refunding %s, will retry", amount)
        raise ConnectionError("payment gateway timed out")
    options["logger"].info("refunded %s on attempt %d", amount, options["attempt"])
    return {"refunded_cents": event.new["total_cents"], **await call_service("payments")}


def restock_items(event_name: str, event: HasuraEvent, options: dict) -> dict:
    items = event.new.get("items", [])
    if not items:
        print("nothing to restock: the order has no items", file=sys.stderr)
    return {"restocked": sum(item["quantity"] for item in items)}


async def send_cancellation_email(event_name: str, event: HasuraEvent, options: dict) -> dict:
    reason = event.new.get("cancel_reason") or "no reason given"
    options["logger"].info("cancellation email (%s)", reason)
    return await call_service("mailer")


async def handler(event_name: str, event: HasuraEvent) -> list:
    return await run(
        event_name,
        event,
        [
            job(refund_payment, retries=2, backoff=0.05),
            job(restock_items),
            job(send_cancellation_email),
        ],
    )
