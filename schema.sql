-- The observability schema for PostgreSQL (14 or later): the whole current schema.
--
-- Apply with `psql -v ON_ERROR_STOP=1 -f schema.sql "$DATABASE_URL"` or, equivalently,
-- `event-detector migrate --db "$DATABASE_URL"` (versioned migrations; they also upgrade
-- older databases). Running this file again is harmless: every statement is idempotent,
-- and it records the migration revision it equals, so `event-detector migrate` knows
-- where such a database stands.
--
-- The same tables are defined in Python (`detector/observability/models.py`) and built
-- by the migrations (`detector/observability/migrations/`); `tests/test_schema.py` proves
-- the three agree. Conventions: primary keys `<table>_pkey`, CHECK constraints
-- `<table>_<column>_check`, indexes `idx_<table>_<column>`.

BEGIN;

CREATE SCHEMA IF NOT EXISTS event_detector_observability;

-- One listen_to() call.
CREATE TABLE IF NOT EXISTS event_detector_observability.invocations (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    correlation_id text,
    source_function text NOT NULL,
    source_table text,                      -- schema.table
    source_operation text,                  -- INSERT, UPDATE, DELETE, MANUAL
    source_system text NOT NULL DEFAULT 'hasura',
    source_trigger_name text,
    source_event_id text,                   -- text: event ids are not always UUIDs
    source_event_payload jsonb,             -- null when payload capture is off
    source_event_time timestamptz,
    source_user_email text,
    source_user_role text,
    source_job_id uuid,                     -- the job whose row change caused this; no FK:
                                            -- the child may be written before the parent
    delivery_attempt integer NOT NULL DEFAULT 1,
    received_at timestamptz,
    total_duration_ms integer,
    events_detected_count integer NOT NULL DEFAULT 0,
    total_jobs_run integer NOT NULL DEFAULT 0,
    total_jobs_succeeded integer NOT NULL DEFAULT 0,
    total_jobs_failed integer NOT NULL DEFAULT 0,
    auto_load_modules boolean NOT NULL DEFAULT true,
    event_modules_directory text,
    status text NOT NULL DEFAULT 'running',
    error_message text,
    error_stack text,
    context_data jsonb,
    trace_id text,                          -- W3C trace id from Hasura's trace_context
    CONSTRAINT invocations_pkey PRIMARY KEY (id),
    CONSTRAINT invocations_status_check
        CHECK (status IN ('running', 'completed', 'failed', 'timeout', 'rejected')),
    CONSTRAINT invocations_source_operation_check
        CHECK (source_operation IS NULL
               OR source_operation IN ('INSERT', 'UPDATE', 'DELETE', 'MANUAL'))
);
COMMENT ON TABLE event_detector_observability.invocations IS
    'Each call to listen_to() with the event it received and its outcome';
CREATE INDEX IF NOT EXISTS idx_invocations_created_at
    ON event_detector_observability.invocations (created_at DESC);
CREATE INDEX IF NOT EXISTS idx_invocations_status
    ON event_detector_observability.invocations (status);
CREATE INDEX IF NOT EXISTS idx_invocations_source_function
    ON event_detector_observability.invocations (source_function);
CREATE INDEX IF NOT EXISTS idx_invocations_source_table
    ON event_detector_observability.invocations (source_table);
CREATE INDEX IF NOT EXISTS idx_invocations_source_operation
    ON event_detector_observability.invocations (source_operation);
CREATE INDEX IF NOT EXISTS idx_invocations_correlation_id
    ON event_detector_observability.invocations (correlation_id);
CREATE INDEX IF NOT EXISTS idx_invocations_source_job_id
    ON event_detector_observability.invocations (source_job_id);
CREATE INDEX IF NOT EXISTS idx_invocations_source_event_id
    ON event_detector_observability.invocations (source_event_id);

-- One event module checked during an invocation, detected or not.
CREATE TABLE IF NOT EXISTS event_detector_observability.event_executions (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    invocation_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    correlation_id text,
    event_name text NOT NULL,
    event_module_path text,
    detected boolean NOT NULL DEFAULT false,
    detection_duration_ms integer,
    detection_error text,
    detection_error_stack text,
    handler_duration_ms integer,
    handler_error text,
    handler_error_stack text,
    jobs_count integer NOT NULL DEFAULT 0,
    jobs_succeeded integer NOT NULL DEFAULT 0,
    jobs_failed integer NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'detecting',
    CONSTRAINT event_executions_pkey PRIMARY KEY (id),
    CONSTRAINT event_executions_invocation_id_fkey FOREIGN KEY (invocation_id)
        REFERENCES event_detector_observability.invocations (id) ON DELETE CASCADE,
    CONSTRAINT event_executions_status_check
        CHECK (status IN ('detecting', 'not_detected', 'handling', 'completed', 'failed',
                          'detection_failed', 'handler_failed', 'timeout', 'skipped'))
);
COMMENT ON TABLE event_detector_observability.event_executions IS
    'Each event module checked during an invocation';
