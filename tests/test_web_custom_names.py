"""The web client in real headless Chromium against a server that customizes every name.

The server (the shared `web_dataset`, SQLite) serves Hasura's `graphql-default` naming
convention under a namespace, with a type-name and a root-field prefix, behind an admin
secret with `viewer` as the unauthorized role. The console writes its operations in the
default names; it must adapt every one to the names the server announces. Each test
records every operation the page sends (HTTP and WebSocket) and checks that none uses a
default root field name; the numbers on screen are read back from the database.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from graphql import FieldNode, OperationDefinitionNode, parse
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from service.settings import Settings
from service.storage.maintenance import invocations, job_executions, job_logs
from tests.support.browser import Tab
from tests.support.library import hasura_payload, write_module
from tests.support.server import RunningServer, serving
from tests.support.webdata import WebDataset, count, rows
from tests.test_rerun import AUDIT

pytestmark = pytest.mark.browser

SECRET = "s3cret-for-the-customized-console"
NAMESPACE = "observability"
ROOT_FIELD_PREFIX = "obs"
CUSTOMIZED = {
    "graphql_namespace": NAMESPACE,
    "graphql_naming_convention": "graphql-default",
    "graphql_type_name_prefix": "Obs",
    "graphql_root_field_prefix": ROOT_FIELD_PREFIX,
}
FUNCTION = "names_events"  # the webhook's function in this module, whose module audits
LIVE_TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def served(
    web_dataset: WebDataset, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    events_dir = tmp_path_factory.mktemp("custom-names") / "events"
    (events_dir / FUNCTION).mkdir(parents=True)
    write_module(events_dir / FUNCTION, "orders.audit", AUDIT)
    settings = Settings(
        database_url=web_dataset.url,
        admin_secret=SECRET,
        unauthorized_role="viewer",
        events_dir=events_dir,
        rollup_interval=0,
        **CUSTOMIZED,
    )
    with serving(settings) as running:
        yield running


class Sent:
    """Every GraphQL operation a page sends (POST bodies and graphql-ws `subscribe`
    messages), every error answered, and the headers of each `v1/graphql/names` request."""

    def __init__(self, tab: Tab) -> None:
        self.queries: list[str] = []
        self.subscriptions: list[str] = []
        self.errors: list[Any] = []
        self.names_headers: list[dict[str, str]] = []
        tab.page.on("request", self.request)
        tab.page.on("response", self.response)
        tab.page.on("websocket", self.websocket)

    def request(self, request: Any) -> None:
        if request.url.endswith("/v1/graphql/names"):
            self.names_headers.append(request.headers)
        elif request.url.endswith("/v1/graphql") and request.method == "POST":
            self.queries.append(request.post_data_json["query"])

    def response(self, response: Any) -> None:
        if not response.url.endswith(("/v1/graphql", "/v1/graphql/names")):
            return
        try:
            body = response.json()
        except PlaywrightError:  # the page navigated away first: it never read this answer
            return
        self.errors += body.get("errors", [])

    def websocket(self, socket: Any) -> None:
        socket.on("framesent", self.frame_sent)
        socket.on("framereceived", self.frame_received)

    def frame_sent(self, payload: str | bytes) -> None:
        message = json.loads(payload)
        if message.get("type") == "subscribe":
            self.subscriptions.append(message["payload"]["query"])

    def frame_received(self, payload: str | bytes) -> None:
        message = json.loads(payload)
        if message.get("type") == "error":
            self.errors += message["payload"]
        elif message.get("type") == "next":
            self.errors += message["payload"].get("errors", [])

    def assert_served_names_only(self) -> None:
        """Each operation selects the namespace alone, and in it only served root fields;
        none was answered with an error."""
        assert not self.errors, self.errors
        operations = self.queries + self.subscriptions
        assert operations, "the page sent no GraphQL operation"
        for query in operations:
            for definition in parse(query).definitions:
                assert isinstance(definition, OperationDefinitionNode), query
                [namespace] = definition.selection_set.selections
                assert isinstance(namespace, FieldNode) and namespace.name.value == NAMESPACE
                assert namespace.selection_set is not None
                for field in namespace.selection_set.selections:
                    assert isinstance(field, FieldNode), query
                    assert field.name.value.startswith(ROOT_FIELD_PREFIX), (field.name.value, query)


@pytest.fixture
def sent(tab: Tab) -> Sent:
    return Sent(tab)


def sign_in(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/settings")
    page.locator('input[name="admin-secret"]').fill(SECRET)
    page.locator("[data-auth-form] button[type=submit]").click()
    expect(page.locator("[data-auth-saved]")).to_be_visible()


def hidden_fields(page: Any) -> Any:
    return page.locator("dl.meta > div").filter(has_text="Hidden fields").locator("dd")


def in_window(dataset: WebDataset) -> Any:
    return sa.and_(
        invocations.c.created_at >= dataset.window_start,
        invocations.c.created_at < dataset.window_end,
    )


def expect_total(page: Any, expected: int) -> None:
    expect(page.locator("[data-total]")).to_have_attribute("data-total", str(expected))


def test_the_credentials_choose_the_names_and_what_the_pages_show(
    tab: Tab, sent: Sent, served: RunningServer, web_dataset: WebDataset
) -> None:
    page = tab.page
    # Without credentials, the viewer's names: no payloads, contexts or stacks.
    page.goto(f"{served.base_url}/settings")
    credentials = page.locator("[data-credentials]")
    expect(credentials).to_have_text("none sent: the API answers with a restricted role")
    expect(hidden_fields(page)).to_have_text("source_event_payload, context_data, error_stack")
    page.goto(f"{served.base_url}/?{web_dataset.range_query()}")
    expected = count(web_dataset.url, invocations, in_window(web_dataset))
    expect(page.locator('[data-kpi="invocations"]')).to_have_attribute("data-value", str(expected))
    expect(page.locator("[data-restricted]")).to_be_visible()
    expect(page.locator('[data-table="recent"] tbody tr').first).to_be_visible()

    # The admin secret: the names are asked again, with it, and everything is readable.
    sign_in(page, served.base_url)
    expect(credentials).to_have_text("admin secret set: the API answers as admin")
    expect(hidden_fields(page)).to_have_text("none")
    assert sent.names_headers[-1].get("x-hasura-admin-secret") == SECRET
    assert "x-hasura-admin-secret" not in sent.names_headers[0]
    page.goto(f"{served.base_url}/?{web_dataset.range_query()}")
    expect(page.locator('[data-kpi="invocations"]')).to_have_attribute("data-value", str(expected))
    expect(page.locator("[data-restricted]")).to_have_count(0)
    tab.screenshot("custom-names-overview")
    sent.assert_served_names_only()


def test_list_search_detail_logs_flow_and_analytics(
    tab: Tab, sent: Sent, served: RunningServer, web_dataset: WebDataset
) -> None:
    page = tab.page
    sign_in(page, served.base_url)
    window = in_window(web_dataset)
    page.goto(f"{served.base_url}/invocations?{web_dataset.range_query()}")
    expect_total(page, count(web_dataset.url, invocations, window))
    page.locator('[data-filter-status="failed"]').click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect_total(
        page, count(web_dataset.url, invocations, window, invocations.c.status == "failed")
    )
    page.locator('[data-filter-status="failed"]').click()

    # Text deep inside a payload: a `_cast` filter on the payload, in the served names.
    box = page.locator('input[name="q"]')
    box.fill(web_dataset.needle)
    box.press("Enter")
    expect_total(page, 1)
    row = page.locator('[data-table="invocations"] tbody tr')
    expect(row).to_have_attribute("data-invocation", web_dataset.big_invocation_id)

    row.click()
    expect(page).to_have_url(re.compile(rf"/invocations/{web_dataset.big_invocation_id}"))
    jobs = count(
        web_dataset.url,
        job_executions,
        job_executions.c.invocation_id == web_dataset.big_invocation_id,
    )
    expect(page.locator('[data-wf-row="job"]')).to_have_count(jobs)
    page.locator('[data-tab="logs"]').click()
    page.locator("[data-log-job]").select_option("")
    logs = count(
        web_dataset.url, job_logs, job_logs.c.invocation_id == web_dataset.big_invocation_id
    )
    expect(page.locator("[data-log]")).to_have_count(logs)
    tab.screenshot("custom-names-logs")

    page.goto(f"{served.base_url}/flow/{web_dataset.big_invocation_id}")
    expect(page.locator(f'[data-node="inv:{web_dataset.big_invocation_id}"]')).to_be_visible()
    expect(page.locator(f'[data-node="und:{web_dataset.big_invocation_id}"]')).to_be_visible()

    page.goto(f"{served.base_url}/analytics?{web_dataset.range_query()}")
    jobs_in_window = rows(
        web_dataset.url,
        sa.select(job_executions.c.job_name)
        .where(
            job_executions.c.created_at >= web_dataset.window_start,
            job_executions.c.created_at < web_dataset.window_end,
        )
        .distinct(),
    )
    # A first load of every analytics figure: allow for a machine busy with other tests.
    expect(page.locator('[data-table="jobs"] tbody tr')).to_have_count(
        len(jobs_in_window), timeout=15_000
    )
    tab.screenshot("custom-names-analytics")
    sent.assert_served_names_only()


def test_a_live_update_and_a_rerun(tab: Tab, sent: Sent, served: RunningServer) -> None:
    page = tab.page
    sign_in(page, served.base_url)
    page.goto(f"{served.base_url}/invocations?range=1h&fn={FUNCTION}")
    expect(page.locator("[data-live]")).to_have_attribute(
        "data-live", "live", timeout=LIVE_TIMEOUT_MS
    )
    before = int(page.locator("[data-total]").get_attribute("data-total") or 0)

    payload = hasura_payload()
    payload["id"] = str(uuid.uuid4())
    response = served.client.post(f"/hooks/{FUNCTION}", json=payload)
    assert response.status_code == 200, response.text
    assert served.app.state.runtime.observability.force_flush(10.0)
    delivered = str(response.json()["invocation_id"])
    row = page.locator(f'[data-table="invocations"] tr[data-invocation="{delivered}"]')
    expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("[data-total]")).to_have_attribute(
        "data-total", str(before + 1), timeout=LIVE_TIMEOUT_MS
    )
    assert sent.subscriptions, "the live update came over the WebSocket"

    row.click()
    page.locator("[data-rerun-button]").click()
    dialog = page.locator('[data-rerun-dialog="confirm"]')
    expect(dialog).to_be_visible()
    dialog.locator("[data-rerun-confirm]").click()
    expect(page).to_have_url(re.compile(r"/invocations/(?!" + delivered + r")[0-9a-f-]{36}$"))
    expect(page.locator(f'[data-rerun-of="{delivered}"]')).to_be_visible()
    expect(page.locator('.summary [data-status="completed"]')).to_be_visible()
    tab.screenshot("custom-names-rerun")
    sent.assert_served_names_only()
