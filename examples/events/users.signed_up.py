"""A user signed up (INSERT into `users`)."""

from __future__ import annotations

from detector import HasuraEvent, job, run

from ._helpers import call_service, call_service_blocking

tables = ["users"]
operations = ["INSERT"]


def detector(event_name: str, event: HasuraEvent) -> bool:
    return event.new is not None  # every new user row (the declaration did the rest)


async def send_welcome_email(event_name: str, event: HasuraEvent, options: dict) -> dict:
    options["logger"].info("welcome email to %s", event.new["email"])
    return await call_service("mailer")


def create_crm_contact(event_name: str, event: HasuraEvent, options: dict) -> dict:
    """The slow one: a blocking CRM client (runs in a worker thread, never blocks the loop)."""
    print(f"creating CRM contact for {event.new['email']}...", end=" ")
    contact = call_service_blocking("crm", 0.3)
    print("done")
    return {"contact_id": contact["request_id"]}


async def grant_trial(event_name: str, event: HasuraEvent, options: dict) -> dict:
    plan = event.context.get("trial_plan", "pro")
    options["logger"].info("granting a %d-day %s trial", options["days"], plan)
    return {"plan": plan, "days": options["days"]}


async def handler(event_name: str, event: HasuraEvent) -> list:
    return await run(
        event_name,
        event,
        [job(send_welcome_email), job(create_crm_contact, timeout=5), job(grant_trial, days=14)],
    )
