"""The web console on a phone (390 px) and a desktop (1440 px), light and dark, in real
headless Chromium against a real server (SQLite, the shared `web_dataset`).

Every page fits its screen (`scrollWidth <= clientWidth`), names its tab, and errors
(a bad id, an unknown invocation, an unknown route) get a page inside the app. Search and
a status filter compose; comparisons below the minimum sample say so; the overview's cards
and chart agree after a live insert; the flow opens with every node in view. Screenshots
of every page at both widths and in both themes go to tests/artifacts/screenshots/.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from service.storage.maintenance import invocations, job_executions, job_logs
from tests.support.browser import Tab, checked_tab
from tests.support.server import RunningServer
from tests.support.webdata import (
    WebDataset,
    count,
    execute,
    invocation_row,
    record_shipment,
    rows,
)

pytestmark = pytest.mark.browser

LIVE_TIMEOUT_MS = 10_000
PHONE, DESKTOP = 390, 1440
# The client's minimum sample for a comparison (MIN_SAMPLE in web/app/components/ui.js).
MIN_SAMPLE = 30


@pytest.fixture(params=[PHONE, DESKTOP], ids=["phone", "desktop"])
def screen(browser: Any, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A fresh tab at each width in turn; the test fails on any browser error."""
    with checked_tab(browser, width=request.param) as opened:
        yield opened


def width_of(tab: Tab) -> int:
    return int(tab.page.viewport_size["width"])


def assert_fits(page: Page, what: str) -> None:
    wide, window = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert wide <= window, f"{what} is {wide} px wide in a {window} px window"


def cascade_root(dataset: WebDataset) -> tuple[str, str]:
    """An invocation whose job triggered another one: its id and function."""
    [child] = rows(
        dataset.url,
        sa.select(invocations.c.source_job_id)
        .where(
            invocations.c.source_job_id.is_not(None), invocations.c.created_at < dataset.window_end
        )
        .limit(1),
    )
    [parent] = rows(
        dataset.url,
        sa.select(invocations.c.id, invocations.c.source_function)
        .join(job_executions, job_executions.c.invocation_id == invocations.c.id)
        .where(job_executions.c.id == child["source_job_id"]),
    )
    return str(parent["id"]), parent["source_function"]


@dataclass(frozen=True)
class Screen:
    """A page of the console: where it is, what shows it is ready, its tab's title."""

    name: str
    path: str
    ready: str
    title: str
    status: int = 200


