"""An order left the warehouse: `status` went `packed` → `shipped`."""

from __future__ import annotations

from detector import HasuraEvent, job, run

from ._helpers import call_service, call_service_blocking, follow_up_update, status_changed

tables = ["orders"]
operations = ["UPDATE"]


def detector(event_name: str, event: HasuraEvent) -> bool:
    return status_changed(event, "shipped", source="packed")


async def send_shipping_email(event_name: str, event: HasuraEvent, options: dict) -> dict:
    order = event.new
    options["logger"].info(
        "shipping email for order %s, tracking %s", order["id"], order.get("tracking_number")
    )
    return await call_service("mailer")


def update_ledger(event_name: str, event: HasuraEvent, options: dict) -> dict:
    print(f"ledger: order {event.new['id']} shipped, revenue recognised")
    return call_service_blocking("ledger")


async def mark_fulfilled(event_name: str, event: HasuraEvent, options: dict) -> dict:
    """Writes `fulfillment_status` into the order row, stamped with this job's tracking token.

    The row change fires Hasura again (`orders.fulfilled` detects it): the returned
    `cascade_payload` is that follow-up event, for demos and tests to deliver.
    """
    changes = {"fulfillment_status": "fulfilled"}
    options["logger"].info("order %s marked fulfilled", event.new["id"])
    await call_service("database", 0.01)
    return {
        "table": "orders",
        "id": event.new["id"],
        "changes": changes,
        "updated_by": options["tracking_token"],
        "cascade_payload": follow_up_update(event, changes, options),
    }


async def handler(event_name: str, event: HasuraEvent) -> list:
    return await run(
        event_name,
        event,
        [job(send_shipping_email), job(update_ledger), job(mark_fulfilled)],
    )
