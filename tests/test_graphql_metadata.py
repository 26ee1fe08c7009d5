"""The engine's schema comes from `hasura/` and the models, and refuses what it cannot serve."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from detector.observability.models import metadata
from service.app import engine_config
from service.graphql import GraphQLEngine
from service.graphql.catalog.metadata import MetadataError, load_catalog
from service.settings import REPO_ROOT, Settings
from service.storage.database import Database

METADATA = REPO_ROOT / "hasura" / "metadata"
TABLES = "databases/observability/tables"

SPEC_RELATIONSHIPS = {
    "invocations": {
        "event_executions",
        "job_executions",
        "logs",
        "correlated_invocations",
        "source_job_execution",
    },
    "event_executions": {"invocation", "job_executions", "logs"},
    "job_executions": {"invocation", "event_execution", "logs", "triggered_invocations"},
    "job_logs": {"invocation", "event_execution", "job_execution"},
}


def test_catalog_has_every_relationship_of_the_spec() -> None:
    catalog = load_catalog(METADATA, metadata)
    for table, names in SPEC_RELATIONSHIPS.items():
        assert set(catalog.table(table).relationships) == names
    assert catalog.table("dashboard_stats").read_only
    assert catalog.table("dashboard_stats").primary_key == ()
    assert catalog.roles == {"viewer"}


def test_admin_schema_uses_hasuras_names(tmp_path: Path) -> None:
    engine = GraphQLEngine(
        engine_config(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")),
        Database(f"sqlite:///{tmp_path / 'x.db'}"),
    )
    sdl = engine.sdl()
    for name in (
        "type query_root",
        "type mutation_root",
        "type subscription_root",
        "input invocations_bool_exp",
        "input invocations_order_by",
        "enum invocations_select_column",
        "type invocations_aggregate",
        "type invocations_aggregate_fields",
        "type invocations_avg_fields",
        "type invocations_stddev_pop_fields",
        "input invocations_aggregate_order_by",
        "input event_executions_aggregate_bool_exp",
        "input event_executions_aggregate_bool_exp_count",
        "input event_executions_aggregate_bool_exp_bool_and",
        "enum event_executions_select_column_event_executions_aggregate_bool_exp_bool_and_arguments_columns",
        "input uuid_comparison_exp",
        "input String_comparison_exp",
        "input timestamptz_comparison_exp",
        "input jsonb_comparison_exp",
        "input jsonb_cast_exp",
        "input numeric_comparison_exp",
        "input bigint_comparison_exp",
        "input float8_comparison_exp",
        "enum order_by",
        "enum cursor_ordering",
        "input invocations_stream_cursor_input",
        "input invocations_insert_input",
        "input invocations_on_conflict",
        "enum invocations_constraint",
        "enum invocations_update_column",
        "input invocations_set_input",
        "input invocations_inc_input",
        "input invocations_pk_columns_input",
        "input invocations_updates",
        "type invocations_mutation_response",
        "scalar timestamptz",
        "scalar jsonb",
        "scalar uuid",
        "directive @cached",
    ):
        assert name in sdl, name
    assert "dashboard_stats_by_pk" not in sdl
    assert "insert_dashboard_stats" not in sdl
    assert "= null" not in sdl  # optional arguments have no default, as in Hasura


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    target = tmp_path / "metadata"
    shutil.copytree(METADATA, target)
    return target


def _edit(directory: Path, table: str, change: object) -> None:
    path = directory / TABLES / f"event_detector_observability_{table}.yaml"
    document = yaml.safe_load(path.read_text())
    change(document)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(document))


def test_unknown_computed_function_is_refused(broken: Path) -> None:
    _edit(
        broken,
        "invocations",
        lambda d: d["computed_fields"][0]["definition"]["function"].update(name="nope"),
    )
    with pytest.raises(MetadataError, match="nope"):
        load_catalog(broken, metadata)


def test_relationship_to_an_unknown_column_is_refused(broken: Path) -> None:
    def change(document: dict) -> None:
        document["array_relationships"][-1]["using"]["manual_configuration"]["column_mapping"] = {
            "id": "missing"
        }

    _edit(broken, "invocations", change)
    with pytest.raises(MetadataError, match="missing"):
        load_catalog(broken, metadata)


def test_permission_on_an_unknown_column_is_refused(broken: Path) -> None:
    _edit(
        broken,
        "job_logs",
        lambda d: d["select_permissions"][0]["permission"]["columns"].append("secret"),
    )
    with pytest.raises(MetadataError, match="secret"):
        load_catalog(broken, metadata)


def test_missing_metadata_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"databases\.yaml"):
        load_catalog(tmp_path, metadata)
