"""`event-detector`: the command line.

One function per command; each parses its options, calls the module of its concept
(`demo`, `inventory`, `scaffold`, `replay`, `retention`, `export`) and renders with
`console`. Exit codes: 0 success, 1 the command ran and found a problem (an import error
for `verify`, a failed job for `test`, a difference for `replay --fail-on-diff`, a
database that cannot be reached), 2 bad input (options and their values, names, ids,
files, a database URL or a database that is not there). Bad input is checked before any
database is opened.

Every value printed through rich is escaped (`escape()`, or a `Text`): `[redacted]` in a
payload is text, not markup. Emoji codes are off for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from detector import CapturedLog, Plugin
from service.cli.console import (
    NOT_RUN,
    demo_summary,
    detection_summary,
    detection_table,
    inventory_tree,
    jobs_table,
    log_table,
    payload_summary,
    progress_bar,
    replay_table,
    retention_table,
)
from service.settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    help="Event detector for Hasura event triggers, with built-in observability.",
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _database_option(value: str | None) -> str | None:
    """A plain file path given to `--db` means an SQLite file there (`sqlite:///…`)."""
    if value is None or "://" in value or value.startswith("sqlite:"):
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="sqlite:///path.db, a path to an SQLite file, or postgresql://… "
        "(default: EVENT_DETECTOR_DATABASE_URL, else sqlite:///event-detector.db)",
        callback=_database_option,
    ),
]
EventsDirOption = Annotated[
    Path, typer.Option("--events-dir", "-d", help="Directory of event modules.")
]


def _out() -> Console:
    # Bound to the stream of now: demo output is silenced later by redirecting sys.stdout.
    return Console(file=sys.stdout, highlight=False, emoji=False)


def _err() -> Console:
    return Console(file=sys.stderr, highlight=False, emoji=False)


def _fail(message: str, code: int = 2) -> NoReturn:
    # soft_wrap: one line, wrapped by the terminal only, so paths in it copy whole.
    _err().print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the command line's values on top."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"invalid settings: {problems}")


def _database(db: str | None) -> str:
    from detector.observability.migrate import check_url

    url = db or _settings().database_url
    try:
        check_url(url)
    except ValueError as exc:
        _fail(str(exc))
    return url


def _recorded_database(db: str | None) -> str:
    """The database URL of a command that works on what was recorded (replay, export,
    rollup, retention): it must exist and hold the tables; nothing is created."""
    from service.storage.maintenance import MissingDatabase, require_tables

    url = _database(db)
    with _database_errors(url):
        try:
            asyncio.run(require_tables(url))
        except MissingDatabase as exc:
            if exc.missing_file:
                _fail(f"{exc}; pass --db or set EVENT_DETECTOR_DATABASE_URL")
            _fail(f"{exc}; create them with `event-detector migrate` (same --db)")
    return url


def _shown(url: str) -> str:
    from detector.observability.migrate import redact_url

    return redact_url(url)


@contextlib.contextmanager
def _database_errors(url: str) -> Iterator[None]:
    """Turn a driver's error into one line naming the database (no traceback)."""
    try:
        yield
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        _fail(f"{_shown(url)}: {type(exc).__name__}: {str(exc)[:300]}", 1)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence what example jobs print (their lines are recorded, not shown)."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        with contextlib.redirect_stderr(sink):
            yield


