"""The service in its own process, as the benchmarks measure it (uvicorn over loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.pgserver import free_port

ROOT = Path(__file__).resolve().parents[1]


def wait_for_health(process: subprocess.Popen[bytes], base: str, *, timeout: float = 60.0) -> None:
    """Block until `{base}/healthz` answers 200.

    Raises `RuntimeError` if the process exits first or `timeout` seconds pass; the caller
    still owns the process (terminate it).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the service did not start")
        time.sleep(0.1)


def start_service(
    database_url: str,
    env: dict[str, str],
    *,
    checkout: Path = ROOT,
    python: str = sys.executable,
) -> tuple[subprocess.Popen[bytes], str]:
    """Serve `service.app:create_app` on `database_url` with uvicorn on a free local port.

    `env` adds `EVENT_DETECTOR_*` settings to this process's environment; `checkout` and
    `python` choose the code that serves (another checkout: see `bench._baseline`).
    Returns the process once `/healthz` answers, and its base URL; the caller terminates
    the process. Raises `RuntimeError` (after terminating it) if the service does not
    start in 60 s.
    """
    port = free_port()
    process = subprocess.Popen(
        [
            python,
            "-m",
            "uvicorn",
            "service.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            # As `serve` configures it (`Settings.websocket_compression`, off as in Hasura),
            # for the engine at a baseline commit too: its frames cost the same to send.
            "--ws-per-message-deflate",
            "false",
        ],
        # As `event-detector serve` runs it (its own process: gc.freeze after start).
        env={
            **os.environ,
            "EVENT_DETECTOR_DATABASE_URL": database_url,
            "EVENT_DETECTOR_GC_FREEZE": "true",
            **env,
        },
        cwd=checkout,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(process, base)
    except RuntimeError:
        process.terminate()
        raise
    return process, base
