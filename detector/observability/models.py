"""The observability tables (SPEC §2) as SQLModel models, usable on PostgreSQL and SQLite.

These classes are the one definition of the tables in Python. They sit on their own
`metadata` (and mapper registry), never on SQLModel's process-wide one: a host
application's models and `create_all()` never meet them. `schema.sql` is the same
schema written for PostgreSQL, and the migrations build it; `tests/test_models.py`
proves the three agree. On PostgreSQL the tables live in the schema
`event_detector_observability`: the models carry no schema and engines map it with
`schema_translate_map` (see `POSTGRES_SCHEMA`).

Conventions:
- primary keys are `uuid` named `<table>_pkey`; CHECK constraints `<table>_<column>_check`;
  indexes `idx_<table>_<column>`;
- every column beyond SPEC §2's list has a default, so a writer that names only
  SPEC §2's columns works;
- `job_logs` and `invocations.source_job_id` carry no enforced foreign keys: log lines are
  written at high rates and deleted by time, and a child invocation may be written before
  the parent job row it points to;
- `job_executions.invocation_id` carries none either (SPEC §6 flush throughput: each
  foreign key is checked row by row): `event_execution_id` → `event_executions` is the
  job's one enforced foreign key, and deleting an invocation cascades through it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from detector.status import EventStatus, InvocationStatus, JobStatus, LogLevel, Operation, values

from .sqltypes import JSONB, UUID, Timestamptz, new_uuid, utcnow
from .tables import POSTGRES_SCHEMA

__all__ = ["POSTGRES_SCHEMA", "TABLES", "metadata"]

# Naming convention shared by models, schema.sql and migrations.
NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "ix": "idx_%(table_name)s_%(column_0_N_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
"""The observability tables, on a MetaData of their own: never SQLModel's process-wide
one, so a host application's own tables (an `invocations` of its own, say) and its
`create_all()` never meet ours."""


class ObservabilityModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of the observability tables: SQLModel models on their own `metadata` and
    mapper registry (class names never clash with a host application's models either)."""


def _in(column: str, allowed: tuple[str, ...], *, nullable: bool = False) -> sa.CheckConstraint:
    listed = ", ".join(f"'{value}'" for value in allowed)
    condition = f"{column} IN ({listed})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return sa.CheckConstraint(condition, name=column)


def _id() -> Any:
    return Field(
        default=None,
        sa_column=sa.Column(UUID(), primary_key=True, server_default=new_uuid()),
    )


def _created_at() -> Any:
    return Field(
        default=None, sa_column=sa.Column(Timestamptz(), nullable=False, server_default=utcnow())
    )


def _column(type_: Any, *args: Any, nullable: bool = True, default: Any = None, **kw: Any) -> Any:
    return Field(default=default, sa_column=sa.Column(type_, *args, nullable=nullable, **kw))


def _count() -> Any:
    return _column(sa.Integer(), nullable=False, default=0, server_default=sa.text("0"))