def _read_payload(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        _fail(f"payload file {path} does not exist")
    except ValueError as exc:
        _fail(f"payload file {path} is not JSON: {exc}")


# -- serve and the database ---------------------------------------------------------


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Replace the previous demo data with fresh demo invocations (the example "
            "event modules run through the real library and plugin) before serving.",
        ),
    ] = False,
    demo_seed: Annotated[int, typer.Option(help="Seed of the demo data.")] = 7,
    events_dir: Annotated[
        Path | None,
        typer.Option(
            "--events-dir",
            help="Mount the Hasura webhook at /hooks/<function> for this events directory.",
        ),
    ] = None,
    migrate: Annotated[
        bool, typer.Option(help="Create or upgrade the schema before serving.")
    ] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every HTTP request (off by default).")
    ] = False,
    gc_freeze: Annotated[
        bool,
        typer.Option(
            help="Keep the objects built at start out of the garbage collector's full scans "
            "(EVENT_DETECTOR_GC_FREEZE); this process serves nothing else."
        ),
    ] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes sharing the port (uvicorn's); live queries run in each, "
            "the rollup in one at a time.",
        ),
    ] = 1,
) -> None:
    """Serve the GraphQL API, the web client, /metrics and the webhook."""
    import uvicorn

    from service.app import create_app
    from service.cli.serving import uvicorn_config

    settings = _settings(
        database_url=db, host=host, port=port, events_dir=events_dir, gc_freeze=gc_freeze
    )
    out = _out()
    try:
        # Built before migrating: a setting the service refuses is one line, not a traceback.
        application = create_app(settings)
    except ValueError as exc:
        _fail(f"cannot serve: {exc}")
    url = settings.database_url
    if migrate:
        from detector.observability.migrate import upgrade

        with _database_errors(url), out.status(f"migrating {_shown(url)}"):
            upgrade(url)
    if demo:
        _populate_demo(out, url, demo_seed)
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    if ":" in shown_host:  # an IPv6 address is bracketed in a URL
        shown_host = f"[{shown_host}]"
    base = escape(f"http://{shown_host}:{settings.port}/")

    def announce() -> None:
        if settings.admin_secret is None and settings.host not in LOOPBACK_HOSTS:
            out.print(
                f"[yellow]warning:[/] no admin secret and listening on "
                f"{escape(settings.host)}: "
                "anyone who reaches this port is admin (payloads, mutations, re-runs). "
                "Set EVENT_DETECTOR_ADMIN_SECRET."
            )
        # The dashboard's URL comes last, so it stays on screen.
        out.print(
            f"\nevent-detector is serving {escape(_shown(url))}"
            + (f" with {workers} workers" if workers > 1 else "")
            + f"\n  GraphQL  {base}v1/graphql\n  metrics  {base}metrics\n"
            + (f"  webhook  {base}hooks/<function>\n" if settings.events_dir else "")
            + f"\n[bold green]Dashboard:[/] [bold]{base}[/]"
        )

    # Timeouts and the connection limit come from the settings (service.cli.serving).
    options = {"log_level": log_level, "access_log": access_log}
    if workers > 1:
        # Each worker builds its own app from the environment: hand it this command's
        # settings there. uvicorn's supervisor restarts a worker that dies.
        from uvicorn.supervisors import Multiprocess

        os.environ.update(_environment(settings))
        config = uvicorn_config(
            "service.app:create_app", settings, factory=True, workers=workers, **options
        )
        sockets = [config.bind_socket()]
        announce()
        Multiprocess(config, sockets=sockets).run()
        out.print("stopped")
        return
    config = uvicorn_config(application, settings, **options)
    server = uvicorn.Server(config)

    async def run() -> None:
        serving = asyncio.create_task(server.serve())
        # uvicorn offers no "started" event to wait on: poll its flag.
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if server.started:
            announce()
        await serving

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        # uvicorn shut down gracefully (the webhook's records are flushed), then re-raised
        # Ctrl-C for the default handler: a requested stop is a success.
        out.print("stopped")


def _environment(settings: Settings) -> dict[str, str]:
    """Environment variables that give another process these settings' command-line values."""
    environment = {
        "EVENT_DETECTOR_DATABASE_URL": settings.database_url,
        "EVENT_DETECTOR_GC_FREEZE": "true" if settings.gc_freeze else "false",
    }
    if settings.events_dir is not None:
        environment["EVENT_DETECTOR_EVENTS_DIR"] = str(settings.events_dir)
    return environment


