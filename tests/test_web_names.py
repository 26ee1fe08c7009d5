"""The names the server announces (`GET /v1/graphql/names`), and the web client's adapter.

The console writes its operations in Hasura's default names. Against a server that
customizes every name (graphql-default, a namespace, type and root-field prefixes), each
console operation adapted by `web/app/lib/names.js` (run by Node) from the server's map,
with variables as the pages send them, answers exactly what it answers on a server with
the default names.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from service.settings import REPO_ROOT, Settings
from tests.graphql_helpers import ts
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
from tests.support.db import prepare_database, run
from tests.support.gateway import run_node
from tests.support.server import RunningServer, serving

SECRET = "names-secret"
ADMIN = {"x-hasura-admin-secret": SECRET}
DATASET = build_dataset()
TIME_RANGE = {
    "timeRange": ts(BASE_TIME + timedelta(hours=2)),
    "timeRangeEnd": ts(BASE_TIME + timedelta(hours=15)),
}
CUSTOMIZED = {
    "graphql_namespace": "observability",
    "graphql_naming_convention": "graphql-default",
    "graphql_type_name_prefix": "Obs",
    "graphql_root_field_prefix": "obs",
}
OPERATIONS: list[tuple[str, dict[str, Any]]] = [
    (OVERVIEW_DASHBOARD, TIME_RANGE),
    (INVOCATIONS_LIST, {}),
    (
        INVOCATIONS_LIST,
        {
            "limit": 3,
            "offset": 1,
            "where": {
                "_and": [
                    {"events_detected_count": {"_gt": 0}},
                    {"source_job_id": {"_is_null": True}},
                    {"event_executions_aggregate": {"count": {"predicate": {"_gt": 1}}}},
                ]
            },
            "order_by": [{"created_at": "desc_nulls_last"}],
        },
    ),
    (INVOCATION_DETAIL, {"id": DATASET.invocations[5]["id"]}),
    (CORRELATION_SEARCH, {"searchTerm": "%CORR-03%"}),
    (INVOCATION_TREE_FLOW, {"invocationId": DATASET.invocations[1]["id"]}),
    (ANALYTICS_PERFORMANCE, TIME_RANGE),
    (ANALYTICS_BASE, TIME_RANGE),
]


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, RunningServer]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('names') / 'observability.db'}"
    run(prepare_database(url))
    run(insert_dataset(url, DATASET))
    with (
        serving(Settings(database_url=url, admin_secret=SECRET)) as default,
        serving(Settings(database_url=url, admin_secret=SECRET, **CUSTOMIZED)) as customized,
    ):
        yield default, customized


def names(server: RunningServer, headers: dict[str, str]) -> dict[str, Any]:
    response = server.client.get("/v1/graphql/names", headers=headers)
    assert response.status_code == 200
    return response.json()


def adapted(
    name_map: dict[str, Any],
    operations: list[tuple[str, dict[str, Any]]],
    answers: list[Any] | None = None,
) -> list[Any]:
    """The operations as the web client's adapter rewrites them from `name_map`; with
    `answers` (the served `data` of each), each also with its `data` as the adapter
    gives it back to the page."""
    given = [{"query": q, "variables": v} for q, v in operations]
    for operation, answer in zip(given, answers or [], strict=False):
        operation["answer"] = answer
    payload = {"map": name_map, "operations": given}
    return list(run_node(REPO_ROOT / "tests" / "js" / "adapt_operations.mjs", payload))


def test_adapted_console_operations_answer_as_with_the_default_names(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    default, customized = servers
    name_map = names(customized, ADMIN)
    assert name_map["namespace"] == "observability"
    answers = []
    for operation in adapted(name_map, OPERATIONS):
        assert "observability {" in operation["query"], "the root fields go under the namespace"
        body = customized.post(operation["query"], operation["variables"], headers=ADMIN)
        assert "errors" not in body, (operation, body)
        answers.append(body["data"])
    for (query, variables), operation in zip(
        OPERATIONS, adapted(name_map, OPERATIONS, answers), strict=True
    ):
        expected = default.post(query, variables, headers=ADMIN)
        assert "errors" not in expected, expected
        assert operation["data"] == expected["data"], query


def test_renamed_fields_are_renamed_back_not_aliased(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    # Aliases count against the server's max_aliases: a page's batch near the limit with
    # the default names must not cross it with the served ones.
    _, customized = servers
    query = "query ($id: uuid!) { invocations_by_pk(id: $id) { created_at detail: status } }"
    [operation] = adapted(names(customized, ADMIN), [(query, {})])
    assert (
        "obsInvocationsByPk(id: $id) {\n      createdAt\n      detail: status" in operation["query"]
    )


def test_adapted_variables_use_the_served_names(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    _, customized = servers
    [operation] = adapted(names(customized, ADMIN), [OPERATIONS[2]])
    # Variables keep their own names; their values speak the served names.
    assert operation["variables"] == {
        "limit": 3,
        "offset": 1,
        "where": {
            "_and": [
                {"eventsDetectedCount": {"_gt": 0}},
                {"sourceJobId": {"_isNull": True}},
                # Hasura's rule: in filters the relationship keeps its written name.
                {"event_executionsAggregate": {"count": {"predicate": {"_gt": 1}}}},
            ]
        },
        "order_by": [{"createdAt": "DESC_NULLS_LAST"}],
    }
    assert "$order_by: [ObsInvocationsOrderBy!] = {createdAt: DESC}" in operation["query"]


def test_with_the_default_names_operations_go_out_unchanged(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    default, _ = servers
    name_map = names(default, ADMIN)
    assert name_map["namespace"] is None
    renamed = [
        type_name
        for type_name, entry in name_map["types"].items()
        if "name" in entry
        or any(
            "name" in f or any("name" in a for a in f.get("args", {}).values())
            for f in entry.get("fields", {}).values()
        )
        or any("name" in f for f in entry.get("inputFields", {}).values())
        or entry.get("values")
    ]
    assert renamed == []
    [operation] = adapted(name_map, [(INVOCATION_DETAIL, {"id": DATASET.invocations[0]["id"]})])
    assert operation["variables"] == {"id": DATASET.invocations[0]["id"]}
    assert operation["query"] == INVOCATION_DETAIL, "an identity: not even parsed and printed"


def test_the_map_is_the_callers_and_needs_credentials(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    _, customized = servers
    viewer = names(customized, {**ADMIN, "x-hasura-role": "viewer"})
    admin = names(customized, ADMIN)
    assert "source_event_payload" in admin["types"]["invocations"]["fields"]
    assert "source_event_payload" not in viewer["types"]["invocations"]["fields"]
    assert viewer["types"]["invocations"]["fields"]["created_at"] == {
        "name": "createdAt",
        "type": "timestamptz",
    }
    refused = names(customized, {})
    assert refused["errors"][0]["extensions"]["code"] == "access-denied"


def test_the_map_is_compressed_for_clients_that_accept_it(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    default, _ = servers
    plain = default.client.get(
        "/v1/graphql/names", headers={**ADMIN, "accept-encoding": "identity"}
    )
    compressed = default.client.get(
        "/v1/graphql/names", headers={**ADMIN, "accept-encoding": "gzip"}
    )
    assert "content-encoding" not in plain.headers
    assert compressed.headers["content-encoding"] == "gzip"
    assert compressed.json() == plain.json()
    assert compressed.num_bytes_downloaded * 5 < plain.num_bytes_downloaded
