"""The web client's routes: its pages, its modules, and the npm packages it imports.

The client (`web/`) needs no build step: `web/index.html` loads ES modules from
`web/app/` (served at `app/`) and maps bare imports (`preact`, `graphql-ws`, …) to the
packages `npm ci` installed in `web/node_modules/`, of which only those `web/package.json`
names are served (at `vendor/<package>/`). Every client page (`CLIENT_PAGES`) answers with
`index.html`; the client routes in the browser. A browser asking for any other page gets
`index.html` too, with status 404, so the client says what is wrong in its own voice;
other clients get a plain 404. All of it is relative to where the app is mounted
(`service.endpoints.pages`), and served with a Content-Security-Policy that allows only
these files. Nothing secret is ever served: the page has no configuration.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from starlette.datastructures import Headers, URLPath
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from service.assets import web_packages
from service.endpoints.pages import FILE_HEADERS, NO_CACHE, page_response

# Paths the client routes itself (history API); each serves index.html.
CLIENT_PAGES = (
    "/",
    "/invocations",
    "/invocations/{invocation_id}",
    "/flow/{invocation_id}",
    "/analytics",
    "/settings",
)

# A module script must come with a JavaScript type; set here per file rather than in the
# process-wide `mimetypes` table (Python 3.11 does not know .mjs).
MEDIA_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json"}

MISSING_PACKAGES_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><base href="/">
<title>Event Detector: web client not installed</title><link rel="icon" href="data:,">
<style>body {{ font: 15px system-ui, sans-serif; margin: 4rem auto; max-width: 40rem;
color: #1f2937 }} h1 {{ font-size: 1.3rem }}</style></head>
<body>
<h1>The web client's libraries are not installed</h1>
<p>Missing in <code>{node_modules}</code>: {missing}.</p>
<p>Run <code>make web-deps</code> (or <code>npm ci</code> in <code>web/</code>) and reload.
The GraphQL API is available at <a href="v1/graphql">v1/graphql</a>.</p>
</body></html>
"""


class ClientFiles(StaticFiles):
    """Static files that browsers revalidate before each use and never sniff."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = MEDIA_TYPES.get(Path(full_path).suffix)
        if media_type is not None:
            response.headers["content-type"] = media_type
        response.headers.update(NO_CACHE)
        response.headers.update(FILE_HEADERS)
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
            index = (self.web_dir / "index.html").read_text(encoding="utf-8")
            response = page_response(index, Request(scope, receive), status_code=404)
        await response(scope, receive, send)


def missing_packages(web_dir: Path) -> list[str]:
    """The npm packages of `web_dir/package.json` not installed under `web_dir/node_modules`
    (empty when ready)."""
    modules = web_dir / "node_modules"
    return [
        name for name in web_packages(web_dir) if not (modules / name / "package.json").is_file()
    ]


def web_routes(web_dir: Path) -> list[BaseRoute]:
    """Routes serving the web client from `web_dir` (the repository's `web/`, or its copy
    installed with the package).

    Raises `FileNotFoundError` when `web_dir` holds no client (`index.html`, `app/`,
    `package.json`).
    When the npm packages are missing, the pages answer 503 with what to run instead of
    a blank page with failing imports.
    """
    index = web_dir / "index.html"
    app_dir = web_dir / "app"
    if not (index.is_file() and app_dir.is_dir() and (web_dir / "package.json").is_file()):
        raise FileNotFoundError(
            f"{web_dir} holds no web client (index.html, app/ and package.json)"
        )

    async def page(request: Request) -> Response:
        missing = missing_packages(web_dir)
        if missing:
            text = MISSING_PACKAGES_PAGE.format(
                node_modules=html.escape(str(web_dir / "node_modules")),
                missing=html.escape(", ".join(missing)),
            )
            return page_response(text, request, status_code=503)
        return page_response(index.read_text(encoding="utf-8"), request)

    routes: list[BaseRoute] = [Route(path, page, methods=["GET", "HEAD"]) for path in CLIENT_PAGES]
    routes.append(Mount("/app", app=ClientFiles(directory=app_dir), name="web-app"))
    for name in web_packages(web_dir):
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
