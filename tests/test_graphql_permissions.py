"""Authentication and permissions, as Hasura: admin secret, JWT, roles, hidden fields."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from service.app import engine_config
from service.graphql import GraphQLEngine
from service.graphql.execution.auth import Session
from service.settings import Settings
from service.storage.database import Database
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.db import run
from tests.support.metadata import metadata_with_function_filter
from tests.support.server import RunningServer, serving

DATASET = build_dataset()
SECRET = "s3cret-admin"
JWT_KEY = "a-very-long-shared-secret-for-hs256-tokens-0123456789"
ADMIN = {"x-hasura-admin-secret": SECRET}
VIEWER = {**ADMIN, "x-hasura-role": "viewer"}

HIDDEN = {
    "invocations": ["source_event_payload", "context_data", "error_stack"],
    "event_executions": ["detection_error_stack", "handler_error_stack"],
    "job_executions": ["job_options", "result", "error_stack"],
    "job_logs": ["data"],
}


def token(claims: dict[str, Any], *, key: str = JWT_KEY, expires_in: int = 300) -> str:
    payload = {
        "sub": "user-1",
        "exp": int(time.time()) + expires_in,
        "https://hasura.io/jwt/claims": claims,
    }
    return jwt.encode(payload, key, algorithm="HS256")


VIEWER_CLAIMS = {
    "x-hasura-allowed-roles": ["viewer"],
    "x-hasura-default-role": "viewer",
    "x-hasura-user-id": "1",
}


@pytest.fixture(scope="module")
def server(module_db_url: str) -> Iterator[RunningServer]:
    run(insert_dataset(module_db_url, DATASET))
    settings = Settings(
        database_url=module_db_url,
        admin_secret=SECRET,
        jwt_secret=json.dumps({"type": "HS256", "key": JWT_KEY}),
    )
    with serving(settings) as running:
        yield running


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert "data" not in body, body
    [error] = body["errors"]
    return error


def test_without_the_admin_secret_nothing_is_readable(server: RunningServer) -> None:
    for query in (
        "{ invocations { id } }",
        "{ __typename }",
        "{ invocations_aggregate { aggregate { count } } }",
    ):
        error = only_error(server.post(query))
        assert error["extensions"]["code"] == "invalid-headers"
    error = only_error(
        server.post("{ invocations { id } }", headers={"x-hasura-admin-secret": "wrong"})
    )
    assert error == {
        "message": "invalid x-hasura-admin-secret/x-hasura-access-key",
        "extensions": {"path": "$", "code": "access-denied"},
    }


def test_admin_secret_gives_admin(server: RunningServer) -> None:
    body = server.post(
        "{ invocations(limit: 1, where: {source_event_payload: {_is_null: false}}) { source_event_payload } }",
        headers=ADMIN,
    )
    assert body["data"]["invocations"][0]["source_event_payload"] is not None
    body = server.post(
        "{ invocations_aggregate { aggregate { count } } }", headers={"X-Hasura-Access-Key": SECRET}
    )
    assert body["data"]["invocations_aggregate"]["aggregate"]["count"] == len(DATASET.invocations)


@pytest.mark.parametrize(
    ("table", "column"), [(t, c) for t, columns in HIDDEN.items() for c in columns]
)
def test_viewer_cannot_select_filter_order_or_aggregate_hidden_columns(
    server: RunningServer, table: str, column: str
) -> None:
    attempts = {
        "selection": f"{{ {table}(limit: 1) {{ id {column} }} }}",
        "filter": f"{{ {table}(where: {{{column}: {{_is_null: false}}}}) {{ id }} }}",
        "order": f"{{ {table}(order_by: {{{column}: asc}}) {{ id }} }}",
        "distinct": f"{{ {table}(distinct_on: [{column}]) {{ id }} }}",
        "count": f"{{ {table}_aggregate {{ aggregate {{ count(columns: [{column}]) }} }} }}",
    }
    if column not in ("source_event_payload", "context_data", "job_options", "result", "data"):
        attempts["max"] = f"{{ {table}_aggregate {{ aggregate {{ max {{ {column} }} }} }} }}"
    for kind, query in attempts.items():
        error = only_error(server.post(query, headers=VIEWER))
        assert error["extensions"]["code"] == "validation-failed", (kind, error)
        assert column in error["message"], (kind, error)


def test_viewer_cannot_reach_hidden_columns_through_relationships(server: RunningServer) -> None:
    queries = [
        "{ invocations { job_executions { result } } }",
        "{ invocations(where: {job_executions: {result: {_is_null: false}}}) { id } }",
        '{ invocations(where: {event_executions: {job_executions: {error_stack: {_ilike: "%x%"}}}}) { id } }',
        "{ job_executions(order_by: {invocation: {context_data: asc}}) { id } }",
        "{ invocations(where: {job_executions_aggregate: {count: {predicate: {_gt: 0}, arguments: [job_options]}}}) { id } }",
        "{ invocations { job_executions_aggregate { aggregate { max { error_stack } } } } }",
        "{ job_logs { invocation { source_event_payload } } }",
    ]
    for query in queries:
        error = only_error(server.post(query, headers=VIEWER))
        assert error["extensions"]["code"] == "validation-failed", (query, error)


def test_viewer_reads_what_it_is_granted(server: RunningServer) -> None:
    body = server.post(
        "{ invocations(order_by: {id: asc}, limit: 3) { id status success_rate avg_job_duration "
        "job_executions { job_name duration_ms } } invocations_aggregate { aggregate { count } } "
        "job_logs_aggregate { aggregate { count } } }",
        headers=VIEWER,
    )
    assert "errors" not in body, body
    assert body["data"]["invocations_aggregate"]["aggregate"]["count"] == len(DATASET.invocations)
    assert body["data"]["job_logs_aggregate"]["aggregate"]["count"] == len(DATASET.job_logs)
    error = only_error(server.post("{ quarantined_records { id } }", headers=VIEWER))
    assert error["extensions"]["code"] == "validation-failed"


def test_viewer_introspection_lists_only_granted_fields(server: RunningServer) -> None:
    body = server.post('{ __type(name: "invocations") { fields { name } } }', headers=VIEWER)
    names = {field["name"] for field in body["data"]["__type"]["fields"]}
    assert "status" in names and "success_rate" in names and "job_executions" in names
    assert names.isdisjoint(HIDDEN["invocations"])
    body = server.post("{ __schema { mutationType { name } } }", headers=VIEWER)
    assert body["data"]["__schema"]["mutationType"] is None
    body = server.post("{ __schema { mutationType { name } } }", headers=ADMIN)
    assert body["data"]["__schema"]["mutationType"] == {"name": "mutation_root"}


def test_unknown_role_gets_no_queries(server: RunningServer) -> None:
    body = server.post("{ no_queries_available }", headers={**ADMIN, "x-hasura-role": "stranger"})
    assert "no queries available" in body["data"]["no_queries_available"]
    error = only_error(
        server.post("{ invocations { id } }", headers={**ADMIN, "x-hasura-role": "stranger"})
    )
    assert error["extensions"]["code"] == "validation-failed"


def test_jwt_roles(server: RunningServer) -> None:
    viewer = {"Authorization": f"Bearer {token(VIEWER_CLAIMS)}"}
    body = server.post("{ invocations(limit: 1) { id status } }", headers=viewer)
    assert len(body["data"]["invocations"]) == 1
    error = only_error(server.post("{ invocations { source_event_payload } }", headers=viewer))
    assert error["extensions"]["code"] == "validation-failed"
    # The role header picks an allowed role; others are refused.
    error = only_error(
        server.post("{ invocations { id } }", headers={**viewer, "x-hasura-role": "admin"})
    )
    assert error["extensions"]["code"] == "access-denied"
    both = {
        "Authorization": f"Bearer {token({**VIEWER_CLAIMS, 'x-hasura-allowed-roles': ['viewer', 'admin']})}"
    }
    body = server.post(
        "{ invocations(limit: 1) { source_event_payload } }",
        headers={**both, "x-hasura-role": "admin"},
    )
    assert "errors" not in body


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Authorization": f"Bearer {token(VIEWER_CLAIMS, expires_in=-60)}"}, "JWTExpired"),
        (
            {
                "Authorization": f"Bearer {token(VIEWER_CLAIMS, key='another-key-of-sufficient-length-000000000')}"
            },
            "JWSInvalidSignature",
        ),
        (
            {"Authorization": f"Bearer {token({'x-hasura-default-role': 'viewer'})}"},
            "x-hasura-allowed-roles",
        ),
        ({"Authorization": "Bearer not.a.jwt"}, "Could not verify JWT"),
    ],
)
def test_invalid_jwts_are_refused(
    server: RunningServer, headers: dict[str, str], message: str
) -> None:
    error = only_error(server.post("{ invocations { id } }", headers=headers))
    assert error["extensions"]["code"] == "invalid-jwt"
    assert message in error["message"]


def test_websocket_auth_through_connection_init_headers(server: RunningServer) -> None:
    async def subscribe(init_payload: dict[str, Any]) -> list[Any]:
        transport = WebsocketsTransport(url=server.websocket_url, init_payload=init_payload)
        async with Client(transport=transport, fetch_schema_from_transport=False) as session:
            request = GraphQLRequest(
                "subscription { invocations_aggregate { aggregate { count } } }"
            )
            results = session.subscribe(request)
            try:
                return [await asyncio.wait_for(anext(results), 30)]  # the first (live) result
            finally:
                await results.aclose()

    results = asyncio.run(subscribe({"headers": ADMIN}))
    assert results == [
        {"invocations_aggregate": {"aggregate": {"count": len(DATASET.invocations)}}}
    ]
    results = asyncio.run(subscribe({"headers": VIEWER}))
    assert results == [
        {"invocations_aggregate": {"aggregate": {"count": len(DATASET.invocations)}}}
    ]
    with pytest.raises(Exception) as refused:
        asyncio.run(subscribe({"headers": {"x-hasura-admin-secret": "wrong"}}))
    assert "invalid x-hasura-admin-secret" in str(refused.value) or "4403" in str(refused.value)

    async def hidden() -> None:
        transport = WebsocketsTransport(url=server.websocket_url, init_payload={"headers": VIEWER})
        async with Client(transport=transport, fetch_schema_from_transport=False) as session:
            request = GraphQLRequest("subscription { invocations { source_event_payload } }")
            async for _ in session.subscribe(request):
                pass

    with pytest.raises(TransportQueryError):
        asyncio.run(hidden())


def test_unauthorized_role_serves_anonymous_requests(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'anon.db'}"
    from tests.support.db import prepare_database

    run(prepare_database(url))
    run(insert_dataset(url, DATASET))
    with serving(
        Settings(database_url=url, admin_secret=SECRET, unauthorized_role="viewer")
    ) as anonymous:
        body = anonymous.post("{ invocations_aggregate { aggregate { count } } }")
        assert body["data"]["invocations_aggregate"]["aggregate"]["count"] == len(
            DATASET.invocations
        )
        error = only_error(anonymous.post("{ invocations { context_data } }"))
        assert error["extensions"]["code"] == "validation-failed"


@pytest.fixture
def filtered_metadata(tmp_path: Path) -> Path:
    """hasura/ metadata where `viewer` sees only its own function's invocations."""
    return metadata_with_function_filter(tmp_path / "metadata", limit=5)


