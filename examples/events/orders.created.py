"""A new order was placed (INSERT into `orders`, or a manual re-run of the trigger)."""

from __future__ import annotations

import logging

from detector import HasuraEvent, job, run

from ._helpers import call_service, call_service_blocking, money

log = logging.getLogger("examples.orders")

# Only inserts into `public.orders` (and manual runs of its trigger) reach the detector.
tables = ["orders"]
operations = ["INSERT", "MANUAL"]


def detector(event_name: str, event: HasuraEvent) -> bool:
    return event.new is not None  # every new order row (the declaration did the rest)


async def send_confirmation_email(event_name: str, event: HasuraEvent, options: dict) -> dict:
    order = event.new
    options["logger"].info(
        "confirmation for order %s (%s) to %s",
        order["id"],
        money(order["total_cents"]),
        order["customer_email"],
    )
    receipt = await call_service("mailer")
    return {"template": options["template"], **receipt}


def reserve_inventory(event_name: str, event: HasuraEvent, options: dict) -> dict:
    items = event.new.get("items", [])
    for item in items:
        print(f"reserving {item['quantity']} x {item['sku']}")
    call_service_blocking("inventory")
    return {"reserved": sum(item["quantity"] for item in items)}


async def notify_warehouse(event_name: str, event: HasuraEvent, options: dict) -> dict:
    # `extra` fields arrive in the captured line's `data`.
    options["logger"].info(
        "warehouse notified", extra={"order_id": event.new["id"], "warehouse": "north"}
    )
    if event.op == "MANUAL":
        log.warning("order %s re-sent to the warehouse by hand", event.new["id"])
    return await call_service("warehouse")


async def handler(event_name: str, event: HasuraEvent) -> list:
    return await run(
        event_name,
        event,
        [
            job(send_confirmation_email, template="order-confirmation"),
            job(reserve_inventory, timeout=2),
            job(notify_warehouse),
        ],
    )
