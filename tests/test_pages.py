"""The pages the app serves (web client, GraphiQL): based where they are mounted, and
allowed to load only the app's own files.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from service.endpoints.pages import security_headers, with_base
from tests.support.server import RunningServer, serving_module


@pytest.fixture(scope="module")
def server(module_sqlite_url: str) -> Iterator[RunningServer]:
    yield from serving_module(module_sqlite_url)


def sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def directives(policy: str) -> dict[str, list[str]]:
    parts = (directive.split() for directive in policy.split(";") if directive.strip())
    return {name: values for name, *values in parts}


def test_the_web_client_allows_only_its_own_files(server: RunningServer) -> None:
    page = server.client.get("/analytics")
    policy = directives(page.headers["content-security-policy"])
    import_map = re.search(r'<script type="importmap">(.*?)</script>', page.text, re.DOTALL)
    assert import_map is not None
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'", sha256(import_map.group(1))]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'self'"] and policy["base-uri"] == ["'self'"]
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    script = server.client.get("/app/main.js")
    assert script.headers["x-content-type-options"] == "nosniff"


def test_graphiql_gets_the_same_policy_with_runtime_styles(server: RunningServer) -> None:
    page = server.client.get("/v1/graphql", headers={"accept": "text/html"})
    policy = directives(page.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'"], "GraphiQL's page has no inline script"
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    file = server.client.get("/graphiql/graphiql.js")
    assert file.headers["content-type"].startswith("text/javascript")
    assert file.headers["x-content-type-options"] == "nosniff"
    assert server.client.get("/graphiql/package.json").status_code == 404


def test_the_base_follows_the_mount_point() -> None:
    page = '<html><head><base href="/"><title>t</title></head></html>'
    assert '<base href="/x/">' in with_base(page, "/x/")
    assert with_base("<html><head><title>t</title>", '/a"b/').startswith(
        '<html><head><base href="/a&quot;b/">'
    )
    # Inline styles are allowed by hash, unless runtime styles are asked for.
    styled = "<head><style>p { color: red }</style></head>"
    assert sha256("p { color: red }") in security_headers(styled)["content-security-policy"]


@pytest.mark.browser
def test_chromium_refuses_what_the_policy_does_not_allow(tab: Any, server: RunningServer) -> None:
    tab.allowed_errors = "Content Security Policy|ERR_BLOCKED_BY_CSP|Failed to fetch"
    tab.page.goto(f"{server.base_url}/settings")
    tab.page.wait_for_function("document.querySelector('#root nav') !== null")
    outcome = tab.page.evaluate(
        """async () => {
          const violations = [];
          // Three refusals are expected: the inline script, the foreign one, the fetch.
          const allSeen = new Promise((resolve) => {
            document.addEventListener('securitypolicyviolation', (e) => {
              violations.push(e.effectiveDirective);
              if (violations.length === 3) resolve();
            });
          });
          const inline = document.createElement('script');
          inline.textContent = 'window.injected = true';
          document.head.append(inline);
          const foreign = document.createElement('script');
          foreign.src = 'http://127.0.0.1:9/evil.js';
          document.head.append(foreign);
          let fetched = true;
          try { await fetch('http://127.0.0.1:9/steal'); } catch { fetched = false; }
          await allSeen;
          return { injected: window.injected === true, fetched, violations };
        }"""
    )
    assert outcome["injected"] is False and outcome["fetched"] is False
    assert {"script-src-elem", "connect-src"} <= set(outcome["violations"])