CREATE INDEX IF NOT EXISTS idx_event_executions_invocation_id
    ON event_detector_observability.event_executions (invocation_id);
CREATE INDEX IF NOT EXISTS idx_event_executions_event_name
    ON event_detector_observability.event_executions (event_name);
CREATE INDEX IF NOT EXISTS idx_event_executions_status
    ON event_detector_observability.event_executions (status);
CREATE INDEX IF NOT EXISTS idx_event_executions_correlation_id
    ON event_detector_observability.event_executions (correlation_id);
CREATE INDEX IF NOT EXISTS idx_event_executions_created_at
    ON event_detector_observability.event_executions (created_at DESC);

-- One job run (all its attempts). invocation_id has no enforced foreign key (revision
-- 0003): jobs are flushed at high rates and each foreign key is checked row by row, which
-- costs COPY throughput. Deleting an invocation still deletes its jobs: the cascade goes
-- through event_executions (event_execution_id below). invocation_id stays, indexed, as a
-- denormalised link for filtering (Hasura: manual relationships).
CREATE TABLE IF NOT EXISTS event_detector_observability.job_executions (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    invocation_id uuid NOT NULL,
    event_execution_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    correlation_id text,
    job_name text NOT NULL,
    job_function_name text,
    job_options jsonb,
    started_at timestamptz,
    ended_at timestamptz,
    duration_ms integer,
    attempts integer NOT NULL DEFAULT 1,
    status text NOT NULL DEFAULT 'running',
    result jsonb,
    error_type text,
    error_message text,
    error_stack text,
    -- Each attempt of a retried job (attempt, started_at, ended_at, duration_ms, status,
    -- error_type, error_message), oldest first; NULL when the job ran once (revision 0004).
    attempt_history jsonb,
    CONSTRAINT job_executions_pkey PRIMARY KEY (id),
    CONSTRAINT job_executions_event_execution_id_fkey FOREIGN KEY (event_execution_id)
        REFERENCES event_detector_observability.event_executions (id) ON DELETE CASCADE,
    CONSTRAINT job_executions_status_check
        CHECK (status IN ('running', 'completed', 'failed', 'timeout', 'cancelled'))
);
COMMENT ON TABLE event_detector_observability.job_executions IS
    'Each job run by a handler, with its result or error';
CREATE INDEX IF NOT EXISTS idx_job_executions_invocation_id
    ON event_detector_observability.job_executions (invocation_id);
CREATE INDEX IF NOT EXISTS idx_job_executions_event_execution_id
    ON event_detector_observability.job_executions (event_execution_id);
CREATE INDEX IF NOT EXISTS idx_job_executions_job_name
    ON event_detector_observability.job_executions (job_name);
CREATE INDEX IF NOT EXISTS idx_job_executions_status
    ON event_detector_observability.job_executions (status);
CREATE INDEX IF NOT EXISTS idx_job_executions_correlation_id
    ON event_detector_observability.job_executions (correlation_id);
CREATE INDEX IF NOT EXISTS idx_job_executions_created_at
    ON event_detector_observability.job_executions (created_at DESC);

-- Captured log lines. No enforced foreign keys: lines arrive at high rates (each FK is
-- checked row by row) and retention deletes them by time.
CREATE TABLE IF NOT EXISTS event_detector_observability.job_logs (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    invocation_id uuid NOT NULL,
    event_execution_id uuid,
    job_execution_id uuid,                  -- null for detector and handler lines
    created_at timestamptz NOT NULL DEFAULT now(),
    seq integer NOT NULL DEFAULT 0,         -- order within the invocation
    level text NOT NULL DEFAULT 'info',
    message text NOT NULL,
    data jsonb,
    source text,                            -- logger name, or stdout / stderr
    line_number integer,
    CONSTRAINT job_logs_pkey PRIMARY KEY (id),
    CONSTRAINT job_logs_level_check CHECK (level IN ('debug', 'info', 'warn', 'error'))
);
COMMENT ON TABLE event_detector_observability.job_logs IS
    'Log lines captured during detectors, handlers and jobs';