class Invocation(ObservabilityModel, table=True):
    """One `listen_to` call."""

    __tablename__ = "invocations"
    __table_args__ = (
        _in("status", values(InvocationStatus)),
        _in("source_operation", values(Operation), nullable=True),
        sa.Index("idx_invocations_created_at", sa.text("created_at DESC")),
        sa.Index("idx_invocations_status", "status"),
        sa.Index("idx_invocations_source_function", "source_function"),
        sa.Index("idx_invocations_source_table", "source_table"),
        sa.Index("idx_invocations_source_operation", "source_operation"),
        sa.Index("idx_invocations_correlation_id", "correlation_id"),
        sa.Index("idx_invocations_source_job_id", "source_job_id"),
        sa.Index("idx_invocations_source_event_id", "source_event_id"),
        {"comment": "Each call to listen_to() with the event it received and its outcome"},
    )

    id: str | None = _id()
    created_at: datetime | None = _created_at()
    updated_at: datetime | None = _created_at()
    correlation_id: str | None = _column(sa.Text())
    source_function: str = _column(sa.Text(), nullable=False)
    source_table: str | None = _column(sa.Text())
    source_operation: str | None = _column(sa.Text())
    source_system: str = _column(
        sa.Text(), nullable=False, default="hasura", server_default=sa.text("'hasura'")
    )
    source_trigger_name: str | None = _column(sa.Text())
    source_event_id: str | None = _column(sa.Text())
    source_event_payload: Any = _column(JSONB())
    source_event_time: datetime | None = _column(Timestamptz())
    source_user_email: str | None = _column(sa.Text())
    source_user_role: str | None = _column(sa.Text())
    source_job_id: str | None = _column(UUID())
    delivery_attempt: int = _column(
        sa.Integer(), nullable=False, default=1, server_default=sa.text("1")
    )
    received_at: datetime | None = _column(Timestamptz())
    total_duration_ms: int | None = _column(sa.Integer())
    events_detected_count: int = _count()
    total_jobs_run: int = _count()
    total_jobs_succeeded: int = _count()
    total_jobs_failed: int = _count()
    auto_load_modules: bool = _column(
        sa.Boolean(), nullable=False, default=True, server_default=sa.true()
    )
    event_modules_directory: str | None = _column(sa.Text())
    status: str = _column(
        sa.Text(),
        nullable=False,
        default=InvocationStatus.RUNNING.value,
        server_default=sa.text(f"'{InvocationStatus.RUNNING.value}'"),
    )
    error_message: str | None = _column(sa.Text())
    error_stack: str | None = _column(sa.Text())
    context_data: Any = _column(JSONB())
    # Beyond SPEC §2: the W3C trace id Hasura sent (trace_context), to join with traces.
    trace_id: str | None = _column(sa.Text())


class EventExecution(ObservabilityModel, table=True):
    """One event module checked during an invocation (detected or not)."""

    __tablename__ = "event_executions"
    __table_args__ = (
        _in("status", values(EventStatus)),
        sa.Index("idx_event_executions_invocation_id", "invocation_id"),
        sa.Index("idx_event_executions_event_name", "event_name"),
        sa.Index("idx_event_executions_status", "status"),
        sa.Index("idx_event_executions_correlation_id", "correlation_id"),
        sa.Index("idx_event_executions_created_at", sa.text("created_at DESC")),
        {"comment": "Each event module checked during an invocation"},
    )

    id: str | None = _id()
    invocation_id: str = _column(
        UUID(), sa.ForeignKey("invocations.id", ondelete="CASCADE"), nullable=False
    )
    created_at: datetime | None = _created_at()
    updated_at: datetime | None = _created_at()
    correlation_id: str | None = _column(sa.Text())
    event_name: str = _column(sa.Text(), nullable=False)
    event_module_path: str | None = _column(sa.Text())
    detected: bool = _column(sa.Boolean(), nullable=False, default=False, server_default=sa.false())
    detection_duration_ms: int | None = _column(sa.Integer())
    detection_error: str | None = _column(sa.Text())
    detection_error_stack: str | None = _column(sa.Text())
    handler_duration_ms: int | None = _column(sa.Integer())
    handler_error: str | None = _column(sa.Text())
    handler_error_stack: str | None = _column(sa.Text())
    jobs_count: int = _count()
    jobs_succeeded: int = _count()
    jobs_failed: int = _count()
    status: str = _column(
        sa.Text(),
        nullable=False,
        default=EventStatus.DETECTING.value,
        server_default=sa.text(f"'{EventStatus.DETECTING.value}'"),
    )


