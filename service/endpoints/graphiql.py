"""GraphiQL, the in-browser IDE at the GraphQL endpoint, served from local files.

`GET /v1/graphql` from a browser (Accept: text/html) answers with GraphiQL's page
(`web/graphiql/index.html`); the page loads React, GraphiQL and its start script from
`graphiql/<file>` under where the app is mounted, never from a CDN, so it also works on a
network without internet. The files are the npm packages `web/graphiql/package.json`
installs (`make web-deps`; a built wheel carries copies: `service.assets`). The page talks
to the endpoint it was served from, subscriptions included.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from service.assets import graphiql_files
from service.endpoints.pages import FILE_HEADERS, NO_CACHE, page_response

MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}

MISSING_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><base href="/"><title>GraphiQL is not installed</title>
<link rel="icon" href="data:,"></head><body>
<h1>GraphiQL's files are not installed</h1>
<p>Run <code>make web-deps</code> (or <code>npm ci</code> in <code>web/graphiql/</code>) and
reload. The API itself works: POST GraphQL requests to this URL.</p>
</body></html>
"""


class GraphiQL:
    """GraphiQL's page and files, from `graphiql_dir` (the repository's `web/graphiql/`)."""

    def __init__(self, graphiql_dir: Path) -> None:
        self.page_file = graphiql_dir / "index.html"
        self.files = graphiql_files(graphiql_dir)

    @property
    def installed(self) -> bool:
        return self.page_file.is_file() and all(path.is_file() for path in self.files.values())

    async def page(self, request: Request) -> Response:
        """GraphiQL's page (the GraphQL view's answer to a browser's GET)."""
        if not self.installed:
            return page_response(MISSING_PAGE, request, status_code=503)
        # GraphiQL's React components add <style> elements as they render.
        return page_response(
            self.page_file.read_text(encoding="utf-8"), request, inline_styles=True
        )

    async def file(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        path = self.files.get(name)
        if path is None or not path.is_file():
            return PlainTextResponse(f"no GraphiQL file {name!r}", status_code=404)
        return FileResponse(
            path,
            media_type=MEDIA_TYPES.get(path.suffix),
            headers={**NO_CACHE, **FILE_HEADERS},
        )

    def routes(self) -> list[Route]:
        return [Route("/graphiql/{name}", self.file, methods=["GET", "HEAD"])]
