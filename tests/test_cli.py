"""Every `event-detector` command, driven through its real entry point on real databases."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from detector import listen_to
from detector.observability import ObservabilityPlugin
from service.cli import app
from service.storage.maintenance import event_executions, invocations, job_executions, job_logs
from tests.support.library import hasura_payload, write_module
from tests.support.pgserver import free_port
from tests.support.runtime import EXAMPLES_EVENTS, count, database_for, execute, rows

PAYLOADS = EXAMPLES_EVENTS.parent / "payloads"
RECORDED = [
    "orders.created.insert.json",
    "orders.shipped.update.json",
    "payments.failed.update.json",
    "users.signed_up.insert.json",
    "users.deleted.delete.json",
]


def cli(*args: str, expect: int = 0, env: dict[str, str] | None = None) -> str:
    """Run the CLI in-process; assert its exit code; return what it printed."""
    environ = {"COLUMNS": "220", **(env or {})}
    result = CliRunner().invoke(app, list(args), env=environ, catch_exceptions=False)
    output = result.output
    assert result.exit_code == expect, f"exit {result.exit_code}, expected {expect}:\n{output}"
    return output


def run_commands(
    cwd: Path, *commands: list[str], env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Run `event-detector` processes in `cwd`, all at once (each is one real command line);
    their outcomes in order."""
    environ = {**os.environ, "COLUMNS": "80", **(env or {})}
    environ.pop("EVENT_DETECTOR_DATABASE_URL", None)
    started = [
        (
            args,
            subprocess.Popen(
                [sys.executable, "-m", "service.cli", *args],
                cwd=cwd,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for args in commands
    ]
    done = []
    for args, process in started:
        out, err = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(args, process.returncode, out, err))
    return done


def record(url: str, names: list[Any], events_dir: Path = EXAMPLES_EVENTS) -> list[str]:
    """Run payloads (example file names, or payloads) through the real plugin into `url`;
    returns invocation ids."""
    plugin = ObservabilityPlugin(url, environ={}, auto_migrate=False)

    async def run_all() -> list[str]:
        found = []
        for name in names:
            payload = json.loads((PAYLOADS / name).read_text()) if isinstance(name, str) else name
            result = await listen_to(payload, events_dir=events_dir, plugins=[plugin])
            found.append(result.invocation_id)
        return found

    try:
        return asyncio.run(run_all())
    finally:
        assert plugin.shutdown_sync(10.0)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def recorded_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[str]]]:
    """A database holding the example invocations (read-only for the tests using it)."""
    with database_for(request.param, request, tmp_path_factory.mktemp("cli")) as url:
        yield url, record(url, RECORDED)


# -- init, create, list, verify ------------------------------------------------------


def test_init_creates_a_module_and_a_payload_it_detects(tmp_path: Path) -> None:
    events = tmp_path / "events"
    output = cli("init", str(events))
    module, payload = events / "orders.shipped.py", tmp_path / "payloads" / "orders.shipped.json"
    assert module.is_file() and payload.is_file()
    assert "event-detector test orders.shipped" in output
    tested = cli("test", "orders.shipped", "--events-dir", str(events), "--payload", str(payload))
    assert "1 of 1 event(s) detected" in tested
    assert "send_shipping_email, update_ledger" in tested
    again = cli("init", str(events), expect=1)
    assert "already exists" in again


def test_create_validates_the_name_and_never_overwrites(tmp_path: Path) -> None:
    events = tmp_path / "events"
    cli("create", "billing.invoice_paid", "--events-dir", str(events))
    created = events / "billing.invoice_paid.py"
    assert created.is_file()
    compile(created.read_text(), str(created), "exec")
    created.write_text(created.read_text() + "# edited\n")
    assert "already exists" in cli("create", "billing.invoice_paid", "-d", str(events), expect=1)
    assert created.read_text().endswith("# edited\n")
    assert "starts with `_`" in cli("create", "_helpers", "-d", str(events), expect=2)
    assert "invalid event name" in cli("create", "orders..shipped", "-d", str(events), expect=2)
    assert "invalid event name" in cli("create", "../escape", "-d", str(events), expect=2)
    assert sorted(p.name for p in events.iterdir()) == ["billing.invoice_paid.py"]
    verified = cli("verify", "--events-dir", str(events))
    assert "billing.invoice_paid" in verified and "notify" in verified