class JobExecution(ObservabilityModel, table=True):
    """One job run (all its attempts)."""

    __tablename__ = "job_executions"
    __table_args__ = (
        _in("status", values(JobStatus)),
        sa.Index("idx_job_executions_invocation_id", "invocation_id"),
        sa.Index("idx_job_executions_event_execution_id", "event_execution_id"),
        sa.Index("idx_job_executions_job_name", "job_name"),
        sa.Index("idx_job_executions_status", "status"),
        sa.Index("idx_job_executions_correlation_id", "correlation_id"),
        sa.Index("idx_job_executions_created_at", sa.text("created_at DESC")),
        {"comment": "Each job run by a handler, with its result or error"},
    )

    id: str | None = _id()
    # No enforced foreign key (revision 0003): a denormalised link for filtering. The
    # cascade from invocations comes through event_executions.
    invocation_id: str = _column(UUID(), nullable=False)
    event_execution_id: str = _column(
        UUID(), sa.ForeignKey("event_executions.id", ondelete="CASCADE"), nullable=False
    )
    created_at: datetime | None = _created_at()
    updated_at: datetime | None = _created_at()
    correlation_id: str | None = _column(sa.Text())
    job_name: str = _column(sa.Text(), nullable=False)
    job_function_name: str | None = _column(sa.Text())
    job_options: Any = _column(JSONB())
    started_at: datetime | None = _column(Timestamptz())
    ended_at: datetime | None = _column(Timestamptz())
    duration_ms: int | None = _column(sa.Integer())
    attempts: int = _column(sa.Integer(), nullable=False, default=1, server_default=sa.text("1"))
    status: str = _column(
        sa.Text(),
        nullable=False,
        default=JobStatus.RUNNING.value,
        server_default=sa.text(f"'{JobStatus.RUNNING.value}'"),
    )
    result: Any = _column(JSONB())
    error_type: str | None = _column(sa.Text())
    error_message: str | None = _column(sa.Text())
    error_stack: str | None = _column(sa.Text())
    # Each attempt of a retried job (revision 0004); NULL when the job ran once.
    attempt_history: Any = _column(JSONB())


class JobLog(ObservabilityModel, table=True):
    """One captured log line (from `logging`, stdout or stderr) of a detector, handler or job."""

    __tablename__ = "job_logs"
    __table_args__ = (
        _in("level", values(LogLevel)),
        sa.Index("idx_job_logs_invocation_id", "invocation_id"),
        sa.Index("idx_job_logs_event_execution_id", "event_execution_id"),
        sa.Index("idx_job_logs_job_execution_id", "job_execution_id"),
        sa.Index("idx_job_logs_created_at", sa.text("created_at DESC")),
        {"comment": "Log lines captured during detectors, handlers and jobs"},
    )

    id: str | None = _id()
    invocation_id: str = _column(UUID(), nullable=False)
    event_execution_id: str | None = _column(UUID())
    job_execution_id: str | None = _column(UUID())
    created_at: datetime | None = _created_at()
    seq: int = _count()
    level: str = _column(
        sa.Text(),
        nullable=False,
        default=LogLevel.INFO.value,
        server_default=sa.text(f"'{LogLevel.INFO.value}'"),
    )
    message: str = _column(sa.Text(), nullable=False)
    data: Any = _column(JSONB())
    source: str | None = _column(sa.Text())
    line_number: int | None = _column(sa.Integer())


class MetricsHourly(ObservabilityModel, table=True):
    """Hourly rollup per source function, written by `event-detector rollup`."""

    __tablename__ = "metrics_hourly"
    __table_args__ = (
        sa.UniqueConstraint("hour_bucket", "source_function"),
        sa.Index("idx_metrics_hourly_hour_bucket", sa.text("hour_bucket DESC")),
        sa.Index("idx_metrics_hourly_source_function", "source_function"),
        {"comment": "Hourly rollup of invocations per source function"},
    )

    id: str | None = _id()
    hour_bucket: datetime = _column(Timestamptz(), nullable=False)
    source_function: str = _column(sa.Text(), nullable=False)
    total_invocations: int = _count()
    successful_invocations: int = _count()
    failed_invocations: int = _count()
    total_events_detected: int = _count()
    total_jobs_run: int = _count()
    total_jobs_failed: int = _count()
    avg_duration_ms: float | None = _column(sa.Numeric(12, 2))
    min_duration_ms: int | None = _column(sa.Integer())
    max_duration_ms: int | None = _column(sa.Integer())
    p95_duration_ms: float | None = _column(sa.Numeric(12, 2))
    top_detected_events: Any = _column(
        JSONB(), nullable=False, default=None, server_default=sa.text("'[]'")
    )
    most_failed_jobs: Any = _column(
        JSONB(), nullable=False, default=None, server_default=sa.text("'[]'")
    )
    created_at: datetime | None = _created_at()
    updated_at: datetime | None = _created_at()