def every_page(dataset: WebDataset) -> list[Screen]:
    big = dataset.big_invocation_id
    root, function = cascade_root(dataset)
    missing = str(uuid.uuid4())
    window = dataset.range_query()
    return [
        Screen("overview", f"/?{window}", '[data-chart="invocations"]', "Overview"),
        Screen(
            "invocations", f"/invocations?{window}", '[data-table="invocations"]', "Invocations"
        ),
        Screen(
            "invocation",
            f"/invocations/{big}",
            "[data-waterfall]",
            f"Invocation {big[:8]} · shipments_events",
        ),
        Screen(
            "invocation-logs",
            f"/invocations/{big}?tab=logs",
            "[data-logs]",
            f"Invocation {big[:8]} · shipments_events",
        ),
        Screen("flow", f"/flow/{root}", "[data-node]", f"Flow · {root[:8]} · {function}"),
        Screen("analytics", f"/analytics?{window}", '[data-table="jobs"]', "Analytics"),
        Screen("settings", "/settings", "[data-auth-form]", "Settings"),
        Screen(
            "bad-id",
            "/invocations/not-a-uuid",
            '[data-error-page="bad-id"]',
            "Not an invocation id",
        ),
        Screen(
            "missing", f"/flow/{missing}", '[data-error-page="not-found"]', "Invocation not found"
        ),
        Screen("no-route", "/nope", '[data-error-page="no-route"]', "Page not found", status=404),
    ]


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("width", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_every_page_fits_the_screen_names_its_tab_and_keeps_errors_in_the_app(
    browser: Any, web_server: RunningServer, web_dataset: WebDataset, width: int, theme: str
) -> None:
    with checked_tab(browser, width=width, color_scheme=theme) as tab:
        page = tab.page
        for screen in every_page(web_dataset):
            if screen.status == 404:
                # Chromium reports the page's own 404 status as a console error.
                tab.allowed_errors = r"status of 404"
            response = page.goto(f"{web_server.base_url}{screen.path}")
            assert response is not None and response.status == screen.status, screen.name
            expect(page.locator(screen.ready).first).to_be_visible()
            expect(page).to_have_title(f"{screen.title} · Event Detector")
            # Inside the app: its navigation is there (errors included).
            expect(page.locator("nav#sidebar")).to_be_attached()
            assert page.evaluate("document.documentElement.dataset.theme") == theme
            assert_fits(page, f"{screen.name} at {width} px")
            tab.screenshot(f"screen-{screen.name}-{width}-{theme}")


def test_the_invocation_list_fits_its_box_on_a_desktop(
    tab: Tab, web_server: RunningServer, web_dataset: WebDataset
) -> None:
    page = tab.page
    page.goto(f"{web_server.base_url}/invocations?{web_dataset.range_query()}")
    box = page.locator('.table-scroll:has([data-table="invocations"])')
    expect(box.locator("tbody tr").first).to_be_visible()
    inner, outer = box.evaluate("(el) => [el.scrollWidth, el.clientWidth]")
    assert inner <= outer, f"the table is {inner} px wide in a {outer} px box"
    # The user and flow columns are on screen, not behind a scroll.
    flow = box.locator("tbody tr").first.locator('a[aria-label="Flow"]')
    expect(flow).to_be_in_viewport()


def test_the_menu_folds_away_on_a_phone(browser: Any, web_server: RunningServer) -> None:
    with checked_tab(browser, width=PHONE) as tab:
        page = tab.page
        page.goto(f"{web_server.base_url}/settings")
        sidebar = page.locator("nav#sidebar")
        expect(sidebar).to_be_hidden()
        toggle = page.locator("[data-nav-toggle]")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(sidebar).to_be_visible()
        sidebar.get_by_role("link", name="Analytics").click()
        expect(page).to_have_url(re.compile(r"/analytics"))
        expect(sidebar).to_be_hidden()  # closed by the navigation
        toggle.click()
        expect(sidebar).to_be_visible()  # open again before Escape is pressed
        page.keyboard.press("Escape")
        expect(sidebar).to_be_hidden()


def test_the_theme_follows_the_system_until_one_is_chosen(
    browser: Any, web_server: RunningServer
) -> None:
    with checked_tab(browser, color_scheme="dark") as tab:
        page = tab.page
        page.goto(f"{web_server.base_url}/settings")
        root = page.locator("html")
        expect(root).to_have_attribute("data-theme", "dark")
        dark_background = page.evaluate(
            "getComputedStyle(document.documentElement).backgroundColor"
        )
        page.locator('[data-theme-mode="light"]').check()
        expect(root).to_have_attribute("data-theme", "light")
        assert (
            page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
            != dark_background
        )
        page.reload()  # the choice is kept
        expect(root).to_have_attribute("data-theme", "light")
        toggle = page.locator("[data-theme-toggle]")
        expect(toggle).to_have_attribute("data-theme-toggle", "light")
        toggle.click()  # light → dark → system
        expect(root).to_have_attribute("data-theme", "dark")
        toggle.click()
        expect(toggle).to_have_attribute("data-theme-toggle", "system")
        expect(root).to_have_attribute("data-theme", "dark")  # the system's


def rows_shown(page: Page) -> Any:
    return page.locator('[data-table="invocations"] tbody tr')


def test_search_keeps_the_status_filter_in_the_url_and_the_results(
    screen: Tab, web_server: RunningServer, web_dataset: WebDataset
) -> None:
    page = screen.page
    page.goto(f"{web_server.base_url}/invocations?{web_dataset.range_query()}")
    expect(rows_shown(page).first).to_be_visible()
    page.locator('[data-filter-status="failed"]').click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    box = page.locator('input[name="q"]')
    box.fill("card")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"q=card"))
    assert "status=failed" in page.url and "range=custom" in page.url
    expect(page.locator('[data-filter-status="failed"]')).to_have_attribute("aria-pressed", "true")

    window = sa.and_(
        invocations.c.created_at >= web_dataset.window_start,
        invocations.c.created_at < web_dataset.window_end,
    )
    # What plain text search means: ids, user, error, payload and log lines.
    needle = "%card%"
    found = sa.or_(
        invocations.c.correlation_id.ilike(needle),
        invocations.c.source_user_email.ilike(needle),
        invocations.c.source_event_id.ilike(needle),
        invocations.c.error_message.ilike(needle),
        sa.cast(invocations.c.source_event_payload, sa.Text).ilike(needle),
        invocations.c.id.in_(
            sa.select(job_logs.c.invocation_id).where(job_logs.c.message.ilike(needle))
        ),
    )
    failed = count(web_dataset.url, invocations, window, found, invocations.c.status == "failed")
    every = count(web_dataset.url, invocations, window, found)
    assert 0 < failed < every  # the filter narrows the search
    expect(page.locator("[data-total]")).to_have_attribute("data-total", str(failed))
    statuses = {row.get_attribute("data-status") for row in rows_shown(page).all()}
    assert statuses == {"failed"}
    assert_fits(page, "the filtered list")


