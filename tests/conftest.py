"""Fixtures shared by the whole suite: real PostgreSQL and SQLite databases.

Every test that needs PostgreSQL talks to a server this suite starts itself (see
`tests/support/pgserver.py`); if it cannot start, those tests fail with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import db
from tests.support.pgserver import running_postgres

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL database on which the suite may create databases."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    with running_postgres() as server:
        yield server.url()


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped after the test)."""
    url = db.run(db.create_postgres_database(postgres_admin_url))
    try:
        yield url
    finally:
        db.run(db.drop_postgres_database(postgres_admin_url, url))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A path for a fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'observability.db'}"


@pytest.fixture(scope="module")
def module_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database shared by one test module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'observability.db'}"
    db.run(db.prepare_database(url))
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_db_url(backend: str, request: pytest.FixtureRequest) -> str:
    """An empty database on each backend in turn (the test runs once per backend)."""
    fixture = "sqlite_url" if backend == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A database with the observability schema, on each backend in turn."""
    db.run(db.prepare_database(empty_db_url))
    return empty_db_url


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES_DIR


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn, for modules that share one database per backend."""
    return str(request.param)


@pytest.fixture(scope="module")
def module_db_url(
    module_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database with the observability schema shared by one test module, per backend."""
    with db.database_for(module_backend, request, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's) driven by Playwright, for one test module.

    Module scope, not session: Playwright's sync API keeps an event loop running in the
    main thread while it is started, which would break every later test that runs its
    own loop (asyncio.run, pytest-asyncio)."""
    from tests.support.browser import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture(scope="session")
def web_dataset(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The web client's data (SQLite, written by the real library and plugin), built once
    for every browser module that reads it (see tests/support/webdata.py)."""
    from tests.support.webdata import build_dataset

    return build_dataset(f"sqlite:///{tmp_path_factory.mktemp('web') / 'web.db'}")


@pytest.fixture(scope="session")
def web_server(web_dataset: Any) -> Iterator[Any]:
    """The service (API and web client) on `web_dataset`, shared like it."""
    from service.settings import Settings
    from tests.support.server import serving

    with serving(Settings(database_url=web_dataset.url, rollup_interval=0)) as running:
        yield running


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    """A fresh browser tab at 1440 x 900; the test fails on any console or page error."""
    from tests.support.browser import checked_tab

    with checked_tab(browser) as opened:
        yield opened
