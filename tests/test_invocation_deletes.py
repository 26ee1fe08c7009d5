"""Deleting an invocation deletes its job executions, whichever way it is deleted.

`job_executions.invocation_id` has no enforced foreign key (SPEC §6 flush throughput,
revision 0003): the cascade runs invocation → event_executions → job_executions. Here
invocations are deleted through GraphQL (`delete_invocations_by_pk`, `delete_invocations`)
and by retention, on both backends, and no job row may be left whose invocation or event
execution is gone.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from detector.observability.migrate import sqlite_path
from service.operations.retention import RetentionPolicy, apply_retention
from service.settings import Settings
from service.storage.maintenance import event_executions, invocations, job_executions
from tests.support import db
from tests.support.runtime import count, execute, rows
from tests.support.server import serving

SECRET = "cascade-secret"
ADMIN = {"x-hasura-admin-secret": SECRET}
NOW = datetime.now(UTC).replace(microsecond=0)
EVENTS_PER_INVOCATION = 2
JOBS_PER_EVENT = 3
JOBS_PER_INVOCATION = EVENTS_PER_INVOCATION * JOBS_PER_EVENT
# name: (status, age in days); retention below keeps completed 7 days, the rest 30.
INVOCATIONS = {
    "expired_completed": ("completed", 10),
    "expired_failed": ("failed", 40),
    "kept": ("completed", 1),
}


def build(url: str) -> dict[str, str]:
    """Each invocation with its event executions and jobs; returns name → invocation id."""
    ids = {name: str(uuid.uuid4()) for name in INVOCATIONS}
    invocation_rows, event_rows, job_rows = [], [], []
    for name, (status, days) in INVOCATIONS.items():
        at = NOW - timedelta(days=days)
        invocation_rows.append(
            {"id": ids[name], "created_at": at, "source_function": name, "status": status}
        )
        for e in range(EVENTS_PER_INVOCATION):
            event_id = str(uuid.uuid4())
            event_rows.append(
                {
                    "id": event_id,
                    "invocation_id": ids[name],
                    "created_at": at,
                    "event_name": f"e{e}",
                }
            )
            job_rows += [
                {
                    "id": str(uuid.uuid4()),
                    "invocation_id": ids[name],
                    "event_execution_id": event_id,
                    "created_at": at,
                    "job_name": f"job{j}",
                    "status": "completed",
                }
                for j in range(JOBS_PER_EVENT)
            ]
    execute(url, invocations.insert(), invocation_rows)
    execute(url, event_executions.insert(), event_rows)
    execute(url, job_executions.insert(), job_rows)
    return ids


def orphan_jobs(url: str) -> int:
    """Job rows whose invocation or event execution no longer exists."""
    no_invocation = ~sa.exists().where(invocations.c.id == job_executions.c.invocation_id)
    no_event = ~sa.exists().where(event_executions.c.id == job_executions.c.event_execution_id)
    return count(url, job_executions, sa.or_(no_invocation, no_event))


def jobs_by_invocation(url: str) -> dict[str, int]:
    found = rows(
        url,
        sa.select(job_executions.c.invocation_id, sa.func.count().label("jobs")).group_by(
            job_executions.c.invocation_id
        ),
    )
    return {row["invocation_id"]: row["jobs"] for row in found}


def test_graphql_deletes_leave_no_job_executions_behind(db_url: str) -> None:
    ids = build(db_url)
    assert orphan_jobs(db_url) == 0
    with serving(Settings(database_url=db_url, admin_secret=SECRET)) as server:

        def ok(query: str, variables: dict[str, Any]) -> Any:
            body = server.post(query, variables, headers=ADMIN)
            assert "errors" not in body, body
            return body["data"]

        got = ok(
            "mutation ($id: uuid!) { delete_invocations_by_pk(id: $id) {"
            " id job_executions_aggregate { aggregate { count } } } }",
            {"id": ids["expired_completed"]},
        )
        # The deleted row as it was, its jobs read through the manual relationship.
        assert got["delete_invocations_by_pk"] == {
            "id": ids["expired_completed"],
            "job_executions_aggregate": {"aggregate": {"count": JOBS_PER_INVOCATION}},
        }
        got = ok(
            "mutation ($id: uuid!) { delete_invocations(where: {id: {_eq: $id}}) {"
            " affected_rows } }",
            {"id": ids["expired_failed"]},
        )
        assert got["delete_invocations"] == {"affected_rows": 1}
        got = ok(
            "query ($gone: [uuid!]!) {"
            " gone: job_executions_aggregate(where: {invocation_id: {_in: $gone}})"
            " { aggregate { count } }"
            " orphans: job_executions_aggregate(where: {_not: {invocation: {}}})"
            " { aggregate { count } }"
            ' kept: job_executions_aggregate(where: {invocation: {source_function: {_eq: "kept"}}})'
            " { aggregate { count } } }",
            {"gone": [ids["expired_completed"], ids["expired_failed"]]},
        )
    assert got == {
        "gone": {"aggregate": {"count": 0}},
        "orphans": {"aggregate": {"count": 0}},
        "kept": {"aggregate": {"count": JOBS_PER_INVOCATION}},
    }
    assert orphan_jobs(db_url) == 0
    assert jobs_by_invocation(db_url) == {ids["kept"]: JOBS_PER_INVOCATION}


def test_retention_leaves_no_job_executions_behind(db_url: str) -> None:
    ids = build(db_url)
    policy = RetentionPolicy(success_days=7, failure_days=30, batch_size=1)
    done = asyncio.run(apply_retention(db_url, policy, now=NOW))
    assert done.invocations == 2
    assert done.event_executions == 2 * EVENTS_PER_INVOCATION
    assert done.job_executions == 2 * JOBS_PER_INVOCATION
    assert orphan_jobs(db_url) == 0
    assert jobs_by_invocation(db_url) == {ids["kept"]: JOBS_PER_INVOCATION}
    assert count(db_url, event_executions) == EVENTS_PER_INVOCATION


def test_a_served_sqlite_file_takes_writes_while_another_writer_holds_it(
    sqlite_url: str,
) -> None:
    """A freshly migrated file, another writer holding the lock: the mutation waits.

    Migrating leaves the file in WAL mode. Left in rollback mode, the service's first
    connection would have to switch it, and SQLite refuses that at once ("database is
    locked", no busy wait) while another connection writes: the mutation failed.
    """
    db.run(db.prepare_database(sqlite_url))
    path = sqlite_path(sqlite_url)
    other = sqlite3.connect(path, isolation_level=None)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ids = build(sqlite_url)
    with serving(Settings(database_url=sqlite_url, admin_secret=SECRET)) as server:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock...
        other.execute(
            "UPDATE invocations SET error_message = 'touched' WHERE id = ?", (ids["kept"],)
        )
        with ThreadPoolExecutor(max_workers=1) as pool:
            answer = pool.submit(
                server.post,
                "mutation ($id: uuid!) { delete_invocations_by_pk(id: $id) {"
                " id job_executions_aggregate { aggregate { count } } } }",
                {"id": ids["expired_completed"]},
                headers=ADMIN,
            )
            time.sleep(0.5)  # ...while the mutation connects and waits
            other.execute("COMMIT")
            other.close()
            body = answer.result(timeout=30)
    assert "errors" not in body, body
    assert body["data"]["delete_invocations_by_pk"]["id"] == ids["expired_completed"]
    assert count(sqlite_url, invocations, invocations.c.id == ids["expired_completed"]) == 0
    assert orphan_jobs(sqlite_url) == 0
