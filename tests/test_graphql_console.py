"""The original console's operations (upstream §6), unchanged, through a real GraphQL client.

Each operation is sent as Apollo Client sends it: with `__typename` added to every
selection set. Answers are checked against the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXTransport

from service.settings import Settings
from tests.graphql_helpers import ids, number, sort_rows, ts, with_typename
from tests.support.console_operations import (
    ANALYTICS_BASE,
    ANALYTICS_PERFORMANCE,
    CORRELATION_SEARCH,
    INVOCATION_DETAIL,
    INVOCATION_TREE_FLOW,
    INVOCATIONS_LIST,
    OVERVIEW_DASHBOARD,
)
from tests.support.dataset import BASE_TIME, build_dataset, insert_dataset
from tests.support.db import run
from tests.support.server import RunningServer, serving

DATASET = build_dataset()
INVOCATIONS = DATASET.invocations
EVENTS = DATASET.event_executions
JOBS = DATASET.job_executions
START = BASE_TIME + timedelta(hours=2)
END = BASE_TIME + timedelta(hours=15)
TIME_RANGE = {"timeRange": ts(START), "timeRangeEnd": ts(END)}
SECRET = "console-secret"


def in_range(row: dict[str, Any], column: str = "created_at") -> bool:
    return START <= row[column] <= END


@pytest.fixture(scope="module")
def server(module_db_url: str) -> Iterator[RunningServer]:
    run(insert_dataset(module_db_url, DATASET))
    with serving(Settings(database_url=module_db_url, admin_secret=SECRET)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[Client]:
    transport = HTTPXTransport(url=server.graphql_url, headers={"x-hasura-admin-secret": SECRET})
    with Client(transport=transport, fetch_schema_from_transport=False) as session:
        yield session  # type: ignore[misc]


def execute(client: Any, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return client.execute(GraphQLRequest(with_typename(query), variable_values=variables))


def test_overview_dashboard(client: Any) -> None:
    got = execute(client, OVERVIEW_DASHBOARD, TIME_RANGE)
    stats = sort_rows(
        [r for r in DATASET.dashboard_stats if in_range(r, "hour_bucket")], ("hour_bucket", "asc")
    )
    # Ordered by hour only: rows of one hour may come in any order.
    assert [r["hour_bucket"] for r in got["dashboard_stats"]] == [
        ts(r["hour_bucket"]) for r in stats
    ]
    assert sorted(
        (r["hour_bucket"], r["total_invocations"]) for r in got["dashboard_stats"]
    ) == sorted((ts(r["hour_bucket"]), r["total_invocations"]) for r in stats)
    assert all(r["__typename"] == "dashboard_stats" for r in got["dashboard_stats"])
    window = [r for r in INVOCATIONS if in_range(r)]
    latest = sort_rows(window, ("created_at", "desc"))[:10]
    assert ids(got["invocations_table"]) == ids(latest)
    assert got["invocations_table"][0] == {
        "__typename": "invocations",
        "id": latest[0]["id"],
        "source_function": latest[0]["source_function"],
        "created_at": ts(latest[0]["created_at"]),
        "total_duration_ms": latest[0]["total_duration_ms"],
        "status": latest[0]["status"],
        "events_detected_count": latest[0]["events_detected_count"],
        "total_jobs_run": latest[0]["total_jobs_run"],
        "total_jobs_succeeded": latest[0]["total_jobs_succeeded"],
        "total_jobs_failed": latest[0]["total_jobs_failed"],
        "correlation_id": latest[0]["correlation_id"],
        "source_user_email": latest[0]["source_user_email"],
        "source_user_role": latest[0]["source_user_role"],
    }
    aggregate = got["invocations_aggregate"]["aggregate"]
    durations = [r["total_duration_ms"] for r in window if r["total_duration_ms"] is not None]
    assert aggregate["__typename"] == "invocations_aggregate_fields"
    assert aggregate["count"] == len(window)
    assert aggregate["avg"] == {
        "__typename": "invocations_avg_fields",
        "total_duration_ms": pytest.approx(sum(durations) / len(durations)),
    }
    assert aggregate["sum"] == {
        "__typename": "invocations_sum_fields",
        "total_jobs_run": sum(r["total_jobs_run"] for r in window),
        "total_jobs_succeeded": sum(r["total_jobs_succeeded"] for r in window),
        "total_jobs_failed": sum(r["total_jobs_failed"] for r in window),
    }
    detected = [e for e in EVENTS if e["detected"] and in_range(e)]
    assert got["event_executions_aggregate"]["aggregate"]["count"] == len(detected)
    assert sorted(n["event_name"] for n in got["event_executions_aggregate"]["nodes"]) == sorted(
        e["event_name"] for e in detected
    )


def test_invocations_list_with_defaults(client: Any) -> None:
    got = execute(client, INVOCATIONS_LIST)
    latest = sort_rows(INVOCATIONS, ("created_at", "desc"))[:20]
    assert ids(got["invocations"]) == ids(latest)
    assert got["invocations_aggregate"]["aggregate"]["count"] == len(INVOCATIONS)


def test_invocations_list_page_with_filters(client: Any) -> None:
    where = {
        "_and": [
            {"created_at": {"_gte": ts(START), "_lte": ts(END)}},
            {"events_detected_count": {"_gt": 0}},
            {"source_job_id": {"_is_null": True}},
            {"status": {"_eq": "completed"}},
        ]
    }
    variables = {"limit": 3, "offset": 1, "where": where, "order_by": [{"created_at": "desc"}]}
    got = execute(client, INVOCATIONS_LIST, variables)
    matching = [
        r
        for r in INVOCATIONS
        if in_range(r)
        and r["events_detected_count"] > 0
        and r["source_job_id"] is None
        and r["status"] == "completed"
    ]
    page = sort_rows(matching, ("created_at", "desc"))[1:4]
    assert ids(got["invocations"]) == ids(page)
    assert got["invocations_aggregate"]["aggregate"]["count"] == len(matching)
    for row, source in zip(got["invocations"], page, strict=True):
        events = [e for e in EVENTS if e["invocation_id"] == source["id"]]
        assert row["source_event_payload"] == source["source_event_payload"]
        assert row["event_executions_aggregate"]["aggregate"]["count"] == len(events)
        assert row["detected_events"]["aggregate"]["count"] == sum(e["detected"] for e in events)
        assert row["undetected_events"]["aggregate"]["count"] == sum(
            not e["detected"] for e in events
        )
        assert sorted(e["id"] for e in row["event_executions"]) == sorted(
            e["id"] for e in events if e["detected"]
        )


def test_invocation_detail(client: Any) -> None:
    source = next(r for r in INVOCATIONS if r["status"] == "failed" and r["total_jobs_run"] > 1)
    got = execute(client, INVOCATION_DETAIL, {"id": source["id"]})["invocations_by_pk"]
    assert got["error_stack"] == source["error_stack"]
    assert got["context_data"] == source["context_data"]
    assert got["source_event_time"] == ts(source["source_event_time"])
    events = {e["id"]: e for e in EVENTS if e["invocation_id"] == source["id"]}
    assert sorted(e["id"] for e in got["event_executions"]) == sorted(events)
    for event in got["event_executions"]:
        assert event["__typename"] == "event_executions"
        assert event["handler_error_stack"] == events[event["id"]]["handler_error_stack"]
        jobs = {j["id"]: j for j in JOBS if j["event_execution_id"] == event["id"]}
        assert sorted(j["id"] for j in event["job_executions"]) == sorted(jobs)
        for job in event["job_executions"]:
            assert job["job_options"] == jobs[job["id"]]["job_options"]
            assert job["result"] == jobs[job["id"]]["result"]
            assert job["__typename"] == "job_executions"


def test_correlation_search(client: Any) -> None:
    got = execute(client, CORRELATION_SEARCH, {"searchTerm": "%CORR-03%"})
    assert ids(got["invocations"]) == ids(
        sort_rows(
            [r for r in INVOCATIONS if r["correlation_id"] == "corr-03"], ("created_at", "desc")
        )
    )
    # table:id search: the id inside the payload text.
    got = execute(
        client,
        CORRELATION_SEARCH,
        {
            "searchTerm": "%orders:9%",
            "hasColon": True,
            "tablePart": "%orders%",
            "idPart": '%"id": 9,%',
        },
    )
    assert ids(got["invocations"]) == [INVOCATIONS[9]["id"]]


def test_invocation_tree_flow(client: Any) -> None:
    root = INVOCATIONS[1]
    got = execute(client, INVOCATION_TREE_FLOW, {"invocationId": root["id"]})["invocations_by_pk"]
    correlated = sort_rows(
        [r for r in INVOCATIONS if r["correlation_id"] == root["correlation_id"]],
        ("created_at", "asc"),
    )
    assert ids(got["correlated_invocations"]) == ids(correlated)
    child = INVOCATIONS[13]
    child_node = next(r for r in got["correlated_invocations"] if r["id"] == child["id"])
    parent_job = next(j for j in JOBS if j["id"] == child["source_job_id"])
    assert child_node["source_job_execution"]["id"] == parent_job["id"]
    assert child_node["source_job_execution"]["__typename"] == "job_executions"
    triggered = [
        t
        for event in got["event_executions"]
        for job in event["job_executions"]
        for t in job["triggered_invocations"]
    ]
    assert triggered == [
        {"__typename": "invocations", "id": child["id"], "correlation_id": child["correlation_id"]}
    ]


def test_analytics_performance(client: Any) -> None:
    got = execute(client, ANALYTICS_PERFORMANCE, TIME_RANGE)
    completed = [r for r in INVOCATIONS if in_range(r) and r["status"] == "completed"]
    assert len(got["all_invocations"]) == len(completed) == len(got["invocations_durations"])
    jobs = [j for j in JOBS if in_range(j) and j["status"] != "failed"]
    # desc puts nulls first, as PostgreSQL does.
    slowest = sort_rows(jobs, ("duration_ms", "desc"))[:10]
    assert [j["duration_ms"] for j in got["slowest_jobs"]] == [j["duration_ms"] for j in slowest]
    assert got["slowest_jobs"][0]["duration_ms"] is None or not any(
        j["duration_ms"] is None for j in jobs
    )
    durations = [
        r["total_duration_ms"]
        for r in INVOCATIONS
        if in_range(r) and r["total_duration_ms"] is not None
    ]
    assert got["invocations_aggregate"]["aggregate"]["max"]["total_duration_ms"] == max(durations)
    assert got["dashboard_stats"][0]["avg_duration_ms"] in {
        number(r["avg_duration_ms"]) for r in DATASET.dashboard_stats
    }


def test_analytics_base_and_generated_aggregates(client: Any) -> None:
    got = execute(client, ANALYTICS_BASE, TIME_RANGE)
    jobs = [j for j in JOBS if in_range(j)]
    events = [e for e in EVENTS if in_range(e)]
    job_names = sorted({j["job_name"] for j in jobs})
    event_names = sorted({e["event_name"] for e in events})
    assert [r["job_name"] for r in got["distinct_jobs"]] == job_names
    assert [r["event_name"] for r in got["distinct_events"]] == event_names
    failures = sort_rows([j for j in jobs if j["status"] == "failed"], ("created_at", "desc"))[:20]
    assert ids(got["recent_failures"]) == ids(failures)
    assert got["failed_jobs_aggregate"]["aggregate"]["count"] == len(
        [j for j in jobs if j["status"] == "failed"]
    )
    assert got["event_executions_aggregate"]["aggregate"]["count"] == len(events)

    # AnalyticsAggregates: built at runtime, one aliased aggregate pair per name.
    variables: dict[str, Any] = dict(TIME_RANGE)
    declarations = ["$timeRange: timestamptz!", "$timeRangeEnd: timestamptz!"]
    fields = []
    for i, name in enumerate(job_names):
        variables[f"jobName{i}"] = name
        declarations.append(f"$jobName{i}: String!")
        fields.append(
            f"job_{i}_total: job_executions_aggregate(where: {{job_name: {{_eq: $jobName{i}}}, created_at: {{_gte: $timeRange, _lte: $timeRangeEnd}}}}) {{ aggregate {{ count avg {{ duration_ms }} }} }}"
            f' job_{i}_failed: job_executions_aggregate(where: {{job_name: {{_eq: $jobName{i}}}, created_at: {{_gte: $timeRange, _lte: $timeRangeEnd}}, status: {{_eq: "failed"}}}}) {{ aggregate {{ count }} }}'
        )
    for i, name in enumerate(event_names):
        variables[f"eventName{i}"] = name
        declarations.append(f"$eventName{i}: String!")
        fields.append(
            f"event_{i}_detected: event_executions_aggregate(where: {{event_name: {{_eq: $eventName{i}}}, created_at: {{_gte: $timeRange, _lte: $timeRangeEnd}}, detected: {{_eq: true}}}}) {{ aggregate {{ count }} }}"
            f" event_{i}_not_detected: event_executions_aggregate(where: {{event_name: {{_eq: $eventName{i}}}, created_at: {{_gte: $timeRange, _lte: $timeRangeEnd}}, detected: {{_eq: false}}}}) {{ aggregate {{ count }} }}"
        )
    query = f"query AnalyticsAggregates({', '.join(declarations)}) {{ {' '.join(fields)} }}"
    got = execute(client, query, variables)
    for i, name in enumerate(job_names):
        named = [j for j in jobs if j["job_name"] == name]
        assert got[f"job_{i}_total"]["aggregate"]["count"] == len(named)
        assert got[f"job_{i}_failed"]["aggregate"]["count"] == sum(
            j["status"] == "failed" for j in named
        )
    for i, name in enumerate(event_names):
        named = [e for e in events if e["event_name"] == name]
        assert got[f"event_{i}_detected"]["aggregate"]["count"] == sum(e["detected"] for e in named)
        assert got[f"event_{i}_not_detected"]["aggregate"]["count"] == sum(
            not e["detected"] for e in named
        )


OTHER_OPERATIONS = {
    "AnalyticsJobsEvents": """
