"""A user changed their email address."""

from __future__ import annotations

import sys

from detector import HasuraEvent, column_has_changed, job, run

from ._helpers import call_service

tables = ["users"]
operations = ["UPDATE"]


def detector(event_name: str, event: HasuraEvent) -> bool:
    return column_has_changed("email", event)


async def send_verification_email(event_name: str, event: HasuraEvent, options: dict) -> dict:
    options["logger"].info("verification link sent to %s", event.new["email"])
    return await call_service("mailer")


def notify_old_address(event_name: str, event: HasuraEvent, options: dict) -> dict:
    print(f"security notice sent to previous address {event.old['email']}", file=sys.stderr)
    return {"notified": event.old["email"]}


async def sync_crm(event_name: str, event: HasuraEvent, options: dict) -> dict:
    return await call_service("crm")


async def handler(event_name: str, event: HasuraEvent) -> list:
    return await run(
        event_name,
        event,
        [
            job(send_verification_email),
            job(notify_old_address),
            job(sync_crm, name="sync_crm_contact"),
        ],
    )