CREATE INDEX IF NOT EXISTS idx_job_logs_invocation_id
    ON event_detector_observability.job_logs (invocation_id);
CREATE INDEX IF NOT EXISTS idx_job_logs_event_execution_id
    ON event_detector_observability.job_logs (event_execution_id);
CREATE INDEX IF NOT EXISTS idx_job_logs_job_execution_id
    ON event_detector_observability.job_logs (job_execution_id);
CREATE INDEX IF NOT EXISTS idx_job_logs_created_at
    ON event_detector_observability.job_logs (created_at DESC);

-- Hourly rollup per source function, written by `event-detector rollup`.
CREATE TABLE IF NOT EXISTS event_detector_observability.metrics_hourly (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    hour_bucket timestamptz NOT NULL,
    source_function text NOT NULL,
    total_invocations integer NOT NULL DEFAULT 0,
    successful_invocations integer NOT NULL DEFAULT 0,
    failed_invocations integer NOT NULL DEFAULT 0,
    total_events_detected integer NOT NULL DEFAULT 0,
    total_jobs_run integer NOT NULL DEFAULT 0,
    total_jobs_failed integer NOT NULL DEFAULT 0,
    avg_duration_ms numeric(12, 2),
    min_duration_ms integer,
    max_duration_ms integer,
    p95_duration_ms numeric(12, 2),
    top_detected_events jsonb NOT NULL DEFAULT '[]',
    most_failed_jobs jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT metrics_hourly_pkey PRIMARY KEY (id),
    CONSTRAINT metrics_hourly_hour_bucket_source_function_key
        UNIQUE (hour_bucket, source_function)
);
COMMENT ON TABLE event_detector_observability.metrics_hourly IS
    'Hourly rollup of invocations per source function';
CREATE INDEX IF NOT EXISTS idx_metrics_hourly_hour_bucket
    ON event_detector_observability.metrics_hourly (hour_bucket DESC);
CREATE INDEX IF NOT EXISTS idx_metrics_hourly_source_function
    ON event_detector_observability.metrics_hourly (source_function);

