"""The observability tables in plain Python: what the writers need to know about them.

`models.py` declares the tables (SQLModel), `schema.sql` and the migrations build them.
This module lists each table's columns and their PostgreSQL types, and the revision the
schema is at, with nothing but the standard library: the plugin's writers read it and
load only their own driver (asyncpg, sqlite3 or httpx), never SQLAlchemy, SQLModel or
alembic. `tests/test_schema.py` proves that the models, `schema.sql`, a migrated
database and this description agree, and that `HEAD_REVISION` is the newest migration.
"""

from __future__ import annotations

POSTGRES_SCHEMA = "event_detector_observability"
"""The PostgreSQL schema of the tables (SQLite has none)."""

HEAD_REVISION = "0005"
"""The newest migration (`migrations/versions`): a database at it needs no upgrade."""

COLUMNS: dict[str, dict[str, str]] = {
    "invocations": {
        "id": "uuid",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
        "correlation_id": "text",
        "source_function": "text",
        "source_table": "text",
        "source_operation": "text",
        "source_system": "text",
        "source_trigger_name": "text",
        "source_event_id": "text",
        "source_event_payload": "jsonb",
        "source_event_time": "timestamptz",
        "source_user_email": "text",
        "source_user_role": "text",
        "source_job_id": "uuid",
        "delivery_attempt": "integer",
        "received_at": "timestamptz",
        "total_duration_ms": "integer",
        "events_detected_count": "integer",
        "total_jobs_run": "integer",
        "total_jobs_succeeded": "integer",
        "total_jobs_failed": "integer",
        "auto_load_modules": "boolean",
        "event_modules_directory": "text",
        "status": "text",
        "error_message": "text",
        "error_stack": "text",
        "context_data": "jsonb",
        "trace_id": "text",
    },
    "event_executions": {
        "id": "uuid",
        "invocation_id": "uuid",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
        "correlation_id": "text",
        "event_name": "text",
        "event_module_path": "text",
        "detected": "boolean",
        "detection_duration_ms": "integer",
        "detection_error": "text",
        "detection_error_stack": "text",
        "handler_duration_ms": "integer",
        "handler_error": "text",
        "handler_error_stack": "text",
        "jobs_count": "integer",
        "jobs_succeeded": "integer",
        "jobs_failed": "integer",
        "status": "text",
    },
    "job_executions": {
        "id": "uuid",
        "invocation_id": "uuid",
        "event_execution_id": "uuid",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
        "correlation_id": "text",
        "job_name": "text",
        "job_function_name": "text",
        "job_options": "jsonb",
        "started_at": "timestamptz",
        "ended_at": "timestamptz",
        "duration_ms": "integer",
        "attempts": "integer",
        "status": "text",
        "result": "jsonb",
        "error_type": "text",
        "error_message": "text",
        "error_stack": "text",
        "attempt_history": "jsonb",
    },
    "job_logs": {
        "id": "uuid",
        "invocation_id": "uuid",
        "event_execution_id": "uuid",
        "job_execution_id": "uuid",
        "created_at": "timestamptz",
        "seq": "integer",
        "level": "text",
        "message": "text",
        "data": "jsonb",
        "source": "text",
        "line_number": "integer",
    },
    "metrics_hourly": {
        "id": "uuid",
        "hour_bucket": "timestamptz",
        "source_function": "text",
        "total_invocations": "integer",
        "successful_invocations": "integer",
        "failed_invocations": "integer",
        "total_events_detected": "integer",
        "total_jobs_run": "integer",
        "total_jobs_failed": "integer",
        "avg_duration_ms": "numeric",
        "min_duration_ms": "integer",
        "max_duration_ms": "integer",
        "p95_duration_ms": "numeric",
        "top_detected_events": "jsonb",
        "most_failed_jobs": "jsonb",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    },
    "dashboard_stats": {
        "hour_bucket": "timestamptz",
        "source_function": "text",
        "total_invocations": "bigint",
        "successful_invocations": "bigint",
        "failed_invocations": "bigint",
        "total_events_detected": "bigint",
        "total_jobs_run": "bigint",
        "total_jobs_succeeded": "bigint",
        "total_jobs_failed": "bigint",
        "avg_duration_ms": "numeric",
        "min_duration_ms": "integer",
        "max_duration_ms": "integer",
        "p95_duration_ms": "float8",
    },
    "plugin_instances": {
        "id": "text",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
        "hostname": "text",
        "pid": "integer",
        "writer": "text",
        "buffer_depth": "integer",
        "records_written": "bigint",
        "records_dropped": "bigint",
        "dropped_by_reason": "jsonb",
        "records_quarantined": "integer",
        "last_flush_at": "timestamptz",
        "flush_lag_ms": "integer",
        "last_error": "text",
    },
    "quarantined_records": {
        "id": "uuid",
        "created_at": "timestamptz",
        "table_name": "text",
        "record_id": "text",
        "record": "jsonb",
        "error": "text",
    },
}
"""table → column → PostgreSQL type name, tables in foreign-key order (parents first)."""

TABLES_WITH_UPDATED_AT = frozenset(t for t, columns in COLUMNS.items() if "updated_at" in columns)
"""Tables whose rows carry `updated_at` (a trigger stamps it on PostgreSQL, the writer on
SQLite)."""
