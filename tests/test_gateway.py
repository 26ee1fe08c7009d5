"""The service behind a real Apollo gateway (`@apollo/gateway`, IntrospectAndCompose).

The gateway composes the service, customized as a team would mount it next to its own
graphs (`graphql-default`, namespace `observability`, type prefix `Obs`, federation on),
with a second subgraph written for the test whose incidents point at invocations by id.
A query joins both; the admin secret and a JWT role pass through the gateway, and the
viewer still cannot read payloads through it. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from service.settings import Settings
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.db import prepare_database, run
from tests.support.gateway import node_server
from tests.support.pgserver import free_port
from tests.support.server import serving

SECRET = "gateway-admin-secret"
JWT_KEY = "a-very-long-shared-secret-for-hs256-tokens-gateway-0123456789"
DATASET = build_dataset()
INCIDENTS = [
    {"id": "inc-1", "title": "orders stuck", "invocationId": DATASET.invocations[1]["id"]},
    {"id": "inc-2", "title": "users slow", "invocationId": DATASET.invocations[4]["id"]},
]
JOINED = """{ incidents { title invocation {
    id status sourceFunction
    eventExecutionsAggregate { aggregate { count } }
} } }"""


def viewer_token() -> str:
    claims = {"x-hasura-allowed-roles": ["viewer"], "x-hasura-default-role": "viewer"}
    payload = {"sub": "1", "exp": int(time.time()) + 300, "https://hasura.io/jwt/claims": claims}
    return jwt.encode(payload, JWT_KEY, algorithm="HS256")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('gateway') / 'observability.db'}"
    run(prepare_database(url))
    run(insert_dataset(url, DATASET))
    settings = Settings(
        database_url=url,
        admin_secret=SECRET,
        jwt_secret=json.dumps({"type": "HS256", "key": JWT_KEY}),
        apollo_federation=True,
        graphql_namespace="observability",
        graphql_naming_convention="graphql-default",
        graphql_type_name_prefix="Obs",
    )
    incidents_env = {
        "PORT": str(free_port()),
        "INVOCATION_TYPE": "ObsInvocations",
        "INCIDENTS": json.dumps(INCIDENTS),
    }
    with serving(settings) as service, node_server("incidents.mjs", incidents_env) as incidents:
        gateway_env = {
            "PORT": str(free_port()),
            "SUBGRAPHS": json.dumps(
                [
                    {"name": "observability", "url": service.graphql_url},
                    {"name": "incidents", "url": incidents},
                ]
            ),
            "INTROSPECTION_HEADERS": json.dumps({"x-hasura-admin-secret": SECRET}),
        }
        with node_server("gateway.mjs", gateway_env) as url:
            yield url


def ask(gateway: str, query: str, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.post(gateway, json={"query": query}, headers=headers, timeout=30)
    return response.json()


def expected_invocation(incident: dict[str, Any]) -> dict[str, Any]:
    row = next(i for i in DATASET.invocations if i["id"] == incident["invocationId"])
    events = [e for e in DATASET.event_executions if e["invocation_id"] == row["id"]]
    return {
        "id": row["id"],
        "status": row["status"],
        "sourceFunction": row["source_function"],
        "eventExecutionsAggregate": {"aggregate": {"count": len(events)}},
    }


def test_a_query_joins_both_subgraphs_with_the_admin_secret(gateway: str) -> None:
    body = ask(gateway, JOINED, {"x-hasura-admin-secret": SECRET})
    assert body == {
        "data": {
            "incidents": [
                {"title": incident["title"], "invocation": expected_invocation(incident)}
                for incident in INCIDENTS
            ]
        }
    }
    payload = ask(
        gateway,
        "{ incidents { invocation { sourceEventPayload } } }",
        {"x-hasura-admin-secret": SECRET},
    )
    row = next(i for i in DATASET.invocations if i["id"] == INCIDENTS[0]["invocationId"])
    assert row["source_event_payload"] is not None
    assert payload["data"]["incidents"][0]["invocation"] == {
        "sourceEventPayload": row["source_event_payload"]
    }, "the admin reads payloads"


def test_without_credentials_the_service_refuses_through_the_gateway(gateway: str) -> None:
    body = ask(gateway, JOINED, {})
    assert body.get("errors"), body
    assert not any(i.get("invocation") for i in (body.get("data") or {}).get("incidents") or [])


def test_a_jwt_role_passes_through_and_the_viewer_cannot_read_payloads(gateway: str) -> None:
    viewer = {"authorization": f"Bearer {viewer_token()}"}
    assert ask(gateway, JOINED, viewer) == ask(gateway, JOINED, {"x-hasura-admin-secret": SECRET})
    counted = ask(
        gateway, "{ observability { invocationsAggregate { aggregate { count } } } }", viewer
    )
    assert counted == {
        "data": {
            "observability": {
                "invocationsAggregate": {"aggregate": {"count": len(DATASET.invocations)}}
            }
        }
    }
    for query in (
        "{ incidents { invocation { id sourceEventPayload } } }",
        "{ observability { invocations(limit: 1) { sourceEventPayload } } }",
    ):
        body = ask(gateway, query, viewer)
        assert body.get("errors"), body
        assert "sourceEventPayload" in json.dumps(body["errors"])
        # The gateway answers the fields it could not get with nulls: no payload leaks.
        assert set(values_of("sourceEventPayload", body.get("data"))) <= {None}, body


def values_of(key: str, value: Any) -> Iterator[Any]:
    """Every value under `key`, anywhere in a JSON value."""
    if isinstance(value, dict):
        for name, item in value.items():
            if name == key:
                yield json.dumps(item) if item is not None else None
            yield from values_of(key, item)
    elif isinstance(value, list):
        for item in value:
            yield from values_of(key, item)