query AnalyticsJobsEvents($timeRange: timestamptz!, $timeRangeEnd: timestamptz!) {
  all_jobs: job_executions(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}) { job_name status duration_ms created_at }
  all_events: event_executions(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}) {
    event_name detected detection_duration_ms handler_duration_ms jobs_count jobs_succeeded jobs_failed created_at status
  }
  recent_failures: job_executions(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}, status: {_eq: "failed"}}, order_by: {created_at: desc}, limit: 20) {
    id invocation_id job_name error_message duration_ms created_at correlation_id invocation { source_function } event_execution { event_name }
  }
  job_executions_aggregate(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}) { aggregate { count avg { duration_ms } } }
  event_executions_aggregate(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}) { aggregate { count } }
}""",
    "AnalyticsSources": """
query AnalyticsSources($timeRange: timestamptz!, $timeRangeEnd: timestamptz!) {
  invocations_by_source: invocations(where: {created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}) {
    source_function source_table source_operation source_user_email status total_duration_ms
    total_jobs_run total_jobs_succeeded total_jobs_failed events_detected_count created_at
  }
}""",
}


def test_analytics_jobs_events_and_sources(client: Any) -> None:
    got = execute(client, OTHER_OPERATIONS["AnalyticsJobsEvents"], TIME_RANGE)
    assert len(got["all_jobs"]) == len([j for j in JOBS if in_range(j)])
    assert len(got["all_events"]) == len([e for e in EVENTS if in_range(e)])
    got = execute(client, OTHER_OPERATIONS["AnalyticsSources"], TIME_RANGE)
    assert len(got["invocations_by_source"]) == len([r for r in INVOCATIONS if in_range(r)])


def test_job_samples_failure_timeline_and_health_check(client: Any) -> None:
    samples = """
