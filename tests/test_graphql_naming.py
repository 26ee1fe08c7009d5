"""Source customization: the names Hasura generates, on both backends.

Hasura's own tests (`server/tests-py/queries/naming_conventions/` in hasura/graphql-engine)
track a table `author_local` under each naming convention and root-field prefix/suffix and
record the answers; the first tests track the same tables with the same customizations on
each backend and expect the same names in the same answers. Then the observability API
itself under `graphql-default` with a namespace and a type prefix: a query, an aggregate,
a subscription (and a stream) and error paths, over a real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from detector.observability.models import metadata as observability_tables
from service.graphql import EngineConfig, GraphQLEngine, MetadataError, load_catalog
from service.graphql.catalog.naming import CustomizationError
from service.settings import REPO_ROOT, Settings
from service.storage.database import Database
from tests.graphql_helpers import ts
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.db import database_for, run
from tests.support.live import subscribed
from tests.support.server import RunningServer, serving

# --- Hasura's test tables, tracked as its tests track them ---------------------------------

TABLES = sa.MetaData()
sa.Table(
    "author_local",
    TABLES,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text),
    sa.UniqueConstraint("name", name="author_local_name_key"),
)
sa.Table(
    "article_local",
    TABLES,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("author_id", sa.Integer),
    sa.Column("title", sa.Text),
)
AUTHORS = [{"id": 1, "name": "Author 1"}, {"id": 2, "name": "Author 2"}]
ARTICLES = [
    {"id": 1, "author_id": 1, "title": "Article 1"},
    {"id": 2, "author_id": 1, "title": "Article 2"},
    {"id": 3, "author_id": 2, "title": "New Article 1"},
    {"id": 4, "author_id": 2, "title": "New Article 2"},
]


@pytest.fixture(scope="module")
def hasura_tables_url(
    module_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database holding `author_local` and `article_local` with Hasura's test rows."""
    with database_for(
        module_backend, request, tmp_path_factory.mktemp("names"), migrate=False
    ) as url:
        run(_create_tables(url))
        yield url


async def _create_tables(url: str) -> None:
    database = Database(url)
    try:
        async with database.begin() as conn:
            if not database.is_sqlite:
                # The service's connections put schema-less tables in its own schema.
                await conn.execute(
                    sa.text("CREATE SCHEMA IF NOT EXISTS event_detector_observability")
                )
            await conn.run_sync(TABLES.create_all)
            await conn.execute(TABLES.tables["author_local"].insert(), AUTHORS)
            await conn.execute(TABLES.tables["article_local"].insert(), ARTICLES)
    finally:
        await database.dispose()


def metadata_dir(root: Path, customization: dict[str, Any], author: dict[str, Any]) -> Path:
    """Hasura metadata tracking both tables (`author` merged into author_local's entry)."""
    source = {
        "name": "pg1",
        "kind": "postgres",
        "configuration": {"connection_info": {"database_url": {"from_env": "PG_URL"}}},
        "customization": customization,
        "tables": [
            {"table": {"name": "author_local", "schema": "public"}, **author},
            {"table": {"name": "article_local", "schema": "public"}},
        ],
    }
    (root / "databases").mkdir(parents=True)
    (root / "databases" / "databases.yaml").write_text(yaml.safe_dump([source]))
    return root


