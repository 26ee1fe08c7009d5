"""ObservabilityConfig: every knob of the plugin, from arguments or the environment.

Arguments win over environment variables (prefix `OBSERVABILITY_`), which win over the
defaults. The environment is read once, when the plugin is built. `docs/configuration.md`
lists every variable, and the tests check that it does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import ConfigurationError
from .capture import DEFAULT_REDACT_KEYS, RedactCallback

DEFAULT_DATABASE_URL = "sqlite:///event-detector.db"
ENV_PREFIX = "OBSERVABILITY_"
# Names that differ from `ENV_PREFIX + field.upper()`.
ENV_NAMES = {"database_url": "OBSERVABILITY_DB_URL"}


@dataclass(slots=True)
class ObservabilityConfig:
    """Configuration of `ObservabilityPlugin` (units in the names: seconds unless `_ms`)."""

    database_url: str | None = None
    graphql_url: str | None = None
    admin_secret: str | None = None
    enabled: bool = True
    capture_payload: bool = True
    capture_context: bool = True
    capture_job_options: bool = True
    capture_results: bool = True
    capture_logs: bool = True
    capture_error_stacks: bool = True
    redact_keys: Sequence[str] = ()
    default_redact_keys: bool = True
    redact: RedactCallback | None = None
    max_value_bytes: int = 256 * 1024
    max_log_line_chars: int = 8 * 1024
    max_logs_per_job: int = 1000
    max_error_chars: int = 4000
    flush_interval: float = 1.0
    # Larger batches: fewer transactions (PostgreSQL COPY: ~40k rows/s at 2000, ~54k at
    # 5000, measured in bench/flush_throughput); a batch only fills under heavy load.
    batch_size: int = 5000
    max_buffer_bytes: int = 64 * 1024 * 1024
    serverless: bool = False
    flush_timeout: float = 5.0
    shutdown_timeout: float = 5.0
    retry_initial_delay: float = 0.5
    retry_max_delay: float = 30.0
    auto_migrate: bool | None = None
    transaction_pooling: bool = False
    instance_report_interval: float = 10.0
    handle_sigterm: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def deny_words(self) -> tuple[str, ...]:
        base = DEFAULT_REDACT_KEYS if self.default_redact_keys else ()
        return (*base, *self.redact_keys)

    @property
    def should_migrate(self) -> bool:
        """SQLite stores are created/migrated by the plugin; PostgreSQL only if asked."""
        if self.auto_migrate is not None:
            return self.auto_migrate
        return bool(self.database_url and self.database_url.startswith("sqlite:"))

    @classmethod
    def build(
        cls, arguments: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> ObservabilityConfig:
        """Arguments over environment over defaults; raises `ConfigurationError` naming a
        bad argument or variable."""
        environ = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        unknown = set(arguments) - set(known)
        if unknown:
            raise ConfigurationError(
                f"unknown ObservabilityPlugin option(s): {', '.join(sorted(unknown))}"
            )
        values: dict[str, Any] = {}
        for name, spec in known.items():
            if name in ("redact", "extra"):
                continue
            variable = ENV_NAMES.get(name, ENV_PREFIX + name.upper())
            if variable in environ and environ[variable] != "":
                values[name] = _parse(variable, environ[variable], spec.default)
        values.update({k: v for k, v in arguments.items() if v is not None})
        config = cls(**values)
        config._validate()
        return config

    def _validate(self) -> None:
        if self.database_url and self.graphql_url:
            raise ConfigurationError(
                "give ObservabilityPlugin either database_url (OBSERVABILITY_DB_URL) or "
                "graphql_url (OBSERVABILITY_GRAPHQL_URL), not both"
            )
        if not self.database_url and not self.graphql_url:
            self.database_url = DEFAULT_DATABASE_URL
        if self.database_url and not self.database_url.startswith(
            ("sqlite:", "postgresql:", "postgres:")
        ):
            raise ConfigurationError(
                "database_url must be sqlite:///path.db or postgresql://user:pass@host/db"
            )
        if self.database_url and self.database_url.startswith("postgres:"):
            self.database_url = "postgresql:" + self.database_url.removeprefix("postgres:")
        for name in (
            "max_value_bytes",
            "max_log_line_chars",
            "max_logs_per_job",
            "batch_size",
            "max_buffer_bytes",
        ):
            if int(getattr(self, name)) < 1:
                raise ConfigurationError(f"{name} must be at least 1")
        for name in ("flush_interval", "flush_timeout", "shutdown_timeout"):
            if float(getattr(self, name)) <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds")
        if self.redact is not None and not callable(self.redact):
            raise ConfigurationError("redact must be a callable redact(value, path)")


def _parse(variable: str, raw: str, default: Any) -> Any:
    text = raw.strip()
    try:
        if isinstance(default, bool) or variable.endswith("AUTO_MIGRATE"):
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple | list):
            return tuple(part.strip() for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigurationError(f"{variable}={raw!r} is not a valid value") from None
    return text


Converter = Callable[[str], Any]
