"""The HTML pages the app serves (the web client, GraphiQL): where they are, and what they may load.

- **Where.** A page's `<base href>` is set to the path the app is mounted at (the ASGI
  `root_path`: a host application's `Mount`, or a proxy's `--root-path`), and the pages
  use relative URLs only, so they load their files and call the API under any prefix.
- **What they may load.** Each page gets a Content-Security-Policy that allows only the
  app's own files and connections (same origin, WebSockets included), plus the inline
  scripts and styles the page itself holds, by their hash. Framing by other origins,
  MIME sniffing and referrers are turned off. Files the pages load get `nosniff`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
from collections.abc import Mapping

from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse

# Revalidate on every load: a new version of a page is never mixed with old modules.
NO_CACHE = {"cache-control": "no-cache"}

# Headers for every file a page loads (scripts, styles): never run as another type.
FILE_HEADERS = {"x-content-type-options": "nosniff"}

_BASE = re.compile(r"<base\s[^>]*>", re.IGNORECASE)
_HEAD = re.compile(r"<head[^>]*>", re.IGNORECASE)
_INLINE = re.compile(r"<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)


def base_href(connection: HTTPConnection) -> str:
    """The URL path the app is served at, with a trailing slash (`/` at the root)."""
    return connection.scope.get("root_path", "").rstrip("/") + "/"


def with_base(page: str, href: str) -> str:
    """`page` with its `<base href>` set to `href` (inserted after `<head>` if it has none)."""
    element = f'<base href="{html.escape(href, quote=True)}">'
    if _BASE.search(page):
        return _BASE.sub(lambda _: element, page, count=1)
    return _HEAD.sub(lambda match: match.group(0) + element, page, count=1)


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


@functools.lru_cache(maxsize=32)
def security_headers(page: str, *, inline_styles: bool = False) -> Mapping[str, str]:
    """The headers a page `page` is served with (see the module docstring).

    `inline_styles` allows `<style>` elements the page's scripts create at run time
    (GraphiQL's React components do); scripts are never allowed inline beyond the page's
    own, by hash.
    """
    scripts: list[str] = []
    styles: list[str] = []
    for kind, attributes, body in _INLINE.findall(page):
        if kind.lower() == "style":
            styles.append(_hash(body))
        elif "src=" not in attributes.lower():
            scripts.append(_hash(body))
    style_src = "'self' 'unsafe-inline'" if inline_styles else " ".join(["'self'", *styles])
    policy = "; ".join(
        (
            "default-src 'none'",
            " ".join(["script-src 'self'", *scripts]),
            f"style-src {style_src}",
            "img-src 'self' data:",
            "font-src 'self' data:",
            # 'self' covers the same origin's WebSockets (ws: and wss:) too.
            "connect-src 'self'",
            "manifest-src 'self'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'self'",
        )
    )
    return {
        "content-security-policy": policy,
        "x-frame-options": "SAMEORIGIN",
        "referrer-policy": "no-referrer",
        **FILE_HEADERS,
        **NO_CACHE,
    }


def page_response(
    page: str,
    connection: HTTPConnection,
    *,
    status_code: int = 200,
    inline_styles: bool = False,
) -> HTMLResponse:
    """`page` served at where the app is mounted, with its security headers."""
    return HTMLResponse(
        with_base(page, base_href(connection)),
        status_code=status_code,
        headers=dict(security_headers(page, inline_styles=inline_styles)),
    )
