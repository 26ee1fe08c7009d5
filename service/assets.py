"""Where the service's files live: the one place that knows.

The service reads files besides its Python code: the Hasura metadata (`hasura/`), the
schema (`schema.sql`), the example event modules the demo runs (`examples/events/`), the
web client (`web/index.html`, `web/app/` and the npm packages `web/package.json` names) and
GraphiQL's page and browser files (`web/graphiql/`). In a checkout they are the checkout's
own folders. A built wheel carries copies of them as package data under
`service/packaged/`, in the same layout, found with `importlib.resources`; the build copies
them there (`setup.py` calls `bundle`), so nothing is committed twice.

`path("hasura/metadata")` answers with the copy this installation has. This module imports
nothing but the standard library: the build loads it without the service's dependencies.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

# The folder of package data inside the `service` package of a built wheel.
PACKAGED_DIR = "packaged"

# Folders and files of the repository the wheel carries (paths relative to its root).
TREES = ("hasura", "examples/events", "web/app")
FILES = (
    "schema.sql",
    "web/index.html",
    "web/package.json",
    "web/graphiql/index.html",
    "web/graphiql/start.js",
)

# GraphiQL's browser files: the URL name under `/graphiql/` → the file under
# `web/graphiql/node_modules/` (the packages `web/graphiql/package.json` installs). The
# licences go into the wheel with them.
GRAPHIQL_DIR = "web/graphiql"
GRAPHIQL_FILES = {
    "react.js": "react/umd/react.production.min.js",
    "react-dom.js": "react-dom/umd/react-dom.production.min.js",
    "graphiql.js": "graphiql/graphiql.min.js",
    "graphiql.css": "graphiql/graphiql.min.css",
}
GRAPHIQL_LICENSES = ("react/LICENSE", "react-dom/LICENSE", "graphiql/LICENSE")

# TypeScript declarations serve no browser (graphql's alone are ~1 MB).
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store", "*.d.ts")


class AssetsMissing(FileNotFoundError):
    """A file the service needs is in neither a built package nor a checkout."""


def checkout_root() -> Path:
    """The repository this code runs from (meaningful only in a checkout)."""
    return Path(__file__).resolve().parents[1]


def packaged_root() -> Path | None:
    """The wheel's copies (`service/packaged/`), or None when running from a checkout."""
    root = resources.files("service") / PACKAGED_DIR
    # A wheel is installed unpacked: its resources are files on disk.
    if isinstance(root, Path) and root.is_dir():
        return root
    return None


def root() -> Path:
    """The folder holding the assets: the wheel's copies, else the checkout."""
    return packaged_root() or checkout_root()


def path(relative: str) -> Path:
    """The file or folder `relative` (a repository path such as `hasura/metadata`).

    Raises `AssetsMissing` when this installation has no such file.
    """
    found = root() / relative
    if not found.exists():
        raise AssetsMissing(
            f"{found} does not exist: this installation of event-detector carries no "
            f"{relative!r} (install a wheel built with `make wheel`, or run from a checkout)"
        )
    return found


def default_path(relative: str) -> Path:
    """Like `path`, without checking that it exists (for settings' defaults)."""
    return root() / relative


def web_packages(web_dir: Path) -> list[str]:
    """The npm packages the web client imports: the dependencies of `web_dir/package.json`."""
    manifest = web_dir / "package.json"
    try:
        dependencies = json.loads(manifest.read_text(encoding="utf-8")).get("dependencies", {})
    except FileNotFoundError:
        return []
    return sorted(dependencies)


def graphiql_files(graphiql_dir: Path) -> dict[str, Path]:
    """The files GraphiQL's page loads from `graphiql_dir`, by their name under `/graphiql/`:
    the npm packages' and the page's own start script."""
    modules = graphiql_dir / "node_modules"
    files = {name: modules / relative for name, relative in GRAPHIQL_FILES.items()}
    files["start.js"] = graphiql_dir / "start.js"
    return files


def missing_for_bundle(source_root: Path) -> list[str]:
    """What `bundle` needs from `source_root` and does not find (empty when ready)."""
    web = source_root / "web"
    wanted = [*TREES, *FILES]
    wanted += [f"web/node_modules/{name}/package.json" for name in web_packages(web)]
    wanted += [f"{GRAPHIQL_DIR}/node_modules/{name}" for name in GRAPHIQL_FILES.values()]
    return [name for name in wanted if not (source_root / name).exists()]


def bundle(source_root: Path, target: Path) -> None:
    """Copy the assets of the checkout at `source_root` into `target` (`service/packaged/`
    of a build), in the checkout's layout.

    Raises `AssetsMissing` naming what is missing (for example the npm packages before
    `make web-deps`).
    """
    missing = missing_for_bundle(source_root)
    if missing:
        raise AssetsMissing(
            f"cannot bundle the service's assets, missing in {source_root}: "
            f"{', '.join(missing)} (run `make web-deps` first)"
        )
    if target.exists():
        shutil.rmtree(target)
    for tree in TREES:
        shutil.copytree(source_root / tree, target / tree, ignore=_SKIPPED)
    copies = list(FILES)
    web = source_root / "web"
    for name in web_packages(web):
        shutil.copytree(
            web / "node_modules" / name, target / "web" / "node_modules" / name, ignore=_SKIPPED
        )
    modules = f"{GRAPHIQL_DIR}/node_modules"
    copies += [f"{modules}/{name}" for name in (*GRAPHIQL_FILES.values(), *GRAPHIQL_LICENSES)]
    for relative in copies:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source_root / relative, destination)
