"""A FastAPI application with the event detector mounted next to its own routes.

    pip install 'event-detector[service]' fastapi
    uvicorn --app-dir examples/embed --factory app:create_shop

The shop keeps its own routes (`/`, `/orders/{order_id}`); under `/observability/` the
event detector serves its web client, GraphiQL and the GraphQL API at
`/observability/v1/graphql` (HTTP and both WebSocket protocols), the webhook at
`/observability/hooks/<function>` and `/observability/metrics`. Its settings are an
object: no environment variable is needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from detector.observability.migrate import upgrade_async
from service.app import create_app
from service.settings import Settings

EXAMPLE_EVENTS = Path(__file__).resolve().parents[1] / "events"


def create_shop(settings: Settings | None = None) -> FastAPI:
    """The shop's application, with the event detector under `/observability`."""
    settings = settings or Settings(
        database_url="sqlite:///shop-observability.db",
        events_dir=EXAMPLE_EVENTS,  # the webhook runs these event modules
        webhook_functions="orders,payments,users",  # for /observability/hooks/<function>
        rollup_interval=60,
    )
    observability = create_app(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Create or upgrade the schema, as `event-detector serve` does at start.
        await upgrade_async(settings.database_url)
        # Run the mounted app's lifespan with the shop's: its background work (live
        # queries, rollup) starts now and stops, flushing what the webhook recorded, when
        # the shop stops. Left out, it would start on the first request instead.
        async with observability.router.lifespan_context(observability):
            yield

    shop = FastAPI(title="Shop", lifespan=lifespan)

    @shop.get("/")
    async def home() -> dict[str, str]:
        return {"shop": "open", "observability": "/observability/"}

    @shop.get("/orders/{order_id}")
    async def order(order_id: str) -> dict[str, str]:
        return {"id": order_id, "status": "shipped"}

    shop.mount("/observability", observability)
    return shop