-- Health of each observability plugin process (the web client's "data incomplete").
CREATE TABLE IF NOT EXISTS event_detector_observability.plugin_instances (
    id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    hostname text,
    pid integer,
    writer text,
    buffer_depth integer NOT NULL DEFAULT 0,
    records_written bigint NOT NULL DEFAULT 0,
    records_dropped bigint NOT NULL DEFAULT 0,
    dropped_by_reason jsonb NOT NULL DEFAULT '{}',
    records_quarantined integer NOT NULL DEFAULT 0,
    last_flush_at timestamptz,
    flush_lag_ms integer,
    last_error text,
    CONSTRAINT plugin_instances_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE event_detector_observability.plugin_instances IS
    'Health of each observability plugin process: buffer, flushes, drops';
CREATE INDEX IF NOT EXISTS idx_plugin_instances_updated_at
    ON event_detector_observability.plugin_instances (updated_at DESC);

-- Records a table rejected (constraint, type), kept whole so nothing is silently lost.
CREATE TABLE IF NOT EXISTS event_detector_observability.quarantined_records (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    table_name text NOT NULL,
    record_id text,
    record jsonb NOT NULL,
    error text NOT NULL,
    CONSTRAINT quarantined_records_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE event_detector_observability.quarantined_records IS
    'Records a table rejected, kept with the error for inspection and replay';
CREATE INDEX IF NOT EXISTS idx_quarantined_records_created_at
    ON event_detector_observability.quarantined_records (created_at DESC);

-- updated_at follows every update, whatever the client sends.
CREATE OR REPLACE FUNCTION event_detector_observability.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER invocations_set_updated_at
    BEFORE UPDATE ON event_detector_observability.invocations
    FOR EACH ROW EXECUTE FUNCTION event_detector_observability.set_updated_at();
CREATE OR REPLACE TRIGGER event_executions_set_updated_at
    BEFORE UPDATE ON event_detector_observability.event_executions
    FOR EACH ROW EXECUTE FUNCTION event_detector_observability.set_updated_at();
CREATE OR REPLACE TRIGGER job_executions_set_updated_at
    BEFORE UPDATE ON event_detector_observability.job_executions
    FOR EACH ROW EXECUTE FUNCTION event_detector_observability.set_updated_at();
CREATE OR REPLACE TRIGGER metrics_hourly_set_updated_at
    BEFORE UPDATE ON event_detector_observability.metrics_hourly
    FOR EACH ROW EXECUTE FUNCTION event_detector_observability.set_updated_at();
CREATE OR REPLACE TRIGGER plugin_instances_set_updated_at
    BEFORE UPDATE ON event_detector_observability.plugin_instances
    FOR EACH ROW EXECUTE FUNCTION event_detector_observability.set_updated_at();

-- Live queries: one NOTIFY per statement on channel `event_detector_changes`, payload =
-- the table name (PostgreSQL folds identical notifications of one transaction).
CREATE OR REPLACE FUNCTION event_detector_observability.notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('event_detector_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER invocations_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON event_detector_observability.invocations
    FOR EACH STATEMENT EXECUTE FUNCTION event_detector_observability.notify_change();
CREATE OR REPLACE TRIGGER event_executions_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON event_detector_observability.event_executions
    FOR EACH STATEMENT EXECUTE FUNCTION event_detector_observability.notify_change();
CREATE OR REPLACE TRIGGER job_executions_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON event_detector_observability.job_executions
    FOR EACH STATEMENT EXECUTE FUNCTION event_detector_observability.notify_change();
CREATE OR REPLACE TRIGGER job_logs_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON event_detector_observability.job_logs
    FOR EACH STATEMENT EXECUTE FUNCTION event_detector_observability.notify_change();
CREATE OR REPLACE TRIGGER metrics_hourly_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON event_detector_observability.metrics_hourly
    FOR EACH STATEMENT EXECUTE FUNCTION event_detector_observability.notify_change();
CREATE OR REPLACE TRIGGER plugin_instances_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON event_detector_observability.plugin_instances
    FOR EACH STATEMENT EXECUTE FUNCTION event_detector_observability.notify_change();
CREATE OR REPLACE TRIGGER quarantined_records_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON event_detector_observability.quarantined_records
    FOR EACH STATEMENT EXECUTE FUNCTION event_detector_observability.notify_change();

-- Computed fields (hasura/metadata): success_rate, avg_job_duration, job_success_rate.
CREATE OR REPLACE FUNCTION event_detector_observability.invocation_success_rate(invocation event_detector_observability.invocations)
RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN invocation.total_jobs_run = 0 THEN 100::numeric
        ELSE round(invocation.total_jobs_succeeded::numeric / invocation.total_jobs_run * 100, 2)
    END
$$;
CREATE OR REPLACE FUNCTION event_detector_observability.invocation_avg_job_duration(invocation event_detector_observability.invocations)
RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT coalesce(avg(job.duration_ms), 0)
    FROM event_detector_observability.job_executions AS job
    WHERE job.invocation_id = invocation.id
$$;
CREATE OR REPLACE FUNCTION event_detector_observability.event_job_success_rate(event event_detector_observability.event_executions)
RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN event.jobs_count = 0 THEN 100::numeric
        ELSE round(event.jobs_succeeded::numeric / event.jobs_count * 100, 2)
    END
$$;

-- Hourly dashboard series (UTC hours, last 30 days), refreshed concurrently by the
-- service and by `event-detector rollup`; the unique index is what CONCURRENTLY needs.
CREATE MATERIALIZED VIEW IF NOT EXISTS event_detector_observability.dashboard_stats AS
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
FROM event_detector_observability.invocations
WHERE created_at >= now() - interval '30 days'
GROUP BY 1, 2
WITH DATA;
COMMENT ON MATERIALIZED VIEW event_detector_observability.dashboard_stats IS
    'Hourly dashboard series per source function (last 30 days, UTC hours)';
CREATE UNIQUE INDEX IF NOT EXISTS idx_dashboard_stats_hour_bucket_source_function
    ON event_detector_observability.dashboard_stats (hour_bucket, source_function);
CREATE INDEX IF NOT EXISTS idx_dashboard_stats_source_function
    ON event_detector_observability.dashboard_stats (source_function);

-- The migration revision this file equals, so `event-detector migrate` can upgrade it
-- (0002 adds SQLite's change counters only; 0003 drops job_executions' foreign key on
-- invocation_id; 0004 adds job_executions.attempt_history; 0005 lets
-- event_executions.status be `timeout` and `skipped`).
CREATE TABLE IF NOT EXISTS event_detector_observability.alembic_version (
    version_num varchar(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO event_detector_observability.alembic_version (version_num)
SELECT '0005'
WHERE NOT EXISTS (SELECT 1 FROM event_detector_observability.alembic_version);

COMMIT;
