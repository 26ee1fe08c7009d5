"""What a function loads: `import detector` and each writer's plugin, in fresh interpreters.

A serverless function pays for every module it imports on each cold start (issue 19):
the library loads no observability code, the plugin loads no SQLAlchemy, SQLModel,
alembic or pydantic, and each writer loads its driver (asyncpg, httpx; sqlite3 is the
standard library's) only when it first writes. Only an SQLite file that needs its schema
created or upgraded loads alembic and SQLAlchemy. Presence and absence, not time (the
times are in `bench/cold_start.py`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from service.settings import Settings
from tests.support import db
from tests.support.server import serving

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"sqlalchemy", "sqlmodel", "alembic", "pydantic"}
WATCHED = sorted(
    {
        *HEAVY,
        "asyncpg",
        "httpx",
        "tenacity",
        "detector.observability",
        "detector.observability.models",
        "detector.observability.migrate",
    }
)

CHILD = textwrap.dedent(
    """
    import json, sys

    WATCHED = {watched!r}

    def loaded():
        return sorted(name for name in WATCHED if name in sys.modules)

    import detector
    phases = {{"import detector": loaded()}}
    from detector import EventModule, listen_to_sync
    from detector.observability import ObservabilityPlugin

    plugin = ObservabilityPlugin(**{config!r}, serverless=True, handle_sigterm=False)
    phases["plugin built"] = loaded()
    result = listen_to_sync(
        {{"id": "1", "table": {{"schema": "public", "name": "orders"}},
          "trigger": {{"name": "orders"}},
          "event": {{"op": "INSERT", "data": {{"old": None, "new": {{"id": 1}}}}}}}},
        modules=[EventModule("orders.created", lambda name, event: True, lambda n, e: [])],
        plugins=[plugin],
    )
    stats = plugin.stats()
    assert stats["written"].get("invocations") == 1 and not stats["buffered_records"], stats
    phases["first invocation flushed"] = loaded()
    plugin.shutdown_sync(5)
    print(json.dumps(phases))
    """
)


def _phases(config: dict[str, Any], cwd: Path) -> dict[str, list[str]]:
    script = CHILD.format(watched=WATCHED, config=config)
    finished = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


@pytest.fixture
def graphql_store(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    db.run(db.prepare_database(url))
    with serving(Settings(database_url=url)) as server:
        yield server.graphql_url


@pytest.mark.parametrize("writer", ["sqlite", "postgresql", "graphql"])
def test_each_writers_plugin_loads_its_driver_at_its_first_write_and_nothing_heavy(
    writer: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if writer == "sqlite":
        config = {"database_url": f"sqlite:///{tmp_path / 'store.db'}"}
        db.run(db.prepare_database(config["database_url"]))
        driver = None
    elif writer == "postgresql":
        config = {"database_url": str(request.getfixturevalue("postgres_url"))}
        db.run(db.prepare_database(config["database_url"]))
        driver = "asyncpg"
    else:
        config = {"graphql_url": str(request.getfixturevalue("graphql_store"))}
        driver = "httpx"

    phases = _phases(config, tmp_path)

    # The library alone loads no observability code and nothing it can do without.
    assert phases["import detector"] == []
    # Building the plugin loads the plugin, not its store's driver, nor any ORM.
    assert phases["plugin built"] == ["detector.observability"]
    # The first write loads the writer's driver, still no ORM, models or migrations.
    assert phases["first invocation flushed"] == sorted(
        {"detector.observability", *([driver] if driver else [])}
    )


def test_an_sqlite_file_that_needs_its_schema_is_the_one_case_that_loads_alembic(
    tmp_path: Path,
) -> None:
    phases = _phases({"database_url": f"sqlite:///{tmp_path / 'new' / 'store.db'}"}, tmp_path)
    assert not HEAVY & set(phases["plugin built"])
    assert {"alembic", "sqlalchemy", "detector.observability.migrate"} <= set(
        phases["first invocation flushed"]
    )