async def answers(
    url: str, metadata: Path, operations: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    database = Database(url)
    engine = GraphQLEngine(EngineConfig(catalog=load_catalog(metadata, TABLES)), database)
    try:
        return [engine.format(await engine.execute(query)) for query, _ in operations]
    finally:
        await database.dispose()


def author(id_: int, name: str, typename: str, id_field: str = "id") -> dict[str, Any]:
    return {id_field: id_, "name": name, "__typename": typename}


def standard_operations(
    select: str, by_pk: str, aggregate: str, insert: str, delete_by_pk: str, types: dict[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    """Hasura's test operations on author_local, with the names they expect."""
    row, aggregate_type, fields_type, response = (
        types["row"],
        types["aggregate"],
        types["fields"],
        types["response"],
    )
    return [
        (
            f"{{ {select} {{ id name __typename }} }}",
            {select: [author(1, "Author 1", row), author(2, "Author 2", row)]},
        ),
        (
            f"{{ a: {select} {{ b: id c: name d: __typename }} }}",
            {"a": [{"b": 1, "c": "Author 1", "d": row}, {"b": 2, "c": "Author 2", "d": row}]},
        ),
        (f"{{ {by_pk}(id: 1) {{ id name __typename }} }}", {by_pk: author(1, "Author 1", row)}),
        (
            f'{{ {aggregate}(where: {{name: {{_eq: "Author 2"}}}}) '
            "{ __typename aggregate { __typename count } } }",
            {
                aggregate: {
                    "__typename": aggregate_type,
                    "aggregate": {"__typename": fields_type, "count": 1},
                }
            },
        ),
        (
            f'mutation {{ {insert}(objects: {{name: "Author 3", id: 3}}) '
            "{ __typename returning { __typename id name } } }",
            {insert: {"__typename": response, "returning": [author(3, "Author 3", row)]}},
        ),
        (
            f"mutation {{ {delete_by_pk}(id: 3) {{ __typename id name }} }}",
            {delete_by_pk: author(3, "Author 3", row)},
        ),
    ]


GRAPHQL_DEFAULT_TYPES = {
    "row": "AuthorLocal",
    "aggregate": "AuthorLocalAggregate",
    "fields": "AuthorLocalAggregateFields",
    "response": "AuthorLocalMutationResponse",
}
HASURA_DEFAULT_TYPES = {
    "row": "author_local",
    "aggregate": "author_local_aggregate",
    "fields": "author_local_aggregate_fields",
    "response": "author_local_mutation_response",
}

# (customization, author_local's metadata, operations with Hasura's recorded answers)
HASURA_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], list[tuple[str, Any]]]] = {
    # type_and_field_names_graphql_default.yaml
    "graphql-default": (
        {"naming_convention": "graphql-default"},
        {},
        standard_operations(
            "authorLocal",
            "authorLocalByPk",
            "authorLocalAggregate",
            "insertAuthorLocal",
            "deleteAuthorLocalByPk",
            GRAPHQL_DEFAULT_TYPES,
        ),
    ),
    # type_and_field_names_graphql_default_with_prefix_and_suffix.yaml
    "graphql-default, root prefix and suffix": (
        {
            "naming_convention": "graphql-default",
            "root_fields": {"prefix": "test", "suffix": "query"},
        },
        {},
        standard_operations(
            "testAuthorLocalQuery",
            "testAuthorLocalByPkQuery",
            "testAuthorLocalAggregateQuery",
            "testInsertAuthorLocalQuery",
            "testDeleteAuthorLocalByPkQuery",
            GRAPHQL_DEFAULT_TYPES,
        ),
    ),
    # the same file, after pg_update_source with prefix "Test": a custom prefix stays
    "graphql-default, capitalised prefix": (
        {
            "naming_convention": "graphql-default",
            "root_fields": {"prefix": "Test", "suffix": "query"},
        },
        {},
        [
            (
                "{ TestAuthorLocalByPkQuery(id: 1) { id name __typename } }",
                {"TestAuthorLocalByPkQuery": author(1, "Author 1", "AuthorLocal")},
            )
        ],
    ),
    # type_and_field_names_hasura_default_with_prefix_and_suffix.yaml
    "hasura-default, root prefix and suffix": (
        {
            "naming_convention": "hasura-default",
            "root_fields": {"prefix": "test_", "suffix": "_query"},
        },
        {},
        standard_operations(
            "test_author_local_query",
            "test_author_local_by_pk_query",
            "test_author_local_aggregate_query",
            "test_insert_author_local_query",
            "test_delete_author_local_by_pk_query",
            HASURA_DEFAULT_TYPES,
        ),
    ),
    # field_name_precedence.yaml: custom names are used as given, the rest follows the
    # convention (articleLocal, authorId)
    "graphql-default, custom names win": (
        {"naming_convention": "graphql-default"},
        {
            "configuration": {
                "custom_name": "authorDetails",
                "custom_root_fields": {
                    "select_by_pk": "author_detail",
                    "insert_one": "add_author",
                    "delete_by_pk": "delete_one_author",
                },
                "column_config": {"id": {"custom_name": "author_id"}},
            }
        },
        [
            (
                "{ authorDetails { author_id name __typename } "
                "articleLocal(where: {authorId: {_eq: 1}}) { id title __typename } }",
                {
                    "authorDetails": [
                        author(1, "Author 1", "authorDetails", "author_id"),
                        author(2, "Author 2", "authorDetails", "author_id"),
                    ],
                    "articleLocal": [
                        {"id": 1, "title": "Article 1", "__typename": "ArticleLocal"},
                        {"id": 2, "title": "Article 2", "__typename": "ArticleLocal"},
                    ],
                },
            ),
            (
                "{ author_detail(author_id: 1) { author_id name __typename } "
                "articleLocalByPk(id: 3) { title __typename } }",
                {
                    "author_detail": author(1, "Author 1", "authorDetails", "author_id"),
                    "articleLocalByPk": {"title": "New Article 1", "__typename": "ArticleLocal"},
                },
            ),
            (
                "{ articleLocalAggregate(where: {authorId: {_eq: 2}}) "
                "{ __typename aggregate { __typename count } } }",
                {
                    "articleLocalAggregate": {
                        "__typename": "ArticleLocalAggregate",
                        "aggregate": {"__typename": "ArticleLocalAggregateFields", "count": 2},
                    }
                },
            ),
            (
                'mutation { add_author(object: {name: "Author 3", author_id: 3}) '
                "{ __typename author_id name } }",
                {"add_author": author(3, "Author 3", "authorDetails", "author_id")},
            ),
            (
                "mutation { delete_one_author(author_id: 3) { __typename author_id name } }",
                {"delete_one_author": author(3, "Author 3", "authorDetails", "author_id")},
            ),
        ],
    ),
}


