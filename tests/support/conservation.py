"""The conservation check: every record the host produced is in the store, or counted.

A `Ledger` collects what the host saw (the ids in each `ListenResult`, or in the
webhook's answers, and how many log lines each job wrote). `Ledger.check(url, stats)`
reads the store and compares:

- every invocation, event execution and job execution the host produced is stored, in
  its final state (not `running`/`detecting`/`handling`), unless the plugin counted an
  execution record dropped (`execution_records_buffer_full`, or `shutdown_timeout`);
- nothing is stored twice and nothing is stored that the host did not produce;
- log lines: stored = recorded by the plugin - dropped from the full buffer, and, when
  the ledger knows how many lines each job wrote, each job has exactly those;
- records a shutdown could not write (`shutdown_timeout`, execution records and log
  lines together) cover what is missing beyond that. They may have been stored all the
  same (a write aborted after its commit reached the server): counted and stored is
  allowed, missing and not counted is not.

The same check runs in the reliability tests and in the soak benchmark (`bench/soak.py`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from service.storage.maintenance import (
    event_executions,
    invocations,
    job_executions,
    job_logs,
    open_engine,
)

UNFINISHED = {"running", "detecting", "handling"}


@dataclass
class Ledger:
    """What the host produced, by table."""

    invocations: set[str] = field(default_factory=set)
    events: set[str] = field(default_factory=set)
    jobs: set[str] = field(default_factory=set)
    lines_per_job: dict[str, int] = field(default_factory=dict)

    def add_result(self, result: Any, lines_per_job: int | None = None) -> None:
        """Record a `ListenResult` (or its `to_dict()`, as the webhook answers it)."""
        data = result if isinstance(result, Mapping) else result.to_dict()
        self.invocations.add(data["invocation_id"])
        for event in data["events"]:
            if event.get("event_execution_id"):
                self.events.add(event["event_execution_id"])
            for job in event["jobs"]:
                self.jobs.add(job["job_execution_id"])
                if lines_per_job is not None:
                    self.lines_per_job[job["job_execution_id"]] = lines_per_job

    def check(self, url: str, stats: Mapping[str, Any]) -> ConservationReport:
        """Compare the store at `url` with this ledger and the plugin's `stats()`."""
        return asyncio.run(self._check(url, stats))

    async def _check(self, url: str, stats: Mapping[str, Any]) -> ConservationReport:
        engine = open_engine(url)
        try:
            async with engine.connect() as conn:
                stored = {}
                for name, table, ids in (
                    ("invocations", invocations, self.invocations),
                    ("event_executions", event_executions, self.events),
                    ("job_executions", job_executions, self.jobs),
                ):
                    found = (await conn.execute(sa.select(table.c.id, table.c.status))).all()
                    stored[name] = (ids, {str(row.id): row.status for row in found})
                lines = (
                    await conn.execute(
                        sa.select(job_logs.c.job_execution_id, sa.func.count()).group_by(
                            job_logs.c.job_execution_id
                        )
                    )
                ).all()
        finally:
            await engine.dispose()
        report = ConservationReport(stats=dict(stats))
        for name, (produced, found) in stored.items():
            report.produced[name] = len(produced)
            report.stored[name] = len(found)
            report.missing[name] = sorted(produced - set(found))
            report.unexpected[name] = sorted(set(found) - produced)
            report.unfinished[name] = sorted(i for i in produced if found.get(i) in UNFINISHED)
        per_job = Counter({str(job): int(n) for job, n in lines if job is not None})
        report.stored["job_logs"] = sum(int(n) for _, n in lines)
        report.wrong_line_counts = {
            job: (expected, per_job.get(job, 0))
            for job, expected in self.lines_per_job.items()
            if per_job.get(job, 0) != expected
        }
        return report


@dataclass
class ConservationReport:
    """What `Ledger.check` found; `assert_conserved()` fails with the details."""

    stats: dict[str, Any]
    produced: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    unexpected: dict[str, list[str]] = field(default_factory=dict)
    unfinished: dict[str, list[str]] = field(default_factory=dict)
    wrong_line_counts: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def dropped(self) -> dict[str, int]:
        return dict(self.stats.get("dropped", {}))

    def problems(self) -> list[str]:
        """Every way the store differs from what the host produced beyond counted drops."""
        problems: list[str] = []
        dropped = self.dropped
        record_drops = dropped.get("execution_records_buffer_full", 0)
        shutdown_drops = dropped.get("shutdown_timeout", 0)
        lost = sum(len(ids) for ids in self.missing.values())
        stale = sum(len(ids) for ids in self.unfinished.values())
        if lost + stale > record_drops + shutdown_drops:
            problems.append(
                f"{lost} execution records missing and {stale} left unfinished, but only "
                f"{record_drops + shutdown_drops} counted as dropped: missing "
                f"{self._sample(self.missing)}, unfinished {self._sample(self.unfinished)}"
            )
        for name, ids in self.unexpected.items():
            if ids:
                problems.append(f"{len(ids)} {name} rows the host never produced: {ids[:3]}")
        recorded = self.stats.get("recorded", {}).get("job_logs", 0)
        line_drops = dropped.get("log_lines_buffer_full", 0)
        stored_lines = self.stored.get("job_logs", 0)
        # Without the plugin's counters (another process wrote), lines are not compared.
        if "recorded" in self.stats:
            missing_lines = recorded - line_drops - stored_lines
            # Shutdown drops not needed for missing execution records cover missing lines.
            spare = shutdown_drops - max(0, lost + stale - record_drops)
            if missing_lines < 0 or missing_lines > spare:
                problems.append(
                    f"{stored_lines} log lines stored, but {recorded} recorded - {line_drops} "
                    f"dropped = {recorded - line_drops} (and {shutdown_drops} records of "
                    "any kind dropped at shutdown)"
                )
        if self.wrong_line_counts and not line_drops and not shutdown_drops:
            sample = list(self.wrong_line_counts.items())[:3]
            problems.append(
                f"{len(self.wrong_line_counts)} jobs with the wrong number of log lines "
                f"(expected, stored): {sample}"
            )
        return problems

    def assert_conserved(self) -> None:
        problems = self.problems()
        assert not problems, "\n".join(problems)

    def summary(self) -> str:
        """One line: produced, stored and dropped counts."""
        parts = [f"{name} {self.stored.get(name, 0)}/{n}" for name, n in self.produced.items()]
        parts.append(f"job_logs {self.stored.get('job_logs', 0)}")
        dropped = {k: v for k, v in self.dropped.items() if v}
        return "stored/produced: " + ", ".join(parts) + f"; dropped: {dropped or 0}"

    @staticmethod
    def _sample(groups: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
        return {name: list(ids)[:3] for name, ids in groups.items() if ids}
