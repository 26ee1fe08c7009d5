"""Results of benchmark runs, written into sections of `bench/RESULTS.md`.

Each measurement module returns a `Section` (its text and its `Target`s); the harness
adds how long it ran and the machine's load average before and after, and
`write_section` replaces that module's section in RESULTS.md and rebuilds the summary
table at the top (every target of every section, measured figure, met or not).
"""

from __future__ import annotations

import json
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
run that measured it, with the machine, date, duration and load average. Targets come
from SPEC §6. The machine is shared: the load average says how much else ran meanwhile.
"""
SUMMARY_START = "<!-- summary -->"
SUMMARY_END = "<!-- /summary -->"


@dataclass
class Target:
    """A quality bar and whether the measured figure meets it (None: the run cannot
    judge it, e.g. a quick run too short for a memory trend)."""

    name: str
    goal: str
    measured: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return verdict(self.met)


def verdict(met: bool | None) -> str:
    """How RESULTS.md shows a target's outcome."""
    if met is None:
        return "not judged (quick run)"
    return "yes" if met else "**no**"


@dataclass
class Section:
    """One measurement's section of RESULTS.md.

    `targets` are the SPEC §6 bars the module measured; a module without one says so
    in its body. The harness fills `seconds`, `load_before` and `load_after`.
    """

    key: str
    title: str
    body: str
    targets: list[Target] = field(default_factory=list)
    quick: bool = False
    seconds: float | None = None
    load_before: float | None = None
    load_after: float | None = None

    def render(self) -> str:
        lines = [f"<!-- section:{self.key} -->", f"## {self.title}", ""]
        run = f"{'quick' if self.quick else 'full'} mode"
        if self.seconds is not None:
            run += f", {self.seconds:.0f} s"
        if self.load_before is not None and self.load_after is not None:
            run += f", load average {self.load_before:.1f} before / {self.load_after:.1f} after"
        lines.append(f"_{machine()} · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {run}_")
        lines.append("")
        if self.targets:
            lines += ["| target | goal | measured | met |", "|---|---|---|---|"]
            lines += [f"| {t.name} | {t.goal} | {t.measured} | {t.verdict} |" for t in self.targets]
        else:
            lines.append("No SPEC §6 target: measured for context.")
        lines.append("")
        lines.append(self.body.strip())
        targets = [
            {"name": t.name, "goal": t.goal, "measured": t.measured, "met": t.met}
            for t in self.targets
        ]
        meta = {"title": self.title, "quick": self.quick, "targets": targets}
        lines += ["", f"<!-- targets:{json.dumps(meta, ensure_ascii=False)} -->"]
        lines += [f"<!-- /section:{self.key} -->"]
        return "\n".join(lines)


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


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
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}" + (
        f", commit {commit}" if commit else ""
    )


def write_section(section: Section, path: Path = RESULTS) -> None:
    """Replace (or append) `section` in RESULTS.md and rebuild the summary table."""
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
    path.write_text(with_summary(text))


def with_summary(text: str) -> str:
    """`text` with its summary table (between the summary markers) rebuilt from the
    targets recorded in each section, in the order the sections appear."""
    rows = [
        "| measurement | target | goal | measured | met |",
        "|---|---|---|---|---|",
    ]
    for key, meta in re.findall(
        r"<!-- section:(\w+) -->.*?<!-- targets:(.*?) -->", text, flags=re.S
    ):
        data = json.loads(meta)
        mode = " (quick)" if data.get("quick") else ""
        if not data["targets"]:
            rows.append(f"| [{key}](#{_anchor(data['title'])}){mode} | - | no SPEC §6 target | | |")
        for target in data["targets"]:
            rows.append(
                f"| [{key}](#{_anchor(data['title'])}){mode} | {target['name']} | "
                f"{target['goal']} | {target['measured']} | "
                f"{verdict(target['met'])} |"
            )
    summary = "\n".join([SUMMARY_START, "## Summary", "", *rows, SUMMARY_END])
    if SUMMARY_START in text:
        # The header is rewritten too, so that its wording follows this file.
        _, _, after = text.partition(SUMMARY_END)
        return HEADER.rstrip() + "\n\n" + summary + after
    _, marker, rest = text.partition("<!-- section:")
    return HEADER.rstrip() + "\n\n" + summary + "\n\n" + marker + rest


def _anchor(title: str) -> str:
    """GitHub's anchor for a heading."""
    slug = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return slug.replace(" ", "-")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0 to 100) by linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]