@pytest.mark.parametrize("case", HASURA_CASES)
def test_names_are_the_ones_hasuras_tests_record(
    hasura_tables_url: str, tmp_path: Path, case: str
) -> None:
    customization, author_entry, operations = HASURA_CASES[case]
    metadata = metadata_dir(tmp_path, customization, author_entry)
    bodies = run(answers(hasura_tables_url, metadata, operations))
    assert bodies == [{"data": expected} for _, expected in operations]


def test_a_custom_table_name_keeps_its_case_where_it_starts_a_name(tmp_path: Path) -> None:
    # Hasura's naming-convention page: custom name `table_one` under graphql-default.
    metadata = metadata_dir(
        tmp_path,
        {"naming_convention": "graphql-default"},
        {"configuration": {"custom_name": "table_one"}},
    )
    catalog = load_catalog(metadata, TABLES)
    names = catalog.naming.table(catalog.table("author_local"))
    assert (names.root_fields.select, names.root_fields.select_by_pk) == (
        "table_one",
        "table_oneByPk",
    )
    assert names.root_fields.insert_one == "insertTable_oneOne"
    assert (names.object, names.bool_exp) == ("table_one", "table_oneBoolExp")


# --- what the catalog refuses, naming the key ------------------------------------------------


@pytest.mark.parametrize(
    ("customization", "message"),
    [
        ({"root_fields": {"namespace": "my-namespace"}}, "customization.root_fields.namespace"),
        ({"type_names": {"prefix": "1st_"}}, "customization.type_names.prefix"),
        ({"naming_convention": "camelCase"}, "customization.naming_convention"),
        ({"root_fields": {"infix": "x"}}, "unknown key infix"),
    ],
)
def test_bad_customization_is_refused_naming_the_key(
    tmp_path: Path, customization: dict[str, Any], message: str
) -> None:
    with pytest.raises(MetadataError) as raised:
        load_catalog(metadata_dir(tmp_path, customization, {}), TABLES)
    assert message in str(raised.value) and "databases.yaml" in str(raised.value)


def test_settings_override_the_metadata_and_an_empty_value_removes_it(tmp_path: Path) -> None:
    metadata = metadata_dir(
        tmp_path, {"root_fields": {"namespace": "authors", "prefix": "my_"}}, {}
    )
    catalog = load_catalog(metadata, TABLES)
    config = EngineConfig(catalog=catalog, namespace="", naming_convention="graphql-default")
    customized = config.customized_catalog()
    assert customized.naming.namespace is None
    names = customized.naming.table(customized.table("author_local"))
    assert names.root_fields.select_by_pk == "my_AuthorLocalByPk"
    assert catalog.naming.namespace == "authors", "the metadata's catalog is left as it was"
    with pytest.raises(CustomizationError, match=r"type_names\.suffix"):
        EngineConfig(catalog=catalog, type_name_suffix="-x").customized_catalog()


