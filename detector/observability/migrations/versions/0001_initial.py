"""The observability schema: tables, indexes, and on PostgreSQL the triggers, computed-field
functions and the `dashboard_stats` materialized view.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

A migration is a frozen snapshot: it spells its tables out instead of importing the
models, so later model changes need a new revision (and `tests/test_schema.py` says so).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from detector.observability.sqltypes import JSONB, UUID, Timestamptz, new_uuid, utcnow

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "event_detector_observability"

INVOCATION_STATUSES = ("running", "completed", "failed", "timeout", "rejected")
EVENT_STATUSES = (
    "detecting",
    "not_detected",
    "handling",
    "completed",
    "failed",
    "detection_failed",
    "handler_failed",
)
JOB_STATUSES = ("running", "completed", "failed", "timeout", "cancelled")
LOG_LEVELS = ("debug", "info", "warn", "error")
OPERATIONS = ("INSERT", "UPDATE", "DELETE", "MANUAL")

# Tables whose `updated_at` the BEFORE UPDATE trigger maintains.
UPDATED_AT_TABLES = (
    "invocations",
    "event_executions",
    "job_executions",
    "metrics_hourly",
    "plugin_instances",
)
# Tables whose changes are announced on the `event_detector_changes` channel.
NOTIFY_TABLES = (
    "invocations",
    "event_executions",
    "job_executions",
    "job_logs",
    "metrics_hourly",
    "plugin_instances",
    "quarantined_records",
)


def _check_in(column: str, allowed: tuple[str, ...], table: str, *, nullable: bool = False) -> Any:
    listed = ", ".join(f"'{value}'" for value in allowed)
    condition = f"{column} IN ({listed})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return sa.CheckConstraint(condition, name=op.f(f"{table}_{column}_check"))


def _id() -> sa.Column[Any]:
    return sa.Column("id", UUID(), server_default=new_uuid(), nullable=False)


def _timestamp(name: str) -> sa.Column[Any]:
    return sa.Column(name, Timestamptz(), server_default=utcnow(), nullable=False)


def _count(name: str, type_: Any = None) -> sa.Column[Any]:
    return sa.Column(name, type_ or sa.Integer(), server_default=sa.text("0"), nullable=False)


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*(columns or ("id",)), name=op.f(f"{table}_pkey"))


def _fk(table: str, column: str, parent: str, schema: str | None) -> sa.ForeignKeyConstraint:
    target = f"{schema}.{parent}.id" if schema else f"{parent}.id"
    return sa.ForeignKeyConstraint(
        [column], [target], name=op.f(f"{table}_{column}_fkey"), ondelete="CASCADE"
    )


def _indexes(table: str, schema: str | None, *specs: str, unique: tuple[str, ...] = ()) -> None:
    """One index per spec: a column, `column DESC`, or `a,b` for a composite index."""
    for spec in (*specs, *unique):
        columns = [part.strip() for part in spec.split(",")]
        name = "idx_" + table + "_" + "_".join(c.split()[0] for c in columns)
        elements: list[Any] = [sa.text(c) if " " in c else c for c in columns]
        op.create_index(name, table, elements, schema=schema, unique=spec in unique)


def _create_tables(schema: str | None, postgres: bool) -> None:
    op.create_table(
        "invocations",
        _id(),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Column("correlation_id", sa.Text()),
        sa.Column("source_function", sa.Text(), nullable=False),
        sa.Column("source_table", sa.Text()),
        sa.Column("source_operation", sa.Text()),
        sa.Column("source_system", sa.Text(), server_default=sa.text("'hasura'"), nullable=False),
        sa.Column("source_trigger_name", sa.Text()),
        sa.Column("source_event_id", sa.Text()),
        sa.Column("source_event_payload", JSONB()),
        sa.Column("source_event_time", Timestamptz()),
        sa.Column("source_user_email", sa.Text()),
        sa.Column("source_user_role", sa.Text()),
        sa.Column("source_job_id", UUID()),
        sa.Column("delivery_attempt", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("received_at", Timestamptz()),
        sa.Column("total_duration_ms", sa.Integer()),
        _count("events_detected_count"),
        _count("total_jobs_run"),
        _count("total_jobs_succeeded"),
        _count("total_jobs_failed"),
        sa.Column("auto_load_modules", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("event_modules_directory", sa.Text()),
        sa.Column("status", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("error_message", sa.Text()),
        sa.Column("error_stack", sa.Text()),
        sa.Column("context_data", JSONB()),
        sa.Column("trace_id", sa.Text()),
        _pk("invocations"),
        _check_in("status", INVOCATION_STATUSES, "invocations"),
        _check_in("source_operation", OPERATIONS, "invocations", nullable=True),
        schema=schema,
        comment="Each call to listen_to() with the event it received and its outcome",
    )
    _indexes(
        "invocations",
        schema,
        "created_at DESC",
        "status",
        "source_function",
        "source_table",
        "source_operation",
        "correlation_id",
        "source_job_id",
        "source_event_id",
    )

    op.create_table(
        "event_executions",
        _id(),
        sa.Column("invocation_id", UUID(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Column("correlation_id", sa.Text()),
        sa.Column("event_name", sa.Text(), nullable=False),
        sa.Column("event_module_path", sa.Text()),
        sa.Column("detected", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("detection_duration_ms", sa.Integer()),
        sa.Column("detection_error", sa.Text()),
        sa.Column("detection_error_stack", sa.Text()),
        sa.Column("handler_duration_ms", sa.Integer()),
        sa.Column("handler_error", sa.Text()),
        sa.Column("handler_error_stack", sa.Text()),
        _count("jobs_count"),
        _count("jobs_succeeded"),
        _count("jobs_failed"),
        sa.Column("status", sa.Text(), server_default=sa.text("'detecting'"), nullable=False),
        _pk("event_executions"),
        _fk("event_executions", "invocation_id", "invocations", schema),
        _check_in("status", EVENT_STATUSES, "event_executions"),
        schema=schema,
        comment="Each event module checked during an invocation",
    )
    _indexes(
        "event_executions",
        schema,
        "invocation_id",
        "event_name",
        "status",
        "correlation_id",
        "created_at DESC",
    )

    op.create_table(
        "job_executions",
        _id(),
        sa.Column("invocation_id", UUID(), nullable=False),
        sa.Column("event_execution_id", UUID(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Column("correlation_id", sa.Text()),
        sa.Column("job_name", sa.Text(), nullable=False),
        sa.Column("job_function_name", sa.Text()),
        sa.Column("job_options", JSONB()),
        sa.Column("started_at", Timestamptz()),
        sa.Column("ended_at", Timestamptz()),
        sa.Column("duration_ms", sa.Integer()),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("result", JSONB()),
        sa.Column("error_type", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("error_stack", sa.Text()),
        _pk("job_executions"),
        _fk("job_executions", "invocation_id", "invocations", schema),
        _fk("job_executions", "event_execution_id", "event_executions", schema),
        _check_in("status", JOB_STATUSES, "job_executions"),
        schema=schema,
        comment="Each job run by a handler, with its result or error",
    )
    _indexes(
        "job_executions",
        schema,
        "invocation_id",
        "event_execution_id",
        "job_name",
        "status",
        "correlation_id",
        "created_at DESC",
    )

    # No enforced foreign keys: log lines arrive at high rates (each FK is checked row by
    # row) and retention deletes them by time.
    op.create_table(
        "job_logs",
        _id(),
        sa.Column("invocation_id", UUID(), nullable=False),
        sa.Column("event_execution_id", UUID()),
        sa.Column("job_execution_id", UUID()),
        _timestamp("created_at"),
        _count("seq"),
        sa.Column("level", sa.Text(), server_default=sa.text("'info'"), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", JSONB()),
        sa.Column("source", sa.Text()),
        sa.Column("line_number", sa.Integer()),
        _pk("job_logs"),
        _check_in("level", LOG_LEVELS, "job_logs"),
        schema=schema,
        comment="Log lines captured during detectors, handlers and jobs",
    )
    _indexes(
        "job_logs",
        schema,
        "invocation_id",
        "event_execution_id",
        "job_execution_id",
        "created_at DESC",
    )

    op.create_table(
        "metrics_hourly",
        _id(),
        sa.Column("hour_bucket", Timestamptz(), nullable=False),
        sa.Column("source_function", sa.Text(), nullable=False),
        _count("total_invocations"),
        _count("successful_invocations"),
        _count("failed_invocations"),
        _count("total_events_detected"),
        _count("total_jobs_run"),
        _count("total_jobs_failed"),
        sa.Column("avg_duration_ms", sa.Numeric(12, 2)),
        sa.Column("min_duration_ms", sa.Integer()),
        sa.Column("max_duration_ms", sa.Integer()),
        sa.Column("p95_duration_ms", sa.Numeric(12, 2)),
        sa.Column("top_detected_events", JSONB(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("most_failed_jobs", JSONB(), server_default=sa.text("'[]'"), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _pk("metrics_hourly"),
        sa.UniqueConstraint(
            "hour_bucket",
            "source_function",
            name=op.f("metrics_hourly_hour_bucket_source_function_key"),
        ),
        schema=schema,
        comment="Hourly rollup of invocations per source function",
    )
    _indexes("metrics_hourly", schema, "hour_bucket DESC", "source_function")

    op.create_table(
        "plugin_instances",
        sa.Column("id", sa.Text(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Column("hostname", sa.Text()),
        sa.Column("pid", sa.Integer()),
        sa.Column("writer", sa.Text()),
        _count("buffer_depth"),
        _count("records_written", sa.BigInteger()),
        _count("records_dropped", sa.BigInteger()),
        sa.Column("dropped_by_reason", JSONB(), server_default=sa.text("'{}'"), nullable=False),
        _count("records_quarantined"),
        sa.Column("last_flush_at", Timestamptz()),
        sa.Column("flush_lag_ms", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        _pk("plugin_instances"),
        schema=schema,
        comment="Health of each observability plugin process: buffer, flushes, drops",
    )
    _indexes("plugin_instances", schema, "updated_at DESC")

    op.create_table(
        "quarantined_records",
        _id(),
        _timestamp("created_at"),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Text()),
        sa.Column("record", JSONB(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        _pk("quarantined_records"),
        schema=schema,
        comment="Records a table rejected, kept with the error for inspection and replay",
    )
    _indexes("quarantined_records", schema, "created_at DESC")

    if not postgres:
        # SQLite: a plain table the rollup recomputes with the materialized view's definition.
        op.create_table(
            "dashboard_stats",
            sa.Column("hour_bucket", Timestamptz(), nullable=False),
            sa.Column("source_function", sa.Text(), nullable=False),
            sa.Column("total_invocations", sa.BigInteger()),
            sa.Column("successful_invocations", sa.BigInteger()),
            sa.Column("failed_invocations", sa.BigInteger()),
            sa.Column("total_events_detected", sa.BigInteger()),
            sa.Column("total_jobs_run", sa.BigInteger()),
            sa.Column("total_jobs_succeeded", sa.BigInteger()),
            sa.Column("total_jobs_failed", sa.BigInteger()),
            sa.Column("avg_duration_ms", sa.Numeric()),
            sa.Column("min_duration_ms", sa.Integer()),
            sa.Column("max_duration_ms", sa.Integer()),
            sa.Column("p95_duration_ms", sa.Float(precision=53)),
        )
        _indexes(
            "dashboard_stats",
            None,
            "source_function",
            unique=("hour_bucket,source_function",),
        )


POSTGRES_FUNCTIONS = tuple(
    statement.strip()
    for statement in f"""
