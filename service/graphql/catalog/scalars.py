"""Hasura's scalars: names, input coercion and output serialisation.

PostgreSQL `integer`, `text` and `boolean` columns use the built-in `Int`, `String` and
`Boolean`; every other type keeps its PostgreSQL name (`uuid`, `timestamptz`, `jsonb`,
`bigint`, `numeric`, `float8`). Inputs accept what Hasura accepts (numeric scalars take
string or number literals); outputs follow Hasura's JSON: timestamps in PostgreSQL's
JSON format (`+00:00`, fraction trimmed), numbers as JSON numbers or, with
`stringify_numeric_types`, as strings.

Output values are serialised by the engine itself (see `service.graphql.sql.selects`), so the
serialisers here are plain functions chosen once per column.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from graphql import (
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLInt,
    GraphQLScalarType,
    GraphQLString,
)
from graphql.language import (
    FloatValueNode,
    IntValueNode,
    StringValueNode,
    ValueNode,
)
from graphql.utilities import value_from_ast_untyped

from detector.observability.sqltypes import parse_timestamp, pg_type_name, uuid_to_text

Serializer = Callable[[Any], Any]

NUMERIC_SCALARS = frozenset({"Int", "Float", "bigint", "numeric", "float8"})
"""Scalars that have sum/avg/stddev/variance aggregates and `_inc`."""

COMPARABLE_SCALARS = NUMERIC_SCALARS | {"String", "uuid", "timestamptz"}
"""Scalars that have max/min aggregates."""

TEXT_SCALARS = frozenset({"String"})
"""Scalars with the pattern operators (`_like`, `_regex`, ...)."""

STRINGIFIABLE = frozenset({"bigint", "numeric", "float8"})
"""Scalars Hasura turns into strings with HASURA_GRAPHQL_STRINGIFY_NUMERIC_TYPES."""


_BUILT_IN_SCALARS = {"integer": "Int", "text": "String", "boolean": "Boolean"}
"""PostgreSQL types Hasura maps to GraphQL's built-in scalars; the rest keep their name."""


def scalar_name_for(column_type: sa.types.TypeEngine[Any]) -> str:
    """Hasura's scalar name for a SQLAlchemy column type.

    Raises `TypeError` for a type the engine does not know, naming it.
    """
    name = pg_type_name(column_type)
    return _BUILT_IN_SCALARS.get(name, name)


# --- input coercion -------------------------------------------------------------------


def _coerce_uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"invalid uuid: {value!r}")
    try:
        return uuid_to_text(value)
    except ValueError:
        raise ValueError(f"invalid input syntax for type uuid: {value!r}") from None


def _coerce_timestamptz(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"invalid timestamptz: {value!r}")
    try:
        return parse_timestamp(value)
    except ValueError:
        raise ValueError(
            f"invalid input syntax for type timestamp with time zone: {value!r}"
        ) from None


def _coerce_bigint(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"invalid bigint: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"invalid input syntax for type bigint: {value!r}")


def _coerce_numeric(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"invalid numeric: {value!r}")
    if isinstance(value, int | float | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            pass
        else:
            if result.is_finite() or str(value).strip().lower() == "nan":
                return result
    raise ValueError(f"invalid input syntax for type numeric: {value!r}")


def _coerce_float8(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"invalid float8: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"invalid input syntax for type double precision: {value!r}")


def _literal(coerce: Callable[[Any], Any], *, numbers: bool) -> Callable[[ValueNode], Any]:
    """A literal coercer accepting string literals, and number literals when `numbers`."""

    def coerce_literal(node: ValueNode) -> Any:
        if isinstance(node, StringValueNode):
            return coerce(node.value)
        if numbers and isinstance(node, IntValueNode):
            return coerce(int(node.value))
        if numbers and isinstance(node, FloatValueNode):
            return coerce(node.value)
        raise ValueError("unexpected literal")

    return coerce_literal


def _jsonb_literal(node: ValueNode) -> Any:
    # graphql-core has already replaced variables inside object and list literals.
    return value_from_ast_untyped(node)


def build_custom_scalars() -> dict[str, GraphQLScalarType]:
    """Fresh GraphQL scalar types for Hasura's non-built-in scalars (one set per schema)."""
    return {
        "uuid": GraphQLScalarType(
            "uuid",
            coerce_output_value=str,
            coerce_input_value=_coerce_uuid,
            coerce_input_literal=_literal(_coerce_uuid, numbers=False),
        ),
        "timestamptz": GraphQLScalarType(
            "timestamptz",
            coerce_output_value=format_timestamptz,
            coerce_input_value=_coerce_timestamptz,
            coerce_input_literal=_literal(_coerce_timestamptz, numbers=False),
        ),
        "jsonb": GraphQLScalarType(
            "jsonb",
            coerce_output_value=_identity,
            coerce_input_value=_identity,
            coerce_input_literal=_jsonb_literal,
        ),
        "bigint": GraphQLScalarType(
            "bigint",
            coerce_output_value=lambda value: value,
            coerce_input_value=_coerce_bigint,
            coerce_input_literal=_literal(_coerce_bigint, numbers=True),
        ),
        "numeric": GraphQLScalarType(
            "numeric",
            coerce_output_value=lambda value: value,
            coerce_input_value=_coerce_numeric,
            coerce_input_literal=_literal(_coerce_numeric, numbers=True),
        ),
        "float8": GraphQLScalarType(
            "float8",
            coerce_output_value=lambda value: value,
            coerce_input_value=_coerce_float8,
            coerce_input_literal=_literal(_coerce_float8, numbers=True),
        ),
    }


BUILT_IN = {
    "Int": GraphQLInt,
    "String": GraphQLString,
    "Boolean": GraphQLBoolean,
    "Float": GraphQLFloat,
}


# --- output serialisation ---------------------------------------------------------------


def format_timestamptz(value: Any) -> str:
    """PostgreSQL's JSON form of a timestamptz: `+00:00`, fraction trimmed."""
    if isinstance(value, str):
        value = parse_timestamp(value)
    dt = value.astimezone(UTC) if value.tzinfo else value
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    return text + "+00:00"


def _number(value: Any) -> Any:
    """A JSON number for an int, float or Decimal; integral decimals become ints."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    return value


def _float(value: Any) -> Any:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _numeric_output(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _number(value)


def _stringify(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, Decimal):
        # Integral values without their zeros and without an exponent (100.00 -> "100").
        return format(value.normalize(), "f") if value == value.to_integral_value() else str(value)
    return str(value)


def _int(value: Any) -> Any:
    # Sums of Int columns come back as Decimal on some drivers; Hasura emits them
    # as plain numbers even above the 32-bit range.
    return int(value) if isinstance(value, Decimal | float) else value


def _identity(value: Any) -> Any:
    return value


def serializer_for(scalar: str, *, stringify_numeric: bool) -> Serializer:
    """The output serialiser for `scalar` (applied to non-null values only)."""
    if stringify_numeric and scalar in STRINGIFIABLE:
        if scalar == "bigint":
            return lambda value: str(int(value))
        return _stringify
    if scalar == "timestamptz":
        return format_timestamptz
    if scalar == "uuid":
        return str
    if scalar == "Int" or scalar == "bigint":
        return _int
    if scalar == "numeric":
        return _numeric_output
    if scalar in {"float8", "Float"}:
        return _float
    return _identity
