"""Drop the enforced foreign key `job_executions.invocation_id` → `invocations`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Every job row is checked against two parents when it is written, and PostgreSQL checks
each foreign key row by row: at the flush rates of SPEC §6 that check costs a large
share of the COPY. `event_execution_id` → `event_executions` (ON DELETE CASCADE) stays:
deleting an invocation still deletes its event executions and, through them, their job
executions. `invocation_id` stays as an indexed, denormalised link for filtering; Hasura
reaches it through manual relationships.

SQLite cannot drop a constraint: the table is rebuilt (alembic's batch mode). The
rebuild drops the table's triggers with it, so revision 0002's change counters are
created again, and it would recreate `created_at DESC` as an ascending index (reflection
loses the order), so that index is created here as revision 0001 wrote it.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "event_detector_observability"
TABLE = "job_executions"
CONSTRAINT = "job_executions_invocation_id_fkey"
CREATED_AT_INDEX = "idx_job_executions_created_at"
OPERATIONS = ("insert", "update", "delete")


def _rebuild_sqlite_table(change: Callable[[BatchOperations], None]) -> None:
    """Rebuild the SQLite table with `change` applied, keeping its indexes and triggers."""
    with op.batch_alter_table(TABLE, recreate="always") as batch:
        batch.drop_index(CREATED_AT_INDEX)
        change(batch)
    op.create_index(CREATED_AT_INDEX, TABLE, [sa.text("created_at DESC")])
    # Revision 0002's change-counter triggers, as it wrote them.
    for operation in OPERATIONS:
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS {TABLE}_count_{operation} "
            f"AFTER {operation.upper()} ON {TABLE} BEGIN "
            f"UPDATE change_counters SET changes = changes + 1 "
            f"WHERE table_name = '{TABLE}'; END"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(CONSTRAINT, TABLE, schema=SCHEMA, type_="foreignkey")
        return
    _rebuild_sqlite_table(lambda batch: batch.drop_constraint(CONSTRAINT, type_="foreignkey"))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        # Fails, naming the constraint, if job rows point to invocations that are gone.
        op.create_foreign_key(
            CONSTRAINT,
            TABLE,
            "invocations",
            ["invocation_id"],
            ["id"],
            source_schema=SCHEMA,
            referent_schema=SCHEMA,
            ondelete="CASCADE",
        )
        return
    _rebuild_sqlite_table(
        lambda batch: batch.create_foreign_key(
            CONSTRAINT, "invocations", ["invocation_id"], ["id"], ondelete="CASCADE"
        )
    )