CREATE OR REPLACE FUNCTION {SCHEMA}.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION {SCHEMA}.notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('event_detector_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION {SCHEMA}.invocation_success_rate(invocation {SCHEMA}.invocations)
RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN invocation.total_jobs_run = 0 THEN 100::numeric
        ELSE round(invocation.total_jobs_succeeded::numeric / invocation.total_jobs_run * 100, 2)
    END
$$;

CREATE OR REPLACE FUNCTION {SCHEMA}.invocation_avg_job_duration(invocation {SCHEMA}.invocations)
RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT coalesce(avg(job.duration_ms), 0)
    FROM {SCHEMA}.job_executions AS job
    WHERE job.invocation_id = invocation.id
$$;

CREATE OR REPLACE FUNCTION {SCHEMA}.event_job_success_rate(event {SCHEMA}.event_executions)
RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN event.jobs_count = 0 THEN 100::numeric
        ELSE round(event.jobs_succeeded::numeric / event.jobs_count * 100, 2)
    END
$$;
""".split(";\n\n")
)

POSTGRES_DASHBOARD_STATS = tuple(
    statement.strip()
    for statement in f"""
CREATE MATERIALIZED VIEW {SCHEMA}.dashboard_stats AS
SELECT
    date_trunc('hour', created_at, 'UTC') AS hour_bucket,
    source_function,
    count(*) AS total_invocations,
    count(*) FILTER (WHERE status = 'completed') AS successful_invocations,
    count(*) FILTER (WHERE status = 'failed') AS failed_invocations,
    sum(events_detected_count) AS total_events_detected,
    sum(total_jobs_run) AS total_jobs_run,
    sum(total_jobs_succeeded) AS total_jobs_succeeded,
    sum(total_jobs_failed) AS total_jobs_failed,
    avg(total_duration_ms) AS avg_duration_ms,
    min(total_duration_ms) AS min_duration_ms,
    max(total_duration_ms) AS max_duration_ms,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY total_duration_ms) AS p95_duration_ms
