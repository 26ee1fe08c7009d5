"""The service's settings: one object per process, read from the environment once.

Every variable has the prefix `EVENT_DETECTOR_`; where Hasura has a name for the same
setting (admin secret, unauthorized role, JWT secret, stringify numeric types), that
name is accepted too. The README lists them all.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


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
