"""The service's settings: one object per process, read from the environment once.

Every variable has the prefix `EVENT_DETECTOR_`; where Hasura has a name for the same
setting (admin secret, unauthorized role, JWT secret, stringify numeric types, WebSocket
keep-alive and init timeout), that name is accepted too. The observability plugin the
webhook runs keeps its own `OBSERVABILITY_*` variables (capture switches, caps, flush
interval): they are read here, once, into `observability_environ`, and handed to the
plugin. `docs/configuration.md` lists them all, and the tests check that it does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEBHOOK_SECRET_HEADER = "x-event-detector-secret"
GRAPHQL_NAME_OR_EMPTY = r"^([_A-Za-z][_0-9A-Za-z]*)?$"
"""A GraphQL name, or nothing (a customization setting's way to remove the metadata's)."""


class Settings(BaseSettings):
    # populate_by_name: `Settings(admin_secret=...)` must work, not only the env aliases.
    model_config = SettingsConfigDict(
        env_prefix="EVENT_DETECTOR_", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default="sqlite:///event-detector.db",
        description="sqlite:///path.db or postgresql://user:pass@host/db",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    admin_secret: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EVENT_DETECTOR_ADMIN_SECRET", "HASURA_GRAPHQL_ADMIN_SECRET"),
        description="x-hasura-admin-secret; when unset every request is admin (as Hasura)",
    )
    unauthorized_role: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "EVENT_DETECTOR_UNAUTHORIZED_ROLE", "HASURA_GRAPHQL_UNAUTHORIZED_ROLE"
        ),
    )
    jwt_secret: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EVENT_DETECTOR_JWT_SECRET", "HASURA_GRAPHQL_JWT_SECRET"),
        description='Hasura JSON form: {"type": "HS256", "key": "..."}',
    )
    stringify_numeric_types: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "EVENT_DETECTOR_STRINGIFY_NUMERIC_TYPES", "HASURA_GRAPHQL_STRINGIFY_NUMERIC_TYPES"
        ),
    )
    hasura_metadata_dir: Path = REPO_ROOT / "hasura" / "metadata"

    # -- GraphQL names (Hasura's source customization) and Apollo Federation ---------
    # Each overrides `customization` in hasura/metadata/databases/databases.yaml for this
    # deployment: unset keeps the metadata's value, an empty string removes it.
    graphql_namespace: str | None = Field(
        default=None,
        pattern=GRAPHQL_NAME_OR_EMPTY,
        description="customization.root_fields.namespace: every root field under this field",
    )
    graphql_root_field_prefix: str | None = Field(
        default=None,
        pattern=GRAPHQL_NAME_OR_EMPTY,
        description="customization.root_fields.prefix",
    )
    graphql_root_field_suffix: str | None = Field(
        default=None,
        pattern=GRAPHQL_NAME_OR_EMPTY,
        description="customization.root_fields.suffix",
    )
    graphql_type_name_prefix: str | None = Field(
        default=None,
        pattern=GRAPHQL_NAME_OR_EMPTY,
        description="customization.type_names.prefix",
    )
    graphql_type_name_suffix: str | None = Field(
        default=None,
        pattern=GRAPHQL_NAME_OR_EMPTY,
        description="customization.type_names.suffix",
    )
    graphql_naming_convention: Literal["hasura-default", "graphql-default", ""] | None = Field(
        default=None, description="customization.naming_convention"
    )
    apollo_federation: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "EVENT_DETECTOR_APOLLO_FEDERATION", "HASURA_GRAPHQL_ENABLE_APOLLO_FEDERATION"
        ),
        description="serve an Apollo Federation 2 subgraph: `_service`, `_entities`, and "
        "tables with apollo_federation_config as entities",
    )
    web_dir: Path = REPO_ROOT / "web"

    # GraphQL abuse limits (answered with Hasura-style validation errors).
    max_query_depth: int = Field(
        default=12, ge=1, description="deepest field nesting per operation"
    )
    max_aliases: int = Field(default=200, ge=1, description="aliases per operation")
    max_tokens: int = Field(default=20_000, ge=100, description="tokens per GraphQL document")
    max_rows: int = Field(
        default=50_000,
        ge=1,
        description="rows one select may return; a larger limit, or a result that would "
        "exceed it, is a validation error (never a silent cut)",
    )
    max_batch_operations: int = Field(
        default=20, ge=1, description="operations per batched HTTP request"
    )
    parser_cache_size: int = Field(
        default=256, ge=1, description="parsed/validated documents cached"
    )
    db_pool_size: int = Field(default=10, ge=1, description="database connections kept per process")

    # -- WebSocket transport and live subscriptions -------------------------------------
    websocket_keepalive: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices(
            "EVENT_DETECTOR_WEBSOCKET_KEEPALIVE", "HASURA_GRAPHQL_WEBSOCKET_KEEPALIVE"
        ),
        description="seconds between `ka` messages on the legacy graphql-ws protocol",
    )
    websocket_connection_init_timeout: float = Field(
        default=3.0,
        gt=0,
        validation_alias=AliasChoices(
            "EVENT_DETECTOR_WEBSOCKET_CONNECTION_INIT_TIMEOUT",
            "HASURA_GRAPHQL_WEBSOCKET_CONNECTION_INIT_TIMEOUT",
        ),
        description="seconds a socket may wait before `connection_init` (then closed with 4408)",
    )
    websocket_max_operations: int = Field(
        default=200,
        ge=1,
        description="operations (subscriptions, queries in flight) one WebSocket may run at once",
    )
    live_min_interval: float = Field(
        default=0.2,
        ge=0,
        description="seconds between two re-executions of one live query (however often "
        "its tables change)",
    )
    live_debounce: float = Field(
        default=0.025,
        ge=0,
        description="seconds a live query waits after a change for more changes to arrive",
    )
    live_safety_poll_interval: float = Field(
        default=60.0,
        ge=0,
        description="seconds after which a live query re-runs even without a change "
        "notification (covers lost signals); 0 = never",
    )
    live_degraded_poll_interval: float = Field(
        default=1.0,
        gt=0,
        description="poll interval while change notifications are unavailable (PostgreSQL "
        "listener reconnecting), as Hasura's refetch interval",
    )
    sqlite_change_poll_interval: float = Field(
        default=0.05,
        gt=0,
        description="seconds between `PRAGMA data_version` checks for commits by other "
        "connections and processes (SQLite)",
    )
    postgres_listener_ping_interval: float = Field(
        default=10.0,
        gt=0,
        description="seconds between liveness pings of the LISTEN connection (PostgreSQL)",
    )

    # -- webhook receiver (POST /hooks/<function>) ------------------------------------
    events_dir: Path | None = Field(
        default=None,
        description="events directory the webhook runs: a subdirectory named after the "
        "function if there is one, else the directory itself for every function; unset "
        "turns the webhook off",
    )
    webhook_secret: str | None = Field(
        default=None,
        description="shared secret Hasura sends in the secret header; unset accepts "
        "deliveries without one (a warning is logged at start)",
    )
    webhook_secret_header: str = Field(
        default=DEFAULT_WEBHOOK_SECRET_HEADER,
        description="header carrying the webhook secret",
    )
    webhook_time_budget_ms: float | None = Field(
        default=None,
        gt=0,
        description="time budget of one delivery (listen_to's time_budget_ms); Hasura's "
        "own webhook timeout is 60 s",
    )
    webhook_max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="larger deliveries are answered 413",
    )
    rerun_max_invocations: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="invocations one `POST /v1/rerun` request may re-run (they run one "
        "after another)",
    )
    otel_enabled: bool = Field(
        default=False,
        description="add detector.otel.OpenTelemetryPlugin to webhook deliveries "
        "(the process's global tracer and logger providers)",
    )

    # -- background work and maintenance ----------------------------------------------
    rollup_interval: float = Field(
        default=60.0,
        ge=0,
        description="seconds between rollups (metrics_hourly, dashboard_stats refresh); 0 = off",
    )
    instance_stale_after: float = Field(
        default=300.0,
        gt=0,
        description="plugin_instances rows older than this many seconds are left out of /metrics",
    )
    retention_success_days: float = Field(
        default=7.0, gt=0, description="`retention`: keep completed invocations this long"
    )
    retention_failure_days: float = Field(
        default=30.0,
        gt=0,
        description="`retention`: keep failed, timed-out, rejected (and stuck running) "
        "invocations this long",
    )
    retention_log_days: float | None = Field(
        default=None,
        gt=0,
        description="`retention`: delete log lines older than this (unset: with their invocation)",
    )
    retention_payload_days: float | None = Field(
        default=None,
        gt=0,
        description="`retention`: null out payloads, contexts, job options and results "
        "older than this, before rows are deleted",
    )
    retention_batch_size: int = Field(
        default=1000, ge=1, description="`retention`: rows per delete statement"
    )

    # OBSERVABILITY_* variables, read once here and passed to the webhook's plugin.
    observability_environ: dict[str, str] = Field(default_factory=dict, exclude=True)

    @field_validator("webhook_secret_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        name = value.strip().lower()
        if not name or any(c.isspace() or c in ':()<>@,;\\"/[]?={}' for c in name):
            raise ValueError(f"{value!r} is not a valid HTTP header name")
        return name

    @field_validator("events_dir")
    @classmethod
    def _absolute_events_dir(cls, value: Path | None) -> Path | None:
        # Resolved now: the webhook must not depend on the working directory later.
        return None if value is None else value.expanduser().resolve()

    @model_validator(mode="before")
    @classmethod
    def _observability_environ(cls, data: Any) -> Any:
        if isinstance(data, dict) and "observability_environ" not in data:
            data = {
                **data,
                "observability_environ": {
                    key: value
                    for key, value in os.environ.items()
                    if key.startswith("OBSERVABILITY_")
                },
            }
        return data
