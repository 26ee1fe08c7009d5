"""Node programs of `tests/gateway/` (a real Apollo gateway, a second subgraph, graphql-js),
run for tests on 127.0.0.1.

`make test` installs their npm packages (`tests/gateway/package.json`); a test that finds
them missing fails saying what to run.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

GATEWAY_DIR = Path(__file__).resolve().parents[1] / "gateway"
PACKAGES = (
    "@apollo/composition",
    "@apollo/gateway",
    "@apollo/server",
    "@apollo/subgraph",
    "graphql",
)


def node() -> str:
    """The `node` executable; fails the test when Node.js or the packages are missing."""
    executable = shutil.which("node")
    assert executable is not None, "Node.js is not installed (scripts/ensure-system-deps)"
    missing = [
        name
        for name in PACKAGES
        if not (GATEWAY_DIR / "node_modules" / name / "package.json").is_file()
    ]
    assert not missing, f"missing in tests/gateway/node_modules: {missing}; run `make gateway-deps`"
    return executable


@contextlib.contextmanager
def node_server(
    script: str, env: Mapping[str, str], *, startup_timeout: float = 60.0
) -> Iterator[str]:
    """Run `tests/gateway/<script>` until the block ends; yields the URL it printed.

    The program prints `ready <url>` once it listens; if it exits first (a composition
    error, say), the test fails with its output.
    """
    process = subprocess.Popen(
        [node(), str(GATEWAY_DIR / script)],
        cwd=GATEWAY_DIR,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        while True:
            try:
                line = lines.get(timeout=startup_timeout)
            except queue.Empty:
                raise AssertionError(f"{script} did not start in {startup_timeout} s") from None
            if line is None:
                process.wait(timeout=10)
                error = process.stderr.read() if process.stderr else ""
                raise AssertionError(f"{script} exited with {process.returncode}: {error}")
            if line.startswith("ready "):
                yield line.removeprefix("ready ").strip()
                return
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def run_node(script: Path, payload: Any) -> Any:
    """Run a Node program that reads JSON on stdin and prints JSON; returns what it printed."""
    completed = subprocess.run(
        [node(), str(script)],
        cwd=script.parent,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def invalid_schemas(introspections: Mapping[str, Any]) -> dict[str, str]:
    """The introspection results graphql-js refuses to build (label → its message)."""
    return dict(run_node(GATEWAY_DIR / "validate_introspection.mjs", dict(introspections)))


def composition_errors(subgraphs: Mapping[str, str]) -> list[str]:
    """Apollo Federation 2 composition of subgraph SDLs (name → SDL): its error messages."""
    return list(run_node(GATEWAY_DIR / "compose.mjs", dict(subgraphs)))
