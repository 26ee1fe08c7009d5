"""Nothing secret and nothing restricted reaches the browser.

The service runs on PostgreSQL with every secret it can hold (admin secret, JWT key,
webhook secret, a database password) and `viewer` as the unauthorized role; the data
carries a marker in every column the viewer may not read (payloads, contexts, job
options, results, stacks, log data). A real Chromium opens every page of the web client
without credentials; every HTTP response (bodies and headers), every WebSocket frame,
the pages' HTML and the browser's storage are searched: no secret, no marker. Every file
the server serves under `/app/` and the vendored modules the page imports are searched
too.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from service.settings import REPO_ROOT, Settings
from tests.support import db
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.runtime import EXAMPLES_EVENTS
from tests.support.server import RunningServer, serving

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

ADMIN_SECRET = "adm1n-s3cret-never-in-the-browser"
JWT_KEY = "jwt-key-never-in-the-browser-0123456789abcdef"
WEBHOOK_SECRET = "w3bhook-s3cret-never-in-the-browser"
DB_PASSWORD = "db-passw0rd-never-in-the-browser"
MARKER = "RESTRICTED-7f3a9c"
SECRETS = (ADMIN_SECRET, JWT_KEY, WEBHOOK_SECRET, DB_PASSWORD)


def off_loop(function: Any, *args: Any) -> Any:
    # Playwright's sync API runs an event loop in this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


def marked_dataset() -> Any:
    """The API dataset with MARKER in every column the viewer may not read."""
    dataset = copy.deepcopy(build_dataset())
    for row in dataset.invocations:
        row["source_event_payload"] = {"op": "UPDATE", "note": MARKER}
        row["context_data"] = {"note": MARKER}
        row["error_stack"] = f"Traceback {MARKER}"
    for row in dataset.event_executions:
        row["detection_error_stack"] = row["handler_error_stack"] = f"Traceback {MARKER}"
    for row in dataset.job_executions:
        row["job_options"] = {"note": MARKER}
        row["result"] = {"note": MARKER}
        row["error_stack"] = f"Traceback {MARKER}"
    for row in dataset.job_logs:
        row["data"] = {"note": MARKER}
    return dataset


@pytest.fixture(scope="module")
def secured(postgres_admin_url: str) -> Iterator[tuple[RunningServer, Any]]:
    url = off_loop(db.run, db.create_postgres_database(postgres_admin_url))
    dataset = marked_dataset()
    try:
        off_loop(db.run, db.prepare_database(url))
        off_loop(db.run, insert_dataset(url, dataset))
        parts = urlsplit(url)
        # The test server trusts local connections: the password is carried, not checked.
        with_password = urlunsplit(
            parts._replace(netloc=f"{parts.username}:{DB_PASSWORD}@{parts.hostname}:{parts.port}")
        )
        settings = Settings(
            database_url=with_password,
            admin_secret=ADMIN_SECRET,
            jwt_secret=json.dumps({"type": "HS256", "key": JWT_KEY}),
            unauthorized_role="viewer",
            events_dir=EXAMPLES_EVENTS,
            webhook_functions=["orders"],
            webhook_secret=WEBHOOK_SECRET,
            rollup_interval=0,
        )
        with serving(settings) as running:
            yield running, dataset
    finally:
        off_loop(db.run, db.drop_postgres_database(postgres_admin_url, url))


def _assert_clean(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret reached the browser in {where}"
    assert MARKER not in text, f"restricted data reached the browser in {where}"


def test_no_secret_and_no_restricted_value_reaches_the_browser(
    tab: Any, secured: tuple[RunningServer, Any]
) -> None:
    server, dataset = secured
    page = tab.page
    frames: list[str] = []
    responses: list[Any] = []
    page.on("response", lambda response: responses.append(response))
    page.on(
        "websocket",
        lambda ws: ws.on(
            "framereceived",
            lambda payload: frames.append(payload if isinstance(payload, str) else repr(payload)),
        ),
    )
    failed = next(r for r in dataset.invocations if r["status"] == "failed")
    with_jobs = next(r for r in dataset.invocations if r["total_jobs_run"])
    pages = [
        "/",
        "/invocations",
        f"/invocations/{failed['id']}",
        f"/invocations/{with_jobs['id']}",
        f"/flow/{with_jobs['id']}",
        "/analytics",
        "/settings",
    ]
    seen = 0
    for path in pages:
        responses.clear()
        page.goto(f"{server.base_url}{path}")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)  # live results and late requests
        for response in list(responses):
            headers = json.dumps(response.all_headers())
            _assert_clean(f"{response.url} (headers)", headers)
            try:
                body = response.body()
            except Exception:  # a redirect or an aborted request has no body
                continue
            _assert_clean(response.url, body.decode("utf-8", "replace"))
            seen += 1
        _assert_clean(f"{path} (HTML)", page.content())
        storage = page.evaluate(
            "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),"
            " document.cookie])"
        )
        _assert_clean(f"{path} (storage)", storage)
    for frame in frames:
        _assert_clean("a WebSocket frame", frame)
    _assert_clean("cookies", json.dumps(tab.context.cookies()))
    assert seen > 20, "the pages loaded their modules and data"


def test_every_file_the_server_serves_to_the_browser_is_free_of_secrets(
    secured: tuple[RunningServer, Any],
) -> None:
    server, _ = secured
    web = REPO_ROOT / "web"
    paths = [f"/app/{p.relative_to(web / 'app').as_posix()}" for p in (web / "app").rglob("*")
             if p.is_file()]  # fmt: skip
    index = server.client.get("/").text
    imports = json.loads(re.search(r'<script type="importmap">(.*?)</script>', index, re.S)[1])
    paths += list(imports["imports"].values())
    paths += ["/", "/settings", "/healthz", "/metrics", "/nope", "/app/nope.js"]
    for path in paths:
        answer = server.client.get(path)
        assert answer.status_code in (200, 404), (path, answer.status_code)
        _assert_clean(path, answer.text + json.dumps(dict(answer.headers)))
    assert len(paths) > 20
