"""Which other origins' pages may call the API: CORS as Hasura does it, and WebSocket origins.

`EVENT_DETECTOR_CORS_DOMAIN` (or `HASURA_GRAPHQL_CORS_DOMAIN`) lists the origins, with
Hasura's syntax: `https://*.example.com, http://localhost:3000`; `*` (the default) allows
every origin. Starlette's `CORSMiddleware` answers preflights (the methods, and every
header asked for: `x-hasura-*`, `authorization`, `content-type`) and marks responses
readable by those origins. Credentials mode (cookies) is not offered: the API
authenticates with headers only. `EVENT_DETECTOR_DISABLE_CORS` sends no CORS headers.

Browsers do not apply CORS to WebSockets, so the handshake's `Origin` is checked against
the same list, as Hasura does (`OriginPolicy.allows`, given to the GraphQL view, which
Strawberry asks for every cross-origin handshake): a page of an origin the list does not
allow (any other origin when CORS is disabled) gets its handshake refused with 403.

What a page of an allowed origin may then do is still decided by its credentials: without
the admin secret or a JWT it is never admin (`service.graphql.execution.auth`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from service.settings import Settings

ALLOWED_METHODS = ("GET", "POST", "OPTIONS")
PREFLIGHT_MAX_AGE_S = 600


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """The origins whose pages may call the service (see the module docstring)."""

    enabled: bool
    allow_all: bool = False
    exact: tuple[str, ...] = ()
    wildcard: re.Pattern[str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OriginPolicy:
        if settings.disable_cors:
            return cls(enabled=False)
        return cls.from_domains(settings.cors_domain)

    @classmethod
    def from_domains(cls, domains: Sequence[str]) -> OriginPolicy:
        """The policy for validated entries of the CORS domain list (`Settings.cors_domain`)."""
        if "*" in domains:
            return cls(enabled=True, allow_all=True)
        exact = tuple(domain for domain in domains if "*" not in domain)
        patterns = [_wildcard_pattern(domain) for domain in domains if "*" in domain]
        wildcard = re.compile("|".join(patterns)) if patterns else None
        return cls(enabled=True, exact=exact, wildcard=wildcard)

    def allows(self, origin: str) -> bool:
        """Whether a page of `origin` may call the service."""
        if not self.enabled:
            return False
        origin = origin.strip().lower()
        if self.allow_all or origin in self.exact:
            return True
        return self.wildcard is not None and self.wildcard.fullmatch(origin) is not None

    def middleware(self) -> list[Middleware]:
        """Starlette's CORS middleware for this policy (none when CORS is disabled)."""
        if not self.enabled:
            return []
        return [
            Middleware(
                CORSMiddleware,
                allow_origins=["*"] if self.allow_all else list(self.exact),
                allow_origin_regex=self.wildcard.pattern if self.wildcard is not None else None,
                allow_methods=ALLOWED_METHODS,
                # Mirror the headers a preflight asks for, as Hasura does (x-hasura-*, …).
                allow_headers=["*"],
                max_age=PREFLIGHT_MAX_AGE_S,
            )
        ]


def _wildcard_pattern(domain: str) -> str:
    # `https://*.example.com:8080`: one or more labels in place of `*.`.
    scheme, _, rest = domain.partition("://*.")
    return f"{re.escape(scheme)}://[a-z0-9-]+(?:\\.[a-z0-9-]+)*\\.{re.escape(rest)}"
