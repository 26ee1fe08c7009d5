"""Mutations for the admin role: insert/upsert, update, delete, in Hasura's shapes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from service.settings import Settings
from tests.graphql_helpers import ts
from tests.support.dataset import BASE_TIME
from tests.support.server import RunningServer, serving

SECRET = "mutation-secret"
ADMIN = {"x-hasura-admin-secret": SECRET}


@pytest.fixture(scope="module")
def server(module_db_url: str) -> Iterator[RunningServer]:
    with serving(Settings(database_url=module_db_url, admin_secret=SECRET)) as running:
        yield running


def ok(server: RunningServer, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = server.post(query, variables, headers=ADMIN)
    assert "errors" not in body, body
    return body["data"]


def fail(
    server: RunningServer, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = server.post(query, variables, headers=ADMIN)
    assert "data" not in body, body
    [error] = body["errors"]
    return error


def new_id() -> str:
    return str(uuid.uuid4())


BULK_UPSERT_INVOCATIONS = """
mutation BulkUpsertInvocations($objects: [invocations_insert_input!]!) {
  insert_invocations(objects: $objects, on_conflict: {constraint: invocations_pkey, update_columns: [correlation_id, source_function, source_table, source_operation, source_system, source_event_id, source_event_payload, source_event_time, source_user_email, source_user_role, source_job_id, total_duration_ms, events_detected_count, total_jobs_run, total_jobs_succeeded, total_jobs_failed, auto_load_modules, event_modules_directory, status, error_message, error_stack, context_data, updated_at]}) {
    affected_rows
    returning { id }
  }
}"""

BULK_INSERT_EVENTS = """
mutation BulkInsertEventExecutions($objects: [event_executions_insert_input!]!) {
  insert_event_executions(objects: $objects, on_conflict: {constraint: event_executions_pkey, update_columns: [invocation_id, correlation_id, event_name, event_module_path, detected, detection_duration_ms, detection_error, detection_error_stack, handler_duration_ms, handler_error, handler_error_stack, jobs_count, jobs_succeeded, jobs_failed, status, updated_at]}) {
    affected_rows
    returning { id }
  }
}"""

BULK_INSERT_JOBS = """
mutation BulkInsertJobExecutions($objects: [job_executions_insert_input!]!) {
  insert_job_executions(objects: $objects, on_conflict: {constraint: job_executions_pkey, update_columns: [invocation_id, event_execution_id, correlation_id, job_name, job_function_name, job_options, duration_ms, status, result, error_message, error_stack, updated_at]}) {
    affected_rows
    returning { id }
  }
}"""

UPDATE_INVOCATION = """
mutation UpdateInvocationCompletion($id: uuid!, $total_duration_ms: Int, $events_detected_count: Int!, $total_jobs_run: Int!, $total_jobs_succeeded: Int!, $total_jobs_failed: Int!, $status: String!, $error_message: String, $error_stack: String, $updated_at: timestamptz!) {
  update_invocations_by_pk(pk_columns: {id: $id}, _set: {total_duration_ms: $total_duration_ms, events_detected_count: $events_detected_count, total_jobs_run: $total_jobs_run, total_jobs_succeeded: $total_jobs_succeeded, total_jobs_failed: $total_jobs_failed, status: $status, error_message: $error_message, error_stack: $error_stack, updated_at: $updated_at}) {
    id
  }
}"""

UPDATE_JOB = """
mutation UpdateJobExecutionCompletion($id: uuid!, $duration_ms: Int!, $status: String!, $result: jsonb, $error_message: String, $error_stack: String, $updated_at: timestamptz!) {
  update_job_executions_by_pk(pk_columns: {id: $id}, _set: {duration_ms: $duration_ms, status: $status, result: $result, error_message: $error_message, error_stack: $error_stack, updated_at: $updated_at}) {
    id
  }
}"""


def make_invocation(invocation_id: str, **overrides: Any) -> dict[str, Any]:
    row = {
        "id": invocation_id,
        "correlation_id": f"c-{invocation_id[:8]}",
        "source_function": "orders_handler",
        "source_table": "public.orders",
        "source_operation": "UPDATE",
        "source_event_payload": {"op": "UPDATE", "data": {"new": {"id": 1}}},
        "source_event_time": ts(BASE_TIME),
        "status": "running",
        "created_at": ts(BASE_TIME),
        "updated_at": ts(BASE_TIME),
    }
    row.update(overrides)
    return row


def test_the_graphql_writer_operations_run_unchanged(server: RunningServer) -> None:
    invocation, event, job = new_id(), new_id(), new_id()
    got = ok(server, BULK_UPSERT_INVOCATIONS, {"objects": [make_invocation(invocation)]})
    assert got["insert_invocations"] == {"affected_rows": 1, "returning": [{"id": invocation}]}
    got = ok(
        server,
        BULK_INSERT_EVENTS,
        {
            "objects": [
                {
                    "id": event,
                    "invocation_id": invocation,
                    "event_name": "orders.shipped",
                    "detected": True,
                    "status": "handling",
                }
            ]
        },
    )
    assert got["insert_event_executions"]["affected_rows"] == 1
    got = ok(
        server,
        BULK_INSERT_JOBS,
        {
            "objects": [
                {
                    "id": job,
                    "invocation_id": invocation,
                    "event_execution_id": event,
                    "job_name": "send_email",
                    "job_options": {"to": "a@b.c"},
                    "status": "running",
                }
            ]
        },
    )
    assert got["insert_job_executions"] == {"affected_rows": 1, "returning": [{"id": job}]}
    # Upsert: the same rows again update in place.
    got = ok(
        server,
        BULK_UPSERT_INVOCATIONS,
        {"objects": [make_invocation(invocation, source_user_email="x@y.z")]},
    )
    assert got["insert_invocations"]["affected_rows"] == 1
    ok(
        server,
        UPDATE_JOB,
        {
            "id": job,
            "duration_ms": 42,
            "status": "completed",
            "result": {"sent": True},
            "updated_at": ts(BASE_TIME),
        },
    )
    ok(
        server,
        UPDATE_INVOCATION,
        {
            "id": invocation,
            "total_duration_ms": 99,
            "events_detected_count": 1,
            "total_jobs_run": 1,
            "total_jobs_succeeded": 1,
            "total_jobs_failed": 0,
            "status": "completed",
            "updated_at": ts(BASE_TIME),
        },
    )
    got = ok(
        server,
        "query ($id: uuid!) { invocations_by_pk(id: $id) { status total_duration_ms source_user_email success_rate "
        "avg_job_duration event_executions { job_executions { result duration_ms job_options } } } }",
        {"id": invocation},
    )
    assert got["invocations_by_pk"] == {
        "status": "completed",
        "total_duration_ms": 99,
        "source_user_email": "x@y.z",
        "success_rate": 100,
        "avg_job_duration": 42,
        "event_executions": [
            {
                "job_executions": [
                    {"result": {"sent": True}, "duration_ms": 42, "job_options": {"to": "a@b.c"}}
                ]
            }
        ],
    }


def test_insert_one_returns_the_row_with_relationships_and_defaults(server: RunningServer) -> None:
    invocation = new_id()
    got = ok(
        server,
        "mutation ($o: invocations_insert_input!) { insert_invocations_one(object: $o) "
        "{ __typename id status source_system delivery_attempt total_jobs_run success_rate event_executions { id } created_at } }",
        {"o": {"id": invocation, "source_function": "users_handler"}},
    )
    row = got["insert_invocations_one"]
    assert row["__typename"] == "invocations"
    assert (row["id"], row["status"], row["source_system"], row["delivery_attempt"]) == (
        invocation,
        "running",
        "hasura",
        1,
    )
    assert (
        row["total_jobs_run"] == 0 and row["success_rate"] == 100 and row["event_executions"] == []
    )
    assert row["created_at"].endswith("+00:00")


def test_database_generated_ids(server: RunningServer) -> None:
    got = ok(
        server,
        'mutation { insert_invocations(objects: [{source_function: "a"}, {source_function: "b", status: "failed"}]) '
        "{ affected_rows returning { id source_function status } } }",
    )
    returning = got["insert_invocations"]["returning"]
    assert got["insert_invocations"]["affected_rows"] == 2
    assert [(r["source_function"], r["status"]) for r in returning] == [
        ("a", "running"),
        ("b", "failed"),
    ]
    assert all(uuid.UUID(r["id"]) for r in returning)


def test_on_conflict_do_nothing_and_conditional_update(server: RunningServer) -> None:
    invocation = new_id()
    ok(
        server,
        "mutation ($o: invocations_insert_input!) { insert_invocations_one(object: $o) { id } }",
        {"o": make_invocation(invocation)},
    )
    got = ok(
        server,
        "mutation ($o: invocations_insert_input!) { insert_invocations_one(object: $o, "
        "on_conflict: {constraint: invocations_pkey, update_columns: []}) { id } }",
        {"o": make_invocation(invocation, status="failed")},
    )
    assert got["insert_invocations_one"] is None
    upsert = (
        "mutation ($o: [invocations_insert_input!]!) { insert_invocations(objects: $o, on_conflict: "
        '{constraint: invocations_pkey, update_columns: [status], where: {status: {_eq: "running"}}}) '
        "{ affected_rows returning { status } } }"
    )
    got = ok(server, upsert, {"o": [make_invocation(invocation, status="completed")]})
    assert got["insert_invocations"] == {"affected_rows": 1, "returning": [{"status": "completed"}]}
    # No longer running: the conflict's where excludes it.
    got = ok(server, upsert, {"o": [make_invocation(invocation, status="failed")]})
    assert got["insert_invocations"] == {"affected_rows": 0, "returning": []}


def test_constraint_violations_name_the_constraint(server: RunningServer) -> None:
    invocation = new_id()
    insert = (
        "mutation ($o: invocations_insert_input!) { insert_invocations_one(object: $o) { id } }"
    )
    ok(server, insert, {"o": make_invocation(invocation)})
    error = fail(server, insert, {"o": make_invocation(invocation)})
    assert error["extensions"]["code"] == "constraint-violation"
    assert error["message"].startswith("Uniqueness violation.")
    assert "invocations_pkey" in error["message"]
    error = fail(
        server,
        "mutation ($i: uuid!) { insert_event_executions_one("
        'object: {invocation_id: $i, event_name: "x"}) { id } }',
        {"i": new_id()},
    )
    assert error["extensions"]["code"] == "constraint-violation"
    assert error["message"].startswith("Foreign key violation.")
    error = fail(server, insert, {"o": make_invocation(new_id(), status="not-a-status")})
    assert error["extensions"]["code"] == "constraint-violation"
    assert "invocations_status_check" in error["message"]
    error = fail(server, 'mutation { insert_invocations_one(object: {status: "running"}) { id } }')
    assert error["extensions"]["code"] == "constraint-violation"
    assert "source_function" in error["message"]


def test_update_with_set_and_inc_and_where(server: RunningServer) -> None:
    first, second = new_id(), new_id()
    ok(
        server,
        "mutation ($o: [invocations_insert_input!]!) { insert_invocations(objects: $o) { affected_rows } }",
        {
            "o": [
                make_invocation(first, total_jobs_run=2),
                make_invocation(second, total_jobs_run=5),
            ]
        },
    )
    got = ok(
        server,
        "mutation ($ids: [uuid!]!) { update_invocations(where: {id: {_in: $ids}, total_jobs_run: {_gt: 1}}, "
        '_set: {status: "completed"}, _inc: {total_jobs_run: 10, delivery_attempt: 1}) '
        "{ affected_rows returning { id status total_jobs_run delivery_attempt } } }",
        {"ids": [first, second]},
    )
    result = got["update_invocations"]
    assert result["affected_rows"] == 2
    assert sorted(
        (r["id"], r["total_jobs_run"], r["status"], r["delivery_attempt"])
        for r in result["returning"]
    ) == sorted([(first, 12, "completed", 2), (second, 15, "completed", 2)])
    got = ok(
        server,
        "mutation ($id: uuid!) { update_invocations_by_pk(pk_columns: {id: $id}, _inc: {total_jobs_failed: 3}) "
        "{ total_jobs_failed } }",
        {"id": first},
    )
    assert got["update_invocations_by_pk"] == {"total_jobs_failed": 3}
    got = ok(
        server,
        "mutation ($id: uuid!) { update_invocations_by_pk(pk_columns: {id: $id}, "
        '_set: {status: "failed"}) { id } }',
        {"id": new_id()},
    )
    assert got["update_invocations_by_pk"] is None
    error = fail(
        server,
        "mutation ($id: uuid!) { update_invocations(where: {id: {_eq: $id}}) { affected_rows } }",
        {"id": first},
    )
    assert error["extensions"]["code"] == "validation-failed"
    got = ok(
        server,
        "mutation ($a: uuid!, $b: uuid!) { update_invocations_many(updates: ["
        '{where: {id: {_eq: $a}}, _set: {error_message: "first"}}, '
        '{where: {id: {_eq: $b}}, _set: {error_message: "second"}, _inc: {total_jobs_run: 1}}]) '
        "{ affected_rows returning { error_message total_jobs_run } } }",
        {"a": first, "b": second},
    )
    assert got["update_invocations_many"] == [
        {"affected_rows": 1, "returning": [{"error_message": "first", "total_jobs_run": 12}]},
        {"affected_rows": 1, "returning": [{"error_message": "second", "total_jobs_run": 16}]},
    ]


def test_jsonb_update_operators(server: RunningServer) -> None:
    invocation = new_id()
    ok(
        server,
        "mutation ($o: invocations_insert_input!) { insert_invocations_one(object: $o) { id } }",
        {
            "o": make_invocation(
                invocation, context_data={"a": 1, "list": [1, 2, 3], "nested": {"x": 1, "y": 2}}
            )
        },
    )

    def apply(argument: str, value: Any) -> Any:
        got = ok(
            server,
            f"mutation ($id: uuid!, $v: {value[0]}) {{ update_invocations_by_pk(pk_columns: {{id: $id}}, "
            f"{argument}: {{context_data: $v}}) {{ context_data }} }}",
            {"id": invocation, "v": value[1]},
        )
        return got["update_invocations_by_pk"]["context_data"]

    assert apply("_append", ("jsonb", {"b": 2})) == {
        "a": 1,
        "b": 2,
        "list": [1, 2, 3],
        "nested": {"x": 1, "y": 2},
    }
    assert apply("_delete_key", ("String", "a")) == {
        "b": 2,
        "list": [1, 2, 3],
        "nested": {"x": 1, "y": 2},
    }
    assert apply("_delete_at_path", ("[String!]", ["nested", "x"])) == {
        "b": 2,
        "list": [1, 2, 3],
        "nested": {"y": 2},
    }
    assert apply("_delete_at_path", ("[String!]", ["list", "-1"])) == {
        "b": 2,
        "list": [1, 2],
        "nested": {"y": 2},
    }
    assert apply("_prepend", ("jsonb", {"b": 0, "c": 3})) == {
        "b": 2,
        "c": 3,
        "list": [1, 2],
        "nested": {"y": 2},
    }
    ok(
        server,
        "mutation ($id: uuid!) { update_invocations_by_pk(pk_columns: {id: $id}, _set: {context_data: [1, 2, 3]}) { id } }",
        {"id": invocation},
    )
    assert apply("_delete_elem", ("Int", 0)) == [2, 3]
    assert apply("_append", ("jsonb", 4)) == [2, 3, 4]


def test_delete_returns_rows_as_they_were_and_cascades(server: RunningServer) -> None:
    invocation, event = new_id(), new_id()
    ok(
        server,
        "mutation ($o: invocations_insert_input!) { insert_invocations_one(object: $o) { id } }",
        {"o": make_invocation(invocation)},
    )
    ok(
        server,
        "mutation ($o: event_executions_insert_input!) { insert_event_executions_one(object: $o) { id } }",
        {"o": {"id": event, "invocation_id": invocation, "event_name": "orders.shipped"}},
    )
    got = ok(
        server,
        "mutation ($id: uuid!) { delete_invocations(where: {id: {_eq: $id}}) "
        "{ affected_rows returning { id status event_executions { id } } } }",
        {"id": invocation},
    )
    assert got["delete_invocations"] == {
        "affected_rows": 1,
        "returning": [{"id": invocation, "status": "running", "event_executions": [{"id": event}]}],
    }
    got = ok(server, "query ($id: uuid!) { event_executions_by_pk(id: $id) { id } }", {"id": event})
    assert got["event_executions_by_pk"] is None  # cascaded on both backends
    other = new_id()
    ok(
        server,
        "mutation ($o: invocations_insert_input!) { insert_invocations_one(object: $o) { id } }",
        {"o": make_invocation(other)},
    )
    got = ok(
        server,
        "mutation ($id: uuid!) { delete_invocations_by_pk(id: $id) { id source_function } }",
        {"id": other},
    )
    assert got["delete_invocations_by_pk"] == {"id": other, "source_function": "orders_handler"}
    got = ok(
        server, "mutation ($id: uuid!) { delete_invocations_by_pk(id: $id) { id } }", {"id": other}
    )
    assert got["delete_invocations_by_pk"] is None
    got = ok(
        server,
        'mutation { delete_invocations(where: {source_function: {_eq: "nobody"}}) { affected_rows } }',
    )
    assert got["delete_invocations"] == {"affected_rows": 0}


def test_mutation_fields_share_one_transaction(server: RunningServer) -> None:
    invocation = new_id()
    body = server.post(
        "mutation ($o: invocations_insert_input!, $bad: event_executions_insert_input!) {"
        " first: insert_invocations_one(object: $o) { id }"
        " second: insert_event_executions_one(object: $bad) { id } }",
        {
            "o": make_invocation(invocation),
            "bad": {"invocation_id": new_id(), "event_name": "dangling"},
        },
        headers=ADMIN,
    )
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "constraint-violation"
    got = ok(server, "query ($id: uuid!) { invocations_by_pk(id: $id) { id } }", {"id": invocation})
    assert got["invocations_by_pk"] is None  # rolled back with the failed field


def test_views_have_no_mutations_and_viewers_none_at_all(server: RunningServer) -> None:
    error = fail(
        server,
        'mutation { insert_dashboard_stats(objects: [{source_function: "x"}]) { affected_rows } }',
    )
    assert error["extensions"]["code"] == "validation-failed"
    body = server.post(
        "mutation { delete_invocations(where: {}) { affected_rows } }",
        headers={**ADMIN, "x-hasura-role": "viewer"},
    )
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "validation-failed"
