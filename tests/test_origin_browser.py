"""Pages of other origins in a real Chromium: a Hasura client works across origins (CORS),
and a page that tries to re-run recorded invocations behind its visitor's back changes
nothing.

The service and the other origin's page are two uvicorn servers on different ports (two
origins of one site, as a dashboard on `localhost:3000` next to the API would be).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from service.settings import Settings
from service.storage.maintenance import invocations
from tests.support.db import prepare_database, run
from tests.support.runtime import EXAMPLES_EVENTS, rows
from tests.support.server import RunningServer, serving, serving_asgi

pytestmark = pytest.mark.browser

SECRET = "cors-s3cret"
PAYLOAD = json.loads(
    (EXAMPLES_EVENTS.parent / "payloads" / "orders.created.insert.json").read_text()
)

# A dashboard on another origin, written as any Hasura client is: the admin secret in a
# header over HTTP, and in `connection_init` over graphql-transport-ws.
HASURA_CLIENT = """async ({ api, secret }) => {
  const results = (window.results = { frames: [] });
  const headers = { 'content-type': 'application/json', 'x-hasura-admin-secret': secret };
  const query = '{ invocations_aggregate { aggregate { count } } }';
  const answer = await fetch(api, { method: 'POST', headers, body: JSON.stringify({ query }) });
  results.query = await answer.json();
  const socket = new WebSocket(api.replace('http', 'ws'), 'graphql-transport-ws');
  socket.onopen = () => socket.send(JSON.stringify(
    { type: 'connection_init', payload: { headers: { 'x-hasura-admin-secret': secret } } }));
  socket.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === 'connection_ack') {
      socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: `subscription ${query}` } }));
    } else if (frame.type === 'next') {
      results.frames.push(frame.payload.data.invocations_aggregate.aggregate.count);
    }
  };
}"""

# A hostile page: every way a page can send the re-run (and a delivery) without asking.
CROSS_SITE_ATTEMPTS = """async ({ service, id }) => {
  const body = JSON.stringify({ invocation_ids: [id] });
  const outcomes = {};
  const simple = { method: 'POST', mode: 'no-cors' };
  await fetch(`${service}/v1/rerun`, { ...simple, headers: { 'content-type': 'text/plain' }, body });
  await fetch(`${service}/v1/rerun`, { ...simple, body: new Blob([body]) });  // no content type
  await fetch(`${service}/hooks/orders`, { ...simple, headers: { 'content-type': 'text/plain' }, body: JSON.stringify(window.payload) });
  // A preflighted JSON request: CORS allows every origin, so the answer is readable.
  const cors = await fetch(`${service}/v1/rerun`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  outcomes.cors = { status: cors.status, body: await cors.json() };
  // The classic form post, into a hidden frame.
  const sink = Object.assign(document.createElement('iframe'), { name: 'sink' });
  document.body.append(sink);
  const form = Object.assign(document.createElement('form'), {
    method: 'POST', action: `${service}/v1/rerun`, enctype: 'text/plain', target: 'sink' });
  const field = Object.assign(document.createElement('input'), {
    type: 'hidden', name: body.slice(0, -2) + ', "x": "', value: '"}' });
  form.append(field);
  document.body.append(form);
  await new Promise((resolve) => { sink.onload = resolve; form.submit(); });
  return outcomes;
}"""


def off_loop(function: Any, *args: Any) -> Any:
    # Playwright's sync API runs an event loop in this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


async def blank_page(request: Any) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html><head><title>elsewhere</title><link rel="icon" href="data:,"></head><body></body></html>'
    )


@pytest.fixture(scope="module")
def other_origin() -> Iterator[RunningServer]:
    page = Starlette(routes=[Route("/", blank_page)])
    with serving_asgi(page, page) as server:
        yield server


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    url = f"sqlite:///{tmp_path / 'observability.db'}"
    off_loop(run, prepare_database(url))
    return url


def test_a_hasura_client_on_another_origin_queries_and_subscribes(
    tab: Any, database_url: str, other_origin: RunningServer
) -> None:
    settings = Settings(database_url=database_url, admin_secret=SECRET, rollup_interval=0)
    with serving(settings) as service:
        tab.page.goto(f"{other_origin.base_url}/")
        tab.page.evaluate(HASURA_CLIENT, {"api": service.graphql_url, "secret": SECRET})
        query = tab.page.evaluate("window.results.query")
        assert query == {"data": {"invocations_aggregate": {"aggregate": {"count": 0}}}}
        tab.page.wait_for_function("window.results.frames.length >= 1")
        insert = """mutation { insert_invocations_one(object: {source_function: "cors",
          status: "completed"}) { id } }"""
        assert "errors" not in service.post(insert, headers={"x-hasura-admin-secret": SECRET})
        # The live query pushes the change to the other origin's page.
        tab.page.wait_for_function("window.results.frames.includes(1)")


def test_a_page_of_another_origin_cannot_rerun_invocations(
    tab: Any, database_url: str, other_origin: RunningServer
) -> None:
    # What `make run` serves: no admin secret, every origin allowed by CORS.
    settings = Settings(
        database_url=database_url,
        events_dir=EXAMPLES_EVENTS,
        webhook_functions="orders",
        rollup_interval=0,
    )
    with serving(settings) as service:
        delivered = service.client.post("/hooks/orders", json=PAYLOAD)
        assert delivered.status_code == 200
        original = delivered.json()["invocation_id"]

        def recorded() -> list[str]:
            query = sa.select(invocations.c.id).where(invocations.c.source_function == "orders")
            return sorted(str(row["id"]) for row in off_loop(rows, database_url, query))

        deadline = time.monotonic() + 15  # the webhook's plugin writes within a second
        while recorded() != [original]:
            assert time.monotonic() < deadline, "the delivery was not recorded"
            time.sleep(0.05)

        # The refusals show in the console as failed loads.
        tab.allowed_errors = r"status of (401 \(Unauthorized\)|403 \(Forbidden\))"
        tab.page.goto(f"{other_origin.base_url}/")
        tab.page.evaluate("payload => { window.payload = payload; }", PAYLOAD)
        outcomes = tab.page.evaluate(
            CROSS_SITE_ATTEMPTS, {"service": service.base_url, "id": original}
        )
        assert outcomes["cors"]["status"] == 401
        assert outcomes["cors"]["body"]["code"] == "access-denied"

        # A re-run asked for from the service's side (no Origin: as curl) runs and is
        # written before it answers, and so would have been any run the page had started.
        rerun = httpx.post(f"{service.base_url}/v1/rerun", json={"invocation_ids": [original]})
        assert rerun.status_code == 200 and rerun.json()["started"] == 1
        again = rerun.json()["results"][0]["rerun_invocation_id"]
        assert recorded() == sorted([original, again]), "the page's attempts created rows"