class DashboardStats(ObservabilityModel, table=True):
    """Hourly dashboard series per source function.

    A materialized view on PostgreSQL (refreshed concurrently by the service and by
    `event-detector rollup`); a table kept equal to that view's definition on SQLite.
    It has no primary key in the database: (hour_bucket, source_function) is unique (an
    index); the primary key declared here only lets the ORM map rows. Buckets are UTC
    hours; the window is the last 30 days.
    """

    __tablename__ = "dashboard_stats"
    __table_args__ = (
        # The unique index REFRESH MATERIALIZED VIEW CONCURRENTLY needs.
        sa.Index(
            "idx_dashboard_stats_hour_bucket_source_function",
            "hour_bucket",
            "source_function",
            unique=True,
        ),
        sa.Index("idx_dashboard_stats_source_function", "source_function"),
        {"info": {"materialized_view": True}},
    )

    hour_bucket: datetime = Field(sa_column=sa.Column(Timestamptz(), primary_key=True))
    source_function: str = Field(sa_column=sa.Column(sa.Text(), primary_key=True))
    total_invocations: int = _column(sa.BigInteger())
    successful_invocations: int = _column(sa.BigInteger())
    failed_invocations: int = _column(sa.BigInteger())
    total_events_detected: int = _column(sa.BigInteger())
    total_jobs_run: int = _column(sa.BigInteger())
    total_jobs_succeeded: int = _column(sa.BigInteger())
    total_jobs_failed: int = _column(sa.BigInteger())
    avg_duration_ms: float | None = _column(sa.Numeric())
    min_duration_ms: int | None = _column(sa.Integer())
    max_duration_ms: int | None = _column(sa.Integer())
    p95_duration_ms: float | None = _column(sa.Float(precision=53))


class PluginInstance(ObservabilityModel, table=True):
    """Health of each running observability plugin (beyond SPEC §2).

    Each plugin process upserts its row after flushes, so the service and the web client
    can show buffer depth, flush lag and drops of plugins running in other processes
    ("data incomplete").
    """

    __tablename__ = "plugin_instances"
    __table_args__ = (
        sa.Index("idx_plugin_instances_updated_at", sa.text("updated_at DESC")),
        {"comment": "Health of each observability plugin process: buffer, flushes, drops"},
    )

    id: str = Field(sa_column=sa.Column(sa.Text(), primary_key=True))
    created_at: datetime | None = _created_at()
    updated_at: datetime | None = _created_at()
    hostname: str | None = _column(sa.Text())
    pid: int | None = _column(sa.Integer())
    writer: str | None = _column(sa.Text())
    buffer_depth: int = _count()
    records_written: int = _column(
        sa.BigInteger(), nullable=False, default=0, server_default=sa.text("0")
    )
    records_dropped: int = _column(
        sa.BigInteger(), nullable=False, default=0, server_default=sa.text("0")
    )
    dropped_by_reason: Any = _column(
        JSONB(), nullable=False, default=None, server_default=sa.text("'{}'")
    )
    records_quarantined: int = _count()
    last_flush_at: datetime | None = _column(Timestamptz())
    flush_lag_ms: int | None = _column(sa.Integer())
    last_error: str | None = _column(sa.Text())


class QuarantinedRecord(ObservabilityModel, table=True):
    """A record the store rejected (constraint, type), kept whole so nothing is lost."""

    __tablename__ = "quarantined_records"
    __table_args__ = (
        sa.Index("idx_quarantined_records_created_at", sa.text("created_at DESC")),
        {"comment": "Records a table rejected, kept with the error for inspection and replay"},
    )

    id: str | None = _id()
    created_at: datetime | None = _created_at()
    table_name: str = _column(sa.Text(), nullable=False)
    record_id: str | None = _column(sa.Text())
    record: Any = _column(JSONB(), nullable=False)
    error: str = _column(sa.Text(), nullable=False)


TABLES: tuple[type[ObservabilityModel], ...] = (
    Invocation,
    EventExecution,
    JobExecution,
    JobLog,
    MetricsHourly,
    DashboardStats,
    PluginInstance,
    QuarantinedRecord,
)
"""Every model, in foreign-key order (parents first)."""
