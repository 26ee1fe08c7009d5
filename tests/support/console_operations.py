"""The upstream console's GraphQL operations (upstream §6), as its pages send them.

One copy for every proof that replays them: `tests/test_graphql_console.py` checks their
answers, `bench/graphql_latency.py` times them. Send them as Apollo Client does with
`tests.graphql_helpers.with_typename`.
"""

from __future__ import annotations

OVERVIEW_DASHBOARD = """
query OverviewDashboard($timeRange: timestamptz!, $timeRangeEnd: timestamptz!) {
  dashboard_stats(where: {hour_bucket: {_gte: $timeRange, _lte: $timeRangeEnd}}, order_by: {hour_bucket: asc}) {
    hour_bucket
    total_invocations
    successful_invocations
    failed_invocations
  }
  invocations_table: invocations(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}, order_by: {created_at: desc}, limit: 10) {
    id source_function created_at total_duration_ms status events_detected_count
    total_jobs_run total_jobs_succeeded total_jobs_failed correlation_id source_user_email source_user_role
  }
  invocations_aggregate(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}) {
    aggregate {
      count
      avg { total_duration_ms }
      sum { total_jobs_run total_jobs_succeeded total_jobs_failed }
    }
  }
  event_executions_aggregate(where: {detected: {_eq: true}, created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}) {
    aggregate { count }
    nodes { event_name }
  }
}
"""

INVOCATIONS_LIST = """
query InvocationsList($limit: Int = 20, $offset: Int = 0, $where: invocations_bool_exp = {}, $order_by: [invocations_order_by!] = {created_at: desc}) {
  invocations(limit: $limit, offset: $offset, where: $where, order_by: $order_by) {
    id created_at updated_at source_function source_table source_operation source_system source_job_id
    correlation_id source_user_email source_user_role total_duration_ms events_detected_count
    total_jobs_run total_jobs_succeeded total_jobs_failed status error_message source_event_payload
    event_executions_aggregate { aggregate { count } }
    detected_events: event_executions_aggregate(where: {detected: {_eq: true}}) { aggregate { count } }
    undetected_events: event_executions_aggregate(where: {detected: {_eq: false}}) { aggregate { count } }
    event_executions(where: {detected: {_eq: true}}) { id event_name detected }
  }
  invocations_aggregate(where: $where) { aggregate { count } }
}
"""

INVOCATION_DETAIL = """
query InvocationDetail($id: uuid!) {
  invocations_by_pk(id: $id) {
    id created_at updated_at correlation_id source_function source_table source_operation source_system
    source_event_id source_event_payload source_event_time source_user_email source_user_role
    total_duration_ms events_detected_count total_jobs_run total_jobs_succeeded total_jobs_failed
    auto_load_modules event_modules_directory status error_message error_stack context_data
    event_executions {
      id created_at updated_at correlation_id event_name event_module_path detected detection_duration_ms
      detection_error detection_error_stack handler_duration_ms handler_error handler_error_stack
      jobs_count jobs_succeeded jobs_failed status
      job_executions {
        id created_at updated_at correlation_id job_name job_function_name job_options duration_ms
        status result error_message error_stack
      }
    }
  }
}
"""

CORRELATION_SEARCH = """
query CorrelationSearch($searchTerm: String!, $hasColon: Boolean = false, $tablePart: String = "", $idPart: String = "") {
  invocations(
    where: {_or: [
      {correlation_id: {_ilike: $searchTerm}},
      {source_function: {_ilike: $searchTerm}},
      {source_user_email: {_ilike: $searchTerm}},
      {source_event_payload: {_cast: {String: {_ilike: $searchTerm}}}},
      {_and: [{source_table: {_ilike: $tablePart}}, {source_event_payload: {_cast: {String: {_ilike: $idPart}}}}]}
    ]}
    order_by: {created_at: desc}
    limit: 20
  ) {
    id correlation_id source_function source_table source_user_email source_event_payload created_at status
    total_duration_ms events_detected_count total_jobs_run
  }
}
"""

INVOCATION_TREE_FLOW = """
query InvocationTreeFlow($invocationId: uuid!) {
  invocations_by_pk(id: $invocationId) {
    ...invocationTree
    correlated_invocations(order_by: {created_at: asc}) { ...invocationTree }
  }
}
fragment invocationTree on invocations {
  id source_event_id source_function status total_duration_ms correlation_id source_job_id created_at updated_at
  source_job_execution { id job_name job_function_name status duration_ms correlation_id created_at updated_at }
  event_executions {
    id event_name detected status detection_duration_ms handler_duration_ms correlation_id created_at updated_at
    job_executions {
      id job_name job_function_name status duration_ms result error_message correlation_id created_at updated_at
      triggered_invocations { id correlation_id }
    }
  }
}
"""

ANALYTICS_PERFORMANCE = """
query AnalyticsPerformance($timeRange: timestamptz!, $timeRangeEnd: timestamptz!) {
  dashboard_stats(where: {hour_bucket: {_gte: $timeRange, _lte: $timeRangeEnd}}, order_by: {hour_bucket: asc}) {
    hour_bucket source_function avg_duration_ms p95_duration_ms max_duration_ms total_invocations successful_invocations failed_invocations
  }
  all_invocations: invocations(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}, status: {_eq: "completed"}}) {
    source_function total_duration_ms
  }
  slowest_jobs: job_executions(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}, status: {_neq: "failed"}}, order_by: {duration_ms: desc}, limit: 10) {
    id job_name job_function_name duration_ms created_at event_execution { event_name }
  }
  invocations_durations: invocations(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}, status: {_eq: "completed"}}) {
    total_duration_ms
  }
  invocations_aggregate(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}) {
    aggregate { count avg { total_duration_ms } max { total_duration_ms } }
  }
}
"""

ANALYTICS_BASE = """
query AnalyticsBase($timeRange: timestamptz!, $timeRangeEnd: timestamptz!) {
  distinct_jobs: job_executions(distinct_on: [job_name], where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}, order_by: {job_name: asc}) { job_name }
  distinct_events: event_executions(distinct_on: [event_name], where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}, order_by: {event_name: asc}) { event_name }
  recent_failures: job_executions(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}, status: {_eq: "failed"}}, order_by: {created_at: desc}, limit: 20) {
    id invocation_id job_name error_message duration_ms created_at correlation_id
    invocation { source_function }
    event_execution { event_name }
  }
  job_executions_aggregate(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}) { aggregate { count avg { duration_ms } } }
  event_executions_aggregate(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}) { aggregate { count } }
  failed_jobs_aggregate: job_executions_aggregate(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}, status: {_eq: "failed"}}) { aggregate { count } }
}
"""
