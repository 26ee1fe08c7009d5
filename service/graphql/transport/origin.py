"""Where a request comes from, as far as a browser tells: cross-site requests and JSON bodies.

A web page on another site can make the visitor's browser send requests to the service:
simple ones (form or text bodies, no custom headers) without asking first, and WebSocket
handshakes always. Such a request carries no credentials the page does not hold, so it
must never act as admin just because the service has no admin secret (Hasura's default).
These checks tell such requests apart; what to do with them is the caller's choice
(`Authenticator.authenticate(..., cross_site=True)`, the endpoints' refusals).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

# Sec-Fetch-Site values of requests a page of the same origin made, or the user typed.
_OWN_SITE = ("same-origin", "none")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_cross_site(headers: Mapping[str, str]) -> bool:
    """Whether a browser sent this request from a page of another origin.

    `headers` are the request's own (for a WebSocket, the handshake's: never headers a
    client put into a message). Browsers say it in `Sec-Fetch-Site`; older ones and
    plain-HTTP hosts only in `Origin`, compared with `Host`. A request with neither
    (curl, Hasura's deliveries, other servers) is not cross-site: no page sent it.
    """
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site.strip().lower() not in _OWN_SITE
    origin = headers.get("origin")
    if origin is None:
        return False
    return not _same_host(origin, headers.get("host", ""))


def _same_host(origin: str, host: str) -> bool:
    """Whether `Origin` names the host and port the request was sent to (`Host`)."""
    try:
        page = urlsplit(origin.strip())
        target = urlsplit(f"//{host.strip()}")
        default = _DEFAULT_PORTS.get(page.scheme.lower())
        # `Origin: null` (sandboxed frames, file: pages) has no host: never the same.
        if default is None or not page.hostname or not target.hostname:
            return False
        return (page.hostname, page.port or default) == (target.hostname, target.port or default)
    except ValueError:  # a malformed port
        return False


def json_content_type_error(content_type: str | None) -> str | None:
    """Why a request body with this `Content-Type` is not taken as JSON, or None when it is.

    JSON endpoints accept `application/json` (or any `+json` type), and a body without a
    content type from clients that send none. Pages on other sites can send form and
    text bodies without a CORS preflight, never JSON: refusing those keeps such pages
    from calling these endpoints.
    """
    if content_type is None or not content_type.strip():
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return None
    return (
        f"the body's content type is {media_type!r}: this endpoint takes JSON, send it "
        "with `Content-Type: application/json`"
    )
