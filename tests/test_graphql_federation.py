"""Apollo Federation 2 subgraph, and the schema as another GraphQL server sees it.

The service with federation on, over each backend: `_service { sdl }` is a Federation 2
subgraph that Apollo's composition accepts; `_entities` answers representations in order,
under the caller's role, with one statement per entity type however many come in (as do
aliased `_by_pk` fields); and every role's introspection builds and validates with
graphql-js, so a Hasura can add the service as a Remote Schema.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from graphql import get_introspection_query

from detector.observability.models import metadata as observability_tables
from service.graphql import EngineConfig, GraphQLEngine, Session, load_catalog
from service.graphql.catalog.metadata import ADMIN_ROLE
from service.settings import REPO_ROOT, Settings
from service.storage.database import Database
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.db import run
from tests.support.gateway import composition_errors, invalid_schemas
from tests.support.metadata import TABLES, metadata_with_function_filter
from tests.support.server import RunningServer, serving

SECRET = "federation-secret"
ADMIN = {"x-hasura-admin-secret": SECRET}
DATASET = build_dataset()
FUNCTION = "orders_handler"
VIEWER = {**ADMIN, "x-hasura-role": "viewer", "x-hasura-function": FUNCTION}


def federated_metadata(target: Path) -> Path:
    """The repository's metadata (viewer filtered by X-Hasura-Function), with job_executions
    an entity too: two entity types."""
    metadata_with_function_filter(target)
    path = target / TABLES / "event_detector_observability_job_executions.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    document["apollo_federation_config"] = {"enable": "v1"}
    path.write_text(yaml.safe_dump(document))
    return target


@pytest.fixture(scope="module")
def server(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    run(insert_dataset(module_db_url, DATASET))
    metadata = federated_metadata(tmp_path_factory.mktemp("federation") / "metadata")
    settings = Settings(
        database_url=module_db_url,
        admin_secret=SECRET,
        apollo_federation=True,
        hasura_metadata_dir=metadata,
    )
    with serving(settings) as running:
        yield running


def data(server: RunningServer, query: str, variables: Any = None, headers: Any = None) -> Any:
    body = server.post(query, variables, headers=headers or ADMIN)
    assert "errors" not in body, body
    return body["data"]


ENTITIES = """query ($r: [_Any!]!) { _entities(representations: $r) {
    __typename
    ... on invocations { id status }
    ... on job_executions { id job_name }
} }"""


def representation(typename: str, row: dict[str, Any]) -> dict[str, Any]:
    return {"__typename": typename, "id": row["id"]}


def test_service_sdl_is_a_federation_2_subgraph(server: RunningServer) -> None:
    sdl = data(server, "{ _service { sdl } }")["_service"]["sdl"]
    assert sdl.startswith(
        'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", '
        'import: ["@key", "@shareable"])'
    )
    assert 'type invocations @key(fields: "id") @shareable {' in sdl
    assert 'type job_executions @key(fields: "id") @shareable {' in sdl
    assert "type event_executions @shareable {" in sdl, "not an entity: no key"
    assert "type query_root {" in sdl and "schema {\n  query: query_root" in sdl
    for federation_only in ("_service", "_entities", "_Any", "_Entity", "_Service"):
        assert not re.search(rf"\b{federation_only}\b", sdl), federation_only
    assert composition_errors({"observability": sdl}) == []


def test_entities_answer_in_order_with_null_for_unknown_keys(server: RunningServer) -> None:
    invocations, jobs = DATASET.invocations, DATASET.job_executions
    representations = [
        representation("invocations", invocations[2]),
        representation("job_executions", jobs[0]),
        {"__typename": "invocations", "id": "00000000-0000-4000-8000-000000000000"},
        representation("invocations", invocations[0]),
    ]
    result = data(server, ENTITIES, {"r": representations})["_entities"]
    assert result == [
        {
            "__typename": "invocations",
            "id": invocations[2]["id"],
            "status": invocations[2]["status"],
        },
        {"__typename": "job_executions", "id": jobs[0]["id"], "job_name": jobs[0]["job_name"]},
        None,
        {
            "__typename": "invocations",
            "id": invocations[0]["id"],
            "status": invocations[0]["status"],
        },
    ]


def statements(server: RunningServer, query: str, variables: Any) -> int:
    before = server.statements_executed
    data(server, query, variables)
    return server.statements_executed - before


def test_entities_take_one_statement_per_entity_type(server: RunningServer) -> None:
    one = statements(
        server, ENTITIES, {"r": [representation("invocations", DATASET.invocations[0])]}
    )
    many = [representation("invocations", row) for row in DATASET.invocations[:12]]
    many += [representation("job_executions", row) for row in DATASET.job_executions[:12]]
    assert one == 1
    assert statements(server, ENTITIES, {"r": many}) == 2


def test_aliased_by_pk_fields_with_one_selection_take_one_statement(server: RunningServer) -> None:
    ids = [row["id"] for row in DATASET.invocations[:3]]
    query = """query ($a: uuid!, $b: uuid!, $c: uuid!) {
        a: invocations_by_pk(id: $a) { id status }
        b: invocations_by_pk(id: $b) { id status }
        c: invocations_by_pk(id: $c) { id status }
        other: invocations_by_pk(id: $a) { source_function }
    }"""
    variables = dict(zip("abc", ids, strict=True))
    assert statements(server, query, variables) == 2, "one for a, b, c; one for `other`"
    result = data(server, query, variables)
    assert [result[key]["id"] for key in "abc"] == ids
    assert result["other"] == {"source_function": DATASET.invocations[0]["source_function"]}


def test_entities_answer_under_the_callers_role(server: RunningServer) -> None:
    mine = next(i for i in DATASET.invocations if i["source_function"] == FUNCTION)
    other = next(i for i in DATASET.invocations if i["source_function"] != FUNCTION)
    result = data(
        server,
        "query ($r: [_Any!]!) { _entities(representations: $r) { ... on invocations { id } } }",
        {"r": [representation("invocations", mine), representation("invocations", other)]},
        VIEWER,
    )
    assert result == {"_entities": [{"id": mine["id"]}, None]}, "the viewer's row filter applies"
    [error] = server.post(
        "query ($r: [_Any!]!) { _entities(representations: $r) "
        "{ ... on invocations { source_event_payload } } }",
        {"r": [representation("invocations", mine)]},
        headers=VIEWER,
    )["errors"]
    assert error["message"] == "field 'source_event_payload' not found in type: 'invocations'"


def test_bad_representations_are_refused_naming_their_index(server: RunningServer) -> None:
    cases = [
        (
            {"__typename": "event_executions", "id": DATASET.event_executions[0]["id"]},
            "not an entity",
        ),
        ({"__typename": "invocations"}, "has no 'id'"),
        ({"id": DATASET.invocations[0]["id"]}, "with __typename"),
        ({"__typename": "invocations", "id": "not-a-uuid"}, "uuid"),
    ]
    for bad, message in cases:
        [error] = server.post(
            ENTITIES,
            {"r": [representation("invocations", DATASET.invocations[0]), bad]},
            headers=ADMIN,
        )["errors"]
        assert message in error["message"], (bad, error)
        assert error["extensions"] == {
            "code": "validation-failed",
            "path": "$.selectionSet._entities.args.representations[1]",
        }


# --- composing, and the schema as graphql-js sees it (no database needed) -------------------


def engine_for(tmp_path: Path, **config: Any) -> GraphQLEngine:
    catalog = load_catalog(REPO_ROOT / "hasura" / "metadata", observability_tables)
    database = Database(f"sqlite:///{tmp_path / 'unused.db'}")
    return GraphQLEngine(EngineConfig(catalog=catalog, **config), database)


def sdl_of(engine: GraphQLEngine) -> str:
    result = asyncio.run(engine.execute("{ _service { sdl } }"))
    assert not result.errors, result.errors
    return str(result.data["_service"]["sdl"])


def test_two_instances_compose_because_their_types_are_shareable(tmp_path: Path) -> None:
    # Two deployments (say two regions) under two namespaces define the same types.
    east = sdl_of(engine_for(tmp_path, apollo_federation=True, namespace="east"))
    west = sdl_of(engine_for(tmp_path, apollo_federation=True, namespace="west"))
    assert composition_errors({"east": east, "west": west}) == []
    unshared = {
        name: sdl.replace(" @shareable", "").replace(', "@shareable"', "")
        for name, sdl in (("east", east), ("west", west))
    }
    errors = composition_errors(unshared)
    assert errors and any("shareable" in message for message in errors), errors


def test_federation_is_off_unless_asked(tmp_path: Path) -> None:
    result = asyncio.run(engine_for(tmp_path).execute("{ _service { sdl } }"))
    assert result.errors and "_service" in result.errors[0].message


@pytest.mark.parametrize(
    "config",
    [
        {},
        {
            "apollo_federation": True,
            "namespace": "observability",
            "naming_convention": "graphql-default",
            "type_name_prefix": "Obs",
            "root_field_suffix": "_x",
        },
    ],
    ids=["default", "customized"],
)
def test_every_roles_introspection_builds_and_validates_in_graphql_js(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    engine = engine_for(tmp_path, **config)
    roles = [ADMIN_ROLE, *sorted(engine.catalog.roles), "nobody"]

    async def introspect() -> dict[str, Any]:
        found = {}
        for role in roles:
            session = Session(role, {"x-hasura-role": role})
            result = await engine.execute(get_introspection_query(), session=session)
            assert not result.errors, (role, result.errors)
            found[role] = result.data
        return found

    introspections = asyncio.run(introspect())
    assert invalid_schemas(introspections) == {}
    assert "viewer" in introspections and "nobody" in introspections


def test_the_metadata_refuses_a_federation_version_it_cannot_serve(tmp_path: Path) -> None:
    target = tmp_path / "metadata"
    shutil.copytree(REPO_ROOT / "hasura" / "metadata", target)
    path = target / TABLES / "event_detector_observability_invocations.yaml"
    document = yaml.safe_load(path.read_text())
    document["apollo_federation_config"] = {"enable": "v2"}
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ValueError, match="apollo_federation_config must be"):
        load_catalog(target, observability_tables)