def test_a_comparison_below_the_minimum_sample_says_so(
    screen: Tab, web_server: RunningServer, web_dataset: WebDataset
) -> None:
    # An hour long ago with 40 invocations, after an hour with 3: "+1233%" would mislead.
    # (A day of its own per screen: both runs share the database.)
    start = web_dataset.window_end - timedelta(days=20 + (width_of(screen) == DESKTOP) * 3)
    now_rows = [start + timedelta(seconds=60 * i + 30) for i in range(40)]
    before_rows = [start - timedelta(minutes=10 * (i + 1)) for i in range(3)]
    sample = [
        invocation_row(at, "sample_events", total_duration_ms=100 + i)
        for i, at in enumerate(now_rows + before_rows)
    ]
    execute(web_dataset.url, sa.insert(invocations).values(sample))
    end = start + timedelta(hours=1)
    iso = lambda at: at.isoformat().replace("+00:00", "Z")  # noqa: E731
    page = screen.page
    page.goto(f"{web_server.base_url}/?range=custom&from={iso(start)}&to={iso(end)}")
    card = page.locator('[data-kpi="invocations"]')
    expect(card).to_have_attribute("data-value", "40")
    comparison = card.locator("[data-comparison]")
    expect(comparison).to_have_attribute("data-comparison", "insufficient")
    expect(comparison).to_have_text("not enough data · 3 before")
    expect(card).not_to_contain_text("%")
    # Every comparison of the page stands on the same 3 cases before: none is a change.
    for name in ("success_rate", "p50", "p95"):
        expect(page.locator(f'[data-kpi="{name}"] [data-comparison]')).to_have_attribute(
            "data-comparison", "insufficient"
        )
    # With enough cases on both sides, the change comes with the value before it.
    page.goto(f"{web_server.base_url}/?{web_dataset.range_query()}")
    change = page.locator('[data-kpi="invocations"] [data-comparison]')
    expect(change).to_have_attribute("data-comparison", "change")
    previous = change.get_attribute("data-previous")
    assert int(previous) >= MIN_SAMPLE
    expect(change).to_contain_text(re.compile(rf"%.*{int(previous):,} before"))


def chart_total(page: Page) -> int:
    cells = page.locator('[data-chart-table="invocations"] td[data-series="Total"]')
    return sum(int(text or 0) for text in cells.all_text_contents())


def test_cards_and_chart_agree_after_a_live_insert(
    screen: Tab, web_server: RunningServer, web_dataset: WebDataset
) -> None:
    page = screen.page
    page.goto(f"{web_server.base_url}/?range=1h")
    card = page.locator('[data-kpi="invocations"]')
    expect(card).to_have_attribute("data-value", re.compile(r"^\d+$"))
    expect(page.locator("[data-live]")).to_have_attribute(
        "data-live", "live", timeout=LIVE_TIMEOUT_MS
    )
    before = int(card.get_attribute("data-value"))
    assert chart_total(page) == before

    result = record_shipment(web_dataset.url, f"shp_{uuid.uuid4().hex[:6]}", "live_events")
    expect(card).to_have_attribute("data-value", str(before + 1), timeout=LIVE_TIMEOUT_MS)
    # The same version everywhere: the chart and the recent list moved with the card.
    assert chart_total(page) == before + 1
    row = page.locator(f'[data-table="recent"] tr[data-invocation="{result.invocation_id}"]')
    expect(row).to_be_visible()


def test_a_time_ahead_of_the_page_clock_reads_just_now(
    tab: Tab, web_server: RunningServer, web_dataset: WebDataset
) -> None:
    # A row stamped by a clock a little ahead (or arriving between two ticks of the page's).
    ahead = invocation_row(datetime.now(UTC) + timedelta(seconds=40), "clock_events")
    execute(web_dataset.url, sa.insert(invocations).values(ahead))
    page = tab.page
    page.goto(f"{web_server.base_url}/invocations?range=1h&fn=clock_events")
    when = page.locator(f'tr[data-invocation="{ahead["id"]}"] time')
    expect(when).to_have_text("just now")


def test_the_flow_opens_with_every_node_in_view(
    screen: Tab, web_server: RunningServer, web_dataset: WebDataset
) -> None:
    root, _ = cascade_root(web_dataset)
    page = screen.page
    page.goto(f"{web_server.base_url}/flow/{root}")
    nodes = page.locator("[data-node]")
    expect(nodes.first).to_be_visible()
    viewport = page.locator("[data-flow-viewport]")
    # Nothing off screen: no hint, and every node's box inside the viewport's.
    expect(viewport).to_have_attribute("data-offscreen", "0")
    expect(page.locator("[data-offscreen-hint]")).to_have_count(0)
    frame = viewport.bounding_box()
    assert nodes.count() >= 6
    for node in nodes.all():
        box = node.bounding_box()
        assert box["x"] >= frame["x"] - 0.5 and box["y"] >= frame["y"] - 0.5, box
        assert box["x"] + box["width"] <= frame["x"] + frame["width"] + 0.5, box
        assert box["y"] + box["height"] <= frame["y"] + frame["height"] + 0.5, box
    # Zoomed in, part of the graph leaves the view: the hint counts it and brings it back.
    for _ in range(4):
        page.locator("[data-zoom-in]").click()
    hint = page.locator("[data-offscreen-hint]")
    expect(hint).to_be_visible()
    expect(page.locator("[data-minimap]")).to_be_visible()
    hint.click()
    expect(viewport).to_have_attribute("data-offscreen", "0")
    screen.screenshot(f"flow-fit-{width_of(screen)}")