def test_init_prints_each_next_command_whole_on_its_own_line_at_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [done] = run_commands(tmp_path, ["init"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    commands = lines[lines.index("next, run:") + 1 :]
    assert commands == [
        "event-detector test orders.shipped -d events -p payloads/orders.shipped.json",
        "event-detector verify -d events",
    ]
    # Copied as printed, each runs.
    monkeypatch.chdir(tmp_path)
    assert "1 of 1 event(s) detected" in cli(*commands[0].split()[1:])
    assert "1 event(s), 2 job(s), 0 error(s)" in cli(*commands[1].split()[1:])


def test_bad_input_exits_2_with_the_problem_named_before_any_database_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENT_DETECTOR_DATABASE_URL", raising=False)
    refused = {
        ("replay", "not-a-uuid"): "error: 'not-a-uuid' is not an invocation id (a UUID)",
        ("create", "bad name!"): "error: invalid event name 'bad name!': use letters",
        ("export", "--status", "bogus"): "error: --status 'bogus' is not an invocation status "
        "(use running, completed, failed, timeout, rejected)",
        ("retention", "--success-days", "0", "--failure-days", "0", "--dry-run"): (
            "error: --success-days must be a positive number of days, got 0"
        ),
        ("retention", "--log-days", "-1"): "error: --log-days must be a positive number",
    }
    for args, error in refused.items():
        assert " ".join(cli(*args, expect=2).split()).startswith(error)
    assert list(tmp_path.iterdir()) == [], "nothing was created"


def test_commands_on_recorded_data_never_create_a_database_and_say_how_to_point_to_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = tmp_path / "event-detector.db"
    # Real processes: a failed SQLite connect used to print two thread tracebacks at exit.
    outcomes = run_commands(tmp_path, ["export"], ["rollup", "--db", "/nonexistent/dir/x.db"])
    for done in outcomes:
        assert done.returncode == 2, done
        assert "Traceback" not in done.stderr and done.stdout == "", done.stderr
        missing = "/nonexistent/dir/x.db" if "--db" in done.args else str(default)
        assert " ".join(done.stderr.split()) == (
            f"error: no database at {missing}; pass --db or set EVENT_DETECTOR_DATABASE_URL"
        )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENT_DETECTOR_DATABASE_URL", raising=False)
    for args in (["replay", str(uuid.uuid4())], ["rollup"], ["retention", "--dry-run"]):
        assert f"no database at {default}; pass --db" in " ".join(cli(*args, expect=2).split())
    assert list(tmp_path.iterdir()) == [], "no database was created"
    default.touch()  # a file that is no event-detector database
    empty = " ".join(cli("export", "--db", str(default), expect=2).split())
    assert "has no event-detector tables; create them with `event-detector migrate`" in empty
    assert default.stat().st_size == 0


def test_list_shows_functions_events_and_jobs_and_verify_fails_on_import_errors(
    tmp_path: Path,
) -> None:
    root = tmp_path / "functions"
    (root / "orders").mkdir(parents=True)
    write_module(
        root / "orders",
        "orders.shipped",
        "from detector import job, run\n"
        "def detector(n, e):\n    return True\n"
        "async def send(n, e, o):\n    return 1\n"
        "async def handler(n, e):\n"
        "    return await run(n, e, [job(send, timeout=3), job(lambda n, e, o: 2)])\n",
    )
    (root / "billing").mkdir()
    write_module(root / "billing", "invoices.paid", "import not_a_real_module_xyz\n")
    listed = cli("list", "--events-dir", str(root))
    assert "orders/" in listed and "billing/" in listed
    assert "send" in listed and "timeout 3s" in listed
    assert "anonymous" in listed and "recorded as `anonymous`" in listed
    assert "not_a_real_module_xyz" in listed
    assert "2 event(s), 2 job(s), 1 error(s), 1 warning(s)" in listed
    verified = cli("verify", "--events-dir", str(root), expect=1)
    assert "ModuleNotFoundError" in verified
    ok = cli("verify", "--events-dir", str(EXAMPLES_EVENTS))
    assert "7 event(s), 20 job(s), 0 error(s), 0 warning(s)" in ok
    assert "sync_crm_contact" in ok and "fn sync_crm" in ok
    assert "does not exist" in cli("list", "--events-dir", str(tmp_path / "none"), expect=2)


# -- test ----------------------------------------------------------------------------


def test_test_runs_detectors_only_unless_asked_to_run_jobs(tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.mkdir()
    marker = tmp_path / "side-effect.txt"
    write_module(
        events,
        "orders.shipped",
        "from pathlib import Path\nfrom detector import job, run\n"
        "def detector(n, e):\n    return e.new['status'] == 'shipped'\n"
        f"def write_marker(n, e, o):\n    print('writing the marker')\n"
        f"    Path({str(marker)!r}).write_text('ran')\n    return {{'wrote': True}}\n"
        "async def handler(n, e):\n    return await run(n, e, [job(write_marker)])\n",
    )
    write_module(
        events,
        "orders.cancelled",
        "def detector(n, e):\n    return False\ndef handler(n, e):\n    return None\n",
    )
    write_module(
        events,
        "users.changed",
        "tables = 'users'\noperations = ['UPDATE', 'DELETE']\n"
        "def detector(n, e):\n    return True\ndef handler(n, e):\n    return None\n",
    )
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(hasura_payload()))

    dry = cli("test", "--payload", str(payload), "--events-dir", str(events))
    assert "1 of 3 event(s) detected, 1 skipped (they listen to other tables" in dry
    assert "would run" in dry and "write_marker" in dry
    # The handler did not run: its event is "not run", never "completed".
    shipped = next(line for line in dry.splitlines() if "orders.shipped" in line)
    assert "not run" in shipped and "completed" not in dry
    users = next(line for line in dry.splitlines() if "users.changed" in line)
    assert "skipped" in users and "listens to public.users (UPDATE, DELETE)" in users
    assert not marker.exists(), "no job runs without --run-jobs"
    dry_json = json.loads(cli("test", "-p", str(payload), "-d", str(events), "--json"))
    by_name = {event["name"]: event for event in dry_json["events"]}
    assert by_name["orders.shipped"]["status"] == "not_run"
    assert by_name["orders.shipped"]["would_run"] == ["write_marker"]
    assert by_name["users.changed"]["status"] == "skipped"
    listed = cli("list", "-d", str(events))
    assert "listens to public.users (UPDATE, DELETE)" in listed

    ran = cli("test", "orders.shipped", "-p", str(payload), "-d", str(events), "--run-jobs")
    assert marker.read_text() == "ran"
    assert "write_marker (completed)" in ran
    assert "writing the marker" in ran, "captured output is shown in the Logs table"
    as_json = cli("test", "orders.shipped", "-p", str(payload), "-d", str(events), "--json")
    parsed = json.loads(as_json)
    assert [e["name"] for e in parsed["events"]] == ["orders.shipped"]
    assert parsed["events"][0]["detected"] is True

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"event": {"op": "UPSERT", "data": {}}}))
    assert "`event.op`" in cli("test", "-p", str(bad), "-d", str(events), expect=2)
    assert "no event module `orders.lost`" in cli(
        "test", "orders.lost", "-p", str(payload), "-d", str(events), expect=2
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert "is not JSON" in cli("test", "-p", str(broken), "-d", str(events), expect=2)


def test_test_exits_1_when_a_job_fails() -> None:
    output = cli(
        "test",
        "payments.failed",
        "-p",
        str(PAYLOADS / "payments.failed.update.json"),
        "-d",
        str(EXAMPLES_EVENTS),
        "--run-jobs",
        expect=1,
    )
    assert "charge_backup_card" in output and "failed" in output
    assert "backup card declined" in output


# -- database commands ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrate_creates_then_reports_up_to_date(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with database_for(backend, request, tmp_path, migrate=False) as url:
        first = cli("migrate", "--db", url)
        assert "from revision none to" in first
        assert "is up to date" in cli("migrate", "--db", url)
    assert "unsupported database URL" in cli("migrate", "--db", "mysql://x/y", expect=2)


def test_a_plain_path_to_db_is_an_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    assert "from revision none to" in cli("migrate", "--db", str(path))
    assert path.exists()
    assert "is up to date" in cli("migrate", "--db", f"sqlite:///{path}")


def test_rollup_writes_the_hourly_rows(recorded_db: tuple[str, list[str]]) -> None:
    url, ids = recorded_db
    output = cli("rollup", "--db", url)
    assert "rolled up" in output and "into metrics_hourly" in output
    metrics_hourly = invocations.metadata.tables["metrics_hourly"]
    total = rows(url, sa.select(sa.func.sum(metrics_hourly.c.total_invocations).label("n")))
    assert int(total[0]["n"]) == len(ids)


def test_export_writes_one_nested_invocation_per_line(
    recorded_db: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, ids = recorded_db
    target = tmp_path / "out" / "export.ndjson"
    cli("export", "--db", url, "-o", str(target), "--batch-size", "2")
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["id"] for line in lines] == ids, "oldest first, every invocation once"
    for line in lines:
        events = line["event_executions"]
        assert len(events) == count(
            url, event_executions, event_executions.c.invocation_id == line["id"]
        )
        jobs = [job for event in events for job in event["job_executions"]]
        assert len(jobs) == line["total_jobs_run"]
        nested_logs = len(line["logs"]) + sum(
            len(event["logs"]) + sum(len(job["logs"]) for job in event["job_executions"])
            for event in events
        )
        assert nested_logs == count(url, job_logs, job_logs.c.invocation_id == line["id"])
        assert line["source_event_payload"]["event"]["op"] in ("INSERT", "UPDATE", "DELETE")
    payments = next(line for line in lines if line["source_function"] == "payments_events")
    failed = [
        job
        for event in payments["event_executions"]
        for job in event["job_executions"]
        if job["job_name"] == "charge_backup_card"
    ]
    assert failed[0]["status"] == "failed"
    assert failed[0]["logs"][0]["message"] == "backup card declined for payment pay_88213"

    only_failed = tmp_path / "failed.ndjson"
    cli("export", "--db", url, "-o", str(only_failed), "--status", "failed", "--no-bodies")
    selected = [json.loads(line) for line in only_failed.read_text().splitlines()]
    assert [line["id"] for line in selected] == [payments["id"]]
    assert "source_event_payload" not in selected[0]
    selected_jobs = [j for e in selected[0]["event_executions"] for j in e["job_executions"]]
    assert len(selected_jobs) == 4
    assert all("result" not in job and "job_options" not in job for job in selected_jobs)

    to_stdout = cli("export", "--db", url, "--function", "users_events", "--since", "1h")
    streamed = [json.loads(line) for line in to_stdout.splitlines() if line.startswith("{")]
    assert {line["source_function"] for line in streamed} == {"users_events"}
    assert len(streamed) == 2
    assert "use an ISO-8601 time" in cli("export", "--db", url, "--since", "soon", expect=2)


def test_retention_deletes_old_successes_and_keeps_failures(db_url: str, tmp_path: Path) -> None:
    ids = record(db_url, ["orders.created.insert.json", "payments.failed.update.json"])
    old = datetime.now(UTC) - timedelta(days=10)
    execute(db_url, sa.update(invocations).values(created_at=old))
    dry = cli("retention", "--db", db_url, "--dry-run")
    assert "dry run" in dry and count(db_url, invocations) == 2
    done = cli("retention", "--db", db_url, "--success-days", "7", "--failure-days", "30")
    assert "successful invocations" in done
    remaining = rows(db_url, sa.select(invocations.c.id, invocations.c.status))
    assert remaining == [{"id": ids[1], "status": "failed"}]
    assert count(db_url, job_executions, job_executions.c.invocation_id == ids[0]) == 0
    assert count(db_url, job_logs, job_logs.c.invocation_id == ids[0]) == 0
    assert count(db_url, job_executions, job_executions.c.invocation_id == ids[1]) == 4
    assert "must be a positive" in cli("retention", "--db", db_url, "--log-days", "-1", expect=2)


def test_replay_shows_what_differs_after_an_event_module_changes(
    db_url: str, tmp_path: Path
) -> None:
    events = tmp_path / "events"
    events.mkdir()
    source = (EXAMPLES_EVENTS / "orders.shipped.py").read_text()
    write_module(events, "orders.shipped", source)
    (events / "_helpers.py").write_text((EXAMPLES_EVENTS / "_helpers.py").read_text())
    [invocation_id] = record(db_url, ["orders.shipped.update.json"], events)

    same = cli("replay", invocation_id, "--db", db_url, "--fail-on-diff")
    assert "no differences" in same
    assert "send_shipping_email" in same

    write_module(events, "orders.shipped", source.replace('source="packed"', 'source="picked"'))
    changed = cli("replay", invocation_id, "--db", db_url, "--fail-on-diff", expect=1)
    assert "1 event(s) differ" in changed
    assert "orders.shipped" in changed and "not detected" in changed
    assert "no invocation" in cli(
        "replay", "00000000-0000-4000-8000-000000000000", "--db", db_url, expect=1
    )

    # Recorded values rich would read as markup are printed as they are.
    payload = json.loads((PAYLOADS / "orders.shipped.update.json").read_text())
    payload["event"]["data"]["new"]["api_token"] = "tok_[bold]1"
    [redacted] = record(db_url, [payload], events)
    shown = " ".join(cli("replay", redacted, "--db", db_url).split())
    assert (
        '1 payload value(s) were redacted when recorded: detectors reading them see "[redacted]"'
        in shown
    )


# -- serve ----------------------------------------------------------------------------


def test_serve_demo_prints_the_dashboard_url_and_serves_data(tmp_path: Path) -> None:
    """What `make run` does, on a temporary database and port."""
    database = tmp_path / "demo.db"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--demo",
            "--db",
            f"sqlite:///{database}",
            "--port",
            str(port),
            "--events-dir",
            str(EXAMPLES_EVENTS),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        lines = _read_until(process, "Dashboard:", timeout=90)
        url = f"http://127.0.0.1:{port}/"
        assert lines[-1].strip().endswith(url), lines[-1]
        # The summary says where invocations beyond the deliveries come from.
        summary = next(line for line in lines if line.startswith("demo: "))
        counted = re.search(
            r"demo: (\d+) invocations over the 48 h before now: (\d+) Hasura deliveries "
            r"\((\d+) row changes and (\d+) redeliveries\), plus (\d+) cascades \(row changes "
            r"the jobs wrote\)",
            summary,
        )
        assert counted, summary
        total, deliveries, roots, again, cascades = map(int, counted.groups())
        assert deliveries == roots + again and total == deliveries + cascades
        assert again > 0 and cascades > 0
        assert httpx.get(url + "healthz").json() == {"status": "ok"}
        metrics = httpx.get(url + "metrics").text
        assert "event_detector_http_requests_total" in metrics
        delivered = httpx.post(
            url + "hooks/orders_events",
            json=json.loads((PAYLOADS / "orders.created.insert.json").read_text()),
        )
        assert delivered.status_code == 200
        answer = httpx.post(
            url + "v1/graphql",
            json={
                "query": "{ invocations_aggregate { aggregate { count } }"
                " dashboard_stats(order_by: {hour_bucket: desc}, limit: 1) { total_invocations } }"
            },
        ).json()
        assert "errors" not in answer, answer
        # The delivery just made is there once the plugin has flushed it.
        assert answer["data"]["invocations_aggregate"]["aggregate"]["count"] in (total, total + 1)
        assert answer["data"]["dashboard_stats"][0]["total_invocations"] > 0
        db_url = f"sqlite:///{database}"
        assert count(db_url, invocations) > 200
        dashboard = invocations.metadata.tables["dashboard_stats"]
        assert count(db_url, dashboard) >= 18, "the dashboard series cover the last day"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0
    assert "HTTP/1.1" not in rest, "no access log unless --access-log"
    # The delivery made while serving was flushed at shutdown.
    assert count(db_url, invocations, invocations.c.source_function == "orders_events") >= 1


def test_serve_refuses_settings_it_cannot_run_with_in_one_line(tmp_path: Path) -> None:
    database = tmp_path / "never.db"
    hs256 = '{"type": "HS256", "key": "0123456789abcdef0123456789abcdef"}'
    jwk = '{"jwk_url": "https://example.com/jwks"}'
    refused = [
        ({"EVENT_DETECTOR_JWT_SECRET": hs256}, "a JWT secret needs an admin secret too"),
        (
            {"EVENT_DETECTOR_JWT_SECRET": jwk, "EVENT_DETECTOR_ADMIN_SECRET": "s3cret"},
            "jwk_url is not supported",
        ),
        ({"OBSERVABILITY_GRAPHQL_URL": "http://127.0.0.1:9/v1/graphql"}, "unset it"),
    ]
    for env, problem in refused:
        args = ["serve", "--db", str(database), "--events-dir", str(EXAMPLES_EVENTS)]
        output = cli(*args, expect=2, env=env)
        assert output.startswith("error: cannot serve: ") and problem in output, output
        assert len(output.strip().splitlines()) <= 2, "one error, no traceback"
    assert not database.exists(), "refused before anything was migrated"


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                raise AssertionError("serve exited early:\n" + "".join(lines))
            continue
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} within {timeout} s:\n" + "".join(lines))


@pytest.mark.parametrize("admin_secret", [None, "s3cret"])
def test_serve_warns_when_it_listens_beyond_loopback_without_an_admin_secret(
    tmp_path: Path, admin_secret: str | None
) -> None:
    env = {k: v for k, v in os.environ.items() if "ADMIN_SECRET" not in k}
    port = free_port()
    if admin_secret:
        env["EVENT_DETECTOR_ADMIN_SECRET"] = admin_secret
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--db",
            f"sqlite:///{tmp_path / 'open.db'}",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            *(["--access-log"] if admin_secret else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**env, "COLUMNS": "300"},
    )
    try:
        # The warning (if any) comes before the dashboard's URL.
        lines = _read_until(process, "Dashboard:", timeout=60)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
        output = "".join(lines) + rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    warned = "no admin secret and listening on 0.0.0.0" in output
    assert warned is (admin_secret is None), output
    # --access-log (given with the secret here) logs each request; without it, none.
    logged = '"GET /healthz HTTP/1.1" 200' in output
    assert logged is (admin_secret is not None), output
