"""GraphQLWriter: `insert_<table>(objects, on_conflict)` mutations over HTTP (httpx).

For functions without database access: it talks to this project's service or to a real
Hasura tracking the schema. One HTTP request per batch: one mutation whose root fields
run in foreign-key order (Hasura runs them in order, in one transaction). Each
(table, column set) group is its own aliased `insert_<table>` with
`on_conflict: {constraint: <table>_pkey, update_columns: [the group's columns]}`, so a
patch only updates the columns it carries; log lines use `update_columns: []` (do nothing
on conflict).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ..buffer import Batch, Patch
from .base import (
    COLUMN_KINDS,
    NEVER_UPDATED,
    TABLES_WITH_UPDATED_AT,
    RecordsRejected,
    SchemaMissing,
    StoreUnavailable,
    group_by_columns,
)

# Hasura error codes about the data (the rest are about the request or the server).
DATA_ERROR_CODES = {"constraint-violation", "data-exception", "unexpected-payload"}


def _object(patch: Patch, now: str) -> dict[str, Any]:
    kinds = COLUMN_KINDS[patch.table]
    out: dict[str, Any] = {}
    for column, value in patch.values.items():
        kind = kinds[column]
        if value is None:
            out[column] = None
        elif kind == "jsonb":
            out[column] = json.loads(value) if isinstance(value, str) else value
        elif kind == "timestamptz":
            out[column] = value.isoformat() if isinstance(value, datetime) else value
        else:
            out[column] = value
    if patch.table in TABLES_WITH_UPDATED_AT and "updated_at" not in out:
        out["updated_at"] = now
    return out


def build_mutation(
    groups: list[tuple[str, list[str], list[dict[str, Any]]]],
) -> tuple[str, dict[str, Any]]:
    """A mutation document and its variables for (table, update columns, objects) groups."""
    definitions, fields, variables = [], [], {}
    for n, (table, update_columns, objects) in enumerate(groups):
        name = f"objects{n}"
        definitions.append(f"${name}: [{table}_insert_input!]!")
        listed = ", ".join(update_columns)
        fields.append(
            f"g{n}: insert_{table}(objects: ${name}, on_conflict: "
            f"{{constraint: {table}_pkey, update_columns: [{listed}]}}) {{ affected_rows }}"
        )
        variables[name] = objects
    document = f"mutation WriteObservability({', '.join(definitions)}) {{ {' '.join(fields)} }}"
    return document, variables


class GraphQLWriter:
    """Writes batches through a Hasura-compatible GraphQL endpoint."""

    name = "graphql"

    def __init__(
        self,
        url: str,
        *,
        admin_secret: str | None = None,
        timeout: float = 10.0,
        transport: Any = None,
    ) -> None:
        self.url = url
        self.admin_secret = admin_secret
        self.timeout = timeout
        self._transport = transport
        self._client: Any = None
        self.requests = 0

    async def open(self) -> None:
        if self._client is not None:
            return
        import httpx

        headers = {"content-type": "application/json"}
        if self.admin_secret:
            headers["x-hasura-admin-secret"] = self.admin_secret
        self._client = httpx.AsyncClient(
            headers=headers, timeout=self.timeout, transport=self._transport
        )
        try:
            await self._post("query ObservabilityHealth { invocations(limit: 1) { id } }", {})
        except RecordsRejected as exc:
            await self.close()
            raise SchemaMissing(
                f"the GraphQL endpoint does not expose the observability tables ({exc}): "
                "track them (hasura/metadata) or run `event-detector migrate`"
            ) from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def forget(self) -> None:
        """In a forked child: drop the parent's HTTP client without touching it."""
        self._client = None

    async def _post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            response = await self._client.post(
                self.url, json={"query": query, "variables": variables}
            )
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"graphql: {type(exc).__name__}") from None
        self.requests += 1
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise StoreUnavailable(f"graphql: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise StoreUnavailable(f"graphql: HTTP {response.status_code}, not JSON") from None
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            codes = {str((e.get("extensions") or {}).get("code", "")) for e in errors}
            summary = ", ".join(sorted(c for c in codes if c)) or "error"
            if codes & DATA_ERROR_CODES:
                raise RecordsRejected(f"graphql: {summary}")
            if "validation-failed" in codes:
                # A column or table the endpoint does not know: about the schema, or
                # about one record's type; bisecting tells which.
                raise RecordsRejected(f"graphql: {summary}")
            raise StoreUnavailable(f"graphql: {summary}")
        if response.status_code >= 400:
            raise StoreUnavailable(f"graphql: HTTP {response.status_code}")
        return body.get("data") or {}

    async def write(self, batch: Batch, instance: dict[str, Any] | None = None) -> None:
        """Send one batch as one mutation (executions in FK order, then log lines, then
        the health row `instance` when given)."""
        await self.open()
        now = datetime.now(UTC).isoformat()
        groups = []
        for (table, columns), patches in group_by_columns(batch.executions).items():
            updates = [c for c in columns if c not in NEVER_UPDATED]
            if table in TABLES_WITH_UPDATED_AT and "updated_at" not in updates:
                updates.append("updated_at")
            groups.append((table, updates, [_object(p, now) for p in patches]))
        if batch.logs:
            groups.append(("job_logs", [], [_object(p, now) for p in batch.logs]))
        if instance is not None:
            groups.append(_instance_group(instance, now))
        if groups:
            await self._post(*build_mutation(groups))

    async def write_quarantined(self, rows: list[dict[str, Any]]) -> None:
        await self.open()
        await self._post(
            "mutation Quarantine($objects: [quarantined_records_insert_input!]!) "
            "{ insert_quarantined_records(objects: $objects) { affected_rows } }",
            {"objects": rows},
        )

    async def write_instance(self, row: dict[str, Any]) -> None:
        await self.open()
        now = datetime.now(UTC).isoformat()
        await self._post(*build_mutation([_instance_group(row, now)]))


def _instance_group(row: dict[str, Any], now: str) -> tuple[str, list[str], list[dict[str, Any]]]:
    patch = Patch("plugin_instances", row["id"], row)
    updates = [c for c in row if c not in NEVER_UPDATED]
    updates.append("updated_at")
    return ("plugin_instances", updates, [_object(patch, now)])