query JobExecutionSamples($jobName: String!, $timeRange: timestamptz!, $timeRangeEnd: timestamptz!) {
  failed: job_executions(where: {job_name: {_eq: $jobName}, status: {_eq: "failed"}, created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}, order_by: {created_at: desc}, limit: 5) {
    id invocation_id job_name status duration_ms error_message created_at invocation { source_function } event_execution { event_name }
  }
  succeeded: job_executions(where: {job_name: {_eq: $jobName}, status: {_eq: "completed"}, created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}, order_by: {created_at: desc}, limit: 5) {
    id invocation_id job_name status duration_ms created_at invocation { source_function } event_execution { event_name }
  }
}"""
    got = execute(client, samples, {**TIME_RANGE, "jobName": "send_email"})
    expected = sort_rows(
        [
            j
            for j in JOBS
            if j["job_name"] == "send_email" and j["status"] == "failed" and in_range(j)
        ],
        ("created_at", "desc"),
    )[:5]
    assert ids(got["failed"]) == ids(expected)
    timeline = """
query AnalyticsFailureTimeline($timeRange: timestamptz!, $timeRangeEnd: timestamptz!, $jobNames: [String!]!) {
  failure_timeline_jobs: job_executions(where: {job_name: {_in: $jobNames}, created_at: {_gte: $timeRange, _lte: $timeRangeEnd}}) {
    job_name status created_at
  }
}"""
    got = execute(client, timeline, {**TIME_RANGE, "jobNames": ["send_email", "notify_slack"]})
    assert len(got["failure_timeline_jobs"]) == len(
        [j for j in JOBS if j["job_name"] in ("send_email", "notify_slack") and in_range(j)]
    )
    got = execute(client, "query HealthCheck { invocations(limit: 1) { id } }")
    assert len(got["invocations"]) == 1