FROM {SCHEMA}.invocations
WHERE created_at >= now() - interval '30 days'
GROUP BY 1, 2
WITH DATA;
CREATE UNIQUE INDEX idx_dashboard_stats_hour_bucket_source_function
    ON {SCHEMA}.dashboard_stats (hour_bucket, source_function);
CREATE INDEX idx_dashboard_stats_source_function ON {SCHEMA}.dashboard_stats (source_function);
COMMENT ON MATERIALIZED VIEW {SCHEMA}.dashboard_stats IS
    'Hourly dashboard series per source function (last 30 days, UTC hours)';
""".split(";\n")
    if statement.strip()
)


def _postgres_extras() -> None:
    # One statement per execute: asyncpg prepares each statement.
    for statement in POSTGRES_FUNCTIONS:
        op.execute(statement)
    for table in UPDATED_AT_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_set_updated_at BEFORE UPDATE ON {SCHEMA}.{table} "
            f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.set_updated_at()"
        )
    for table in NOTIFY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_notify_change "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {SCHEMA}.{table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.notify_change()"
        )
    for statement in POSTGRES_DASHBOARD_STATS:
        op.execute(statement)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _create_tables(SCHEMA if postgres else None, postgres)
    if postgres:
        _postgres_extras()


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    schema = SCHEMA if postgres else None
    drop: Callable[..., None] = op.drop_table
    if postgres:
        op.execute(f"DROP MATERIALIZED VIEW IF EXISTS {SCHEMA}.dashboard_stats")
        # The computed-field functions take table rows: drop them before the tables.
        for function in (
            "invocation_success_rate",
            "invocation_avg_job_duration",
            "event_job_success_rate",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.{function}")
    else:
        drop("dashboard_stats")
    for table in (
        "quarantined_records",
        "plugin_instances",
        "metrics_hourly",
        "job_logs",
        "job_executions",
        "event_executions",
        "invocations",
    ):
        drop(table, schema=schema)
    if postgres:
        for function in (
            "set_updated_at()",
            "notify_change()",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.{function}")
