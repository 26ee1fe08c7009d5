"""Hasura-style queries against a real uvicorn server, on SQLite and PostgreSQL.

Every answer is checked against the dataset (`tests/support/dataset.py`), computed here
in Python independently of the engine. One server per backend for the whole module.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from service.settings import Settings
from tests.graphql_helpers import ids, jsonb_text, like, number, sort_rows, ts
from tests.support.dataset import BASE_TIME, build_dataset, insert_dataset
from tests.support.db import run
from tests.support.server import RunningServer, serving

DATASET = build_dataset()
INVOCATIONS = DATASET.invocations
EVENTS = DATASET.event_executions
JOBS = DATASET.job_executions
LOGS = DATASET.job_logs


@pytest.fixture(scope="module")
def server(module_db_url: str) -> Iterator[RunningServer]:
    run(insert_dataset(module_db_url, DATASET))
    with serving(Settings(database_url=module_db_url, max_rows=1000)) as running:
        yield running


def data(server: RunningServer, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = server.post(query, variables)
    assert "errors" not in body, body
    return body["data"]


def errors(
    server: RunningServer, query: str, variables: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    body = server.post(query, variables)
    assert "data" not in body, body
    return body["errors"]


def where_ids(server: RunningServer, where: str, table: str = "invocations") -> list[str]:
    result = data(server, f"{{ {table}(where: {where}, order_by: {{id: asc}}) {{ id }} }}")
    return ids(result[table])


def expected_ids(rows: list[dict[str, Any]], predicate: Any) -> list[str]:
    return sorted(row["id"] for row in rows if predicate(row))


# --- comparison operators, per scalar type ------------------------------------------------------

INT_CASES = [
    ("_eq", "137", lambda v: v == 137),
    ("_neq", "137", lambda v: v is not None and v != 137),
    ("_gt", "500", lambda v: v is not None and v > 500),
    ("_gte", "544", lambda v: v is not None and v >= 544),
    ("_lt", "300", lambda v: v is not None and v < 300),
    ("_lte", "285", lambda v: v is not None and v <= 285),
    ("_in", "[137, 174, 9999]", lambda v: v in (137, 174)),
    ("_nin", "[137, 174]", lambda v: v is not None and v not in (137, 174)),
    ("_in", "[]", lambda v: False),
    ("_nin", "[]", lambda v: True),
    ("_is_null", "true", lambda v: v is None),
    ("_is_null", "false", lambda v: v is not None),
]


@pytest.mark.parametrize(("operator", "value", "predicate"), INT_CASES)
def test_int_operators(server: RunningServer, operator: str, value: str, predicate: Any) -> None:
    got = where_ids(server, f"{{total_duration_ms: {{{operator}: {value}}}}}")
    assert got == expected_ids(INVOCATIONS, lambda r: predicate(r["total_duration_ms"]))
    assert operator in ("_in", "_nin") or got  # the dataset exercises each operator


def _regex(pattern: str, flags: int = 0) -> Any:
    return lambda v: v is not None and re.search(pattern, v, flags) is not None


STRING_CASES = [
    ("_eq", '"orders_handler"', lambda v: v == "orders_handler"),
    ("_neq", '"orders_handler"', lambda v: v != "orders_handler"),
    ("_gt", '"p"', lambda v: v > "p"),
    ("_lte", '"payments_handler"', lambda v: v <= "payments_handler"),
    ("_like", '"orders%"', lambda v: like("orders%", v)),
    ("_like", '"Orders%"', lambda v: like("Orders%", v)),
    ("_like", '"%s\\\\_h%"', lambda v: like("%s\\_h%", v)),
    ("_nlike", '"orders%"', lambda v: not like("orders%", v)),
    ("_ilike", '"ORDERS%"', lambda v: like("ORDERS%", v, insensitive=True)),
    ("_nilike", '"%HANDLER"', lambda v: not like("%HANDLER", v, insensitive=True)),
    ("_similar", '"(orders|users)%"', lambda v: re.fullmatch("(orders|users).*", v) is not None),
    ("_nsimilar", '"(orders|users)%"', lambda v: re.fullmatch("(orders|users).*", v) is None),
    ("_regex", '"^pay"', _regex("^pay")),
    ("_nregex", '"^pay"', lambda v: not _regex("^pay")(v)),
    ("_iregex", '"^PAY"', _regex("^PAY", re.IGNORECASE)),
    ("_niregex", '"S_H"', lambda v: not _regex("S_H", re.IGNORECASE)(v)),
    ("_in", '["users_handler", "nope"]', lambda v: v == "users_handler"),
    ("_nin", '["users_handler"]', lambda v: v != "users_handler"),
]


@pytest.mark.parametrize(("operator", "value", "predicate"), STRING_CASES)
def test_string_operators(server: RunningServer, operator: str, value: str, predicate: Any) -> None:
    got = where_ids(server, f"{{source_function: {{{operator}: {value}}}}}")
    assert got == expected_ids(INVOCATIONS, lambda r: predicate(r["source_function"]))


def test_like_is_case_sensitive_and_ilike_is_not(server: RunningServer) -> None:
    assert where_ids(server, '{source_function: {_like: "ORDERS%"}}') == []
    assert where_ids(server, '{source_function: {_ilike: "ORDERS%"}}') == expected_ids(
        INVOCATIONS, lambda r: r["source_function"] == "orders_handler"
    )


def test_string_null_checks(server: RunningServer) -> None:
    assert where_ids(server, "{source_user_email: {_is_null: true}}") == expected_ids(
        INVOCATIONS, lambda r: r["source_user_email"] is None
    )
    # NULL never matches a comparison, negated or not.
    assert where_ids(server, '{source_user_email: {_nlike: "zzz%"}}') == expected_ids(
        INVOCATIONS, lambda r: r["source_user_email"] is not None
    )


def test_boolean_uuid_and_timestamptz_operators(server: RunningServer) -> None:
    assert where_ids(server, "{auto_load_modules: {_eq: false}}") == expected_ids(
        INVOCATIONS, lambda r: r["auto_load_modules"] is False
    )
    first, second = INVOCATIONS[3]["id"], INVOCATIONS[4]["id"]
    assert where_ids(server, f'{{id: {{_in: ["{first}", "{second.upper()}"]}}}}') == sorted(
        [first, second]
    )
    assert where_ids(server, "{source_job_id: {_is_null: false}}") == expected_ids(
        INVOCATIONS, lambda r: r["source_job_id"] is not None
    )
    start = BASE_TIME + timedelta(hours=3)
    end = BASE_TIME + timedelta(hours=8)
    got = where_ids(
        server,
        f'{{created_at: {{_gte: "{start.strftime("%Y-%m-%dT%H:%M:%SZ")}", '
        f'_lt: "{(end + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")}"}}}}',
    )
    assert got == expected_ids(INVOCATIONS, lambda r: start <= r["created_at"] < end)
    assert got


def test_timestamptz_variables_and_exact_match(server: RunningServer) -> None:
    row = INVOCATIONS[7]
    got = data(
        server,
        "query ($t: timestamptz!) { invocations(where: {created_at: {_eq: $t}}) { id created_at } }",
        {"t": ts(row["created_at"])},
    )
    assert got["invocations"] == [{"id": row["id"], "created_at": ts(row["created_at"])}]


JSONB_CASES = [
    ('{_contains: {op: "UPDATE"}}', lambda p: p is not None and p["op"] == "UPDATE"),
    (
        '{_contains: {data: {new: {tags: ["t1"]}}}}',
        lambda p: p is not None and "t1" in p["data"]["new"]["tags"],
    ),
    (
        '{_contained_in: {op: "INSERT", data: {old: null, new: {id: 4, status: "shipped", tags: ["a", "t0"]}}, trigger: {name: "users_handler"}, priority: 1}}',
        lambda p: (
            p is not None
            and p
            == {
                "op": "INSERT",
                "data": {"old": None, "new": {"id": 4, "status": "shipped", "tags": ["a", "t0"]}},
                "trigger": {"name": "users_handler"},
            }
        ),
    ),
    ('{_has_key: "note"}', lambda p: p is not None and "note" in p),
    (
        '{_has_keys_any: ["note", "priority"]}',
        lambda p: p is not None and ("note" in p or "priority" in p),
    ),
    (
        '{_has_keys_all: ["note", "priority"]}',
        lambda p: p is not None and "note" in p and "priority" in p,
    ),
    ("{_is_null: true}", lambda p: p is None),
    (
        '{_cast: {String: {_ilike: "%SHIPPED%"}}}',
        lambda p: p is not None and "shipped" in jsonb_text(p),
    ),
    (
        '{_cast: {String: {_like: "%\\"op\\": \\"INSERT\\"%"}}}',
        lambda p: p is not None and '"op": "INSERT"' in jsonb_text(p),
    ),
]


@pytest.mark.parametrize(("condition", "predicate"), JSONB_CASES)
def test_jsonb_operators(server: RunningServer, condition: str, predicate: Any) -> None:
    got = where_ids(server, f"{{source_event_payload: {condition}}}")
    expected = expected_ids(INVOCATIONS, lambda r: predicate(r["source_event_payload"]))
    assert got == expected
    assert expected or "_contained_in" in condition


def test_jsonb_equality_ignores_key_order_and_compares_values(server: RunningServer) -> None:
    target = INVOCATIONS[4]["context_data"]
    assert target is not None
    reordered = dict(reversed(list(target.items())))
    got = data(
        server,
        "query ($v: jsonb) { invocations(where: {context_data: {_eq: $v}}, order_by: {id: asc}) { id } }",
        {"v": reordered},
    )
    assert ids(got["invocations"]) == expected_ids(
        INVOCATIONS, lambda r: r["context_data"] == target
    )
    got = data(
        server,
        'query ($v: jsonb!) { invocations(where: {context_data: {_in: [$v, {region: "nowhere"}]}}) { id } }',
        {"v": target},
    )
    assert sorted(ids(got["invocations"])) == expected_ids(
        INVOCATIONS, lambda r: r["context_data"] == target
    )


def test_jsonb_ordering_operators_follow_jsonb_rules(server: RunningServer) -> None:
    # Objects with more pairs sort after objects with fewer; numbers sort below objects.
    got = where_ids(server, "{context_data: {_gt: 5}}")
    assert got == expected_ids(INVOCATIONS, lambda r: r["context_data"] is not None)
    # Equal-size objects compare pair by pair in jsonb key order (shorter keys first):
    # "region" before "attempt".
    got = where_ids(server, '{context_data: {_lt: {attempt: 2, region: "us"}}}')
    assert got == expected_ids(
        INVOCATIONS,
        lambda r: (
            r["context_data"] is not None
            and (r["context_data"]["region"], r["context_data"]["attempt"]) < ("us", 2)
        ),
    )


def test_numeric_bigint_and_float8_accept_strings_and_numbers(server: RunningServer) -> None:
    averages = sorted(
        float(r["avg_duration_ms"])
        for r in DATASET.metrics_hourly
        if r["avg_duration_ms"] is not None
    )
    threshold = averages[len(averages) // 2]
    counts = sorted({r["total_invocations"] for r in DATASET.dashboard_stats})[:2]
    p95s = sorted(
        r["p95_duration_ms"] for r in DATASET.dashboard_stats if r["p95_duration_ms"] is not None
    )
    p95_threshold = p95s[len(p95s) // 2]
    got = data(
        server,
        f"""{{ a: metrics_hourly(where: {{avg_duration_ms: {{_gt: "{threshold}"}}}}, order_by: {{id: asc}}) {{ id avg_duration_ms }}
            b: metrics_hourly(where: {{avg_duration_ms: {{_gt: {threshold}}}}}, order_by: {{id: asc}}) {{ id }}
            c: dashboard_stats(where: {{total_invocations: {{_in: [{counts[0]}, "{counts[-1]}"]}}}},
                               order_by: [{{hour_bucket: asc}}, {{source_function: asc}}]) {{ total_invocations p95_duration_ms }}
            d: dashboard_stats(where: {{p95_duration_ms: {{_lte: {p95_threshold}}}}}) {{ p95_duration_ms }} }}""",
    )
    expected = sorted(
        r["id"]
        for r in DATASET.metrics_hourly
        if r["avg_duration_ms"] is not None and r["avg_duration_ms"] > threshold
    )
    assert expected and ids(got["a"]) == expected == ids(got["b"])
    assert all(
        row["avg_duration_ms"] == number(source["avg_duration_ms"])
        for row, source in zip(
            got["a"],
            sorted(
                (r for r in DATASET.metrics_hourly if r["id"] in expected), key=lambda r: r["id"]
            ),
            strict=True,
        )
    )
    expected_c = sort_rows(
        [r for r in DATASET.dashboard_stats if r["total_invocations"] in counts],
        ("hour_bucket", "asc"),
        ("source_function", "asc"),
    )
    assert expected_c
    assert got["c"] == [
        {"total_invocations": r["total_invocations"], "p95_duration_ms": r["p95_duration_ms"]}
        for r in expected_c
    ]
    assert sorted(r["p95_duration_ms"] for r in got["d"]) == [p for p in p95s if p <= p95_threshold]


def test_computed_fields_filter_order_and_select(server: RunningServer) -> None:
    def success_rate(row: dict[str, Any]) -> float:
        if row["total_jobs_run"] == 0:
            return 100
        return round(row["total_jobs_succeeded"] * 100 / row["total_jobs_run"], 2)

    def avg_job_duration(row: dict[str, Any]) -> float:
        durations = [
            j["duration_ms"]
            for j in JOBS
            if j["invocation_id"] == row["id"] and j["duration_ms"] is not None
        ]
        return sum(durations) / len(durations) if durations else 0

    got = data(
        server,
        "{ invocations(where: {success_rate: {_lt: 100}}, order_by: [{success_rate: asc}, {id: asc}]) "
        "{ id success_rate avg_job_duration } }",
    )
    expected = sort_rows(
        [r for r in INVOCATIONS if success_rate(r) < 100], (success_rate, "asc"), ("id", "asc")
    )
    assert [(r["id"], r["success_rate"]) for r in got["invocations"]] == [
        (r["id"], number(success_rate(r))) for r in expected
    ]
    assert [r["avg_job_duration"] for r in got["invocations"]] == [
        pytest.approx(avg_job_duration(r), rel=1e-15) for r in expected
    ]
    assert expected
    events = data(server, "{ event_executions(order_by: {id: asc}) { id job_success_rate } }")
    for row in events["event_executions"]:
        source = next(e for e in EVENTS if e["id"] == row["id"])
        rate = (
            100
            if source["jobs_count"] == 0
            else round(source["jobs_succeeded"] * 100 / source["jobs_count"], 2)
        )
        assert row["job_success_rate"] == number(rate)


# --- boolean structure -------------------------------------------------------------------------------


def test_and_or_not_and_empty_forms(server: RunningServer) -> None:
    everything = expected_ids(INVOCATIONS, lambda r: True)
    assert where_ids(server, "{_and: []}") == everything
    assert where_ids(server, "{}") == everything
    assert where_ids(server, "{_or: []}") == []
    assert where_ids(server, '{_not: {status: {_eq: "failed"}}}') == expected_ids(
        INVOCATIONS, lambda r: r["status"] != "failed"
    )
    assert where_ids(
        server,
        '{_or: [{status: {_eq: "failed"}}, {_and: [{status: {_eq: "running"}}, {delivery_attempt: {_gt: 1}}]}]}',
    ) == expected_ids(
        INVOCATIONS,
        lambda r: (
            r["status"] == "failed" or (r["status"] == "running" and r["delivery_attempt"] > 1)
        ),
    )
    # A single object where a list is expected is a one-element list.
    assert where_ids(server, '{_or: {status: {_eq: "failed"}}}') == expected_ids(
        INVOCATIONS, lambda r: r["status"] == "failed"
    )
    # Keys of one object are ANDed.
    assert where_ids(
        server, '{status: {_eq: "completed"}, source_function: {_eq: "users_handler"}}'
    ) == expected_ids(
        INVOCATIONS,
        lambda r: r["status"] == "completed" and r["source_function"] == "users_handler",
    )


def test_where_through_relationships(server: RunningServer) -> None:
    # Array relationship: some related row matches.
    failed_job_invocations = {j["invocation_id"] for j in JOBS if j["status"] == "failed"}
    assert where_ids(server, '{job_executions: {status: {_eq: "failed"}}}') == sorted(
        failed_job_invocations
    )
    # Two levels: event -> jobs.
    got = where_ids(
        server, '{event_executions: {job_executions: {job_name: {_eq: "notify_slack"}}}}'
    )
    events_with = {j["event_execution_id"] for j in JOBS if j["job_name"] == "notify_slack"}
    assert got == sorted({e["invocation_id"] for e in EVENTS if e["id"] in events_with})
    # Empty object on a relationship: a related row exists.
    assert where_ids(server, "{event_executions: {}}") == sorted(
        {e["invocation_id"] for e in EVENTS}
    )
    # Object relationship.
    got = where_ids(
        server, '{invocation: {source_function: {_eq: "payments_handler"}}}', "job_executions"
    )
    payments = {r["id"] for r in INVOCATIONS if r["source_function"] == "payments_handler"}
    assert got == expected_ids(JOBS, lambda j: j["invocation_id"] in payments)
    # Manual relationship (no foreign key): jobs that triggered invocations.
    got = where_ids(server, "{triggered_invocations: {}}", "job_executions")
    assert got == sorted(
        {r["source_job_id"] for r in INVOCATIONS if r["source_job_id"] in {j["id"] for j in JOBS}}
    )
    assert got


def test_where_on_relationship_aggregates(server: RunningServer) -> None:
    def event_count(row: dict[str, Any], predicate: Any = lambda e: True) -> int:
        return sum(1 for e in EVENTS if e["invocation_id"] == row["id"] and predicate(e))

    got = where_ids(server, "{event_executions_aggregate: {count: {predicate: {_gte: 2}}}}")
    assert got == expected_ids(INVOCATIONS, lambda r: event_count(r) >= 2)
    got = where_ids(
        server,
        "{event_executions_aggregate: {count: {predicate: {_eq: 1}, filter: {detected: {_eq: true}}}}}",
    )
    assert got == expected_ids(INVOCATIONS, lambda r: event_count(r, lambda e: e["detected"]) == 1)
    got = where_ids(
        server,
        "{job_executions_aggregate: {count: {predicate: {_gt: 1}, arguments: [job_name], distinct: true}}}",
    )
    assert got == expected_ids(
        INVOCATIONS,
        lambda r: len({j["job_name"] for j in JOBS if j["invocation_id"] == r["id"]}) > 1,
    )
    got = where_ids(
        server,
        "{event_executions_aggregate: {bool_and: {arguments: detected, predicate: {_eq: true}}}}",
    )
    assert got == expected_ids(
        INVOCATIONS,
        lambda r: (
            event_count(r) > 0
            and all(e["detected"] for e in EVENTS if e["invocation_id"] == r["id"])
        ),
    )
    got = where_ids(
        server,
        "{event_executions_aggregate: {bool_or: {arguments: detected, predicate: {_eq: false}}}}",
    )
    assert got == expected_ids(
        INVOCATIONS,
        lambda r: (
            event_count(r) > 0
            and not any(e["detected"] for e in EVENTS if e["invocation_id"] == r["id"])
        ),
    )


# --- ordering, paging, distinct -------------------------------------------------------------------------

DIRECTIONS = [
    "asc",
    "asc_nulls_first",
    "asc_nulls_last",
    "desc",
    "desc_nulls_first",
    "desc_nulls_last",
]


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_order_by_directions_place_nulls_like_postgres(
    server: RunningServer, direction: str
) -> None:
    got = data(
        server,
        f"{{ invocations(order_by: [{{total_duration_ms: {direction}}}, {{id: asc}}]) {{ id }} }}",
    )
    expected = sort_rows(INVOCATIONS, ("total_duration_ms", direction), ("id", "asc"))
    assert ids(got["invocations"]) == ids(expected)


def test_order_by_object_keeps_key_order(server: RunningServer) -> None:
    got = data(server, "{ invocations(order_by: {source_function: desc, created_at: asc}) { id } }")
    assert ids(got["invocations"]) == ids(
        sort_rows(INVOCATIONS, ("source_function", "desc"), ("created_at", "asc"))
    )
    got = data(
        server,
        "query ($o: [invocations_order_by!]) { invocations(order_by: $o) { id } }",
        {"o": {"status": "asc", "created_at": "desc"}},
    )
    assert ids(got["invocations"]) == ids(
        sort_rows(INVOCATIONS, ("status", "asc"), ("created_at", "desc"))
    )


def test_order_by_relationships_and_aggregates(server: RunningServer) -> None:
    invocation = {r["id"]: r for r in INVOCATIONS}
    got = data(
        server,
        "{ job_executions(order_by: [{invocation: {source_function: desc}}, {id: asc}]) { id } }",
    )
    assert ids(got["job_executions"]) == ids(
        sort_rows(
            JOBS,
            (lambda j: invocation[j["invocation_id"]]["source_function"], "desc"),
            ("id", "asc"),
        )
    )
    got = data(
        server,
        "{ invocations(order_by: [{event_executions_aggregate: {count: desc}}, {id: asc}]) { id } }",
    )
    counts = {r["id"]: sum(1 for e in EVENTS if e["invocation_id"] == r["id"]) for r in INVOCATIONS}
    assert ids(got["invocations"]) == ids(
        sort_rows(INVOCATIONS, (lambda r: counts[r["id"]], "desc"), ("id", "asc"))
    )
    got = data(
        server,
        "{ invocations(order_by: [{job_executions_aggregate: {max: {duration_ms: desc_nulls_last}}}, {id: asc}]) { id } }",
    )

    def longest(row: dict[str, Any]) -> Any:
        values = [
            j["duration_ms"]
            for j in JOBS
            if j["invocation_id"] == row["id"] and j["duration_ms"] is not None
        ]
        return max(values) if values else None

    assert ids(got["invocations"]) == ids(
        sort_rows(INVOCATIONS, (longest, "desc_nulls_last"), ("id", "asc"))
    )


def test_order_by_jsonb_column(server: RunningServer) -> None:
    got = data(
        server, "{ invocations(order_by: [{context_data: asc}, {id: asc}]) { id context_data } }"
    )

    # jsonb ordering: equal-size objects compare by their values in jsonb key order.
    def key(row: dict[str, Any]) -> Any:
        value = row["context_data"]
        return None if value is None else (value["region"], value["attempt"])

    assert ids(got["invocations"]) == ids(sort_rows(INVOCATIONS, (key, "asc"), ("id", "asc")))


def test_limit_offset_and_distinct_on(server: RunningServer) -> None:
    got = data(server, "{ invocations(order_by: {created_at: desc}, limit: 5, offset: 3) { id } }")
    assert ids(got["invocations"]) == ids(sort_rows(INVOCATIONS, ("created_at", "desc"))[3:8])
    got = data(
        server,
        "{ invocations(distinct_on: [source_function], order_by: [{source_function: asc}, {created_at: desc}]) "
        "{ source_function created_at } }",
    )
    expected = []
    for function in sorted({r["source_function"] for r in INVOCATIONS}):
        latest = sort_rows(
            [r for r in INVOCATIONS if r["source_function"] == function], ("created_at", "desc")
        )[0]
        expected.append({"source_function": function, "created_at": ts(latest["created_at"])})
    assert got["invocations"] == expected
    # A single value where a list is expected.
    got = data(
        server, "{ job_executions(distinct_on: job_name, order_by: {job_name: asc}) { job_name } }"
    )
    assert [r["job_name"] for r in got["job_executions"]] == sorted({j["job_name"] for j in JOBS})
    got = data(
        server,
        "{ invocations(distinct_on: status, order_by: [{status: asc}, {created_at: asc}], limit: 2, offset: 1) { status } }",
    )
    assert [r["status"] for r in got["invocations"]] == sorted({r["status"] for r in INVOCATIONS})[
        1:3
    ]


def test_distinct_on_must_lead_order_by(server: RunningServer) -> None:
    [error] = errors(
        server, "{ invocations(distinct_on: [status], order_by: {created_at: asc}) { id } }"
    )
    assert error["extensions"] == {
        "code": "validation-failed",
        "path": "$.selectionSet.invocations.args",
    }
    assert error["message"] == '"distinct_on" columns must match initial "order_by" columns'


# --- relationships ---------------------------------------------------------------------------------------


def test_three_levels_of_array_relationships_with_arguments(server: RunningServer) -> None:
    got = data(
        server,
        """{ invocations(order_by: {created_at: asc}, where: {event_executions: {}}) {
              id
              event_executions(order_by: {created_at: desc}, where: {detected: {_eq: true}}) {
                id
                job_executions(order_by: [{duration_ms: desc_nulls_last}, {id: asc}], limit: 2) {
                  id duration_ms
                  logs(order_by: {seq: asc}) { seq level message }
                }
              }
            } }""",
    )
    parents = sort_rows(
        [r for r in INVOCATIONS if any(e["invocation_id"] == r["id"] for e in EVENTS)],
        ("created_at", "asc"),
    )
    expected = []
    for invocation in parents:
        events = sort_rows(
            [e for e in EVENTS if e["invocation_id"] == invocation["id"] and e["detected"]],
            ("created_at", "desc"),
        )
        shaped_events = []
        for event in events:
            jobs = sort_rows(
                [j for j in JOBS if j["event_execution_id"] == event["id"]],
                ("duration_ms", "desc_nulls_last"),
                ("id", "asc"),
            )[:2]
            shaped_events.append(
                {
                    "id": event["id"],
                    "job_executions": [
                        {
                            "id": job["id"],
                            "duration_ms": job["duration_ms"],
                            "logs": [
                                {
                                    "seq": log["seq"],
                                    "level": log["level"],
                                    "message": log["message"],
                                }
                                for log in sort_rows(
                                    [g for g in LOGS if g["job_execution_id"] == job["id"]],
                                    ("seq", "asc"),
                                )
                            ],
                        }
                        for job in jobs
                    ],
                }
            )
        expected.append({"id": invocation["id"], "event_executions": shaped_events})
    assert got["invocations"] == expected


def test_object_and_manual_relationships(server: RunningServer) -> None:
    by_id = DATASET.by_id("invocations")
    events = DATASET.by_id("event_executions")
    got = data(
        server,
        "{ job_executions(order_by: {id: asc}) { id invocation { id source_function } event_execution { event_name } } }",
    )
    assert got["job_executions"] == [
        {
            "id": j["id"],
            "invocation": {
                "id": j["invocation_id"],
                "source_function": by_id[j["invocation_id"]]["source_function"],
            },
            "event_execution": {"event_name": events[j["event_execution_id"]]["event_name"]},
        }
        for j in sorted(JOBS, key=lambda j: j["id"])
    ]
    jobs = DATASET.by_id("job_executions")
    got = data(
        server,
        "{ invocations(order_by: {id: asc}) { id correlation_id source_job_execution { id job_name } "
        "correlated_invocations(order_by: {id: asc}) { id } } }",
    )
    for row in got["invocations"]:
        source = by_id[row["id"]]
        parent = jobs.get(source["source_job_id"])
        assert row["source_job_execution"] == (
            None if parent is None else {"id": parent["id"], "job_name": parent["job_name"]}
        )
        if source["correlation_id"] is None:
            assert row["correlated_invocations"] == []
        else:
            # Includes the invocation itself.
            assert ids(row["correlated_invocations"]) == expected_ids(
                INVOCATIONS, lambda r, c=source["correlation_id"]: r["correlation_id"] == c
            )
            assert row["id"] in ids(row["correlated_invocations"])


def test_cascades_three_levels_through_triggered_invocations(server: RunningServer) -> None:
    root = INVOCATIONS[1]
    got = data(
        server,
        """query ($id: uuid!) { invocations_by_pk(id: $id) { id
              job_executions(order_by: {created_at: asc}, limit: 1) { triggered_invocations { id
                job_executions(order_by: {created_at: asc}, limit: 1) { triggered_invocations { id source_job_id } } } } } }""",
        {"id": root["id"]},
    )
    child = INVOCATIONS[13]
    grandchild = INVOCATIONS[25]
    level1 = got["invocations_by_pk"]["job_executions"][0]["triggered_invocations"]
    assert [r["id"] for r in level1] == [child["id"]]
    level2 = level1[0]["job_executions"][0]["triggered_invocations"]
    assert level2 == [{"id": grandchild["id"], "source_job_id": grandchild["source_job_id"]}]


def test_logs_relationship_holds_job_and_detector_lines(server: RunningServer) -> None:
    invocation = next(
        r for r in INVOCATIONS if sum(1 for g in LOGS if g["invocation_id"] == r["id"]) > 3
    )
    got = data(
        server,
        "query ($id: uuid!) { invocations_by_pk(id: $id) { logs(order_by: [{created_at: asc}, {id: asc}]) { id job_execution_id } } }",
        {"id": invocation["id"]},
    )
    expected = sort_rows(
        [g for g in LOGS if g["invocation_id"] == invocation["id"]],
        ("created_at", "asc"),
        ("id", "asc"),
    )
    assert got["invocations_by_pk"]["logs"] == [
        {"id": g["id"], "job_execution_id": g["job_execution_id"]} for g in expected
    ]
    assert any(g["job_execution_id"] is None for g in expected)


def test_nested_arguments_apply_per_parent(server: RunningServer) -> None:
    got = data(
        server,
        "{ invocations(order_by: {id: asc}) { id job_executions(order_by: [{created_at: desc}, {id: asc}], limit: 1, offset: 1) { id } "
        "first_job: job_executions(order_by: {created_at: asc}, limit: 1) { id } "
        "names: job_executions(distinct_on: job_name, order_by: {job_name: asc}) { job_name } } }",
    )
    for row in got["invocations"]:
        jobs = [j for j in JOBS if j["invocation_id"] == row["id"]]
        assert ids(row["job_executions"]) == ids(
            sort_rows(jobs, ("created_at", "desc"), ("id", "asc"))[1:2]
        )
        assert ids(row["first_job"]) == ids(sort_rows(jobs, ("created_at", "asc"))[:1])
        assert [j["job_name"] for j in row["names"]] == sorted({j["job_name"] for j in jobs})


# --- aggregates --------------------------------------------------------------------------------------------


def test_root_aggregates(server: RunningServer) -> None:
    got = data(
        server,
        """{ invocations_aggregate { aggregate {
              count
              emails: count(columns: [source_user_email])
              distinct_emails: count(columns: source_user_email, distinct: true)
              pairs: count(columns: [source_function, status], distinct: true)
              sum { total_jobs_run total_duration_ms }
              avg { total_duration_ms }
              max { total_duration_ms created_at source_function id }
              min { total_duration_ms created_at }
              stddev { total_duration_ms } stddev_pop { total_duration_ms } stddev_samp { total_duration_ms }
              variance { total_duration_ms } var_pop { total_duration_ms } var_samp { total_duration_ms }
            } } }""",
    )
    aggregate = got["invocations_aggregate"]["aggregate"]
    durations = [r["total_duration_ms"] for r in INVOCATIONS if r["total_duration_ms"] is not None]
    emails = [r["source_user_email"] for r in INVOCATIONS if r["source_user_email"] is not None]
    assert aggregate["count"] == len(INVOCATIONS)
    assert aggregate["emails"] == len(emails)
    assert aggregate["distinct_emails"] == len(set(emails))
    assert aggregate["pairs"] == len({(r["source_function"], r["status"]) for r in INVOCATIONS})
    assert aggregate["sum"] == {
        "total_jobs_run": sum(r["total_jobs_run"] for r in INVOCATIONS),
        "total_duration_ms": sum(durations),
    }
    assert aggregate["avg"]["total_duration_ms"] == pytest.approx(statistics.mean(durations))
    assert aggregate["max"] == {
        "total_duration_ms": max(durations),
        "created_at": ts(max(r["created_at"] for r in INVOCATIONS)),
        "source_function": max(r["source_function"] for r in INVOCATIONS),
        "id": max(r["id"] for r in INVOCATIONS),
    }
    assert aggregate["min"] == {
        "total_duration_ms": min(durations),
        "created_at": ts(min(r["created_at"] for r in INVOCATIONS)),
    }
    assert aggregate["stddev"]["total_duration_ms"] == pytest.approx(statistics.stdev(durations))
    assert aggregate["stddev_samp"]["total_duration_ms"] == pytest.approx(
        statistics.stdev(durations)
    )
    assert aggregate["stddev_pop"]["total_duration_ms"] == pytest.approx(
        statistics.pstdev(durations)
    )
    assert aggregate["variance"]["total_duration_ms"] == pytest.approx(
        statistics.variance(durations)
    )
    assert aggregate["var_samp"]["total_duration_ms"] == pytest.approx(
        statistics.variance(durations)
    )
    assert aggregate["var_pop"]["total_duration_ms"] == pytest.approx(
        statistics.pvariance(durations)
    )


def test_aggregate_of_no_rows(server: RunningServer) -> None:
    got = data(
        server,
        '{ invocations_aggregate(where: {status: {_eq: "nope"}}) { aggregate { count sum { total_jobs_run } '
        "avg { total_duration_ms } max { created_at } stddev { total_duration_ms } } nodes { id } } }",
    )
    assert got["invocations_aggregate"] == {
        "aggregate": {
            "count": 0,
            "sum": {"total_jobs_run": None},
            "avg": {"total_duration_ms": None},
            "max": {"created_at": None},
            "stddev": {"total_duration_ms": None},
        },
        "nodes": [],
    }


def test_aggregate_limit_and_offset_apply_before_aggregating(server: RunningServer) -> None:
    got = data(
        server,
        "{ invocations_aggregate(order_by: {created_at: asc}, limit: 4, offset: 2) "
        "{ aggregate { count sum { total_jobs_run } } nodes { id } } }",
    )
    window = sort_rows(INVOCATIONS, ("created_at", "asc"))[2:6]
    assert got["invocations_aggregate"] == {
        "aggregate": {
            "count": 4,
            "sum": {"total_jobs_run": sum(r["total_jobs_run"] for r in window)},
        },
        "nodes": [{"id": r["id"]} for r in window],
    }


def test_nested_aggregates_with_arguments(server: RunningServer) -> None:
    got = data(
        server,
        """{ invocations(order_by: {id: asc}) { id
              event_executions_aggregate { aggregate { count } }
              detected: event_executions_aggregate(where: {detected: {_eq: true}}) { aggregate { count } nodes { event_name } }
              jobs: job_executions_aggregate(order_by: {created_at: asc}, limit: 2) { aggregate { count max { duration_ms } avg { duration_ms } } }
            } }""",
    )
    for row in got["invocations"]:
        events = [e for e in EVENTS if e["invocation_id"] == row["id"]]
        detected = sort_rows([e for e in events if e["detected"]], ("id", "asc"))
        jobs = sort_rows(
            [j for j in JOBS if j["invocation_id"] == row["id"]], ("created_at", "asc")
        )[:2]
        durations = [j["duration_ms"] for j in jobs if j["duration_ms"] is not None]
        assert row["event_executions_aggregate"] == {"aggregate": {"count": len(events)}}
        assert row["detected"]["aggregate"] == {"count": len(detected)}
        assert sorted(n["event_name"] for n in row["detected"]["nodes"]) == sorted(
            e["event_name"] for e in detected
        )
        assert row["jobs"]["aggregate"]["count"] == len(jobs)
        assert row["jobs"]["aggregate"]["max"] == {
            "duration_ms": max(durations) if durations else None
        }
        average = row["jobs"]["aggregate"]["avg"]["duration_ms"]
        assert average == (pytest.approx(statistics.mean(durations)) if durations else None)


def test_sum_of_int_above_int32_is_a_number(server: RunningServer) -> None:
    # dashboard_stats counts are bigint; sums of Int columns can exceed int32 too.
    got = data(
        server,
        "{ dashboard_stats_aggregate { aggregate { sum { total_invocations total_jobs_run } } } }",
    )
    sums = got["dashboard_stats_aggregate"]["aggregate"]["sum"]
    assert sums == {
        "total_invocations": sum(r["total_invocations"] for r in DATASET.dashboard_stats),
        "total_jobs_run": sum(r["total_jobs_run"] for r in DATASET.dashboard_stats),
    }


# --- field extras, scalars, typenames -------------------------------------------------------------------


def test_jsonb_path_argument(server: RunningServer) -> None:
    row = next(
        r for r in INVOCATIONS if r["source_event_payload"] and "note" in r["source_event_payload"]
    )
    got = data(
        server,
        """query ($id: uuid!) { invocations_by_pk(id: $id) {
              whole: source_event_payload
              status: source_event_payload(path: "$.data.new.status")
              tag: source_event_payload(path: "data.new.tags[1]")
              missing: source_event_payload(path: "$.nothing.here")
              context_data(path: "region")
            } }""",
        {"id": row["id"]},
    )
    payload = row["source_event_payload"]
    assert got["invocations_by_pk"] == {
        "whole": payload,
        "status": payload["data"]["new"]["status"],
        "tag": payload["data"]["new"]["tags"][1],
        "missing": None,
        "context_data": None if row["context_data"] is None else row["context_data"]["region"],
    }
    # jsonb key order: shorter keys first, then bytewise (as PostgreSQL returns jsonb).
    assert list(got["invocations_by_pk"]["whole"]) == sorted(payload, key=lambda k: (len(k), k))


def test_scalar_serialisation(server: RunningServer) -> None:
    row = INVOCATIONS[0]  # created_at has no fraction
    assert row["created_at"].microsecond == 0
    got = data(
        server,
        "query ($id: uuid!) { invocations_by_pk(id: $id) { created_at received_at auto_load_modules delivery_attempt } "
        "metrics_hourly(limit: 1, order_by: {id: asc}) { avg_duration_ms p95_duration_ms total_invocations hour_bucket } "
        "dashboard_stats(limit: 1, order_by: [{hour_bucket: asc}, {source_function: asc}]) { total_invocations p95_duration_ms avg_duration_ms } }",
        {"id": row["id"]},
    )
    midnight = BASE_TIME.strftime("%Y-%m-%dT00:00:00+00:00")  # no fraction at all
    assert got["invocations_by_pk"] == {
        "created_at": midnight,
        "received_at": midnight,
        "auto_load_modules": row["auto_load_modules"],
        "delivery_attempt": row["delivery_attempt"],
    }
    other = data(server, '{ invocations(where: {source_event_id: {_eq: "evt-1"}}) { created_at } }')
    assert other["invocations"][0]["created_at"] == ts(INVOCATIONS[1]["created_at"])
    # Six fractional digits when all are significant, offset +00:00.
    day = BASE_TIME.strftime("%Y-%m-%d")
    assert re.fullmatch(rf"{day}T00:37:01\.012345\+00:00", other["invocations"][0]["created_at"])
    metrics = sorted(DATASET.metrics_hourly, key=lambda r: r["id"])[0]
    assert got["metrics_hourly"] == [
        {
            "avg_duration_ms": number(metrics["avg_duration_ms"]),
            "p95_duration_ms": number(metrics["p95_duration_ms"]),
            "total_invocations": metrics["total_invocations"],
            "hour_bucket": ts(metrics["hour_bucket"]),
        }
    ]
    stats = sort_rows(DATASET.dashboard_stats, ("hour_bucket", "asc"), ("source_function", "asc"))[
        0
    ]
    assert got["dashboard_stats"] == [
        {
            "total_invocations": stats["total_invocations"],
            "p95_duration_ms": stats["p95_duration_ms"],
            "avg_duration_ms": number(stats["avg_duration_ms"]),
        }
    ]
    assert not math.isnan(got["dashboard_stats"][0]["p95_duration_ms"])


def test_typename_everywhere(server: RunningServer) -> None:
    got = data(
        server,
        """{ __typename invocations(limit: 1, order_by: {id: asc}) { __typename
              event_executions(limit: 1) { __typename invocation { __typename } }
              event_executions_aggregate { __typename aggregate { __typename count max { __typename created_at } } nodes { __typename } }
            }
            invocations_aggregate { __typename aggregate { __typename sum { __typename } avg { __typename total_duration_ms } } } }""",
    )
    assert got["__typename"] == "query_root"
    row = got["invocations"][0]
    assert row["__typename"] == "invocations"
    aggregate = row["event_executions_aggregate"]
    assert aggregate["__typename"] == "event_executions_aggregate"
    assert aggregate["aggregate"]["__typename"] == "event_executions_aggregate_fields"
    assert aggregate["aggregate"]["max"]["__typename"] == "event_executions_max_fields"
    assert got["invocations_aggregate"]["aggregate"]["sum"] == {
        "__typename": "invocations_sum_fields"
    }
    assert (
        got["invocations_aggregate"]["aggregate"]["avg"]["__typename"] == "invocations_avg_fields"
    )
    for event in row["event_executions"]:
        assert event["__typename"] == "event_executions"
        assert event["invocation"] == {"__typename": "invocations"}


def test_aggregate_blocks_asking_only_typename(server: RunningServer) -> None:
    """Apollo adds `__typename` to every selection: blocks holding nothing else work."""
    got = data(
        server,
        """{ invocations_aggregate { aggregate { sum { __typename } } }
            stddev: invocations_aggregate { aggregate { stddev { __typename } } }
            bare: invocations_aggregate { aggregate { __typename } }
            metrics_hourly_aggregate { __typename aggregate { __typename max { __typename } } }
            none: invocations_aggregate(where: {id: {_is_null: true}}) {
              aggregate { __typename avg { __typename } } } }""",
    )
    assert got == {
        "invocations_aggregate": {"aggregate": {"sum": {"__typename": "invocations_sum_fields"}}},
        "stddev": {"aggregate": {"stddev": {"__typename": "invocations_stddev_fields"}}},
        "bare": {"aggregate": {"__typename": "invocations_aggregate_fields"}},
        "metrics_hourly_aggregate": {
            "__typename": "metrics_hourly_aggregate",
            "aggregate": {
                "__typename": "metrics_hourly_aggregate_fields",
                "max": {"__typename": "metrics_hourly_max_fields"},
            },
        },
        "none": {
            "aggregate": {
                "__typename": "invocations_aggregate_fields",
                "avg": {"__typename": "invocations_avg_fields"},
            }
        },
    }


def test_by_pk_and_views_without_primary_key(server: RunningServer) -> None:
    row = INVOCATIONS[5]
    got = data(server, f'{{ invocations_by_pk(id: "{row["id"]}") {{ id status }} }}')
    assert got["invocations_by_pk"] == {"id": row["id"], "status": row["status"]}
    got = data(server, '{ invocations_by_pk(id: "00000000-0000-0000-0000-000000000000") { id } }')
    assert got["invocations_by_pk"] is None
    [error] = errors(
        server,
        '{ dashboard_stats_by_pk(hour_bucket: "2026-01-01T00:00:00Z") { total_invocations } }',
    )
    assert error["extensions"]["code"] == "validation-failed"
    assert "dashboard_stats_by_pk" in error["message"]


def test_aliases_fragments_and_directives(server: RunningServer) -> None:
    got = data(
        server,
        """query ($withStatus: Boolean!, $skipTable: Boolean!, $unused: String) {
              first: invocations(order_by: {created_at: asc}, limit: 1) { ...Row key: id }
              last: invocations(order_by: {created_at: desc}, limit: 1) { ... on invocations { id } }
            }
            fragment Row on invocations {
              id
              status @include(if: $withStatus)
              source_table @skip(if: $skipTable)
            }""",
        {"withStatus": True, "skipTable": True},
    )
    first = sort_rows(INVOCATIONS, ("created_at", "asc"))[0]
    last = sort_rows(INVOCATIONS, ("created_at", "desc"))[0]
    assert got == {
        "first": [{"id": first["id"], "status": first["status"], "key": first["id"]}],
        "last": [{"id": last["id"]}],
    }


def test_batched_requests_get_get_requests_and_graphiql(server: RunningServer) -> None:
    response = server.client.post(
        "/v1/graphql",
        json=[
            {"query": "{ invocations_aggregate { aggregate { count } } }"},
            {"query": "{ nope }"},
        ],
    )
    assert response.status_code == 200
    first, second = response.json()
    assert first == {"data": {"invocations_aggregate": {"aggregate": {"count": len(INVOCATIONS)}}}}
    assert second["errors"][0]["extensions"]["code"] == "validation-failed"
    response = server.client.get(
        "/graphql", params={"query": "{ invocations_aggregate { aggregate { count } } }"}
    )
    assert response.json() == first
    response = server.client.get("/v1/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


# --- errors --------------------------------------------------------------------------------------------------


def test_unknown_field_and_operator_are_validation_errors(server: RunningServer) -> None:
    [error] = errors(server, "{ invocations { id nope } }")
    assert error == {
        "message": "field 'nope' not found in type: 'invocations'",
        "extensions": {
            "path": "$.selectionSet.invocations.selectionSet.nope",
            "code": "validation-failed",
        },
    }
    [error] = errors(server, '{ invocations(where: {id: {_unexpected: "x"}}) { id } }')
    assert error["extensions"] == {
        "path": "$.selectionSet.invocations.args.where",
        "code": "validation-failed",
    }
    assert error["message"] == "field '_unexpected' not found in type: 'uuid_comparison_exp'"


def test_common_validation_errors_are_worded_as_hasura_words_them(server: RunningServer) -> None:
    cases = [
        ("{ invocations(where: {nope: {_eq: 1}}) { id } }", None),
        ("query ($w: invocations_bool_exp) { invocations(where: $w) { id } }", {"w": {"nope": {}}}),
        ("{ invocations(limt: 2) { id } }", None),
        ("query ($id: uuid!) { invocations_by_pk(id: $id) { id } }", None),
        ("{ invocations_by_pk { id } }", None),
    ]
    messages = [errors(server, query, variables)[0]["message"] for query, variables in cases]
    assert messages == [
        "field 'nope' not found in type: 'invocations_bool_exp'",
        "field 'nope' not found in type: 'invocations_bool_exp'",
        "'invocations' has no argument named 'limt'",
        'expecting a value for non-nullable variable: "id"',
        "missing required field 'id'",
    ]


def test_invalid_values_are_rejected_with_the_field_named(server: RunningServer) -> None:
    [error] = errors(server, '{ invocations(where: {id: {_eq: "not-a-uuid"}}) { id } }')
    assert error["extensions"]["code"] in ("validation-failed", "data-exception")
    assert "uuid" in error["message"]
    [error] = errors(
        server, "query ($id: uuid!) { invocations_by_pk(id: $id) { id } }", {"id": "zzz"}
    )
    assert error["extensions"]["code"] == "validation-failed"
    assert "$id" in error["message"]
    [error] = errors(server, "{ invocations(where: {status: {_eq: null}}) { id } }")
    assert error["extensions"] == {
        "code": "validation-failed",
        "path": "$.selectionSet.invocations.args.where.status._eq",
    }
    [error] = errors(server, "{ invocations(limit: -1) { id } }")
    assert error["extensions"]["code"] == "validation-failed"


def test_syntax_errors_and_malformed_bodies(server: RunningServer) -> None:
    [error] = errors(server, "{ invocations { id ")
    assert error["extensions"] == {"code": "validation-failed", "path": "$.query"}
    assert error["message"].startswith("not a valid graphql query")
    response = server.client.post(
        "/v1/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "parse-failed"


def test_row_cap_is_an_error_not_a_silent_cut(server: RunningServer) -> None:
    [error] = errors(server, "{ invocations(limit: 5000) { id } }")
    assert error["extensions"] == {
        "code": "validation-failed",
        "path": "$.selectionSet.invocations.args.limit",
    }
    assert "1000" in error["message"]


def test_unused_variables_are_accepted(server: RunningServer) -> None:
    got = data(
        server,
        "query ($searchTerm: String!, $hasColon: Boolean = false) { invocations_aggregate { aggregate { count } } }",
        {"searchTerm": "%x%"},
    )
    assert got == {"invocations_aggregate": {"aggregate": {"count": len(INVOCATIONS)}}}


def test_variables_the_operation_does_not_declare_are_refused(server: RunningServer) -> None:
    [error] = errors(server, "query { invocations(limit: 1) { id } }", {"y": 1})
    assert error == {
        "message": "unexpected variables in variableValues: y",
        "extensions": {"path": "$", "code": "validation-failed"},
    }
    # Checked against the operation that runs.
    two = "query A { invocations(limit: 1) { id } } query B($n: Int) { invocations(limit: $n) { id } }"
    wrong = server.post(two, {"n": 1, "y": 1, "z": 2}, operation_name="B")
    assert wrong["errors"][0]["message"] == "unexpected variables in variableValues: y, z"
    assert len(server.post(two, {"n": 1}, operation_name="B")["data"]["invocations"]) == 1
    other = server.post(two, {"n": 1}, operation_name="A")
    assert other["errors"][0]["message"] == "unexpected variables in variableValues: n"
    # A document that is invalid keeps its own error.
    [error] = errors(server, "query { nope }", {"y": 1})
    assert "nope" in error["message"]


def test_tables_read_names_every_table_an_operation_touches(server: RunningServer) -> None:
    engine = server.app.state.engine
    query = """query ($w: invocations_bool_exp) {
        invocations(where: $w) { id success_rate event_executions { id } }
        dashboard_stats { hour_bucket } }"""
    assert engine.tables_read(query, {"w": {}}) == {
        "invocations",
        "event_executions",
        "dashboard_stats",
    }
    assert engine.tables_read(query, {"w": {"logs": {"level": {"_eq": "error"}}}}) == {
        "invocations",
        "event_executions",
        "dashboard_stats",
        "job_logs",
    }
    assert engine.tables_read("{ invocations { avg_job_duration } }") == {
        "invocations",
        "job_executions",
    }


def test_abuse_limits_are_validation_errors(server: RunningServer) -> None:
    deep = "{ invocations { " + "job_executions { invocation { " * 6 + "id" + " } }" * 6 + " } }"
    [error] = errors(server, deep)
    assert error["extensions"]["code"] == "validation-failed"
    assert "depth" in error["message"]
    aliases = " ".join(f"a{i}: __typename" for i in range(201))
    [error] = errors(server, f"{{ {aliases} }}")
    assert error["extensions"]["code"] == "validation-failed"
    assert "alias" in error["message"].lower()
    tokens = "{ " + " ".join(["__typename"] * 20_001) + " }"
    [error] = errors(server, tokens)
    assert error["extensions"]["code"] == "validation-failed"
    assert "tokens" in error["message"]
    response = server.client.post("/v1/graphql", json=[{"query": "{ __typename }"}] * 21)
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"] == "Too many operations"


def test_concurrent_requests_are_all_answered(server: RunningServer) -> None:
    import concurrent.futures

    query = "{ invocations(order_by: {id: asc}) { id event_executions { id } } invocations_aggregate { aggregate { count } } }"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(lambda _: server.post(query), range(24)))
    assert all("errors" not in body for body in bodies)
    assert all(len(body["data"]["invocations"]) == len(INVOCATIONS) for body in bodies)
