"""The web client's routes: its pages, its modules, and the npm packages it imports.

The client (`web/`) needs no build step: `web/index.html` loads ES modules from
`web/app/` (served at `/app/`) and maps bare imports (`preact`, `graphql-ws`, …) to the
packages `npm ci` installed in `web/node_modules/`, of which only `WEB_PACKAGES` are
served (at `/vendor/<package>/`). Every client page (`CLIENT_PAGES`) answers with
`index.html`; the client routes in the browser. A browser asking for any other page gets
`index.html` too, with status 404, so the client says what is wrong in its own voice;
other clients get a plain 404. Nothing secret is ever served: the page has no
configuration beyond the API's path on the same origin.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

from starlette.datastructures import Headers, URLPath
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

# The npm packages the browser imports (see the import map in web/index.html).
WEB_PACKAGES = ("preact", "htm", "graphql-ws", "@dagrejs/dagre", "uplot")

# Paths the client routes itself (history API); each serves index.html.
CLIENT_PAGES = (
    "/",
    "/invocations",
    "/invocations/{invocation_id}",
    "/flow/{invocation_id}",
    "/analytics",
    "/settings",
)

# Python 3.11 does not know .mjs, and a module script must come with a JavaScript type.
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/json", ".map")

# Revalidate on every load (ETag): a new version of the client is never mixed with old modules.
NO_CACHE = {"cache-control": "no-cache"}

MISSING_PACKAGES_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Event Detector: web client not installed</title>
<link rel="icon" href="data:,"></head>
<body style="font: 15px system-ui, sans-serif; margin: 4rem auto; max-width: 40rem; color: #1f2937">
<h1 style="font-size: 1.3rem">The web client's libraries are not installed</h1>
<p>Missing in <code>{node_modules}</code>: {missing}.</p>
<p>Run <code>make web-deps</code> (or <code>npm ci</code> in <code>web/</code>) and reload.
The GraphQL API is available at <a href="/v1/graphql">/v1/graphql</a>.</p>
</body></html>
"""


class ClientFiles(StaticFiles):
    """Static files that browsers revalidate before each use."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(NO_CACHE)
        return response


class UnknownPages(BaseRoute):
    """A page no route serves, asked for by a browser: `index.html` with status 404.

    The client then shows its own "page not found" with a way back. Only GET and HEAD
    requests that accept HTML match, and only partially, so every other route of the app
    (and its 405 answers and trailing-slash redirects) comes first; API clients keep the
    plain 404. No `path` attribute: metrics label it as an unmatched route.
    """

    def __init__(self, web_dir: Path) -> None:
        self.web_dir = web_dir

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return Match.NONE, {}
        if scope["path"] != "/" and scope["path"].endswith("/"):
            return Match.NONE, {}
        if "text/html" not in Headers(scope=scope).get("accept", ""):
            return Match.NONE, {}
        return Match.PARTIAL, {}

    def url_path_for(self, name: str, /, **path_params: object) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response
        if missing_packages(self.web_dir):
            response = PlainTextResponse("Not Found", status_code=404)
        else:
            response = FileResponse(
                self.web_dir / "index.html",
                status_code=404,
                media_type="text/html",
                headers=NO_CACHE,
            )
        await response(scope, receive, send)


def missing_packages(web_dir: Path) -> list[str]:
    """The `WEB_PACKAGES` not installed under `web_dir/node_modules` (empty when ready)."""
    modules = web_dir / "node_modules"
    return [name for name in WEB_PACKAGES if not (modules / name / "package.json").is_file()]


def web_routes(web_dir: Path) -> list[BaseRoute]:
    """Routes serving the web client from `web_dir` (the repository's `web/`).

    Raises `FileNotFoundError` when `web_dir` holds no client (`index.html`, `app/`).
    When the npm packages are missing, the pages answer 503 with what to run instead of
    a blank page with failing imports.
    """
    index = web_dir / "index.html"
    app_dir = web_dir / "app"
    if not index.is_file() or not app_dir.is_dir():
        raise FileNotFoundError(f"{web_dir} holds no web client (index.html and app/)")

    async def page(request: Request) -> Response:
        missing = missing_packages(web_dir)
        if missing:
            return HTMLResponse(
                MISSING_PACKAGES_PAGE.format(
                    node_modules=web_dir / "node_modules", missing=", ".join(missing)
                ),
                status_code=503,
            )
        return FileResponse(index, media_type="text/html", headers=NO_CACHE)

    routes: list[BaseRoute] = [Route(path, page, methods=["GET", "HEAD"]) for path in CLIENT_PAGES]
    routes.append(Mount("/app", app=ClientFiles(directory=app_dir), name="web-app"))
    for name in WEB_PACKAGES:
        routes.append(
            Mount(
                f"/vendor/{name}",
                # check_dir=False: a missing package answers 404 instead of failing the app.
                app=ClientFiles(directory=web_dir / "node_modules" / name, check_dir=False),
                name=f"web-vendor-{name}",
            )
        )
    routes.append(UnknownPages(web_dir))
    return routes
