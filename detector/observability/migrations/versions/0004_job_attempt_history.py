"""Add `job_executions.attempt_history`: each attempt of a retried job.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

A nullable jsonb column (JSON text on SQLite): a list of `{attempt, started_at,
ended_at, duration_ms, status, error_type, error_message}`, oldest first, written only
for jobs that made more than one attempt; NULL otherwise, so existing rows need no
rewrite. Both backends add and drop the column in place (SQLite 3.35+ drops columns
without rebuilding the table, so revision 0002's triggers stay).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from detector.observability.sqltypes import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "event_detector_observability"
TABLE = "job_executions"
COLUMN = "attempt_history"


def _schema() -> str | None:
    return SCHEMA if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    op.add_column(TABLE, sa.Column(COLUMN, JSONB()), schema=_schema())


def downgrade() -> None:
    op.drop_column(TABLE, COLUMN, schema=_schema())
