"""How the command line shows things: rich trees and tables, and progress bars.

Kept apart from `commands.py` so each command there stays a few lines: parse options, call
the concept's module, render here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.tree import Tree

from detector import CapturedLog, EventStatus, HasuraEvent, ListenResult, changed_columns

if TYPE_CHECKING:
    from service.operations.demo import DemoSummary
    from service.operations.inventory import Inventory
    from service.operations.replay import ReplayReport
    from service.operations.retention import RetentionCounts


def progress_bar(console: Console, *, transient: bool = False) -> Progress:
    """A progress bar (description, bar, n/total, elapsed) drawn on `console`."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


@contextmanager
def spinner(console: Console, message: str) -> Iterator[None]:
    """A spinner while something of unknown length runs."""
    with console.status(message):
        yield


def inventory_tree(inventory: Inventory) -> Tree:
    """Functions → events → jobs, with import errors and warnings inline."""
    tree = Tree(f"[bold]{escape(str(inventory.root))}[/]")
    if not inventory.functions:
        tree.add("[yellow]no event modules (*.py files not starting with `_`)[/]")
    for function in inventory.functions:
        branch = tree if function.name is None else tree.add(f"[cyan]{escape(function.name)}/[/]")
        for event in function.events:
            label = f"[bold]{escape(event.name)}[/]  [dim]{escape(event.path.name)}[/]"
            if event.listens_to:
                label += f"  [dim]listens to {escape(event.listens_to)}[/]"
            if event.error is not None:
                label += f"\n[red]✗ {escape(event.error)}[/]"
            node = branch.add(label)
            for job in event.jobs:
                details = []
                if job.function and job.function != job.name:
                    details.append(f"fn {job.function}")
                if job.timeout is not None:
                    details.append(f"timeout {job.timeout:g}s")
                if job.retries:
                    details.append(f"retries {job.retries}")
                suffix = f"  [dim]({escape(', '.join(details))})[/]" if details else ""
                style = "yellow" if job.anonymous else "green"
                node.add(f"[{style}]{escape(job.name)}[/]{suffix}  [dim]line {job.line}[/]")
            for warning in event.warnings:
                node.add(f"[yellow]⚠ {escape(warning)}[/]")
    return tree


def payload_summary(event: HasuraEvent) -> str:
    """One line: trigger, table, operation, changed columns."""
    parts = [f"{event.op.value} on {event.table or '?'}"]
    if event.trigger_name:
        parts.append(f"trigger {event.trigger_name}")
    changed = changed_columns(event)
    if changed:
        parts.append("changed: " + ", ".join(sorted(changed)))
    return " · ".join(parts)


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


NOT_RUN = "not run"
"""The status `test` shows for a detected event whose handler it did not run."""


def detection_table(
    result: ListenResult,
    would_run: dict[str, list[str]],
    listens: dict[str, str | None],
    *,
    ran_jobs: bool,
) -> Table:
    """Which detectors fired, and what each detected event runs (or would run).

    Without `ran_jobs` the handlers did not run: a detected event's status is `not run`
    and its jobs are the ones its source declares (`would_run`). A skipped module shows
    what it listens to (`listens`: event name → its declaration).
    """
    table = Table(title="Detectors", show_lines=False)
    table.add_column("event", overflow="fold")
    table.add_column("detected")
    table.add_column("status")
    table.add_column("jobs run" if ran_jobs else "would run", overflow="fold")
    for event in result.events:
        if event.status == EventStatus.DETECTION_FAILED:
            detected = "[red]error[/]"
        elif event.status == EventStatus.SKIPPED:
            detected = "[dim]skipped[/]"
        else:
            detected = "[green]yes[/]" if event.detected else "[dim]no[/]"
        status = escape(event.status.value)
        if event.detected and not ran_jobs and event.status == EventStatus.COMPLETED:
            status = f"[dim]{NOT_RUN}[/]"
        if event.error:
            status += f"\n[red]{escape(_short(event.error, 200))}[/]"
        if event.status == EventStatus.SKIPPED:
            jobs = f"[dim]listens to {escape(listens.get(event.name) or '?')}[/]"
        elif not event.detected:
            jobs = ""
        elif ran_jobs:
            jobs = escape(", ".join(f"{job.name} ({job.status.value})" for job in event.jobs))
        else:
            jobs = escape(", ".join(would_run.get(event.name, []))) or "[dim]none declared[/]"
        table.add_row(escape(event.name), detected, status, jobs)
    return table


