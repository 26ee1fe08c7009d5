"""Security: who may read what, the request limits, and the webhook's shared secret.

A matrix over roles (no credentials, a wrong secret, admin, `viewer` through
`x-hasura-role`, through a JWT and as the unauthorized role, an unknown role) and over
every way a query can reach a column (selection, `_by_pk`, `where` literal and
variable, `order_by`, `distinct_on`, `count(columns:)`, `max`, `_aggregate` nodes,
fragments, every relationship into the table, relationship aggregates and their
filters), on both backends. The columns the `viewer` role may not see come from
`hasura/` (the one source of truth): every query that reaches one must succeed for
admin (so it is a valid query) and fail for the viewer (so the permission holds).
`test_graphql_permissions.py` covers JWT validation and row filters; this module
covers the breadth.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

import service.endpoints.webhook
from detector.observability.models import metadata as models
from service.graphql.catalog.metadata import load_catalog
from service.settings import REPO_ROOT, Settings
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.db import run
from tests.support.runtime import EXAMPLES_EVENTS, database_for
from tests.support.server import RunningServer, serving

DATASET = build_dataset()
SECRET = "adm1n-s3cret-for-the-security-tests"
JWT_KEY = "jwt-key-for-the-security-tests-0123456789abcdef"
WEBHOOK_SECRET = "w3bhook-s3cret-for-the-security-tests"
ADMIN = {"x-hasura-admin-secret": SECRET}
VIEWER = {**ADMIN, "x-hasura-role": "viewer"}
CATALOG = load_catalog(REPO_ROOT / "hasura" / "metadata", models)
ANY_ID = DATASET.invocations[0]["id"]


def _token(role: str, allowed: list[str] | None = None) -> str:
    claims = {
        "x-hasura-allowed-roles": allowed or [role],
        "x-hasura-default-role": role,
        "x-hasura-user-id": "7",
    }
    # Made when the module is collected: valid for longer than the whole suite may take.
    payload = {
        "sub": "7",
        "exp": int(time.time()) + 3 * 3600,
        "https://hasura.io/jwt/claims": claims,
    }
    return jwt.encode(payload, JWT_KEY, algorithm="HS256")


JWT_VIEWER = {"Authorization": f"Bearer {_token('viewer')}"}


def hidden_columns() -> dict[str, list[str]]:
    """table → the columns the viewer may not read (whole tables when it has no grant)."""
    hidden = {}
    for name, table in CATALOG.tables.items():
        permission = table.select_permissions.get("viewer")
        columns = (
            set(table.columns)
            if permission is None
            else set(table.columns) - set(permission.columns)
        )
        if columns:
            hidden[name] = sorted(columns)
    return hidden


HIDDEN = hidden_columns()
UNGRANTED_TABLES = [
    name for name, t in CATALOG.tables.items() if "viewer" not in t.select_permissions
]
ORDERABLE = {"text", "String", "Int", "timestamptz", "uuid", "numeric", "bigint", "float8"}


def _scalar(table: str, column: str) -> str:
    return CATALOG.tables[table].columns[column].scalar


def reaching_queries() -> list[tuple[str, str]]:
    """(label, query) for every way of reaching a hidden column; each is valid for admin."""
    queries: list[tuple[str, str]] = []
    for table, columns in HIDDEN.items():
        if table in UNGRANTED_TABLES:
            queries.append((f"{table} table", f"{{ {table}(limit: 1) {{ id }} }}"))
            queries.append(
                (f"{table} aggregate", f"{{ {table}_aggregate {{ aggregate {{ count }} }} }}")
            )
            continue
        has_pk = CATALOG.tables[table].primary_key == ("id",)
        for column in columns:
            scalar = _scalar(table, column)
            here = f"{table}.{column}"
            queries += [
                (f"select {here}", f"{{ {table}(limit: 1) {{ {column} }} }}"),
                (f"where {here}", f"{{ {table}(where: {{{column}: {{_is_null: false}}}}) {{ id }} }}"),
                (f"distinct_on {here}", f"{{ {table}(distinct_on: [{column}], order_by: {{{column}: asc}}) {{ id }} }}"),
                (f"count(columns) {here}", f"{{ {table}_aggregate {{ aggregate {{ count(columns: [{column}], distinct: true) }} }} }}"),
                (f"nodes {here}", f"{{ {table}_aggregate(limit: 1) {{ nodes {{ {column} }} }} }}"),
                (f"fragment {here}", f"query {{ {table}(limit: 1) {{ ...F }} }} fragment F on {table} {{ {column} }}"),
                (f"inline fragment {here}", f"{{ {table}(limit: 1) {{ ... on {table} {{ {column} }} }} }}"),
                (f"order_by {here}", f"{{ {table}(order_by: {{{column}: asc}}, limit: 1) {{ id }} }}"),
            ]  # fmt: skip
            if has_pk:
                queries.append(
                    (f"by_pk {here}", f'{{ {table}_by_pk(id: "{ANY_ID}") {{ {column} }} }}')
                )
            if scalar in ORDERABLE:
                queries.append(
                    (f"max {here}", f"{{ {table}_aggregate {{ aggregate {{ max {{ {column} }} }} }} }}")
                )  # fmt: skip
            for source in CATALOG.tables.values():
                for rel in source.relationships.values():
                    if rel.target != table or "viewer" not in source.select_permissions:
                        continue
                    via = f"{source.name}.{rel.name}.{column}"
                    queries += [
                        (f"through {via}", f"{{ {source.name}(limit: 1) {{ {rel.name} {{ {column} }} }} }}"),
                        (f"where through {via}", f"{{ {source.name}(where: {{{rel.name}: {{{column}: {{_is_null: false}}}}}}) {{ id }} }}"),
                    ]  # fmt: skip
                    if rel.kind == "array":
                        queries += [
                            (f"array order_by {via}", f"{{ {source.name}(limit: 1) {{ {rel.name}(order_by: {{{column}: asc}}) {{ id }} }} }}"),
                            (f"aggregate nodes {via}", f"{{ {source.name}(limit: 1) {{ {rel.name}_aggregate {{ nodes {{ {column} }} }} }} }}"),
                            (f"aggregate where {via}", f"{{ {source.name}(limit: 1) {{ {rel.name}_aggregate(where: {{{column}: {{_is_null: true}}}}) {{ aggregate {{ count }} }} }} }}"),
                            (f"aggregate filter {via}", f"{{ {source.name}(where: {{{rel.name}_aggregate: {{count: {{predicate: {{_gt: 0}}, filter: {{{column}: {{_is_null: false}}}}}}}}}}) {{ id }} }}"),
                            (f"aggregate count(columns) {via}", f"{{ {source.name}(limit: 1) {{ {rel.name}_aggregate {{ aggregate {{ count(columns: [{column}]) }} }} }} }}"),
                        ]  # fmt: skip
                    else:
                        queries.append(
                            (f"object order_by {via}", f"{{ {source.name}(order_by: {{{rel.name}: {{{column}: asc}}}}, limit: 1) {{ id }} }}")
                        )  # fmt: skip
    return queries


REACHING = reaching_queries()
MUTATIONS = [
    (
        "insert",
        '''mutation { insert_invocations_one(object: {source_function: "x"}) { id } }''',
    ),
    ("update", '''mutation { update_invocations(where: {}, _set: {status: "failed"}) { affected_rows } }'''),
    ("delete", "mutation { delete_job_logs(where: {}) { affected_rows } }"),
    ("update_by_pk", f'''mutation {{ update_invocations_by_pk(pk_columns: {{id: "{ANY_ID}"}}, _set: {{status: "failed"}}) {{ id }} }}'''),
    ("delete_by_pk", f'''mutation {{ delete_invocations_by_pk(id: "{ANY_ID}") {{ id }} }}'''),
]  # fmt: skip
GRANTED = "{ invocations(limit: 2) { id status } invocations_aggregate { aggregate { count } } }"


@pytest.fixture(scope="module")
def server(module_db_url: str) -> Iterator[RunningServer]:
    run(insert_dataset(module_db_url, DATASET))
    settings = Settings(
        database_url=module_db_url,
        admin_secret=SECRET,
        jwt_secret=json.dumps({"type": "HS256", "key": JWT_KEY}),
        rollup_interval=0,
    )
    with serving(settings) as running:
        yield running


def batch(server: RunningServer, queries: list[str], headers: dict[str, str]) -> list[Any]:
    """Answers to `queries`, sent as batches of 20 (the batch limit)."""
    answers: list[Any] = []
    for start in range(0, len(queries), 20):
        response = server.client.post(
            "/v1/graphql", json=[{"query": q} for q in queries[start : start + 20]], headers=headers
        )
        assert response.status_code == 200, response.text
        assert SECRET not in response.text and JWT_KEY not in response.text
        answers += response.json()
    return answers


def test_the_matrix_covers_every_hidden_column_and_every_way_in() -> None:
    labels = {label.split(" ", 1)[0] for label, _ in REACHING}
    assert {"select", "where", "order_by", "distinct_on", "count(columns)", "nodes", "max",
            "by_pk", "fragment", "through", "aggregate"} <= labels  # fmt: skip
    assert HIDDEN["invocations"] == ["context_data", "error_stack", "source_event_payload"]
    assert {"job_options", "result", "error_stack"} <= set(HIDDEN["job_executions"])
    assert "quarantined_records" in UNGRANTED_TABLES
    assert len(REACHING) > 150


def test_every_way_to_a_hidden_column_works_for_admin_and_fails_for_the_viewer(
    server: RunningServer,
) -> None:
    queries = [query for _, query in REACHING]
    for answer, (label, _) in zip(batch(server, queries, ADMIN), REACHING, strict=True):
        assert "errors" not in answer, (label, answer)
    for headers in (VIEWER, JWT_VIEWER):
        for answer, (label, _) in zip(batch(server, queries, headers), REACHING, strict=True):
            assert "data" not in answer, (label, answer)
            codes = {error["extensions"]["code"] for error in answer["errors"]}
            assert codes == {"validation-failed"}, (label, answer)


def test_hidden_columns_through_variables_are_refused(server: RunningServer) -> None:
    nested_filter = {
        "job_executions_aggregate": {
            "count": {"predicate": {"_gt": 0}, "filter": {"job_options": {"_is_null": False}}}
        }
    }
    cases = [
        ("invocations", "invocations_bool_exp", "where", {"source_event_payload": {"_is_null": False}}),
        ("invocations", "invocations_bool_exp", "where", {"job_executions": {"result": {"_is_null": False}}}),
        ("invocations", "[invocations_order_by!]", "order_by", [{"context_data": "asc"}]),
        ("invocations", "[invocations_select_column!]", "distinct_on", ["error_stack"]),
        ("event_executions", "event_executions_bool_exp", "where", nested_filter),
        ("job_logs", "job_logs_bool_exp", "where", {"data": {"_has_key": "n"}}),
    ]  # fmt: skip
    for table, type_name, argument, value in cases:
        query = f"query ($v: {type_name}) {{ {table}({argument}: $v, limit: 1) {{ id }} }}"
        if argument == "distinct_on":
            query = f"query ($v: {type_name}) {{ {table}({argument}: $v) {{ id }} }}"
        body = server.post(query, {"v": value}, headers=VIEWER)
        assert "data" not in body, (query, value, body)
        assert body["errors"][0]["extensions"]["code"] == "validation-failed", body
        assert "errors" not in server.post(query, {"v": value}, headers=ADMIN), query


def test_the_viewer_schema_names_no_hidden_column_anywhere(server: RunningServer) -> None:
    # Every type of a table (bool_exp, order_by, select_column, aggregate fields,
    # min/max fields, stream cursor input, …) in the viewer's schema, walked whole.
    body = server.post(
        "{ __schema { types { name fields { name } inputFields { name } enumValues { name } } } }",
        headers=VIEWER,
    )
    types = body["data"]["__schema"]["types"]
    names = {t["name"] for t in types}
    for table in UNGRANTED_TABLES:
        assert not any(name == table or name.startswith(f"{table}_") for name in names), table
    checked = 0
    for table, columns in HIDDEN.items():
        if table in UNGRANTED_TABLES:
            continue
        for type_ in types:
            if type_["name"] != table and not type_["name"].startswith(f"{table}_"):
                continue
            members = {
                member["name"]
                for key in ("fields", "inputFields", "enumValues")
                for member in type_[key] or []
            }
            leaked = members & set(columns)
            assert not leaked, (type_["name"], leaked)
            checked += 1
    assert checked > 20
    # The admin schema does have them: the walk above would have found them.
    admin = server.post('{ __type(name: "job_executions_select_column") { enumValues { name } } }',
                        headers=ADMIN)  # fmt: skip
    assert {"result", "job_options"} <= {v["name"] for v in admin["data"]["__type"]["enumValues"]}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "invalid-headers"),
        ({"x-hasura-admin-secret": "wrong"}, "access-denied"),
        ({"x-hasura-admin-secret": SECRET.upper()}, "access-denied"),
        ({"x-hasura-admin-secret": SECRET + "x"}, "access-denied"),
        ({"Authorization": "Bearer " + jwt.encode({"x": 1}, "other-key-0123456789abcdef0123456789")}, "invalid-jwt"),
        ({"x-hasura-role": "admin"}, "invalid-headers"),
    ],
)  # fmt: skip
def test_without_valid_credentials_nothing_is_readable_in_any_form(
    server: RunningServer, headers: dict[str, str], code: str
) -> None:
    queries = [GRANTED, "{ __typename }", "{ __schema { queryType { name } } }"]
    queries += [query for _, query in REACHING[:10]] + [query for _, query in MUTATIONS]
    for answer in batch(server, queries, headers):
        assert "data" not in answer, answer
        assert answer["errors"][0]["extensions"]["code"] == code, answer
    # GET, and a single (not batched) request, are refused the same way.
    response = server.client.get("/v1/graphql", params={"query": GRANTED}, headers=headers)
    assert response.json()["errors"][0]["extensions"]["code"] == code
    assert "data" not in server.post(GRANTED, headers=headers)


def test_the_viewer_may_not_mutate_and_nothing_changes(server: RunningServer) -> None:
    before = server.post(GRANTED, headers=ADMIN)["data"]
    for headers in (VIEWER, JWT_VIEWER):
        for answer, (label, _) in zip(
            batch(server, [q for _, q in MUTATIONS], headers), MUTATIONS, strict=True
        ):
            assert "data" not in answer, (label, answer)
            assert answer["errors"][0]["extensions"]["code"] == "validation-failed", answer
    assert server.post(GRANTED, headers=ADMIN)["data"] == before


def test_a_viewer_token_cannot_become_admin_and_an_unknown_role_reads_nothing(
    server: RunningServer,
) -> None:
    for headers in (
        {**JWT_VIEWER, "x-hasura-role": "admin"},
        {**JWT_VIEWER, "x-hasura-admin-secret": "wrong"},
    ):
        body = server.post(GRANTED, headers=headers)
        assert "data" not in body and body["errors"][0]["extensions"]["code"] in (
            "access-denied",
            "invalid-headers",
        ), body
    stranger = {"Authorization": f"Bearer {_token('stranger')}"}
    for query in (GRANTED, REACHING[0][1], "{ dashboard_stats { hour_bucket } }"):
        body = server.post(query, headers=stranger)
        assert "data" not in body, body
    schema = server.post("{ __schema { queryType { fields { name } } } }", headers=stranger)
    fields = {f["name"] for f in schema["data"]["__schema"]["queryType"]["fields"]}
    assert fields == {"no_queries_available"}


def test_the_unauthorized_role_reads_as_the_viewer_and_a_wrong_secret_is_not_anonymous(
    tmp_path: Any,
) -> None:
    url = f"sqlite:///{tmp_path / 'anonymous.db'}"
    from tests.support.db import prepare_database

    run(prepare_database(url))
    run(insert_dataset(url, DATASET))
    settings = Settings(
        database_url=url, admin_secret=SECRET, unauthorized_role="viewer", rollup_interval=0
    )
    with serving(settings) as anonymous:
        assert "errors" not in anonymous.post(GRANTED)
        for answer, (label, _) in zip(
            batch(anonymous, [q for _, q in REACHING], {}), REACHING, strict=True
        ):
            assert "data" not in answer, (label, answer)
        body = anonymous.post(GRANTED, headers={"x-hasura-admin-secret": "wrong"})
        assert body["errors"][0]["extensions"]["code"] == "access-denied"


# -- limits ----------------------------------------------------------------------------


def test_depth_and_alias_limits_hold_through_fragments_and_variables(
    server: RunningServer,
) -> None:
    # Depth 14 through a chain of distinct fragments (no spread is deep by itself).
    chain = []
    for level in range(7):
        inner = f"...L{level + 1}" if level < 6 else "id"
        chain.append(
            f"fragment L{level} on job_executions {{ invocation {{ job_executions {{ {inner} }} }} }}"
        )
    chain[-1] = "fragment L6 on job_executions { id }"
    deep = "query { job_executions(limit: 1) { ...L0 } } " + " ".join(chain)
    [error] = server.post(deep, headers=ADMIN)["errors"]
    assert error["extensions"]["code"] == "validation-failed" and "depth" in error["message"]
    # 201 aliases spread over fragments.
    fragments = " ".join(
        f"fragment F{n} on query_root {{ {' '.join(f'a{n}_{i}: __typename' for i in range(67))} }}"
        for n in range(3)
    )
    many = "query { ...F0 ...F1 ...F2 } " + fragments
    [error] = server.post(many, headers=ADMIN)["errors"]
    assert (
        error["extensions"]["code"] == "validation-failed" and "alias" in error["message"].lower()
    )
    # The row cap holds for a limit given in a variable and in nested relationships.
    cap = server.app.state.settings.max_rows
    for query, variables in (
        ("query ($n: Int) { invocations(limit: $n) { id } }", {"n": cap + 1}),
        ("query ($n: Int) { invocations(limit: 1) { job_executions(limit: $n) { id } } }",
         {"n": cap + 1}),
        ("query ($n: Int) { invocations_aggregate(limit: $n) { nodes { id } } }", {"n": cap + 1}),
    ):  # fmt: skip
        body = server.post(query, variables, headers=ADMIN)
        assert "data" not in body, (query, body)
        assert body["errors"][0]["extensions"]["code"] == "validation-failed", body
        assert str(cap) in body["errors"][0]["message"]
    response = server.client.post(
        "/v1/graphql", json=[{"query": "{ __typename }"}] * 21, headers=VIEWER
    )
    assert "Too many operations" in response.text


def test_the_row_cap_holds_for_results_larger_than_the_cap_without_a_limit(
    tmp_path: Any,
) -> None:
    url = f"sqlite:///{tmp_path / 'capped.db'}"
    from tests.support.db import prepare_database

    run(prepare_database(url))
    run(insert_dataset(url, DATASET))
    cap = 10  # the dataset has 60 job executions
    with serving(Settings(database_url=url, max_rows=cap, rollup_interval=0)) as capped:
        for query in (
            "{ job_executions { id } }",
            # 8 invocations (under the cap) with at least 3 jobs each: 24+ rows below.
            "{ invocations(where: {total_jobs_run: {_gte: 3}}, limit: 8) { job_executions { id } } }",
            "{ job_executions_aggregate { nodes { id } } }",
        ):
            body = capped.post(query)
            assert "data" not in body, (query, body)
            assert body["errors"][0]["extensions"]["code"] == "validation-failed", body
        assert "errors" not in capped.post("{ job_executions(limit: 10) { id } }")


# -- the webhook's shared secret ----------------------------------------------------------


@pytest.fixture(scope="module")
def hooks(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RunningServer]:
    with database_for("sqlite", request, tmp_path_factory.mktemp("hooks")) as url:
        settings = Settings(
            database_url=url,
            events_dir=EXAMPLES_EVENTS,
            webhook_functions=["orders"],
            webhook_secret=WEBHOOK_SECRET,
            rollup_interval=0,
        )
        with serving(settings) as running:
            yield running


def test_the_webhook_secret_is_compared_in_constant_time_and_a_wrong_one_runs_nothing(
    hooks: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    comparisons: list[tuple[bytes, bytes]] = []
    runs: list[Any] = []
    real_compare, real_listen = (
        service.endpoints.webhook.hmac.compare_digest,
        service.endpoints.webhook.listen_to,
    )

    def compare(given: bytes, expected: bytes) -> bool:
        comparisons.append((given, expected))
        return real_compare(given, expected)

    async def listen(*args: Any, **kwargs: Any) -> Any:
        runs.append(args)
        return await real_listen(*args, **kwargs)

    monkeypatch.setattr(service.endpoints.webhook.hmac, "compare_digest", compare)
    monkeypatch.setattr(service.endpoints.webhook, "listen_to", listen)
    payload = json.loads(
        (EXAMPLES_EVENTS.parent / "payloads" / "orders.created.insert.json").read_text()
    )
    plugin = hooks.app.state.runtime.observability
    recorded_before = sum(plugin.stats()["recorded"].values())
    for given in ("wrong", WEBHOOK_SECRET[:-1], WEBHOOK_SECRET + "x", "", WEBHOOK_SECRET.upper()):
        answer = hooks.client.post(
            "/hooks/orders", json=payload, headers={"x-event-detector-secret": given}
        )
        assert answer.status_code == 401, given
        assert WEBHOOK_SECRET not in answer.text
    missing = hooks.client.post("/hooks/orders", json=payload)
    assert missing.status_code == 401
    assert runs == [] and sum(plugin.stats()["recorded"].values()) == recorded_before
    assert len(comparisons) == 5  # every given secret went through compare_digest
    assert all(expected == WEBHOOK_SECRET.encode() for _, expected in comparisons)
    answer = hooks.client.post(
        "/hooks/orders", json=payload, headers={"x-event-detector-secret": WEBHOOK_SECRET}
    )
    assert answer.status_code == 200 and len(runs) == 1 and len(comparisons) == 6


def test_no_secret_appears_in_metrics_health_or_errors(
    server: RunningServer, hooks: RunningServer
) -> None:
    texts = [
        server.client.get("/metrics").text,
        server.client.get("/healthz").text,
        server.client.post("/v1/graphql", content=b"{not json", headers=ADMIN).text,
        server.client.post("/v1/graphql", json={"query": "{ nope }"}, headers=ADMIN).text,
        hooks.client.post("/hooks/../x", json={}).text,
        hooks.client.post("/hooks/orders", content=b"[", headers={"x-event-detector-secret": WEBHOOK_SECRET}).text,
        httpx.get(f"{server.base_url}/v1/graphql", headers={"accept": "text/html"}).text,
    ]  # fmt: skip
    for text in texts:
        for secret in (SECRET, JWT_KEY, WEBHOOK_SECRET):
            assert secret not in text
