"""Re-runs from the web client, in real headless Chromium against a real server (SQLite).

Originals are recorded through the real webhook; what a re-run recorded is read back
from the database. Screenshots go to tests/artifacts/screenshots/.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from service.settings import Settings
from service.storage.maintenance import invocations
from tests.support import db, runtime
from tests.support.library import hasura_payload, write_module
from tests.support.server import RunningServer, serving
from tests.support.webdata import off_loop
from tests.test_rerun import AUDIT, CHARGE_BROKEN, CHARGE_FIXED

pytestmark = pytest.mark.browser

SECRET = "s3cret-for-the-rerun-console"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str, Path]]:
    directory = tmp_path_factory.mktemp("web-rerun")
    events_dir = directory / "events"
    events_dir.mkdir()
    write_module(events_dir, "orders.audit", AUDIT)
    for function in ("charges", "bulk"):
        (events_dir / function).mkdir()
        write_module(events_dir / function, "orders.charge", CHARGE_BROKEN)
    url = f"sqlite:///{directory / 'web-rerun.db'}"
    off_loop(db.run, db.prepare_database(url))
    settings = Settings(
        database_url=url,
        events_dir=events_dir,
        admin_secret=SECRET,
        unauthorized_role="viewer",
        rollup_interval=0,
    )
    with serving(settings) as running:
        yield running, url, events_dir


def deliver(running: RunningServer, function: str, **new: Any) -> str:
    payload = hasura_payload()
    payload["id"] = str(uuid.uuid4())
    payload["event"]["data"]["new"].update(new)
    response = running.client.post(f"/hooks/{function}", json=payload)
    assert response.status_code == 200, response.text
    assert running.app.state.runtime.observability.force_flush(10.0)
    return str(response.json()["invocation_id"])


def reruns_of(url: str, invocation_id: str) -> list[dict[str, Any]]:
    found = off_loop(runtime.rows, url, sa.select(invocations).order_by(invocations.c.created_at))
    return [
        row
        for row in found
        if isinstance(row["context_data"], dict)
        and row["context_data"].get("rerun_of") == invocation_id
    ]


def sign_in(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/settings")
    page.locator('input[name="admin-secret"]').fill(SECRET)
    page.locator("[data-auth-form] button[type=submit]").click()
    expect(page.locator("[data-auth-saved]")).to_be_visible()


def test_without_the_admin_secret_there_is_no_rerun(
    tab: Any, served: tuple[RunningServer, str, Path]
) -> None:
    running, _, _ = served
    failed = deliver(running, "charges")
    page = tab.page
    page.goto(f"{running.base_url}/invocations/{failed}")
    expect(page.locator("[data-waterfall]")).to_be_visible()
    expect(page.locator("[data-open-flow]")).to_be_visible()
    expect(page.locator("[data-rerun-button]")).to_have_count(0)
    page.goto(f"{running.base_url}/invocations?fn=charges")
    expect(page.locator(f'[data-invocation="{failed}"]')).to_be_visible()
    expect(page.locator("[data-bulk-rerun]")).to_have_count(0)
    expect(page.locator("[data-select-all], [data-select]")).to_have_count(0)


def test_admin_reruns_a_failed_invocation_from_its_page_and_lands_on_the_new_one(
    tab: Any, served: tuple[RunningServer, str, Path]
) -> None:
    running, url, events_dir = served
    failed = deliver(running, "charges")
    page = tab.page
    sign_in(page, running.base_url)
    page.goto(f"{running.base_url}/invocations/{failed}")
    expect(page.locator('.summary [data-status="failed"]')).to_be_visible()
    write_module(events_dir / "charges", "orders.charge", CHARGE_FIXED)  # the fix ships

    page.locator("[data-rerun-button]").click()
    dialog = page.locator('[data-rerun-dialog="confirm"]')
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-rerun-warning]")).to_contain_text("side effects")
    expect(dialog.locator("[data-rerun-redacted]")).to_have_count(0)
    tab.screenshot("rerun-confirm")
    dialog.locator("[data-rerun-confirm]").click()

    expect(page).to_have_url(re.compile(r"/invocations/(?!" + failed + r")[0-9a-f-]{36}$"))
    new_id = page.url.rsplit("/", 1)[1]
    [recorded] = reruns_of(url, failed)
    assert recorded["id"] == new_id
    assert recorded["status"] == "completed"
    expect(page.locator(f'[data-rerun-of="{failed}"]')).to_be_visible()
    expect(page.locator('.summary [data-status="completed"]')).to_be_visible()
    tab.screenshot("rerun-result")

    page.locator(f'[data-rerun-of="{failed}"] a').click()
    expect(page.locator(f'[data-rerun-entry="{new_id}"]')).to_be_visible()
    expect(page.locator("[data-reruns]")).to_contain_text("Re-run once")
    tab.screenshot("rerun-original")

    # The flow shows the re-run beside its original (same correlation id), linked.
    page.goto(f"{running.base_url}/flow/{failed}")
    edge = page.locator(f'[data-edge-from="inv:{failed}"][data-edge-to="inv:{new_id}"]')
    expect(edge).to_have_class(re.compile(r"\bedge-rerun\b"))
    expect(page.locator(f'[data-node="inv:{new_id}"] [data-rerun-chip]')).to_be_visible()
    expect(page.locator(f'[data-node="inv:{failed}"] [data-rerun-chip]')).to_have_count(0)
    tab.screenshot("rerun-flow")


def test_admin_reruns_many_from_the_list_with_a_summary(
    tab: Any, served: tuple[RunningServer, str, Path]
) -> None:
    running, url, events_dir = served
    plain = deliver(running, "bulk")
    secret_bearing = deliver(running, "bulk", api_token="tok_live_1")
    cleared = deliver(running, "bulk")
    off_loop(
        runtime.execute,
        url,
        sa.update(invocations).where(invocations.c.id == cleared).values(source_event_payload=None),
    )
    write_module(events_dir / "bulk", "orders.charge", CHARGE_FIXED)
    page = tab.page
    sign_in(page, running.base_url)
    page.goto(f"{running.base_url}/invocations?fn=bulk")
    expect(page.locator("[data-invocation]")).to_have_count(3)

    # Ticking rows narrows the action to them; unticking goes back to every row shown.
    page.locator(f'[data-select="{plain}"]').check()
    expect(page.locator("[data-bulk-rerun]")).to_have_text(re.compile(r"Re-run 1 selected"))
    page.locator(f'[data-select="{plain}"]').uncheck()
    bulk = page.locator("[data-bulk-rerun]")
    expect(bulk).to_have_text(re.compile(r"Re-run 3 shown"))
    assert page.url.endswith("fn=bulk"), "ticking a box does not open the row"

    bulk.click()
    dialog = page.locator('[data-rerun-dialog="confirm"]')
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-rerun-warning]")).to_contain_text("2 invocations will run again")
    expect(dialog.locator("[data-rerun-redacted]")).to_have_attribute("data-rerun-redacted", "1")
    expect(dialog.locator("[data-rerun-redacted]")).to_contain_text('replaced by "[redacted]"')
    expect(dialog.locator('[data-refusal="no_payload"]')).to_be_visible()
    tab.screenshot("rerun-bulk-confirm")
    dialog.locator("[data-rerun-confirm]").click()

    summary = page.locator("[data-rerun-summary]")
    expect(summary).to_have_attribute("data-rerun-started", "2")
    expect(summary).to_have_attribute("data-rerun-refused", "1")
    tab.screenshot("rerun-bulk-summary")
    assert [r["status"] for r in reruns_of(url, plain)] == ["completed"]
    assert [r["status"] for r in reruns_of(url, secret_bearing)] == ["completed"]
    assert reruns_of(url, cleared) == []
    page.locator("[data-rerun-close]").click()
    expect(page.locator("[data-rerun-dialog]")).to_have_count(0)
    expect(page.locator("[data-rerun-chip]")).to_have_count(2)


def test_a_server_without_an_admin_secret_offers_reruns_without_signing_in(
    tab: Any, tmp_path: Path
) -> None:
    # No admin secret: every request is admin (as in Hasura, and as `make run` serves).
    events_dir = tmp_path / "events"
    (events_dir / "charges").mkdir(parents=True)
    write_module(events_dir / "charges", "orders.charge", CHARGE_BROKEN)
    url = f"sqlite:///{tmp_path / 'open.db'}"
    off_loop(db.run, db.prepare_database(url))
    settings = Settings(database_url=url, events_dir=events_dir, rollup_interval=0)
    with serving(settings) as running:
        failed = deliver(running, "charges")
        page = tab.page
        page.goto(f"{running.base_url}/invocations/{failed}")
        expect(page.locator("[data-rerun-button]")).to_be_visible()
        page.goto(f"{running.base_url}/invocations?fn=charges")
        expect(page.locator("[data-bulk-rerun]")).to_be_visible()
