"""The service as a package: a wheel built from this checkout, installed into a fresh
virtualenv outside it, serves the demo, its GraphQL API, the web client with its npm
libraries, and GraphiQL from local files.

The wheel is built once for the module (`pip wheel`, as `make wheel`), and installed with
its `service` extra from the package registry (pip's cache makes repeated runs quick).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench._service_process import wait_for_health
from tests.support.pgserver import free_port

ROOT = Path(__file__).resolve().parents[1]
PIP_TIMEOUT_S = 900


def _run(*command: str | Path, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # A stale build/ would carry files the sources no longer have.
    subprocess.run(["rm", "-rf", str(ROOT / "build")], check=True)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", out, ROOT, cwd=out)
    (built,) = out.glob("event_detector-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv, outside the checkout, with `event-detector[service]` from the wheel."""
    venv = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", venv, cwd=venv)
    _run(venv / "bin" / "pip", "install", "--quiet", f"{wheel}[service]", cwd=venv)
    return venv


def test_the_library_alone_needs_only_tenacity(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    required = [
        line for line in lines if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert required == ["Requires-Dist: tenacity>=9.2"]


def test_the_wheel_carries_the_assets_and_only_the_needed_npm_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    packaged = "service/packaged/"
    for needed in (
        "hasura/metadata/databases/databases.yaml",
        "schema.sql",
        "examples/events/orders.created.py",
        "web/index.html",
        "web/app/main.js",
        "web/node_modules/preact/dist/preact.module.js",
        "web/node_modules/graphql-ws/dist/client.js",
        "web/graphiql/index.html",
        "web/graphiql/node_modules/graphiql/graphiql.min.js",
        "web/graphiql/node_modules/react/LICENSE",
        "detector/observability/migrations/env.py",
    ):
        path = needed if needed.startswith("detector/") else packaged + needed
        assert path in names, path
    # The modules the client imports from graphql (its names adapter), not its typings;
    # nor the packages' dependencies nor GraphiQL's sources.
    assert f"{packaged}web/node_modules/graphql/language/index.mjs" in names
    assert not any(n.endswith(".d.ts") for n in names)
    assert not any(
        n.startswith(f"{packaged}web/graphiql/node_modules/graphiql/esm/") for n in names
    )
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


@pytest.fixture(scope="module")
def demo_server(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`event-detector serve --demo` from the installed package, run outside the checkout."""
    workdir = tmp_path_factory.mktemp("elsewhere")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("EVENT_DETECTOR_")
    }
    located = subprocess.run(
        [installed / "bin" / "python", "-c", "import service.assets as a; print(a.root())"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(located.stdout.strip()).is_relative_to(installed), "not the installed copy"
    port = free_port()
    command = [installed / "bin" / "event-detector", "serve", "--demo", "--port", str(port)]
    log = workdir / "serve.log"  # a file, not a pipe nobody reads while it serves
    with log.open("wb") as output:  # the child keeps its own handle
        process = subprocess.Popen(
            [*command, "--db", "sqlite:///demo.db"],
            cwd=workdir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_health(process, base, timeout=180)  # the demo data comes first
        except RuntimeError:
            output = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"serve --demo did not start:\n{output}") from None
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_installed_demo_answers_graphql(demo_server: str) -> None:
    answer = httpx.post(
        f"{demo_server}/v1/graphql",
        json={"query": "{ invocations_aggregate { aggregate { count } } }"},
    ).json()
    assert answer["data"]["invocations_aggregate"]["aggregate"]["count"] > 0


@pytest.mark.browser
def test_the_installed_web_client_and_graphiql_load_in_chromium(demo_server: str, tab: Any) -> None:
    from playwright.sync_api import expect

    responses: dict[str, int] = {}
    tab.page.on("response", lambda response: responses.__setitem__(response.url, response.status))
    tab.page.goto(f"{demo_server}/")
    # The overview lists recent invocations, read through the API by the libraries.
    expect(tab.page.locator('a[href^="/invocations/"]').first).to_be_visible()
    libraries = [url for url in responses if "/vendor/" in url]
    for package in ("preact", "htm", "graphql-ws", "@dagrejs/dagre", "uplot"):
        assert any(f"/vendor/{package}/" in url for url in libraries), package
    assert all(status < 400 for status in responses.values()), responses

    with tab.page.expect_response(
        lambda response: (
            response.url == f"{demo_server}/v1/graphql" and response.request.method == "POST"
        )
    ) as introspection:
        tab.page.goto(f"{demo_server}/v1/graphql")
    assert introspection.value.ok
    expect(tab.page.locator(".graphiql-container")).to_be_visible()
    assert all(url.startswith((demo_server, "data:")) for url in responses), "a CDN was used"
