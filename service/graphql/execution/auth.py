"""Who is asking: Hasura's admin secret, JWT and role headers, resolved to a `Session`.

Rules (as Hasura):
- No admin secret configured: every request is admin; `x-hasura-role` picks another
  role (with the other `x-hasura-*` headers as session variables).
- Admin secret configured: `x-hasura-admin-secret` (or the legacy `x-hasura-access-key`)
  must match (compared in constant time); then the request is admin, or the role named
  by `x-hasura-role`. Without it, a JWT in `Authorization: Bearer …` is verified when
  JWT is configured; otherwise the unauthorized role applies if configured, else the
  request is refused (`access-denied`).
- JWT (`HASURA_GRAPHQL_JWT_SECRET`, Hasura's JSON form: `type` HS256/384/512 or
  RS256/384/512, `key`, optional `claims_namespace` (default
  `https://hasura.io/jwt/claims`) or `claims_namespace_path`, `claims_format`
  (`json`/`stringified_json`), `audience`, `issuer`, `allowed_skew`): the claims give
  `x-hasura-allowed-roles`, `x-hasura-default-role` and session variables; the
  `x-hasura-role` header may pick any allowed role.
- Beyond Hasura: a browser request from a page of another origin (`cross_site`, see
  `service.graphql.transport.origin`) is admin only with the admin secret; a JWT gives its
  roles as always. Without either it gets the unauthorized role, or is refused, even when
  no admin secret is configured: a foreign page must not act as the visitor's admin.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from service.graphql.catalog.metadata import ADMIN_ROLE
from service.graphql.errors import ACCESS_DENIED, INVALID_HEADERS, INVALID_JWT

DEFAULT_CLAIMS_NAMESPACE = "https://hasura.io/jwt/claims"
ALGORITHMS = (
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class AuthError(Exception):
    """A request the engine refuses; `code` is Hasura's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AuthConfigurationError(ValueError):
    """The auth settings cannot work; the message says which one and why."""


@dataclass(frozen=True)
class Session:
    """The role a request runs as and its session variables (lower-case `x-hasura-*`)."""

    role: str = ADMIN_ROLE
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN_ROLE


ADMIN_SESSION = Session()


@dataclass(frozen=True)
class JWTConfig:
    algorithm: str
    key: str
    claims_namespace: str = DEFAULT_CLAIMS_NAMESPACE
    claims_namespace_path: str | None = None
    claims_format: str = "json"
    audience: str | list[str] | None = None
    issuer: str | None = None
    allowed_skew: int = 0

    @classmethod
    def parse(cls, text: str) -> JWTConfig:
        """Parse Hasura's JSON JWT configuration; raises `AuthConfigurationError`."""
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise AuthConfigurationError(f"JWT secret is not valid JSON: {error}") from error
        if not isinstance(config, dict):
            raise AuthConfigurationError("JWT secret must be a JSON object")
        if "jwk_url" in config:
            raise AuthConfigurationError(
                "JWT secret: jwk_url is not supported; give the key with 'type' and 'key'"
            )
        algorithm = config.get("type")
        if algorithm not in ALGORITHMS:
            raise AuthConfigurationError(
                f"JWT secret: 'type' must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}"
            )
        key = config.get("key")
        if not isinstance(key, str) or not key:
            raise AuthConfigurationError("JWT secret: 'key' is required")
        claims_format = config.get("claims_format", "json")
        if claims_format not in ("json", "stringified_json"):
            raise AuthConfigurationError(
                f"JWT secret: claims_format must be json or stringified_json, got {claims_format!r}"
            )
        return cls(
            algorithm=algorithm,
            key=key,
            claims_namespace=config.get("claims_namespace", DEFAULT_CLAIMS_NAMESPACE),
            claims_namespace_path=config.get("claims_namespace_path"),
            claims_format=claims_format,
            audience=config.get("audience"),
            issuer=config.get("issuer"),
            allowed_skew=int(config.get("allowed_skew", 0)),
        )