def detection_summary(result: ListenResult) -> str:
    """One line: how many events were detected, and how many modules were skipped."""
    line = f"{len(result.detected_events)} of {len(result.events)} event(s) detected"
    skipped = sum(1 for event in result.events if event.status == EventStatus.SKIPPED)
    if skipped:
        line += f", {skipped} skipped (they listen to other tables or operations)"
    return line


def demo_summary(summary: DemoSummary) -> str:
    """What the demo recorded, with where the invocations beyond the deliveries come from
    (plain text: the caller escapes it)."""
    statuses = ", ".join(f"{n} {status}" for status, n in summary.by_status.items())
    changes = summary.deliveries - summary.redeliveries
    text = (
        f"demo: {summary.invocations} invocations over the {summary.hours:g} h before now: "
        f"{summary.deliveries} Hasura deliveries ({changes} row changes and "
        f"{summary.redeliveries} redeliveries), plus {summary.cascades} cascades (row changes "
        f"the jobs wrote); {statuses}; {summary.jobs} jobs, in {summary.seconds:.1f} s"
    )
    if summary.removed_previous:
        text += f"; replaced the previous demo ({summary.removed_previous} invocations)"
    return text


def jobs_table(result: ListenResult) -> Table:
    """Every job that ran: status, attempts, duration, result or error."""
    table = Table(title="Jobs")
    for column in ("event", "job", "status", "attempts", "ms", "result / error"):
        table.add_column(column, overflow="fold")
    for event in result.events:
        for job in event.jobs:
            colour = "green" if job.completed else "red"
            outcome = job.error if job.error else _short(job.result)
            table.add_row(
                escape(event.name),
                escape(job.name),
                f"[{colour}]{job.status.value}[/]",
                str(job.attempts),
                f"{job.duration_ms:.1f}",
                escape(_short(outcome, 120)),
            )
    return table


def log_table(result: ListenResult, records: list[CapturedLog]) -> Table:
    """Captured log lines in order, with the event and job that wrote them."""
    events = {event.event_execution_id: event.name for event in result.events}
    jobs = {job.job_execution_id: job.name for job in result.jobs}
    table = Table(title="Logs")
    for column in ("#", "level", "event / job", "source", "message"):
        table.add_column(column, overflow="fold")
    colours = {"error": "red", "warn": "yellow", "debug": "dim"}
    for record in sorted(records, key=lambda r: r.seq):
        level = record.level.value
        owner = events.get(record.event_execution_id or "", "")
        if record.job_execution_id:
            owner += f" / {jobs.get(record.job_execution_id, '?')}"
        table.add_row(
            str(record.seq),
            f"[{colours.get(level, 'default')}]{level}[/]",
            escape(owner),
            escape(record.source or ""),
            escape(record.message),
        )
    return table


def replay_table(report: ReplayReport) -> Table:
    """Event by event: then → now, differences highlighted."""
    table = Table(title=f"Replay of {report.invocation_id}")
    table.add_column("event", overflow="fold")
    table.add_column("then", overflow="fold")
    table.add_column("now", overflow="fold")
    table.add_column("jobs then → now", overflow="fold")
    for row in report.rows:
        mark = "[bold yellow]≠[/] " if row.changed else ""
        then_jobs = ", ".join(row.then.jobs) or "—"
        now_jobs = ", ".join(row.now.jobs) or "—"
        jobs = then_jobs if then_jobs == now_jobs else f"{then_jobs} → {now_jobs}"
        table.add_row(
            mark + escape(row.event),
            escape(row.then.describe()),
            (
                f"[bold yellow]{escape(row.now.describe())}[/]"
                if row.changed
                else escape(row.now.describe())
            ),
            escape(jobs),
        )
    return table


def retention_table(counts: RetentionCounts) -> Table:
    """What retention deleted or cleared (or would, in a dry run)."""
    title = "Retention (dry run: nothing deleted)" if counts.dry_run else "Retention"
    table = Table(title=title)
    table.add_column("what")
    table.add_column("action")
    table.add_column("rows", justify="right")
    delete, clear = ("to delete", "to clear") if counts.dry_run else ("deleted", "cleared")
    rows = [
        ("successful invocations", delete, counts.successful_invocations),
        ("failed, timed-out, rejected, stuck invocations", delete, counts.failed_invocations),
        ("event executions", delete, counts.event_executions),
        ("job executions", delete, counts.job_executions),
        ("log lines", delete, counts.job_logs),
        ("invocation payloads and contexts", clear, counts.payloads_cleared),
        ("job options and results", clear, counts.job_bodies_cleared),
        ("quarantined records", delete, counts.quarantined_records),
    ]
    for label, action, count in rows:
        table.add_row(label, action, str(count))
    return table
