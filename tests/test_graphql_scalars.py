"""Hasura's scalar formats, and the stringify switch for bigint, numeric and float8."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from detector.observability.sqltypes import JSONB, UUID, Timestamptz, pg_type_name
from service.app import engine_config
from service.graphql import GraphQLEngine
from service.graphql.catalog.scalars import (
    build_custom_scalars,
    format_timestamptz,
    scalar_name_for,
    serializer_for,
)
from service.settings import Settings
from service.storage.database import Database
from tests.support.dataset import build_dataset, insert_dataset
from tests.support.db import run


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC), "1969-07-20T20:17:40+00:00"),
        (
            datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            "9999-12-31T23:59:59.999999+00:00",
        ),
        (datetime(2026, 1, 1, 0, 0, 0, 120000, tzinfo=UTC), "2026-01-01T00:00:00.12+00:00"),
        (
            datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-01T00:00:00+00:00",
        ),
    ],
)
def test_timestamptz_output_is_postgres_json(value: datetime, text: str) -> None:
    assert format_timestamptz(value) == text


def test_numeric_scalars_accept_strings_and_numbers_and_name_bad_input() -> None:
    scalars = build_custom_scalars()
    assert scalars["bigint"].coerce_input_value("4611686018427387906") == 4611686018427387906
    assert scalars["numeric"].coerce_input_value(1.1) == Decimal("1.1")
    assert scalars["float8"].coerce_input_value("2.5") == 2.5
    with pytest.raises(ValueError, match="bigint"):
        scalars["bigint"].coerce_input_value("1.5x")
    with pytest.raises(ValueError, match="uuid"):
        scalars["uuid"].coerce_input_value("not-a-uuid")
    with pytest.raises(ValueError, match="timestamp"):
        scalars["timestamptz"].coerce_input_value("yesterday")


def test_special_floats_are_strings() -> None:
    float8 = serializer_for("float8", stringify_numeric=False)
    assert float8(math.nan) == "NaN"
    assert float8(math.inf) == "Infinity"
    assert float8(-math.inf) == "-Infinity"
    assert serializer_for("numeric", stringify_numeric=False)(Decimal("12.50")) == 12.5
    assert serializer_for("numeric", stringify_numeric=False)(Decimal("100")) == 100
    assert serializer_for("numeric", stringify_numeric=True)(Decimal("12.50")) == "12.50"
    assert serializer_for("bigint", stringify_numeric=True)(7800000072) == "7800000072"


def test_stringify_numeric_types_switch(db_url: str) -> None:
    dataset = build_dataset()
    run(insert_dataset(db_url, dataset))

    async def scenario() -> None:
        database = Database(db_url)
        plain = GraphQLEngine(engine_config(Settings(database_url=db_url)), database)
        strings = GraphQLEngine(
            engine_config(Settings(database_url=db_url, stringify_numeric_types=True)), database
        )
        query = (
            "{ dashboard_stats(limit: 1, order_by: [{hour_bucket: asc}, {source_function: asc}]) "
            "{ total_invocations p95_duration_ms max_duration_ms } "
            "dashboard_stats_aggregate { aggregate { sum { total_invocations } count } } }"
        )
        try:
            numbers = (await plain.execute(query)).data
            texts = (await strings.execute(query)).data
        finally:
            await database.dispose()
        row, text_row = numbers["dashboard_stats"][0], texts["dashboard_stats"][0]
        assert isinstance(row["total_invocations"], int)
        assert text_row["total_invocations"] == str(row["total_invocations"])
        assert float(text_row["p95_duration_ms"]) == row["p95_duration_ms"]
        # Int columns and counts stay numbers.
        assert text_row["max_duration_ms"] == row["max_duration_ms"]
        assert (
            texts["dashboard_stats_aggregate"]["aggregate"]["count"]
            == numbers["dashboard_stats_aggregate"]["aggregate"]["count"]
        )
        total = numbers["dashboard_stats_aggregate"]["aggregate"]["sum"]["total_invocations"]
        assert texts["dashboard_stats_aggregate"]["aggregate"]["sum"]["total_invocations"] == str(
            total
        )
        assert total == len(dataset.invocations)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("column_type", "pg_name", "scalar"),
    [
        (UUID(), "uuid", "uuid"),
        (Timestamptz(), "timestamptz", "timestamptz"),
        (JSONB(), "jsonb", "jsonb"),
        (sa.Boolean(), "boolean", "Boolean"),
        (sa.BigInteger(), "bigint", "bigint"),
        (sa.Integer(), "integer", "Int"),
        (sa.Float(), "float8", "float8"),
        (sa.Numeric(), "numeric", "numeric"),
        (sa.Text(), "text", "String"),
        (sa.String(20), "text", "String"),
    ],
)
def test_scalar_names_follow_the_postgres_type_names(
    column_type: sa.types.TypeEngine[Any], pg_name: str, scalar: str
) -> None:
    assert pg_type_name(column_type) == pg_name
    assert scalar_name_for(column_type) == scalar


def test_a_column_type_without_a_postgres_name_is_named_in_the_error() -> None:
    with pytest.raises(TypeError, match="LargeBinary"):
        scalar_name_for(sa.LargeBinary())
