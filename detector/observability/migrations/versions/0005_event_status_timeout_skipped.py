"""`event_executions.status` accepts `timeout` and `skipped`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

`timeout`: the invocation's deadline cut the event's detector or handler (as its
outstanding jobs are `timeout` and the invocation is `timeout`), where it was recorded
as `detection_failed` / `handler_failed`. `skipped`: the event module declares tables or
operations the event is not, so its detector never ran.

Only the CHECK constraint changes. On SQLite a rebuilt table would cascade: dropping
`event_executions` inside the migration's transaction (foreign keys stay on) deletes
every job row through `job_executions.event_execution_id ON DELETE CASCADE`. The
constraint is therefore rewritten in place, by SQLite's documented procedure for
changing a CHECK constraint (`PRAGMA writable_schema`, then a new `schema_version`):
the stored rows are untouched, and every row already satisfies the wider check.
"""

from __future__ import annotations

import re

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "event_detector_observability"
TABLE = "event_executions"
CONSTRAINT = "event_executions_status_check"
BEFORE = (
    "detecting",
    "not_detected",
    "handling",
    "completed",
    "failed",
    "detection_failed",
    "handler_failed",
)
AFTER = (*BEFORE, "timeout", "skipped")
# The SQLite table text of the constraint, whatever values it lists.
_SQLITE_CHECK = re.compile(rf"CONSTRAINT {CONSTRAINT} CHECK \(status IN \([^)]*\)\)")


def _condition(allowed: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{value}'" for value in allowed) + ")"


def _set_check(allowed: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # op.f(): the name as it is, not run through the metadata's naming convention.
        op.drop_constraint(op.f(CONSTRAINT), TABLE, schema=SCHEMA, type_="check")
        op.create_check_constraint(op.f(CONSTRAINT), TABLE, _condition(allowed), schema=SCHEMA)
        return
    table_sql = bind.exec_driver_sql(
        f"SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '{TABLE}'"
    ).scalar_one()
    rewritten, found = _SQLITE_CHECK.subn(
        f"CONSTRAINT {CONSTRAINT} CHECK ({_condition(allowed)})", table_sql
    )
    if found != 1:
        raise RuntimeError(f"{TABLE}: expected one {CONSTRAINT} in its definition, found {found}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        f"UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = '{TABLE}'",
        (rewritten,),
    )
    # A new schema version makes every connection (this one too) re-read the definition.
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _set_check(AFTER)


def downgrade() -> None:
    # Rows with the new values get the statuses they were recorded with before.
    op.execute(
        f"UPDATE {_table()} SET status = CASE WHEN detected THEN 'handler_failed' "
        "ELSE 'detection_failed' END WHERE status = 'timeout'"
    )
    op.execute(f"UPDATE {_table()} SET status = 'not_detected' WHERE status = 'skipped'")
    _set_check(BEFORE)


def _table() -> str:
    return f"{SCHEMA}.{TABLE}" if op.get_bind().dialect.name == "postgresql" else TABLE
