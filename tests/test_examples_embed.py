"""examples/embed/: the FastAPI shop that mounts the event detector, run on a real uvicorn."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from starlette.routing import Mount

from service.settings import Settings
from service.storage.maintenance import invocations
from tests.support.runtime import EXAMPLES_EVENTS, rows
from tests.support.server import serving_asgi

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "embed" / "app.py"
PAYLOAD = json.loads(
    (EXAMPLES_EVENTS.parent / "payloads" / "orders.created.insert.json").read_text()
)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("embed_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shop_serves_its_routes_and_the_event_detector_under_its_prefix(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"  # no schema yet: the shop's lifespan creates it
    settings = Settings(
        database_url=url,
        events_dir=EXAMPLES_EVENTS,
        webhook_functions="orders",
        rollup_interval=0,
    )
    shop = load_example().create_shop(settings)
    (mount,) = [route for route in shop.routes if isinstance(route, Mount)]
    assert mount.path == "/observability"
    service = mount.app
    with serving_asgi(shop, service) as server:
        assert service.state.lifecycle.running, "the shop's lifespan started it"
        assert server.client.get("/").json()["shop"] == "open"
        assert server.client.get("/orders/42").json() == {"id": "42", "status": "shipped"}
        count = "{ invocations_aggregate { aggregate { count } } }"
        answer = server.post(count, path="/observability/v1/graphql")
        assert answer == {"data": {"invocations_aggregate": {"aggregate": {"count": 0}}}}
        page = server.client.get("/observability/")
        assert page.status_code == 200 and '<base href="/observability/">' in page.text
        delivered = server.client.post("/observability/hooks/orders", json=PAYLOAD)
        assert delivered.status_code == 200, delivered.text
        invocation_id = delivered.json()["invocation_id"]
    # The shop stopped, and with it the service, writing what the webhook recorded.
    assert not service.state.lifecycle.running
    found = rows(url, sa.select(invocations.c.id))
    assert [str(row["id"]) for row in found] == [invocation_id]
