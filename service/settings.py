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
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service import assets

# The checkout this code runs from (tests and tools); the service finds its own files
# through `service.assets`, which also knows a built wheel's copies.
REPO_ROOT = assets.checkout_root()
DEFAULT_WEBHOOK_SECRET_HEADER = "x-event-detector-secret"
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""What a webhook function may be called (`/hooks/<function>`, a sub-directory's name)."""
# An entry of the CORS domain list: scheme://host[:port], `*.` only as the first label.
_CORS_DOMAIN = re.compile(r"https?://(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*(:[0-9]{1,5})?")
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
    database_transaction_pooling: bool = Field(
        default=False,
        description="database_url reaches PostgreSQL through a pooler in transaction mode "
        "(PgBouncer's pool_mode=transaction): no prepared statement outlives its statement; "
        "needs database_direct_url",
    )
    database_direct_url: str | None = Field(
        default=None,
        description="postgresql:// URL that reaches the server directly (not through a "
        "transaction pooler), for what needs a session of its own: the live queries' LISTEN "
        "connection and the rollup's leader lock; unset: database_url",
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
    hasura_metadata_dir: Path = Field(
        default_factory=lambda: assets.default_path("hasura/metadata"),
        description="Hasura metadata served (default: the copy installed with the package, "
        "or the checkout's hasura/metadata)",
    )
    web_dir: Path = Field(
        default_factory=lambda: assets.default_path("web"),
        description="the web client's files (default: the copy installed with the package, "
        "or the checkout's web/)",
    )

    # -- browsers on other origins ---------------------------------------------------
    cors_domain: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("*",),
        validation_alias=AliasChoices("EVENT_DETECTOR_CORS_DOMAIN", "HASURA_GRAPHQL_CORS_DOMAIN"),
        description="origins whose pages may call the API, as Hasura's: a comma list of "
        "`scheme://host[:port]`, `*.` as the first label matches any subdomain, `*` alone "
        "allows every origin",
    )
    disable_cors: bool = Field(
        default=False,
        validation_alias=AliasChoices("EVENT_DETECTOR_DISABLE_CORS", "HASURA_GRAPHQL_DISABLE_CORS"),
        description="send no CORS headers at all (browsers then allow only same-origin pages)",
    )

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
    max_response_nodes: int = Field(
        default=100_000,
        ge=1,
        description="row objects one response may hold, nested relationships expanded "
        "(a batch's operations share one budget; each live-query run has its own); "
        "more is a validation error naming this setting",
    )
    statement_timeout: float = Field(
        default=10.0,
        ge=0,
        description="seconds one SQL statement of a request may run before the database "
        "cancels it (PostgreSQL: SET LOCAL statement_timeout per transaction; SQLite: a "
        "progress handler); 0 = no limit",
    )
    max_request_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="largest GraphQL request body (HTTP, answered 413) or WebSocket message",
    )
    max_json_depth: int = Field(
        default=64,
        ge=8,
        description="deepest nesting of arrays and objects in a GraphQL request body or a "
        "webhook delivery; deeper is refused (parse-failed, or 400) naming this limit",
    )
    parser_cache_size: int = Field(
        default=256, ge=1, description="parsed/validated documents cached"
    )
    db_pool_size: int = Field(
        default=20,
        ge=1,
        description="database connections a process opens at most for requests (as load "
        "needs them; kept open)",
    )
    gc_freeze: bool = Field(
        default=False,
        description="after start, keep the objects built so far (schemas, metadata, libraries) "
        "out of the garbage collector's full scans (gc.freeze), which otherwise pause a "
        "request for ~100 ms every few hundred requests; it changes the whole process, so "
        "only for a process that serves this app alone (`serve` turns it on)",
    )

    # -- the HTTP server (uvicorn) ------------------------------------------------------
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="concurrent connections and requests `serve` accepts; more are "
        "answered 503 at once (uvicorn's limit_concurrency)",
    )
    http_header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="seconds a connection may take to send a request's headers, first or "
        "next on a kept-alive connection; then it is closed",
    )
    http_keepalive_timeout: float = Field(
        default=5.0,
        gt=0,
        description="seconds an idle kept-alive connection stays open",
    )

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
    websocket_compression: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "EVENT_DETECTOR_WEBSOCKET_COMPRESSION", "HASURA_GRAPHQL_CONNECTION_COMPRESSION"
        ),
        description="accept permessage-deflate on WebSockets (off, as in Hasura: "
        "compressing every frame of 1,000 subscriptions costs more CPU than it saves on "
        "frames of a few hundred bytes)",
    )
    websocket_max_operations: int = Field(
        default=200,
        ge=1,
        description="operations (subscriptions, queries in flight) one WebSocket may run at once",
    )
    live_batch_size: int = Field(
        default=100,
        ge=1,
        description="live queries that differ only in variables (or session variables) run "
        "together, this many in one SQL statement (Hasura's multiplexed batch size)",
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
        description="events directory the webhook runs: each sub-directory holding event "
        "modules serves the function of its name; the modules at its top serve the "
        "functions named in EVENT_DETECTOR_WEBHOOK_FUNCTIONS or recorded already; unset "
        "turns the webhook off",
    )
    webhook_functions: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated names of the functions the webhook serves besides "
        "those with a sub-directory of the events directory and those with invocations "
        "recorded already; they run the event modules at the top of the events directory "
        "(the shared, flat layout)",
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

    @field_validator("webhook_functions", mode="before")
    @classmethod
    def _function_names(cls, value: Any) -> Any:
        names = value.split(",") if isinstance(value, str) else value
        if not isinstance(names, list | tuple):
            return value
        cleaned = [str(name).strip() for name in names if str(name).strip()]
        for name in cleaned:
            if not FUNCTION_NAME.match(name) or ".." in name:
                raise ValueError(
                    f"{name!r} is not a function name: letters, digits, '_', '.', '-', "
                    "starting with a letter or digit"
                )
        return cleaned

    @field_validator("cors_domain", mode="before")
    @classmethod
    def _cors_domains(cls, value: Any) -> tuple[str, ...]:
        entries = value.split(",") if isinstance(value, str) else value
        if not isinstance(entries, Sequence):
            raise ValueError("a comma-separated list of origins, or *")
        domains = []
        for entry in entries:
            domain = str(entry).strip().rstrip("/").lower()
            if not domain:
                continue
            if domain != "*" and not _CORS_DOMAIN.fullmatch(domain):
                raise ValueError(
                    f"{str(entry).strip()!r} is not an origin: write scheme://host[:port], "
                    "with *. as the first label for any subdomain (https://*.example.com), "
                    "or * alone for every origin"
                )
            domains.append(domain)
        if not domains:
            raise ValueError("no origin given: use * to allow every origin")
        return tuple(domains)

    @field_validator("events_dir")
    @classmethod
    def _absolute_events_dir(cls, value: Path | None) -> Path | None:
        # Resolved now: the webhook must not depend on the working directory later.
        return None if value is None else value.expanduser().resolve()

    @model_validator(mode="after")
    def _session_url_behind_a_pooler(self) -> Settings:
        if (
            self.database_transaction_pooling
            and not self.database_url.startswith("sqlite")
            and not self.database_direct_url
        ):
            raise ValueError(
                "database_transaction_pooling needs EVENT_DETECTOR_DATABASE_DIRECT_URL: LISTEN "
                "and the rollup's leader lock need a session of their own, which a pooler in "
                "transaction mode does not keep"
            )
        return self

    @property
    def session_database_url(self) -> str:
        """The URL for connections that keep a session (LISTEN, advisory locks)."""
        return self.database_direct_url or self.database_url

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
