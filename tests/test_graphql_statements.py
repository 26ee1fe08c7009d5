"""SQL statements per request depend on the query's shape, never on the rows returned."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.settings import Settings
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.db import run
from tests.support.server import RunningServer, serving

DATASET = build_dataset(invocations=100)

NESTED = """
query Nested($n: Int!) {
  invocations(order_by: {created_at: asc}, limit: $n) {
    id
    source_job_execution { id job_name }
    event_executions_aggregate { aggregate { count } }
    event_executions(order_by: {created_at: asc}) {
      id
      invocation { id }
      job_executions(order_by: {created_at: asc}) {
        id
        logs(order_by: {seq: asc}) { id message }
      }
    }
  }
}
"""
# It leads back to invocations (`event_executions { invocation }`), so it is built row by
# row (`sql.documents`): one statement per plan level: invocations, source_job_execution,
# the aggregate, event_executions, their invocation, job_executions, logs.
STATEMENTS = 7


@pytest.fixture(scope="module")
def server(module_db_url: str) -> Iterator[RunningServer]:
    run(insert_dataset(module_db_url, DATASET))
    with serving(Settings(database_url=module_db_url)) as running:
        yield running


def statements_for(
    server: RunningServer, query: str, variables: dict[str, int]
) -> tuple[int, dict]:
    before = server.statements_executed
    body = server.post(query, variables)
    assert "errors" not in body, body
    return server.statements_executed - before, body["data"]


def test_three_level_nested_query_over_100_invocations_is_bounded(server: RunningServer) -> None:
    counts = {}
    for n in (1, 10, 100):
        counts[n], data = statements_for(server, NESTED, {"n": n})
        rows = data["invocations"]
        assert len(rows) == n
        if n == 100:
            events = [e for r in rows for e in r["event_executions"]]
            jobs = [j for e in events for j in e["job_executions"]]
            logs = [g for j in jobs for g in j["logs"]]
            assert len(events) == len(DATASET.event_executions)
            assert len(jobs) == len(DATASET.job_executions)
            assert len(logs) == len([g for g in DATASET.job_logs if g["job_execution_id"]])
            assert len(jobs) > 100 and len(logs) > 200  # far more rows than statements
    # Levels with no parent rows are skipped, so small pages may cost less; never more.
    assert counts[100] == STATEMENTS
    assert all(count <= STATEMENTS for count in counts.values()), counts
    # Repeating the request costs the same again (nothing cached between executions).
    again, _ = statements_for(server, NESTED, {"n": 100})
    assert again == STATEMENTS


def test_each_root_field_is_one_statement(server: RunningServer) -> None:
    query = """query ($n: Int!) { a: invocations_aggregate { aggregate { count sum { total_jobs_run } max { created_at } } }
           b: invocations(limit: $n) { id }
           c: job_executions_aggregate(where: {status: {_eq: "failed"}}) { aggregate { count } nodes { id } } }"""
    # A document's first request is answered row by row (compiling costs more than
    # that): a, b, and c's aggregate plus its nodes.
    first, _ = statements_for(server, query, {"n": 100})
    assert first == 4
    count, _ = statements_for(server, query, {"n": 50})
    assert count == 3  # then a, b and c: each builds its whole JSON in the database


def test_levels_without_parents_cost_nothing(server: RunningServer) -> None:
    count, data = statements_for(
        server,
        '{ invocations(where: {status: {_eq: "nope"}}) { id event_executions { id job_executions { id } } } }',
        {},
    )
    assert data["invocations"] == []
    assert count == 1


def test_sibling_aggregates_of_one_relationship_share_a_statement(server: RunningServer) -> None:
    query = """query ($n: Int!) { invocations(order_by: {created_at: asc}, limit: $n) { id
             all: event_executions_aggregate { aggregate { count } }
             detected: event_executions_aggregate(where: {detected: {_eq: true}}) { aggregate { count } }
             undetected: event_executions_aggregate(where: {detected: {_eq: false}}) { aggregate { count } }
           } }"""
    # The first request, row by row: the invocations, then one GROUP BY for the three
    # aggregates; from the second, one statement builds it all (`sql.documents`).
    first, first_data = statements_for(server, query, {"n": 100})
    assert first == 2
    count, data = statements_for(server, query, {"n": 100})
    assert count == 1 and data == first_data
    for row in data["invocations"]:
        events = [e for e in DATASET.event_executions if e["invocation_id"] == row["id"]]
        assert row["all"]["aggregate"]["count"] == len(events)
        assert row["detected"]["aggregate"]["count"] == sum(e["detected"] for e in events)
        assert row["undetected"]["aggregate"]["count"] == sum(not e["detected"] for e in events)