def _populate_demo(out: Console, url: str, seed: int) -> None:
    from service.operations.demo import populate_demo

    with _database_errors(url), progress_bar(out) as progress:
        task = progress.add_task("Hasura deliveries to the example modules", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        with _quiet():
            summary = populate_demo(url, seed=seed, progress=advance)
    out.print(escape(demo_summary(summary)))


@app.command()
def migrate(db: DbOption = None) -> None:
    """Create or upgrade the observability schema to the latest revision."""
    from detector.observability import migrate as migrations

    url = _database(db)
    shown = _shown(url)
    with _database_errors(url):
        before = migrations.current_revision(url)
        after = migrations.upgrade(url)
    if before == after:
        typer.echo(f"{shown} is up to date (revision {after})")
    else:
        typer.echo(f"migrated {shown} from revision {before or 'none'} to {after}")


@app.command()
def rollup(db: DbOption = None) -> None:
    """Roll up every hour not rolled up yet and refresh dashboard_stats."""
    from detector.observability.rollup import rollup as run_rollup

    url = _recorded_database(db)
    out = _out()
    with _database_errors(url), out.status("rolling up"):
        result = asyncio.run(run_rollup(url))
    rows = "refreshed" if result.dashboard_rows is None else f"{result.dashboard_rows} rows"
    out.print(
        f"rolled up {result.hours_rolled_up} hour(s) into metrics_hourly; dashboard_stats {rows}"
    )


@app.command()
def retention(
    db: DbOption = None,
    success_days: Annotated[
        float | None, typer.Option(help="Keep completed invocations this many days.")
    ] = None,
    failure_days: Annotated[
        float | None,
        typer.Option(help="Keep failed, timed-out, rejected and stuck ones this many days."),
    ] = None,
    log_days: Annotated[
        float | None, typer.Option(help="Delete log lines older than this many days.")
    ] = None,
    payload_days: Annotated[
        float | None,
        typer.Option(help="Clear payloads, contexts, job options and results older than this."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per statement.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Only count what would go.")] = False,
) -> None:
    """Delete old records in batches, keeping failures longer (defaults: settings)."""
    from service.operations.retention import RetentionPolicy, apply_retention, count_expired

    settings = _settings()
    given = {
        "--success-days": success_days,
        "--failure-days": failure_days,
        "--log-days": log_days,
        "--payload-days": payload_days,
    }
    for option, days in given.items():
        # 0 would delete everything up to now: refused, as the settings refuse it.
        if days is not None and days <= 0:
            _fail(f"{option} must be a positive number of days, got {days:g}")
    if batch_size is not None and batch_size < 1:
        _fail(f"--batch-size must be at least 1, got {batch_size}")

    def chosen(value: Any, default: Any) -> Any:
        return default if value is None else value

    policy = RetentionPolicy(
        success_days=chosen(success_days, settings.retention_success_days),
        failure_days=chosen(failure_days, settings.retention_failure_days),
        log_days=chosen(log_days, settings.retention_log_days),
        payload_days=chosen(payload_days, settings.retention_payload_days),
        batch_size=chosen(batch_size, settings.retention_batch_size),
    )
    url = _recorded_database(db)
    out = _out()
    now = datetime.now(UTC)
    with _database_errors(url):
        planned = asyncio.run(count_expired(url, policy, now=now))
        if dry_run:
            counts = planned
        else:
            total = (
                planned.invocations
                + planned.job_logs
                + planned.payloads_cleared
                + planned.job_bodies_cleared
                + planned.quarantined_records
            )
            with progress_bar(out) as progress:
                task = progress.add_task("deleting", total=max(total, 1))

                def advance(step: str, rows: int) -> None:
                    progress.update(task, advance=rows, description=step)

                counts = asyncio.run(apply_retention(url, policy, now=now, progress=advance))
                progress.update(task, completed=max(total, 1))
    out.print(retention_table(counts))


@app.command("export")
def export_(
    db: DbOption = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File to write (- for stdout).")
    ] = Path("-"),
    since: Annotated[
        str | None, typer.Option(help="ISO-8601 time, or an age such as 24h, 7d, 30m.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO-8601 time, or an age.")] = None,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only this status (repeatable).")
    ] = None,
    function: Annotated[
        list[str] | None,
        typer.Option("--function", help="Only this source function (repeatable)."),
    ] = None,
    bodies: Annotated[
        bool, typer.Option(help="Include payloads, contexts, job options and results.")
    ] = True,
    batch_size: Annotated[int, typer.Option(min=1, help="Invocations per page.")] = 500,
) -> None:
    """Export invocations with their events, jobs and logs as NDJSON (one per line)."""
    from detector import InvocationStatus
    from service.operations.export import ExportFilter, count_invocations, export_ndjson

    valid = [value.value for value in InvocationStatus]
    for given in status or ():
        if given not in valid:
            _fail(f"--status {given!r} is not an invocation status (use {', '.join(valid)})")
    now = datetime.now(UTC)
    selection = ExportFilter(
        since=_moment(since, now, "--since"),
        until=_moment(until, now, "--until"),
        statuses=tuple(status or ()),
        functions=tuple(function or ()),
        include_bodies=bodies,
    )
    url = _recorded_database(db)
    with _database_errors(url):
        if str(output) == "-":
            written = asyncio.run(export_ndjson(url, sys.stdout, selection, batch_size=batch_size))
            _err().print(f"exported {written} invocation(s)")
            return
        err = _err()
        total = asyncio.run(count_invocations(url, selection))
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8") as handle, progress_bar(err) as progress:
            task = progress.add_task("exporting", total=total)
            written = asyncio.run(
                export_ndjson(
                    url,
                    handle,
                    selection,
                    batch_size=batch_size,
                    progress=lambda n: progress.update(task, advance=n),
                )
            )
        err.print(f"exported {written} invocation(s) to {escape(str(output))}")


_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _moment(text: str | None, now: datetime, option: str) -> datetime | None:
    if text is None:
        return None
    age = _AGE.match(text.strip())
    if age:
        return now - timedelta(**{_UNITS[age.group(2)]: float(age.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        _fail(f"{option} {text!r}: use an ISO-8601 time or an age such as 24h, 7d, 30m")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- event modules ------------------------------------------------------------------


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Events directory to create.")] = Path("events"),
    payloads_dir: Annotated[
        Path | None,
        typer.Option(help="Where the example payload goes (default: payloads/ beside it)."),
    ] = None,
) -> None:
    """Create an events directory with an example event module and a payload it detects."""
    from service.operations.scaffold import INIT_MODULE_NAME, ScaffoldError, init_project

    try:
        created = init_project(directory, payloads_dir)
    except ScaffoldError as exc:
        _fail(str(exc), 1)
    out = _out()
    out.print(escape(f"created {created.module}\ncreated {created.payload}"))
    # One command per line, never wrapped (soft_wrap), so each can be copied whole.
    out.print("\nnext, run:")
    events, payload = _relative(created.events_dir), _relative(created.payload)
    for command in (
        f"event-detector test {INIT_MODULE_NAME} -d {events} -p {payload}",
        f"event-detector verify -d {events}",
    ):
        out.print(escape(command), soft_wrap=True)


def _relative(path: Path) -> str:
    """`path` relative to the working directory when it is below it (shorter to copy)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@app.command()
def create(
    event: Annotated[str, typer.Argument(help="Event name, dots allowed (orders.shipped).")],
    events_dir: EventsDirOption = Path("events"),
) -> None:
    """Create an event module from the template (never overwrites)."""
    from service.operations.scaffold import InvalidEventName, ScaffoldError, create_module

    try:
        path = create_module(event, events_dir)
    except InvalidEventName as exc:
        _fail(str(exc))
    except ScaffoldError as exc:
        _fail(str(exc), 1)
    _out().print(escape(f"created {path}: edit its detector and handler"))


@app.command("list")
def list_(events_dir: EventsDirOption = Path("events")) -> None:
    """Show the tree of functions, events and their jobs."""
    _inspect(events_dir, verify=False)


@app.command()
def verify(events_dir: EventsDirOption = Path("events")) -> None:
    """Like list, and exit 1 when a module fails to import or lacks detector/handler."""
    _inspect(events_dir, verify=True)


def _inspect(events_dir: Path, *, verify: bool) -> None:
    from service.operations.inventory import inspect_directory

    try:
        inventory = inspect_directory(events_dir)
    except FileNotFoundError as exc:
        _fail(str(exc))
    out = _out()
    out.print(inventory_tree(inventory))
    events, errors, warnings = inventory.events, inventory.errors, inventory.warnings
    jobs = sum(len(event.jobs) for event in events)
    out.print(
        f"\n{len(events)} event(s), {jobs} job(s), {len(errors)} error(s), "
        f"{len(warnings)} warning(s)"
    )
    if verify and errors:
        raise typer.Exit(1)


@app.command("test")
def test_(
    payload: Annotated[
        Path, typer.Option("--payload", "-p", help="Hasura event payload (JSON file).")
    ],
    event: Annotated[
        str | None, typer.Argument(help="Event to test (default: every event module).")
    ] = None,
    events_dir: EventsDirOption = Path("events"),
    run_jobs: Annotated[
        bool, typer.Option("--run-jobs", help="Run the handlers' jobs (side effects!).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run the detectors on a payload and show what would run (or run it)."""
    from detector import ConfigurationError, InvalidEventPayload, listen_to, parse_hasura_event
    from service.operations.inventory import declared_jobs, detectors_only

    data = _read_payload(payload)
    directory = events_dir.expanduser().resolve()
    if not directory.is_dir():
        _fail(f"events directory {str(directory)!r} does not exist")
    modules = detectors_only(directory)
    names = [module.name for module in modules]
    if event is not None and event not in names:
        _fail(f"no event module `{event}` in {directory} (found: {', '.join(names) or 'none'})")
    try:
        hasura_event = parse_hasura_event(data)
    except InvalidEventPayload as exc:
        _fail(f"{payload}: {exc}")
    only = [event] if event else None
    options: dict[str, Any] = {
        "only": only,
        "source_function": "cli-test",
        "context": {"test_mode": True},
    }
    lines = _LineCollector()
    options["plugins"] = [lines]
    try:
        with _quiet():  # printed lines are captured and shown below, not interleaved
            if run_jobs:
                result = asyncio.run(listen_to(data, events_dir=directory, **options))
            else:
                result = asyncio.run(listen_to(data, modules=modules, **options))
    except ConfigurationError as exc:
        _fail(str(exc))
    out = _out()
    would_run = {
        e.name: [job.name for job in declared_jobs(directory / f"{e.name}.py")]
        for e in result.events
        if e.detected and not run_jobs
    }
    if as_json:
        answer = result.to_dict()
        if not run_jobs:
            # The handlers did not run: say so, and what they would run.
            for event in answer["events"]:
                if event["name"] in would_run and event["status"] == "completed":
                    event["status"] = NOT_RUN.replace(" ", "_")
                    event["would_run"] = would_run[event["name"]]
        out.print_json(json.dumps(answer))
    else:
        listens = {module.name: module.declaration() for module in modules}
        out.print(escape(payload_summary(hasura_event)))
        out.print(detection_table(result, would_run, listens, ran_jobs=run_jobs))
        if run_jobs and result.jobs:
            out.print(jobs_table(result))
        if lines.records:
            out.print(log_table(result, lines.records))
        out.print(detection_summary(result))
    failed = [e for e in result.events if e.status.value in ("detection_failed", "handler_failed")]
    if failed or (run_jobs and any(not job.completed for job in result.jobs)):
        raise typer.Exit(1)


class _LineCollector(Plugin):
    """Keeps the log lines `test` captures, to show them after the tables."""

    def __init__(self) -> None:
        self.records: list[CapturedLog] = []
        self._lock = threading.Lock()

    def on_log(self, record: CapturedLog) -> None:  # type: ignore[override]
        with self._lock:
            self.records.append(record)


@app.command()
def replay(
    invocation_id: Annotated[str, typer.Argument(help="Id of a recorded invocation.")],
    db: DbOption = None,
    events_dir: Annotated[
        Path | None,
        typer.Option(
            "--events-dir",
            "-d",
            help="Current event modules (default: the recorded directory, else ./events).",
        ),
    ] = None,
    run_jobs: Annotated[
        bool, typer.Option("--run-jobs", help="Also run the handlers' jobs (side effects!).")
    ] = False,
    fail_on_diff: Annotated[
        bool, typer.Option("--fail-on-diff", help="Exit 1 when anything differs (for CI).")
    ] = False,
) -> None:
    """Re-run a recorded invocation's detectors against the current code; show what differs."""
    from detector.observability.capture import REDACTED
    from service.operations.replay import ReplayError, invocation_uuid
    from service.operations.replay import replay as run_replay

    try:
        invocation_id = invocation_uuid(invocation_id)
    except ReplayError as exc:
        _fail(str(exc))
    url = _recorded_database(db)
    with _database_errors(url):
        try:
            with _quiet():
                report = asyncio.run(
                    run_replay(url, invocation_id, events_dir=events_dir, run_jobs=run_jobs)
                )
        except ReplayError as exc:
            # An --events-dir that is not there is bad input; the rest is about the record.
            _fail(str(exc), 2 if exc.reason == "invalid" else 1)
    out = _out()
    out.print(
        f"invocation {report.invocation_id} of [bold]{escape(report.source_function)}[/] "
        f"recorded {report.recorded_at:%Y-%m-%d %H:%M:%S} UTC "
        f"({escape(report.recorded_status)}); "
        f"current modules: {escape(str(report.events_dir))}"
    )
    if len(report.deliveries) > 1:
        attempts = ", ".join(
            f"attempt {d.attempt} at {d.created_at:%H:%M:%S} ({d.status})"
            for d in report.deliveries
        )
        out.print(
            f"this Hasura event was delivered {len(report.deliveries)} times: {escape(attempts)}"
        )
        for name, count in report.repeated_jobs.items():
            out.print(f"[yellow]job {escape(name)} completed {count} times for this event[/]")
    if report.redacted_values:
        out.print(
            f"[dim]{report.redacted_values} payload value(s) were redacted when recorded: "
            + escape(f'detectors reading them see "{REDACTED}"')
            + "[/]"
        )
    if report.rebuilt_session_variables is not None:
        shown = ", ".join(f"{k}={v}" for k, v in report.rebuilt_session_variables.items())
        out.print(
            f"[dim]session variables were redacted when recorded; replayed with the "
            f"recorded role and user: {escape(shown) or 'none'}[/]"
        )
    out.print(replay_table(report))
    changed = report.changed
    if changed:
        out.print(f"[bold yellow]{len(changed)} event(s) differ[/]")
    else:
        out.print("[green]no differences[/]")
    if changed and fail_on_diff:
        raise typer.Exit(1)


def main() -> None:
    app()