class Authenticator:
    """Turns request headers into a `Session`, or raises `AuthError`."""

    def __init__(
        self,
        *,
        admin_secret: str | None = None,
        unauthorized_role: str | None = None,
        jwt_secret: str | None = None,
    ) -> None:
        self.admin_secret = admin_secret or None
        self.unauthorized_role = unauthorized_role or None
        self.jwt = JWTConfig.parse(jwt_secret) if jwt_secret else None
        if self.jwt is not None and self.admin_secret is None:
            raise AuthConfigurationError("a JWT secret needs an admin secret too (as in Hasura)")

    def authenticate(self, headers: Mapping[str, str], *, cross_site: bool = False) -> Session:
        """The session for a request with `headers` (any case); `cross_site` for a browser
        request from a page of another origin (see the module docstring)."""
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        if self.admin_secret is None:
            if cross_site:
                return self._cross_site_without_secret()
            return self._admin(lowered)
        given = lowered.get("x-hasura-admin-secret", lowered.get("x-hasura-access-key"))
        if given is not None:
            if hmac.compare_digest(given.encode(), self.admin_secret.encode()):
                return self._admin(lowered)
            raise AuthError(ACCESS_DENIED, "invalid x-hasura-admin-secret/x-hasura-access-key")
        if self.jwt is not None:
            authorization = lowered.get("authorization")
            if authorization is not None:
                return self._from_jwt(authorization, lowered)
            if self.unauthorized_role:
                return Session(self.unauthorized_role, {"x-hasura-role": self.unauthorized_role})
            raise AuthError(
                INVALID_HEADERS,
                "Missing 'Authorization' or 'Cookie' header in JWT authentication mode",
            )
        if self.unauthorized_role:
            return Session(self.unauthorized_role, {"x-hasura-role": self.unauthorized_role})
        raise AuthError(
            ACCESS_DENIED, "x-hasura-admin-secret/x-hasura-access-key required, but not found"
        )

    def _cross_site_without_secret(self) -> Session:
        if self.unauthorized_role:
            return Session(self.unauthorized_role, {"x-hasura-role": self.unauthorized_role})
        raise AuthError(
            ACCESS_DENIED,
            "a request from a page of another origin needs credentials, and this service "
            "has no admin secret to check: set an admin secret (and send "
            "x-hasura-admin-secret), or an unauthorized role for anonymous access",
        )

    @staticmethod
    def _admin(headers: Mapping[str, str]) -> Session:
        variables = {
            k: v
            for k, v in headers.items()
            if k.startswith("x-hasura-")
            and k not in ("x-hasura-admin-secret", "x-hasura-access-key")
        }
        role = variables.get("x-hasura-role") or ADMIN_ROLE
        variables["x-hasura-role"] = role
        return Session(role, variables)

    def _from_jwt(self, authorization: str, headers: Mapping[str, str]) -> Session:
        assert self.jwt is not None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(INVALID_HEADERS, "Malformed Authorization header")
        options = {"verify_aud": self.jwt.audience is not None}
        try:
            payload = jwt.decode(
                token.strip(),
                self.jwt.key,
                algorithms=[self.jwt.algorithm],
                audience=self.jwt.audience,
                issuer=self.jwt.issuer,
                leeway=self.jwt.allowed_skew,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(INVALID_JWT, "Could not verify JWT: JWTExpired") from None
        except jwt.InvalidSignatureError:
            raise AuthError(
                INVALID_JWT, "Could not verify JWT: JWSError JWSInvalidSignature"
            ) from None
        except jwt.InvalidAudienceError:
            raise AuthError(INVALID_JWT, "Could not verify JWT: JWTNotInAudience") from None
        except jwt.InvalidIssuerError:
            raise AuthError(INVALID_JWT, "Could not verify JWT: JWTNotInIssuer") from None
        except jwt.PyJWTError as error:
            raise AuthError(INVALID_JWT, f"Could not verify JWT: {error}") from None
        claims = self._claims(payload)
        lowered = {str(k).lower(): v for k, v in claims.items()}
        allowed = lowered.get("x-hasura-allowed-roles")
        default = lowered.get("x-hasura-default-role")
        if not isinstance(allowed, list) or not all(isinstance(r, str) for r in allowed):
            raise AuthError(INVALID_JWT, "JWT claim does not contain x-hasura-allowed-roles")
        if not isinstance(default, str):
            raise AuthError(INVALID_JWT, "JWT claim does not contain x-hasura-default-role")
        requested = headers.get("x-hasura-role") or default
        if requested not in allowed:
            raise AuthError(ACCESS_DENIED, "Your requested role is not in allowed roles")
        variables = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in lowered.items()
            if key.startswith("x-hasura-")
            and key not in ("x-hasura-allowed-roles", "x-hasura-default-role")
        }
        variables["x-hasura-role"] = requested
        return Session(requested, variables)

    def _claims(self, payload: Mapping[str, Any]) -> Mapping[str, Any]:
        assert self.jwt is not None
        if self.jwt.claims_namespace_path:
            claims: Any = payload
            for step in self.jwt.claims_namespace_path.lstrip("$").strip(".").split("."):
                if step:
                    claims = claims.get(step) if isinstance(claims, Mapping) else None
        else:
            claims = payload.get(self.jwt.claims_namespace)
        if isinstance(claims, str) and self.jwt.claims_format == "stringified_json":
            try:
                claims = json.loads(claims)
            except json.JSONDecodeError:
                raise AuthError(INVALID_JWT, "JWT claims are not valid stringified JSON") from None
        if not isinstance(claims, Mapping):
            raise AuthError(INVALID_JWT, "JWT claims namespace not found in the token")
        return claims
