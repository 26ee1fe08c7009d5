"""The web client on PostgreSQL behind an admin secret, with `viewer` as the unauthorized role.

The page carries no secret: without one the browser reads as `viewer` (no payloads,
contexts, options, results or stacks) and every page still works; the admin secret typed
on the Settings page (kept in sessionStorage) unlocks the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from service.settings import Settings
from service.storage.maintenance import invocations
from tests.support import runtime
from tests.support.server import RunningServer, serving
from tests.support.webdata import WebDataset, build_dataset, off_loop

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

SECRET = "s3cret-for-the-console-test"


@pytest.fixture(scope="module")
def pg_dataset(postgres_admin_url: str) -> Iterator[WebDataset]:
    from tests.support import db

    url = off_loop(db.run, db.create_postgres_database(postgres_admin_url))
    try:
        yield build_dataset(url, demo_invocations=60)
    finally:
        off_loop(db.run, db.drop_postgres_database(postgres_admin_url, url))


@pytest.fixture(scope="module")
def secured(pg_dataset: WebDataset) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=pg_dataset.url,
        admin_secret=SECRET,
        unauthorized_role="viewer",
        rollup_interval=0,
    )
    with serving(settings) as running:
        yield running


def test_no_secret_is_served(secured: RunningServer) -> None:
    for path in ("/", "/settings", "/app/main.js", "/app/lib/graphql.js"):
        assert SECRET not in secured.client.get(path).text


def test_viewer_sees_every_page_without_payloads(
    tab: Any, secured: RunningServer, pg_dataset: WebDataset
) -> None:
    page = tab.page
    page.goto(f"{secured.base_url}/?{pg_dataset.range_query()}")
    expected = off_loop(
        runtime.count,
        pg_dataset.url,
        invocations,
        invocations.c.created_at >= pg_dataset.window_start,
        invocations.c.created_at < pg_dataset.window_end,
    )
    expect(page.locator('[data-kpi="invocations"]')).to_have_attribute("data-value", str(expected))
    expect(page.locator("[data-restricted]")).to_be_visible()

    page.goto(f"{secured.base_url}/invocations/{pg_dataset.big_invocation_id}")
    expect(page.locator("[data-waterfall]")).to_be_visible()
    expect(page.locator('[data-tab="changes"]')).to_have_count(0)
    expect(page.locator('[data-tab="payload"]')).to_have_count(0)
    page.locator('[data-tab="jobs"]').click()
    expect(page.locator("[data-events]")).to_contain_text(
        "ledger unavailable"
    )  # messages are allowed
    expect(page.locator(".stack")).to_have_count(0)  # stacks are not
    tab.screenshot("viewer-invocation")

    # Payload search degrades to what the role may filter on, and says so.
    page.goto(f"{secured.base_url}/invocations?{pg_dataset.range_query()}&q={pg_dataset.needle}")
    expect(page.locator("[data-search-note]")).to_contain_text("cannot read payloads")
    expect(page.locator("[data-total]")).to_have_attribute("data-total", "0")

    page.goto(f"{secured.base_url}/flow/{pg_dataset.big_invocation_id}")
    expect(page.locator(f'[data-node="inv:{pg_dataset.big_invocation_id}"]')).to_be_visible()
    page.goto(f"{secured.base_url}/analytics?{pg_dataset.range_query()}")
    # A first load of every analytics figure: allow for a machine busy with other tests.
    expect(page.locator('[data-table="jobs"] tbody tr').first).to_be_visible(timeout=15_000)


def test_the_admin_secret_entered_in_settings_unlocks_payloads(
    tab: Any, secured: RunningServer, pg_dataset: WebDataset
) -> None:
    page = tab.page
    page.goto(f"{secured.base_url}/settings")
    credentials = page.locator("[data-credentials]")
    expect(credentials).to_have_text("none sent: the API answers with a restricted role")
    page.locator('input[name="admin-secret"]').fill(SECRET)
    page.locator("[data-auth-form] button[type=submit]").click()
    expect(page.locator("[data-auth-saved]")).to_be_visible()
    expect(credentials).to_have_text("admin secret set: the API answers as admin")
    tab.screenshot("settings")
    assert page.evaluate("() => sessionStorage.getItem('event-detector.auth')").find(SECRET) >= 0
    # Only display preferences may live beyond the tab, never the secret.
    assert SECRET not in page.evaluate("() => JSON.stringify({...localStorage})")

    page.goto(f"{secured.base_url}/invocations/{pg_dataset.big_invocation_id}?tab=changes")
    expect(page.locator('.diff-row[data-changed="1"]').first).to_be_visible()
    expect(page.locator("[data-restricted]")).to_have_count(0)
    page.goto(f"{secured.base_url}/invocations?{pg_dataset.range_query()}&q={pg_dataset.needle}")
    expect(page.locator("[data-total]")).to_have_attribute("data-total", "1")

    # A wrong secret is refused with a clear message, not a blank page.
    page.goto(f"{secured.base_url}/settings")
    page.locator('input[name="admin-secret"]').fill("wrong")
    page.locator("[data-auth-form] button[type=submit]").click()
    page.goto(f"{secured.base_url}/invocations")
    expect(page.locator('[data-banner="auth"]')).to_contain_text(
        re.compile("admin-secret", re.IGNORECASE)
    )
    tab.screenshot("auth-refused")
