"""The build step that puts the service's assets into the wheel.

Everything else about the package is in pyproject.toml. Building a wheel copies the
Hasura metadata, `schema.sql`, the demo's event modules, the web client with its npm
packages and GraphiQL's files into `service/packaged/` (see `service/assets.py`, which
says what and where). The npm packages are installed first (`npm ci`) when missing. An
editable install copies nothing: it reads the checkout's own folders.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
NPM_PROJECTS = ("web", "web/graphiql")


def _assets() -> ModuleType:
    # Loaded from its file: the build environment has none of the service's dependencies.
    spec = importlib.util.spec_from_file_location("_assets", ROOT / "service" / "assets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _install_npm_packages() -> None:
    npm = shutil.which("npm")
    if npm is None:
        return  # `bundle` names what is missing
    for project in NPM_PROJECTS:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=ROOT / project,
            check=True,
        )


class BuildWithAssets(build_py):
    """`build_py`, then the service's assets into the build's `service/packaged/`."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        assets = _assets()
        if assets.missing_for_bundle(ROOT):
            _install_npm_packages()
        assets.bundle(ROOT, Path(self.build_lib) / "service" / assets.PACKAGED_DIR)


setup(cmdclass={"build_py": BuildWithAssets})
