"""A payment failed: `payments.status` became `failed`."""

from __future__ import annotations

import asyncio
import logging

from detector import HasuraEvent, job, run

from ._helpers import call_service, money, status_changed

log = logging.getLogger("examples.payments")


class CardDeclined(Exception):
    """The backup card was declined too."""


tables = ["payments"]
operations = ["UPDATE"]


def detector(event_name: str, event: HasuraEvent) -> bool:
    return status_changed(event, "failed")


async def notify_customer(event_name: str, event: HasuraEvent, options: dict) -> dict:
    payment = event.new
    options["logger"].info(
        "payment %s of %s failed: %s",
        payment["id"],
        money(payment["amount_cents"]),
        payment["failure_code"],
    )
    return await call_service("mailer")


def charge_backup_card(event_name: str, event: HasuraEvent, options: dict) -> dict:
    """Always declined in this example: shows a failing job next to succeeding ones."""
    log.error("backup card declined for payment %s", event.new["id"])
    raise CardDeclined(f"backup card ending {event.new.get('backup_card_last4', '0000')} declined")


async def retry_gateway(event_name: str, event: HasuraEvent, options: dict) -> dict:
    """Fails twice, then succeeds: three attempts with `retries=2`."""
    if options["attempt"] < 3:
        raise ConnectionError(f"gateway unavailable (attempt {options['attempt']})")
    return {"captured_cents": event.new["amount_cents"], **await call_service("gateway")}


async def screen_for_fraud(event_name: str, event: HasuraEvent, options: dict) -> dict:
    """The fraud service is slow today: the job's timeout cancels it."""
    options["logger"].info("asking the fraud service about payment %s", event.new["id"])
    await asyncio.sleep(5)
    return {"score": 0.1}  # never reached: the timeout cancels the sleep


async def handler(event_name: str, event: HasuraEvent) -> list:
    return await run(
        event_name,
        event,
        [
            job(notify_customer),
            job(charge_backup_card),
            job(retry_gateway, retries=2, backoff=0.02),
            job(screen_for_fraud, timeout=0.2),
        ],
    )
