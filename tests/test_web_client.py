"""The web client in real headless Chromium against a real server (SQLite).

The database is filled by the real library and observability plugin (`service.operations.demo` plus
one wide invocation, see `tests/support/webdata.py`); every expected number is computed
from the database here, independently of the client's GraphQL queries. Each test writes a
screenshot of its page to tests/artifacts/screenshots/ and fails on any browser error.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from service.settings import Settings
from service.storage.maintenance import (
    event_executions,
    invocations,
    job_executions,
    job_logs,
    plugin_instances,
)
from tests.support.server import RunningServer, serving
from tests.support.webdata import (
    BIG_DETECTED,
    WebDataset,
    count,
    execute,
    invocation_row,
    percentile_cont,
    record_shipment,
    rows,
)

pytestmark = pytest.mark.browser


LIVE_TIMEOUT_MS = 10_000
BAD = ("failed", "timeout", "rejected")


@pytest.fixture(scope="module")
def dataset(web_dataset: WebDataset) -> WebDataset:
    return web_dataset


@pytest.fixture(scope="module")
def server(web_server: RunningServer) -> RunningServer:
    return web_server


def in_window(
    dataset: WebDataset, start: datetime | None = None, end: datetime | None = None
) -> Any:
    start = start or dataset.window_start
    end = end or dataset.window_end
    return sa.and_(invocations.c.created_at >= start, invocations.c.created_at < end)


def open_page(tab: Any, server: RunningServer, path: str) -> Any:
    page = tab.page
    page.goto(f"{server.base_url}{path}")
    return page


def kpi(page: Any, name: str) -> Any:
    return page.locator(f'[data-kpi="{name}"]')


def kpi_value(page: Any, name: str) -> float | None:
    text = kpi(page, name).get_attribute("data-value")
    return None if text in (None, "") else float(text)


def kpi_previous(page: Any, name: str) -> float | None:
    delta = kpi(page, name).locator("[data-previous]")
    if delta.count() == 0:
        return None
    return float(delta.get_attribute("data-previous"))


def period_numbers(dataset: WebDataset, start: datetime, end: datetime) -> dict[str, Any]:
    found = rows(
        dataset.url,
        sa.select(
            invocations.c.status, invocations.c.total_duration_ms, invocations.c.total_jobs_failed
        ).where(in_window(dataset, start, end)),
    )
    finished = [r for r in found if r["status"] != "running"]
    durations = [r["total_duration_ms"] for r in found if r["total_duration_ms"] is not None]
    return {
        "invocations": len(found),
        "success_rate": (sum(r["status"] == "completed" for r in finished) / len(finished))
        if finished
        else None,
        "p50": percentile_cont(durations, 0.5),
        "p95": percentile_cont(durations, 0.95),
        "failed_jobs": sum(r["total_jobs_failed"] for r in found),
    }


def test_overview_kpis_and_chart_match_the_database(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    page = open_page(tab, server, f"/?{dataset.range_query()}")
    expect(kpi(page, "invocations")).to_be_visible()
    expect(page.locator('[data-table="recent"] tbody tr').first).to_be_visible()
    current = period_numbers(dataset, dataset.window_start, dataset.window_end)
    previous = period_numbers(
        dataset,
        dataset.window_start - (dataset.window_end - dataset.window_start),
        dataset.window_start,
    )
    assert current["invocations"] > 50 and previous["invocations"] > 50  # both periods have data
    for name in ("invocations", "success_rate", "p50", "p95", "failed_jobs"):
        assert kpi_value(page, name) == pytest.approx(current[name], abs=1e-6), name
        assert kpi_previous(page, name) == pytest.approx(previous[name], abs=1e-6), name
    expect(kpi(page, "invocations").locator(".kpi-value")).to_have_text(
        f"{current['invocations']:,}"
    )

    # The chart's buckets add up to the range; its failures to the failed invocations.
    cells = page.locator('[data-chart-table="invocations"] td[data-series="Total"]')
    expect(cells.first).to_be_attached()
    assert sum(int(t or 0) for t in cells.all_text_contents()) == current["invocations"]
    failed = page.locator(
        '[data-chart-table="invocations"] td[data-series="Failed"]'
    ).all_text_contents()
    bad = count(dataset.url, invocations, in_window(dataset), invocations.c.status.in_(BAD))
    assert sum(int(t or 0) for t in failed) == bad
    # Away from the plot, the legend under it sums each series over the whole range.
    legend = page.locator('[data-chart="invocations"] .u-legend')
    expect(legend).to_contain_text("whole range")
    expect(legend.locator(".u-series").nth(1)).to_contain_text(f"{current['invocations']:,}")
    expect(legend.locator(".u-series").nth(2)).to_contain_text(f"{bad:,}")

    newest = rows(
        dataset.url,
        sa.select(invocations.c.id)
        .where(in_window(dataset))
        .order_by(invocations.c.created_at.desc())
        .limit(12),
    )
    expect(page.locator('[data-table="recent"] tbody tr')).to_have_count(len(newest))
    assert page.locator('[data-table="recent"] tbody tr').first.get_attribute(
        "data-invocation"
    ) == str(newest[0]["id"])
    tab.screenshot("overview")


def test_the_chart_counts_hours_the_rollup_has_not_seen_yet(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    # An invocation written now but dated five hours back (a plugin flushing late): the
    # hourly rollup has not seen it, so the chart must count that hour live.
    late = record_shipment(dataset.url, "shp_late", "late_events")
    moved = dataset.window_end - timedelta(hours=5)
    execute(
        dataset.url,
        sa.update(invocations)
        .where(invocations.c.id == late.invocation_id)
        .values(created_at=moved),
    )
    page = open_page(tab, server, f"/?{dataset.range_query()}")
    cells = page.locator('[data-chart-table="invocations"] td[data-series="Total"]')
    expect(cells.first).to_be_attached()
    expected = count(dataset.url, invocations, in_window(dataset))
    expect(kpi(page, "invocations")).to_have_attribute("data-value", str(expected))
    assert sum(int(t or 0) for t in cells.all_text_contents()) == expected


def visible_ids(page: Any) -> list[str]:
    return [
        row.get_attribute("data-invocation")
        for row in page.locator('[data-table="invocations"] tbody tr').all()
    ]


def expect_total(page: Any, expected: int) -> None:
    expect(page.locator("[data-total]")).to_have_attribute(
        "data-total", str(expected), timeout=LIVE_TIMEOUT_MS
    )


def test_invocation_filters_change_the_url_and_the_rows(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    window = in_window(dataset)
    page = open_page(tab, server, f"/invocations?{dataset.range_query()}")
    expect_total(page, count(dataset.url, invocations, window))
    expect(page.locator('[data-table="invocations"] tbody tr')).to_have_count(50)
    newest = rows(
        dataset.url,
        sa.select(invocations.c.id)
        .where(window)
        .order_by(invocations.c.created_at.desc(), invocations.c.id)
        .limit(100),
    )
    assert visible_ids(page) == [str(r["id"]) for r in newest[:50]]

    page.locator("[data-page-next]").click()
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(page.locator('[data-table="invocations"] tbody tr').first).to_have_attribute(
        "data-invocation", str(newest[50]["id"])
    )
    assert visible_ids(page) == [str(r["id"]) for r in newest[50:100]]

    # A status filter goes back to page 1 and keeps the time range.
    page.locator('[data-filter-status="failed"]').click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    assert "page=" not in page.url and "range=custom" in page.url
    failed = count(dataset.url, invocations, window, invocations.c.status == "failed")
    expect_total(page, failed)
    statuses = {
        row.get_attribute("data-status")
        for row in page.locator('[data-table="invocations"] tbody tr').all()
    }
    assert statuses == {"failed"}

    page.locator('[data-filter-status="failed"]').click()
    page.locator('[data-filter="children"]').check()
    expect(page).to_have_url(re.compile(r"children=hide"))
    expect_total(
        page, count(dataset.url, invocations, window, invocations.c.source_job_id.is_(None))
    )

    page.locator('[data-filter="fn"]').select_option("users_events")
    expect(page).to_have_url(re.compile(r"fn=users_events"))
    expect_total(
        page,
        count(
            dataset.url,
            invocations,
            window,
            invocations.c.source_job_id.is_(None),
            invocations.c.source_function == "users_events",
        ),
    )
    page.locator('[data-filter="detected"]').check()
    expect_total(
        page,
        count(
            dataset.url,
            invocations,
            window,
            invocations.c.source_job_id.is_(None),
            invocations.c.source_function == "users_events",
            invocations.c.events_detected_count > 0,
        ),
    )
    # The whole state is in the URL: a reload shows the same rows.
    before = visible_ids(page)
    page.reload()
    expect(page.locator('[data-filter="detected"]')).to_be_checked()
    expect(page.locator('[data-table="invocations"] tbody tr').first).to_have_attribute(
        "data-invocation", before[0]
    )
    assert visible_ids(page) == before

    page.locator("[data-clear-filters]").click()
    page.locator('[data-filter="errors"]').check()
    expect_total(page, count(dataset.url, invocations, window, invocations.c.status.in_(BAD)))
    tab.screenshot("invocations-errors")


def test_duration_job_and_error_type_filters_compose(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    window = in_window(dataset)
    page = open_page(tab, server, f"/invocations?{dataset.range_query()}")
    expect_total(page, count(dataset.url, invocations, window))

    page.locator('[data-filter="min_ms"]').fill("200")
    page.locator('[data-filter="min_ms"]').press("Enter")
    expect(page).to_have_url(re.compile(r"min_ms=200"))
    slow = invocations.c.total_duration_ms >= 200
    expect_total(page, count(dataset.url, invocations, window, slow))

    # A job name and an error type mean one job of the invocation: that one failed so.
    failing = rows(
        dataset.url,
        sa.select(job_executions.c.job_name, job_executions.c.error_type)
        .where(job_executions.c.error_type.is_not(None))
        .limit(1),
    )[0]
    page.locator('[data-filter="job"]').select_option(failing["job_name"])
    page.locator('[data-filter="error"]').select_option(failing["error_type"])
    expect(page).to_have_url(re.compile(rf"error={failing['error_type']}"))
    assert f"job={failing['job_name']}" in page.url and "min_ms=200" in page.url
    that_job = sa.select(job_executions.c.invocation_id).where(
        job_executions.c.job_name == failing["job_name"],
        job_executions.c.error_type == failing["error_type"],
    )
    expected = count(dataset.url, invocations, window, slow, invocations.c.id.in_(that_job))
    expect_total(page, expected)
    assert expected > 0
    page.locator('[data-filter="min_ms"]').fill("")
    page.locator('[data-filter="min_ms"]').press("Enter")
    expect_total(page, count(dataset.url, invocations, window, invocations.c.id.in_(that_job)))
    assert "min_ms" not in page.url


def test_a_log_line_search_lands_on_the_line_in_its_job(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    page = open_page(tab, server, f"/invocations?{dataset.range_query()}")
    expect(page.locator('[data-table="invocations"] tbody tr').first).to_be_visible()
    search(page, "log:rejected the entry")
    lines = rows(
        dataset.url,
        sa.select(job_logs.c.id, job_logs.c.invocation_id, job_logs.c.job_execution_id).where(
            job_logs.c.message.ilike("%rejected the entry%"),
            job_logs.c.created_at >= dataset.window_start,
            job_logs.c.created_at < dataset.window_end,
        ),
    )
    assert len(lines) >= 1
    matches = page.locator("[data-log-matches]")
    expect(matches).to_have_attribute("data-log-matches", str(len(lines)))
    # The invocations in the range that wrote such lines are listed too.
    writers = sa.select(job_logs.c.invocation_id).where(
        job_logs.c.message.ilike("%rejected the entry%")
    )
    expect_total(
        page, count(dataset.url, invocations, in_window(dataset), invocations.c.id.in_(writers))
    )
    # Plain text finds log lines as well (no prefix needed).
    search(page, "marked fulfilled")
    fulfilled = count(
        dataset.url,
        job_logs,
        job_logs.c.message.ilike("%marked fulfilled%"),
        job_logs.c.created_at >= dataset.window_start,
        job_logs.c.created_at < dataset.window_end,
    )
    assert fulfilled > 10  # more than a page: the lines are paged on the server
    expect(matches).to_have_attribute("data-log-matches", str(fulfilled))
    expect(page.locator("[data-log-match]")).to_have_count(10)
    page.get_by_role("button", name="Next log lines").click()
    expect(page.locator("[data-log-page]")).to_contain_text("2 /")
    # The other filters scope the lines too: only lines of the invocations they keep.
    page.locator('[data-filter-status="failed"]').click()
    of_failed = sa.select(invocations.c.id).where(invocations.c.status == "failed")
    expect(matches).to_have_attribute(
        "data-log-matches",
        str(
            count(
                dataset.url,
                job_logs,
                job_logs.c.message.ilike("%marked fulfilled%"),
                job_logs.c.created_at >= dataset.window_start,
                job_logs.c.created_at < dataset.window_end,
                job_logs.c.invocation_id.in_(of_failed),
            )
        ),
    )
    page.locator('[data-filter-status="failed"]').click()

    search(page, "log:rejected the entry")
    line = lines[0]
    page.locator(f'[data-log-match="{line["id"]}"] [data-log-match-link]').click()
    expect(page).to_have_url(re.compile(rf"/invocations/{line['invocation_id']}\?.*tab=logs"))
    target = page.locator(f'[data-log="{line["id"]}"]')
    expect(target).to_have_class(re.compile(r"\btarget\b"))
    expect(target).to_be_in_viewport()
    expect(page.locator("[data-log-job]")).to_have_value(str(line["job_execution_id"]))


def search(page: Any, text: str) -> None:
    box = page.locator('input[name="q"]')
    box.fill(text)
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/invocations\?.*q="))


def test_search_by_correlation_user_row_and_payload_text(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    page = open_page(tab, server, f"/invocations?{dataset.range_query()}")
    expect(page.locator('[data-table="invocations"] tbody tr').first).to_be_visible()

    cascade = rows(
        dataset.url,
        sa.select(invocations.c.correlation_id)
        .where(invocations.c.source_job_id.is_not(None))
        .limit(1),
    )[0]
    search(page, f"corr:{cascade['correlation_id']}")
    expected = count(
        dataset.url, invocations, invocations.c.correlation_id == cascade["correlation_id"]
    )
    assert expected >= 2
    expect_total(page, expected)

    search(page, "user:maria")
    expect_total(
        page,
        count(
            dataset.url,
            invocations,
            in_window(dataset),
            sa.or_(
                invocations.c.source_user_email.ilike("%maria%"),
                invocations.c.source_user_role == "maria",
            ),
        ),
    )

    search(page, f"shipments:{dataset.row_id}")
    expect_total(page, 1)
    expect(page.locator('[data-table="invocations"] tbody tr')).to_have_attribute(
        "data-invocation", dataset.big_invocation_id
    )
    expect(page.locator("[data-record]")).to_have_attribute(
        "data-record", f"shipments:{dataset.row_id}"
    )

    # Text deep inside a payload of tens of KB.
    search(page, dataset.needle)
    expect_total(page, 1)
    expect(page.locator('[data-table="invocations"] tbody tr')).to_have_attribute(
        "data-invocation", dataset.big_invocation_id
    )

    # An invocation id finds it whatever the time range.
    page.goto(f"{server.base_url}/invocations?range=1h&q={dataset.big_invocation_id}")
    expect_total(page, 1)
    tab.screenshot("invocations-search")


def test_invocation_detail_timeline_diff_and_logs(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    invocation_id = dataset.big_invocation_id
    page = open_page(tab, server, f"/invocations/{invocation_id}")
    expect(page.locator("[data-waterfall]")).to_be_visible()
    jobs = rows(
        dataset.url,
        sa.select(job_executions.c.id, job_executions.c.status, job_executions.c.attempts).where(
            job_executions.c.invocation_id == invocation_id
        ),
    )
    events = rows(
        dataset.url,
        sa.select(event_executions.c.status).where(
            event_executions.c.invocation_id == invocation_id
        ),
    )
    assert len(events) == 50
    expect(page.locator('[data-wf-row="job"]')).to_have_count(len(jobs))
    shown_events = [e for e in events if e["status"] != "not_detected"]
    expect(page.locator('[data-wf-row="event"]')).to_have_count(len(shown_events))
    hidden = len(events) - len(shown_events)
    expect(page.locator('[data-wf-row="undetected"]')).to_contain_text(
        f"{hidden} events not detected"
    )
    statuses = Counter(e["status"] for e in shown_events)
    assert statuses["detection_failed"] == 1 and statuses["completed"] == len(BIG_DETECTED)
    expect(page.locator('[data-wf-row="event"][data-status="detection_failed"]')).to_have_count(1)

    # Clicking a job shows its details beside the waterfall.
    failed_job = next(j for j in jobs if j["status"] == "failed")
    page.locator(f'[data-wf-key="{failed_job["id"]}"]').click()
    expect(page.locator(f'[data-job-panel="{failed_job["id"]}"]')).to_contain_text(
        "ledger unavailable"
    )
    retried = next(j for j in jobs if j["attempts"] > 1)
    retried_row = page.locator(f'[data-wf-key="{retried["id"]}"]')
    expect(retried_row).to_contain_text(f"\u00d7{retried['attempts']}")
    # One bar per recorded attempt: the first failed, the last completed.
    attempts = retried_row.locator(".wf-bar[data-attempt]")
    expect(attempts).to_have_count(retried["attempts"])
    expect(attempts.first).to_have_class(re.compile(r"\btone-failed\b"))
    expect(attempts.last).to_have_class(re.compile(r"\btone-completed\b"))
    retried_row.press("Enter")  # rows are reachable by keyboard
    expect(page.locator(f'[data-job-panel="{retried["id"]}"] [data-attempt]')).to_have_count(
        retried["attempts"]
    )
    tab.screenshot("invocation-timeline")

    # Dragging across the bars zooms into that window; "Whole run" goes back.
    waterfall = page.locator("[data-waterfall]")
    track = page.locator('[data-wf-row="invocation"] .wf-track').bounding_box()
    y = track["y"] + track["height"] / 2
    page.mouse.move(track["x"] + track["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * 0.5, y, steps=5)
    page.mouse.up()
    expect(waterfall).to_have_attribute("data-window", re.compile(r"^[\d.]+-[\d.]+$"))
    start, end = map(float, waterfall.get_attribute("data-window").split("-"))
    total = rows(
        dataset.url,
        sa.select(invocations.c.total_duration_ms).where(invocations.c.id == invocation_id),
    )[0]["total_duration_ms"]
    assert end - start == pytest.approx(total / 4, rel=0.2)
    expect(page.locator(f'[data-job-panel="{retried["id"]}"]')).to_be_visible()  # no click
    page.locator("[data-wf-reset]").click()
    expect(waterfall).to_have_attribute("data-window", "")

    # Row change: the changed columns are highlighted.
    page.locator('[data-tab="changes"]').click()
    payload = rows(
        dataset.url,
        sa.select(invocations.c.source_event_payload).where(invocations.c.id == invocation_id),
    )[0]["source_event_payload"]
    old, new = payload["event"]["data"]["old"], payload["event"]["data"]["new"]
    changed = sorted(c for c in new if old.get(c) != new.get(c))
    expect(page.locator('.diff-row[data-changed="1"]')).to_have_count(len(changed))
    assert (
        sorted(
            r.get_attribute("data-column")
            for r in page.locator('.diff-row[data-changed="1"]').all()
        )
        == changed
    )
    expect(page.locator("[data-changed-count]")).to_have_text(str(len(changed)))
    tab.screenshot("invocation-changes")

    # Logs: the level filter and the jump to the first error.
    page.locator('[data-tab="logs"]').click()
    logs = rows(
        dataset.url,
        sa.select(job_logs.c.id, job_logs.c.level, job_logs.c.seq)
        .where(job_logs.c.invocation_id == invocation_id)
        .order_by(job_logs.c.seq),
    )
    levels = Counter(line["level"] for line in logs)
    assert levels["error"] >= 1 and levels["warn"] >= 1 and levels["info"] >= 1
    # The job selected on the timeline filters the logs; show every step again.
    expect(page.locator("[data-log-job]")).to_have_value(str(retried["id"]))
    page.locator("[data-log-job]").select_option("")
    expect(page.locator("[data-log]")).to_have_count(len(logs))
    for level in ("debug", "info", "warn"):
        page.locator(f'[data-level-filter="{level}"]').click()
    expect(page.locator("[data-log]")).to_have_count(levels["error"])
    assert {line.get_attribute("data-level") for line in page.locator("[data-log]").all()} == {
        "error"
    }
    page.locator('[data-level-filter="error"]').click()  # the last level off: all levels back
    expect(page.locator("[data-log]")).to_have_count(len(logs))
    page.locator("[data-jump-error]").click()
    first_error = next(line for line in logs if line["level"] == "error")
    flashed = page.locator(f'[data-log="{first_error["id"]}"]')
    expect(flashed).to_have_class(re.compile(r"\bflash\b"))
    expect(flashed).to_be_in_viewport()
    tab.screenshot("invocation-logs")

    # An event whose handler returned while one of its jobs failed is not a green success.
    page.locator('[data-tab="jobs"]').click()
    dispatched = page.locator(".event-card", has_text=BIG_DETECTED[0])
    expect(dispatched.locator('.badge[data-status="jobs_failed"]')).to_have_text(
        "1 of 2 jobs failed"
    )

    page.locator('[data-tab="payload"]').click()
    expect(page.locator(".json").first).to_contain_text(dataset.needle)


def test_flow_shows_the_cascade_nodes_and_edges(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    child = rows(
        dataset.url,
        sa.select(invocations.c.id, invocations.c.source_job_id, invocations.c.correlation_id)
        .where(invocations.c.source_job_id.is_not(None), in_window(dataset))
        .limit(1),
    )[0]
    parent_job = rows(
        dataset.url,
        sa.select(job_executions.c.invocation_id).where(
            job_executions.c.id == child["source_job_id"]
        ),
    )[0]
    root_id = str(parent_job["invocation_id"])
    group = rows(
        dataset.url,
        sa.select(invocations.c.id, invocations.c.source_job_id).where(
            invocations.c.correlation_id == child["correlation_id"]
        ),
    )
    ids = [str(r["id"]) for r in group]
    events = rows(
        dataset.url,
        sa.select(
            event_executions.c.id,
            event_executions.c.invocation_id,
            event_executions.c.status,
            event_executions.c.detected,
        ).where(event_executions.c.invocation_id.in_(ids)),
    )
    jobs = rows(
        dataset.url,
        sa.select(job_executions.c.id, job_executions.c.event_execution_id).where(
            job_executions.c.invocation_id.in_(ids)
        ),
    )

    nodes = {f"inv:{i}" for i in ids}
    edges = set()
    for event in events:
        if event["status"] == "skipped":
            continue  # its module listens elsewhere: no node
        if event["status"] == "not_detected":
            nodes.add(f"und:{event['invocation_id']}")
            edges.add((f"inv:{event['invocation_id']}", f"und:{event['invocation_id']}"))
        else:
            nodes.add(f"ev:{event['id']}")
            edges.add((f"inv:{event['invocation_id']}", f"ev:{event['id']}"))
    for job_row in jobs:
        nodes.add(f"job:{job_row['id']}")
        edges.add((f"ev:{job_row['event_execution_id']}", f"job:{job_row['id']}"))
    for inv in group:
        if inv["source_job_id"] is not None:
            edges.add((f"job:{inv['source_job_id']}", f"inv:{inv['id']}"))

    page = open_page(tab, server, f"/flow/{root_id}")
    expect(page.locator("[data-node]")).to_have_count(len(nodes))
    assert {n.get_attribute("data-node") for n in page.locator("[data-node]").all()} == nodes
    drawn = {
        (e.get_attribute("data-edge-from"), e.get_attribute("data-edge-to"))
        for e in page.locator("[data-edge-from]").all()
    }
    assert drawn == edges
    cascade_edges = page.locator("path.edge-cascade")
    expect(cascade_edges).to_have_count(sum(1 for inv in group if inv["source_job_id"] is not None))
    expect(page.locator(f'[data-node="inv:{root_id}"]')).to_have_class(re.compile(r"\bfocus\b"))

    # Click a job for its details; zoom changes the view.
    layer = page.locator("[data-flow-layer]")
    before = layer.get_attribute("style")
    page.locator("[data-zoom-in]").click()
    expect(layer).not_to_have_attribute("style", before)
    source_job = str(child["source_job_id"])
    page.locator(f'[data-node="job:{source_job}"]').click()
    expect(page).to_have_url(re.compile(rf"node=job%3A{source_job}|node=job:{source_job}"))
    expect(page.locator('[data-detail="job"]')).to_be_visible()
    expect(page.locator('[data-detail="job"]')).to_contain_text("Triggered")
    tab.screenshot("flow")


def test_flow_of_the_wide_invocation_groups_undetected_events(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    page = open_page(tab, server, f"/flow/{dataset.big_invocation_id}")
    undetected = count(
        dataset.url,
        event_executions,
        event_executions.c.invocation_id == dataset.big_invocation_id,
        event_executions.c.status == "not_detected",
    )
    group = page.locator(f'[data-node="und:{dataset.big_invocation_id}"]')
    expect(group).to_contain_text(f"{undetected} not detected")
    group.click()
    expect(page.locator('[data-detail="undetected"] tbody tr')).to_have_count(undetected)
    tab.screenshot("flow-wide")


def test_running_nodes_tick_and_the_flow_follows_the_writes(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    # Rows as the plugin writes them while an invocation runs (status running, no end).
    event_id, job_id = (str(uuid.uuid4()) for _ in range(2))
    started = datetime.now(UTC) - timedelta(seconds=4)
    running = invocation_row(
        started,
        "running_events",
        status="running",
        source_table="public.orders",
        source_operation="UPDATE",
    )
    invocation_id = running["id"]
    execute(dataset.url, sa.insert(invocations).values(running))
    execute(
        dataset.url,
        sa.insert(event_executions).values(
            id=event_id,
            invocation_id=invocation_id,
            created_at=started,
            updated_at=started,
            event_name="orders.slow",
            detected=True,
            detection_duration_ms=3,
            status="handling",
        ),
    )
    execute(
        dataset.url,
        sa.insert(job_executions).values(
            id=job_id,
            invocation_id=invocation_id,
            event_execution_id=event_id,
            created_at=started,
            updated_at=started,
            started_at=started,
            job_name="slow_export",
            status="running",
        ),
    )
    page = open_page(tab, server, f"/flow/{invocation_id}")
    ticking = page.locator(f'[data-node="job:{job_id}"] [data-ticking]')
    expect(ticking).to_be_visible()
    first = ticking.inner_text()
    expect(ticking).not_to_have_text(first, timeout=LIVE_TIMEOUT_MS)  # the clock runs

    ended = datetime.now(UTC)
    execute(
        dataset.url,
        sa.update(job_executions)
        .where(job_executions.c.id == job_id)
        .values(status="completed", ended_at=ended, duration_ms=4321, updated_at=ended),
    )
    job_node = page.locator(f'[data-node="job:{job_id}"]')
    expect(job_node).to_have_attribute("data-status", "completed", timeout=LIVE_TIMEOUT_MS)
    expect(job_node).to_contain_text("4.32 s")
    tab.screenshot("flow-running")


def test_analytics_counts_failure_rates_and_error_groups(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    page = open_page(tab, server, f"/analytics?{dataset.range_query()}")
    window = sa.and_(
        job_executions.c.created_at >= dataset.window_start,
        job_executions.c.created_at < dataset.window_end,
    )
    jobs = rows(
        dataset.url,
        sa.select(
            job_executions.c.job_name,
            job_executions.c.status,
            job_executions.c.duration_ms,
            job_executions.c.error_type,
        ).where(window),
    )
    by_name: dict[str, list[dict[str, Any]]] = {}
    for job_row in jobs:
        by_name.setdefault(job_row["job_name"], []).append(job_row)
    expect(page.locator('[data-table="jobs"] tbody tr')).to_have_count(len(by_name))
    for name, runs in by_name.items():
        row = page.locator(f'[data-table="jobs"] tr[data-job-name="{name}"]')
        expect(row).to_have_attribute("data-runs", str(len(runs)))
        failed = sum(r["status"] in ("failed", "timeout", "cancelled") for r in runs)
        expect(row).to_have_attribute("data-failed", str(failed))
        durations = [r["duration_ms"] for r in runs if r["duration_ms"] is not None]
        assert float(row.get_attribute("data-p95")) == pytest.approx(
            percentile_cont(durations, 0.95)
        )
    expect(kpi(page, "jobs_run")).to_have_attribute("data-value", str(len(jobs)))

    events = rows(
        dataset.url,
        sa.select(event_executions.c.event_name, event_executions.c.detected).where(
            event_executions.c.created_at >= dataset.window_start,
            event_executions.c.created_at < dataset.window_end,
        ),
    )
    detected = Counter(e["event_name"] for e in events if e["detected"])
    checked = Counter(e["event_name"] for e in events)
    for name in ("orders.shipped", BIG_DETECTED[0]):
        row = page.locator(f'[data-table="events"] tr[data-event-name="{name}"]')
        expect(row).to_have_attribute("data-checked", str(checked[name]))
        expect(row).to_have_attribute("data-detected", str(detected[name]))

    # Failures grouped by error type.
    bad = Counter(
        r["error_type"] or "" for r in jobs if r["status"] in ("failed", "timeout", "cancelled")
    )
    assert len(bad) >= 2
    for error_type, number in bad.items():
        expect(page.locator(f'[data-failure-group="type:{error_type}"]')).to_have_attribute(
            "data-count", str(number)
        )
    rejected = count(
        dataset.url, invocations, in_window(dataset), invocations.c.status == "rejected"
    )
    if rejected:
        expect(page.locator('[data-failure-group="rejected"]')).to_have_attribute(
            "data-count", str(rejected)
        )
    expect(page.locator('[data-table="slowest"] tbody tr')).to_have_count(10)
    expect(page.locator('[data-chart="percentiles"]')).to_be_visible()
    tab.screenshot("analytics")


def test_a_new_invocation_appears_without_reload(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    page = open_page(tab, server, "/invocations?range=1h")
    expect(page.locator("[data-total]")).to_have_attribute("data-total", re.compile(r"^\d+$"))
    expect(page.locator("[data-live]")).to_have_attribute(
        "data-live", "live", timeout=LIVE_TIMEOUT_MS
    )
    before = int(page.locator("[data-total]").get_attribute("data-total"))

    result = record_shipment(dataset.url, "shp_live", "live_events")
    expect(
        page.locator(f'[data-table="invocations"] tr[data-invocation="{result.invocation_id}"]')
    ).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("[data-total]")).to_have_attribute(
        "data-total", str(before + 1), timeout=LIVE_TIMEOUT_MS
    )
    tab.screenshot("invocations-live")

    # The overview's KPI and recent list follow too.
    page.goto(f"{server.base_url}/?range=1h")
    expect(
        page.locator(f'[data-table="recent"] tr[data-invocation="{result.invocation_id}"]')
    ).to_be_visible()
    shown = kpi_value(page, "invocations")
    second = record_shipment(dataset.url, "shp_live2", "live_events")
    expect(
        page.locator(f'[data-table="recent"] tr[data-invocation="{second.invocation_id}"]')
    ).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(kpi(page, "invocations")).to_have_attribute(
        "data-value", str(int(shown) + 1), timeout=LIVE_TIMEOUT_MS
    )


def test_dropped_records_show_a_data_incomplete_banner(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    page = open_page(tab, server, "/")
    expect(kpi(page, "invocations")).to_be_visible()
    expect(page.locator('[data-banner="incomplete"]')).to_have_count(0)
    now = datetime.now(UTC)
    execute(
        dataset.url,
        sa.insert(plugin_instances).values(
            id="worker-1:4242:test",
            created_at=now,
            updated_at=now,
            hostname="worker-1",
            pid=4242,
            writer="postgres",
            records_dropped=7,
            dropped_by_reason={"buffer_full": 5, "payload_bodies": 2},
        ),
    )
    try:
        banner = page.locator('[data-banner="incomplete"]')
        expect(banner).to_be_visible(timeout=LIVE_TIMEOUT_MS)
        expect(banner).to_have_attribute("data-dropped", "7")
        expect(banner).to_contain_text("buffer_full")
        tab.screenshot("overview-data-incomplete")
    finally:
        execute(
            dataset.url,
            sa.delete(plugin_instances).where(plugin_instances.c.id == "worker-1:4242:test"),
        )


def test_an_unreachable_api_is_shown_and_recovers(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    # While offline the browser itself logs the failed requests: those are expected.
    tab.allowed_errors = r"ERR_INTERNET_DISCONNECTED|Failed to load resource|WebSocket connection"
    page = open_page(tab, server, "/invocations")
    expect(page.locator('[data-table="invocations"] tbody tr').first).to_be_visible()
    tab.context.set_offline(True)
    banner = page.locator('[data-banner="offline"]')
    expect(banner).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("[data-live]")).to_have_attribute("data-live", "offline")
    expect(
        page.locator('[data-table="invocations"] tbody tr').first
    ).to_be_visible()  # last data stays
    tab.screenshot("offline")
    tab.context.set_offline(False)
    expect(banner).to_have_count(0, timeout=LIVE_TIMEOUT_MS)


def test_keyboard_navigation(tab: Any, server: RunningServer, dataset: WebDataset) -> None:
    page = open_page(tab, server, f"/?{dataset.range_query()}")
    expect(kpi(page, "invocations")).to_be_visible()
    page.keyboard.press("g")
    page.keyboard.press("i")
    expect(page).to_have_url(re.compile(r"/invocations\?range=custom"))
    first = page.locator('[data-table="invocations"] tbody tr').first
    expect(first).to_be_visible()
    page.keyboard.press("j")
    expect(page.locator('[data-table="invocations"] tbody tr').nth(1)).to_have_class(
        re.compile(r"\bselected\b")
    )
    second_id = (
        page.locator('[data-table="invocations"] tbody tr').nth(1).get_attribute("data-invocation")
    )
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/invocations/{second_id}"))
    page.keyboard.press("/")
    expect(page.locator('input[name="q"]')).to_be_focused()


def test_every_module_and_library_is_served_with_a_javascript_type(server: RunningServer) -> None:
    index = server.client.get("/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    # The page's URLs are relative: it works wherever the app is mounted.
    assert '<base href="/">' in index.text
    imports = re.findall(r'"\.(/vendor/[^"]+\.m?js)"', index.text)
    assert len(imports) == 7
    for path in [*imports, "/app/main.js", "/app/lib/graphql.js"]:
        response = server.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/javascript"), path
    for page in ("/invocations", "/invocations/abc", "/flow/abc", "/analytics", "/settings"):
        assert server.client.get(page).text == index.text
    # Any other page a browser asks for: the client (it says what is missing), status 404.
    # Other clients get a plain 404; the app's own answers (redirects, 405) come first.
    html = {"accept": "text/html,application/xhtml+xml"}
    unknown = server.client.get("/no/such/page", headers=html)
    assert (unknown.status_code, unknown.text) == (404, index.text)
    assert server.client.get("/no/such/page").text == "Not Found"
    assert server.client.post("/no/such/page", headers=html).text == "Not Found"
    assert server.client.get("/invocations/", headers=html).status_code == 307
    assert server.client.put("/healthz", headers=html).status_code == 405
    # Only the packages the client imports are served; nothing above them.
    assert server.client.get("/vendor/.package-lock.json").status_code == 404
    assert server.client.get("/vendor/preact/../../package.json").status_code == 404
    assert server.client.get("/app/../../pyproject.toml").status_code == 404
    # The API and health routes are untouched.
    assert server.client.get("/healthz").json() == {"status": "ok"}
    assert server.post("{ invocations_aggregate { aggregate { count } } }")["data"]


def test_a_missing_npm_install_says_what_to_run(tmp_path: Path, dataset: WebDataset) -> None:
    web = Path(__file__).resolve().parents[1] / "web"
    copy = tmp_path / "web"
    copy.mkdir()
    (copy / "index.html").write_text((web / "index.html").read_text())
    (copy / "package.json").write_text((web / "package.json").read_text())
    (copy / "app").mkdir()
    with serving(Settings(database_url=dataset.url, rollup_interval=0, web_dir=copy)) as running:
        response = running.client.get("/")
        assert response.status_code == 503
        assert "make web-deps" in response.text and "preact" in response.text
        assert running.client.get("/healthz").status_code == 200


def test_invocation_page_shows_skipped_modules_as_skipped_not_as_events(
    tab: Any, server: RunningServer, dataset: WebDataset
) -> None:
    # A demo order update: the order modules are checked, the others listen elsewhere.
    [row] = rows(
        dataset.url,
        sa.select(event_executions.c.invocation_id.label("id"))
        .join(invocations, invocations.c.id == event_executions.c.invocation_id)
        .where(
            invocations.c.source_operation == "UPDATE",
            event_executions.c.event_name == "orders.created",
            event_executions.c.status == "skipped",
        )
        .order_by(invocations.c.created_at.desc())
        .limit(1),
    )
    statuses = {
        e["event_name"]: e["status"]
        for e in rows(
            dataset.url,
            sa.select(event_executions.c.event_name, event_executions.c.status).where(
                event_executions.c.invocation_id == row["id"]
            ),
        )
    }
    skipped = sorted(name for name, status in statuses.items() if status == "skipped")
    assert "orders.created" in skipped and "payments.failed" in skipped
    page = open_page(tab, server, f"/invocations/{row['id']}")
    quiet = ("skipped", "not_detected")
    shown = [name for name, status in statuses.items() if status not in quiet]
    # The waterfall has no row for them (their detectors did not run)…
    expect(page.locator('[data-wf-row="event"]')).to_have_count(len(shown))
    # …and the events tab lists them in a card of their own, not as events.
    page = open_page(tab, server, f"/invocations/{row['id']}?tab=jobs")
    card = page.locator("[data-skipped]")
    expect(card).to_be_visible()
    assert sorted(name.strip() for name in card.inner_text().split(",")) == skipped
    expect(page.locator(".event-card", has_text=f"{len(skipped)} events skipped")).to_be_visible()
    expect(page.locator(".event-card")).to_have_count(
        len(shown) + 1 + ("not_detected" in statuses.values())
    )
    expect(page.locator('[data-status="skipped"]')).to_have_count(0)