def test_row_filters_with_session_variables_apply_everywhere(
    filtered_metadata: Path, db_url: str
) -> None:
    run(insert_dataset(db_url, DATASET))
    settings = Settings(database_url=db_url, hasura_metadata_dir=filtered_metadata)

    async def scenario() -> None:
        database = Database(db_url)
        engine = GraphQLEngine(engine_config(settings), database)
        session = Session(
            "viewer", {"x-hasura-function": "orders_handler", "x-hasura-role": "viewer"}
        )
        mine = [r for r in DATASET.invocations if r["source_function"] == "orders_handler"]
        try:
            result = await engine.execute(
                "{ invocations_aggregate { aggregate { count } } invocations(order_by: {id: asc}) { id } "
                "event_executions(order_by: {id: asc}) { id invocation { id } } "
                "all: event_executions_aggregate(where: {invocation: {}}) { aggregate { count } } }",
                session=session,
            )
            assert result.errors is None, result.errors
            # The permission's row limit caps lists, and the rows aggregated (as Hasura).
            assert len(mine) > 5
            assert result.data["invocations_aggregate"]["aggregate"]["count"] == 5
            assert [r["id"] for r in result.data["invocations"]] == sorted(r["id"] for r in mine)[
                :5
            ]
            mine_ids = {r["id"] for r in mine}
            for event in result.data["event_executions"]:
                source = next(e for e in DATASET.event_executions if e["id"] == event["id"])
                expected = (
                    {"id": source["invocation_id"]} if source["invocation_id"] in mine_ids else None
                )
                assert event["invocation"] == expected
            assert result.data["all"]["aggregate"]["count"] == sum(
                1 for e in DATASET.event_executions if e["invocation_id"] in mine_ids
            )
            missing = await engine.execute("{ invocations { id } }", session=Session("viewer", {}))
            assert engine.format(missing)["errors"][0]["extensions"]["code"] == "access-denied"
        finally:
            await database.dispose()

    asyncio.run(scenario())


def test_rs256_tokens_with_a_namespace_path_and_stringified_claims() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from service.graphql.execution.auth import Authenticator, AuthError

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    config = {
        "type": "RS256",
        "key": public_pem,
        "claims_namespace_path": "$.app.hasura",
        "claims_format": "stringified_json",
        "audience": "dashboard",
    }
    authenticator = Authenticator(admin_secret=SECRET, jwt_secret=json.dumps(config))
    claims = json.dumps({**VIEWER_CLAIMS, "x-hasura-user-id": "42"})
    signed = jwt.encode(
        {"aud": "dashboard", "exp": int(time.time()) + 60, "app": {"hasura": claims}},
        private,
        algorithm="RS256",
    )
    session = authenticator.authenticate({"Authorization": f"Bearer {signed}"})
    assert session.role == "viewer"
    assert session.variables["x-hasura-user-id"] == "42"
    wrong_audience = jwt.encode(
        {"aud": "other", "exp": int(time.time()) + 60, "app": {"hasura": claims}},
        private,
        algorithm="RS256",
    )
    with pytest.raises(AuthError) as refused:
        authenticator.authenticate({"Authorization": f"Bearer {wrong_audience}"})
    assert refused.value.code == "invalid-jwt"
