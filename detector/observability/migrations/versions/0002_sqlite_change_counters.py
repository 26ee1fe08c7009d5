"""SQLite: per-table change counters for live queries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

PostgreSQL announces changes with a statement-level trigger (`NOTIFY
event_detector_changes`, revision 0001). SQLite has no notifications: a service learns
that *another* connection committed from `PRAGMA data_version`, but not what changed.
These triggers count the rows written per table in `change_counters`, so a live query
re-runs only when one of the tables it reads has changed. Nothing changes on
PostgreSQL.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Every table of revision 0001 on SQLite (a frozen list: later tables add their own).
COUNTED_TABLES = (
    "invocations",
    "event_executions",
    "job_executions",
    "job_logs",
    "metrics_hourly",
    "plugin_instances",
    "quarantined_records",
    "dashboard_stats",
)
OPERATIONS = ("insert", "update", "delete")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # WITHOUT ROWID: the counter row is found by its key alone (one b-tree lookup).
    op.execute(
        "CREATE TABLE IF NOT EXISTS change_counters ("
        "table_name TEXT NOT NULL PRIMARY KEY, changes INTEGER NOT NULL DEFAULT 0"
        ") WITHOUT ROWID"
    )
    for table in COUNTED_TABLES:
        op.execute(f"INSERT OR IGNORE INTO change_counters (table_name) VALUES ('{table}')")
        for operation in OPERATIONS:
            # SQLite triggers are per row; one UPDATE of a one-page table costs ~2 µs.
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS {table}_count_{operation} "
                f"AFTER {operation.upper()} ON {table} BEGIN "
                f"UPDATE change_counters SET changes = changes + 1 "
                f"WHERE table_name = '{table}'; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in COUNTED_TABLES:
        for operation in OPERATIONS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_count_{operation}")
    op.execute("DROP TABLE IF EXISTS change_counters")
