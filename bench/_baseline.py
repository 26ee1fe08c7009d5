"""The engine as it was before this work, served beside this checkout's in the same run.

Some targets compare with the code at `BASELINE_COMMIT` measured side by side, in one run,
on the same store and machine (so the machine's load weighs on both alike). The baseline
is a checkout of that commit with its own virtual environment:

- `BENCH_BASELINE_DIR` names one made beforehand (e.g. `git worktree add ../baseline
  6d5361e && make -C ../baseline install`);
- otherwise it is built once under the system's temporary directory (`git archive` of
  the commit, a venv, `pip install -e .[service]`) and reused by later runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench._service_process import ROOT

BASELINE_COMMIT = "6d5361e"


@dataclass(frozen=True)
class Baseline:
    """A checkout of `BASELINE_COMMIT` and the Python that serves it."""

    checkout: Path
    python: str


def baseline(*, build: bool = True) -> Baseline | None:
    """The baseline checkout, built if needed (None when it is not built and `build` is
    False); raises `RuntimeError` or `CalledProcessError` saying what failed."""
    given = os.environ.get("BENCH_BASELINE_DIR")
    if given:
        checkout = Path(given).resolve()
        python = checkout / ".venv" / "bin" / "python"
        if not python.exists():
            raise RuntimeError(f"BENCH_BASELINE_DIR={given} has no .venv/bin/python")
        return Baseline(checkout, str(python))
    checkout = Path(tempfile.gettempdir()) / f"event-detector-bench-baseline-{BASELINE_COMMIT}"
    python = checkout / ".venv" / "bin" / "python"
    ready = checkout / ".ready"
    if not ready.exists() and not build:
        return None
    if not ready.exists():
        checkout.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BASELINE_COMMIT], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(checkout)], input=archive.stdout, check=True)
        subprocess.run([sys.executable, "-m", "venv", str(checkout / ".venv")], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-e", ".[service]"],
            cwd=checkout,
            check=True,
        )
        ready.touch()
    return Baseline(checkout, str(python))
