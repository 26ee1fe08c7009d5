"""Results of benchmark runs, written into sections of `bench/RESULTS.md`."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = """# Benchmark results

Produced by `make bench` (full) or `make bench-quick`; each section is rewritten by the
run that measured it, with the machine and date. Targets come from SPEC §6.
"""


@dataclass
class Target:
    """A quality bar and whether the measured figure meets it."""

    name: str
    goal: str
    measured: str
    met: bool


@dataclass
class Section:
    """One measurement's section of RESULTS.md."""

    key: str
    title: str
    body: str
    targets: list[Target] = field(default_factory=list)
    quick: bool = False

    def render(self) -> str:
        lines = [f"<!-- section:{self.key} -->", f"## {self.title}", ""]
        lines.append(
            f"_{machine()} · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · "
            f"{'quick' if self.quick else 'full'} mode_"
        )
        lines.append("")
        if self.targets:
            lines += ["| target | goal | measured | met |", "|---|---|---|---|"]
            lines += [
                f"| {t.name} | {t.goal} | {t.measured} | {'yes' if t.met else '**no**'} |"
                for t in self.targets
            ]
            lines.append("")
        lines.append(self.body.strip())
        lines += ["", f"<!-- /section:{self.key} -->"]
        return "\n".join(lines)


def machine() -> str:
    """One line describing this machine: CPU model, cores, memory, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    commit = ""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        pass
    # The machine is shared: the load says how much else ran while this was measured.
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"
        + (f", commit {commit}" if commit else "")
        + load
    )


def write_section(section: Section, path: Path = RESULTS) -> None:
    """Replace (or append) `section` in RESULTS.md."""
    text = path.read_text() if path.exists() else HEADER
    rendered = section.render()
    pattern = re.compile(
        rf"<!-- section:{re.escape(section.key)} -->.*?<!-- /section:{re.escape(section.key)} -->",
        re.S,
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: rendered, text)
    else:
        text = text.rstrip() + "\n\n" + rendered + "\n"
    path.write_text(text)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0 to 100) by linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]