# --- the observability API under graphql-default, namespaced and prefixed --------------------

DATASET = build_dataset()
CUSTOMIZED = {
    "graphql_namespace": "observability",
    "graphql_naming_convention": "graphql-default",
    "graphql_type_name_prefix": "Obs",
}


@pytest.fixture(scope="module")
def server(module_db_url: str) -> Iterator[RunningServer]:
    run(insert_dataset(module_db_url, DATASET))
    with serving(Settings(database_url=module_db_url, **CUSTOMIZED)) as running:
        yield running


def data(server: RunningServer, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = server.post(query, variables)
    assert "errors" not in body, body
    return body["data"]["observability"]


def test_query_names_fields_arguments_and_enum_values_in_camel_case(server: RunningServer) -> None:
    mine = [i for i in DATASET.invocations if i["source_function"] == "orders_handler"]
    latest = sorted(mine, key=lambda i: i["created_at"], reverse=True)[:3]
    result = data(
        server,
        """query ($f: String!) { observability {
            invocations(where: {sourceFunction: {_eq: $f}, errorMessage: {_isNull: false}},
                        orderBy: [{createdAt: DESC}], limit: 3) { id __typename }
            all: invocations(where: {sourceFunction: {_eq: $f}}, orderBy: {createdAt: DESC_NULLS_LAST},
                        limit: 3) { id createdAt sourceFunction
                        eventExecutionsAggregate { aggregate { count } } }
        } }""",
        {"f": "orders_handler"},
    )
    with_error = sorted(
        (i for i in mine if i["error_message"] is not None),
        key=lambda i: i["created_at"],
        reverse=True,
    )[:3]
    assert result["invocations"] == [
        {"id": i["id"], "__typename": "ObsInvocations"} for i in with_error
    ]
    events = {i["id"]: 0 for i in latest}
    for event in DATASET.event_executions:
        if event["invocation_id"] in events:
            events[event["invocation_id"]] += 1
    assert result["all"] == [
        {
            "id": i["id"],
            "createdAt": ts(i["created_at"]),
            "sourceFunction": "orders_handler",
            "eventExecutionsAggregate": {"aggregate": {"count": events[i["id"]]}},
        }
        for i in latest
    ]


def test_aggregate_under_the_namespace(server: RunningServer) -> None:
    durations = [
        i["total_duration_ms"] for i in DATASET.invocations if i["total_duration_ms"] is not None
    ]
    result = data(
        server,
        """{ observability { invocationsAggregate {
            __typename
            aggregate { __typename count max { totalDurationMs } stddevPop { __typename } }
        } } }""",
    )
    assert result["invocationsAggregate"] == {
        "__typename": "ObsInvocationsAggregate",
        "aggregate": {
            "__typename": "ObsInvocationsAggregateFields",
            "count": len(DATASET.invocations),
            "max": {"totalDurationMs": max(durations)},
            "stddevPop": {"__typename": "ObsInvocationsStddevPopFields"},
        },
    }


def test_error_paths_name_the_namespace_and_the_fields_the_client_wrote(
    server: RunningServer,
) -> None:
    cases = [
        (
            "{ observability { invocations(limit: -1) { id } } }",
            "$.selectionSet.observability.selectionSet.invocations.args.limit",
        ),
        (
            "{ observability { invocations(where: {sourceFunction: {_eq: null}}) { id } } }",
            "$.selectionSet.observability.selectionSet.invocations.args.where.sourceFunction._eq",
        ),
        (
            "{ observability { invocations { id source_function } } }",
            "$.selectionSet.observability.selectionSet.invocations.selectionSet.source_function",
        ),
    ]
    for query, path in cases:
        [error] = server.post(query)["errors"]
        assert error["extensions"] == {"code": "validation-failed", "path": path}, query
    [error] = server.post("{ observability { invocations { id source_function } } }")["errors"]
    assert error["message"] == "field 'source_function' not found in type: 'ObsInvocations'"
    [error] = server.post("{ invocations { id } }")["errors"]
    assert error["message"] == "field 'invocations' not found in type: 'query_root'"


def test_live_subscription_and_stream_under_the_namespace(server: RunningServer) -> None:
    invocation = DATASET.invocations[7]
    ordered = sorted(DATASET.invocations, key=lambda i: i["created_at"])

    async def scenario() -> None:
        live = (
            "subscription ($id: uuid!) { observability { invocationsByPk(id: $id) { id status } } }"
        )
        stream = (
            "subscription ($c: timestamptz) { observability { invocationsStream(batchSize: 2, "
            "cursor: {initialValue: {createdAt: $c}, ordering: ASC}) { id } } }"
        )
        async with (
            subscribed(server.websocket_url, live, {"id": invocation["id"]}) as updates,
            subscribed(
                server.websocket_url, stream, {"c": ts(ordered[3]["created_at"])}
            ) as batches,
        ):
            first = await updates.next()
            assert first == {
                "observability": {
                    "invocationsByPk": {"id": invocation["id"], "status": invocation["status"]}
                }
            }
            assert await batches.next() == {
                "observability": {"invocationsStream": [{"id": r["id"]} for r in ordered[4:6]]}
            }
            changed = "failed" if invocation["status"] != "failed" else "completed"
            mutation = server.post(
                "mutation ($id: uuid!, $s: String!) { observability { "
                "updateInvocationsByPk(pk_columns: {id: $id}, _set: {status: $s}) { status } } }",
                {"id": invocation["id"], "s": changed},
            )
            assert mutation == {
                "data": {"observability": {"updateInvocationsByPk": {"status": changed}}}
            }
            # Later results reach the client as the payloads the live-query engine
            # encodes once for the cohort: they must nest under the namespace too.
            update = await updates.until(
                lambda r: r["observability"]["invocationsByPk"]["status"] == changed
            )
            assert update == {
                "observability": {"invocationsByPk": {"id": invocation["id"], "status": changed}}
            }
            assert await batches.next() == {
                "observability": {"invocationsStream": [{"id": r["id"]} for r in ordered[6:8]]}
            }

    asyncio.run(scenario())


def test_a_namespaced_subscription_selects_one_root_field(server: RunningServer) -> None:
    async def scenario() -> None:
        query = "subscription { observability { a: invocations(limit: 1) { id } b: invocations(limit: 1) { id } } }"
        async with subscribed(server.websocket_url, query) as results:
            with pytest.raises(Exception, match="one top level field"):
                await results.next()

    asyncio.run(scenario())


def test_namespaced_mutations_run_in_order_in_one_transaction(server: RunningServer) -> None:
    invocation = DATASET.invocations[11]
    body = server.post(
        """mutation ($id: uuid!) { observability {
            first: updateInvocationsByPk(pk_columns: {id: $id}, _set: {errorMessage: "first"}) { errorMessage }
            second: updateInvocations(where: {id: {_eq: $id}, errorMessage: {_eq: "first"}},
                                      _set: {errorMessage: "second"}) { affectedRows }
        } }""",
        {"id": invocation["id"]},
    )
    assert body == {
        "data": {
            "observability": {
                "first": {"errorMessage": "first"},
                "second": {"affectedRows": 1},
            }
        }
    }
    failing = server.post(
        """mutation ($id: uuid!) { observability {
            updateInvocationsByPk(pk_columns: {id: $id}, _set: {errorMessage: "third"}) { id }
            insertInvocationsOne(object: {id: $id}) { id }
        } }""",
        {"id": invocation["id"]},
    )
    assert "errors" in failing
    after = data(
        server,
        "query ($id: uuid!) { observability { invocationsByPk(id: $id) { errorMessage } } }",
        {"id": invocation["id"]},
    )
    assert after == {"invocationsByPk": {"errorMessage": "second"}}, "rolled back together"


def test_the_repository_metadata_serves_hasura_default_names_unchanged() -> None:
    catalog = load_catalog(REPO_ROOT / "hasura" / "metadata", observability_tables)
    names = catalog.naming.table(catalog.table("job_logs"))
    assert names.root_fields.select_by_pk == "job_logs_by_pk"
    assert names.bool_exp == "job_logs_bool_exp"
    graphql = catalog.customized(naming_convention="graphql-default").naming
    job_logs = graphql.table(catalog.table("job_logs"))
    # A custom table name stays as written where it starts a name (Hasura's rule).
    assert (job_logs.root_fields.select_by_pk, job_logs.bool_exp) == (
        "job_logsByPk",
        "job_logsBoolExp",
    )
    assert job_logs.root_fields.insert_one == "insertJob_logsOne"
