"""Apollo Federation's `_entities(representations:)`: rows by key, for a gateway.

A gateway sends `[{__typename: "invocations", id: "…"}, …]` and selects fields with
inline fragments per type. The representations are grouped by type; each type's rows
come from one statement (`execution.batching`), under the caller's role: its row filter
applies, and a type the role may not read is not an entity of its schema. The answer
holds one entry per representation, in order; a key with no row the role may see is
null, as the federation spec allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from graphql import GraphQLResolveInfo

from service.graphql.catalog.metadata import ColumnInfo, TableInfo
from service.graphql.catalog.scalars import BUILT_IN, build_custom_scalars
from service.graphql.errors import validation_failed
from service.graphql.execution.batching import load_rows, object_type_of, selection_signature
from service.graphql.execution.resolvers import Completed, Resolver, runtime

_SCALARS = {**BUILT_IN, **build_custom_scalars()}


def resolve(entity_tables: Mapping[str, TableInfo], keys: Mapping[str, str]) -> Resolver:
    """The resolver of `_entities` for the entity types of one role's schema."""

    async def entities(
        root: Any, info: GraphQLResolveInfo, representations: list[Any]
    ) -> Completed:
        engine, ctx, planner, path = runtime(info)
        naming = engine.catalog.naming
        wanted: dict[str, list[tuple[int, tuple[Any, ...]]]] = {}
        for index, representation in enumerate(representations):
            here = f"{path}.args.representations[{index}]"
            type_name = (
                representation.get("__typename") if isinstance(representation, Mapping) else None
            )
            if not isinstance(type_name, str):
                raise validation_failed("a representation must be an object with __typename", here)
            table = entity_tables.get(type_name)
            if table is None:
                raise validation_failed(f"'{type_name}' is not an entity of this subgraph", here)
            key = []
            for name in table.primary_key:
                column = table.columns[name]
                field = naming.column(column)
                if representation.get(field) is None:
                    raise validation_failed(
                        f"the representation of '{type_name}' has no '{field}' "
                        f'(its key is "{keys[type_name]}")',
                        here,
                    )
                key.append(_key_value(column, representation[field], here))
            wanted.setdefault(type_name, []).append((index, tuple(key)))

        async def load(type_name: str) -> list[dict[str, Any] | None]:
            table = entity_tables[type_name]
            object_type = object_type_of(info.schema.get_type(type_name))
            plan = planner.row_plan(object_type, table, info.field_nodes, path)
            signature = selection_signature(table, info.field_nodes, ("entities", type_name))
            return await load_rows(engine, ctx, signature, plan, [k for _, k in wanted[type_name]])

        types = list(wanted)
        loaded = await asyncio.gather(*(load(type_name) for type_name in types))
        results: list[dict[str, Any] | None] = [None] * len(representations)
        for type_name, rows in zip(types, loaded, strict=True):
            for (index, _), row in zip(wanted[type_name], rows, strict=True):
                results[index] = row
        return Completed(results)

    return entities


def _key_value(column: ColumnInfo, value: Any, path: str) -> Any:
    """A key field's value as the column's scalar coerces it (`uuid` text normalised)."""
    try:
        return _SCALARS[column.scalar].coerce_input_value(value)  # type: ignore[misc]
    except (ValueError, TypeError) as error:
        raise validation_failed(str(error), path) from error
