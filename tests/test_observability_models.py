"""The observability models live on their own MetaData: a host application that uses
SQLModel, with tables of its own (an `invocations` among them), imports and runs the
plugin and the service, and our tables never appear in the host's `create_all()`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HOST_APP = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {root!r})

    # The host application's own models, on SQLModel's process-wide metadata, defined
    # before anything of ours is imported.
    from sqlmodel import Field, SQLModel, create_engine

    class Invocation(SQLModel, table=True):
        __tablename__ = "invocations"
        id: int | None = Field(default=None, primary_key=True)
        note: str

    from detector import EventModule, listen_to_sync
    from detector.observability import ObservabilityPlugin
    from tests.support.library import hasura_payload

    plugin = ObservabilityPlugin({store!r}, handle_sigterm=False)
    result = listen_to_sync(
        hasura_payload(),
        modules=[EventModule("orders.shipped", lambda name, event: True, lambda n, e: [])],
        plugins=[plugin],
    )
    assert plugin.force_flush(10), plugin.stats()

    import sqlalchemy as sa
    host = create_engine({host!r})
    SQLModel.metadata.create_all(host)
    tables = {{
        name: sorted(c["name"] for c in sa.inspect(host).get_columns(name))
        for name in sa.inspect(host).get_table_names()
    }}

    from service.settings import Settings
    from tests.support.server import serving

    with serving(Settings(database_url={store!r})) as server:
        served = server.post("{{ invocations {{ id }} }}")
    plugin.shutdown_sync(5)
    print(json.dumps({{"invocation_id": result.invocation_id, "host_tables": tables,
                      "served": served}}))
    """
)


def test_a_host_sqlmodel_app_with_its_own_invocations_table_runs_the_plugin_and_service(
    tmp_path: Path,
) -> None:
    script = HOST_APP.format(
        root=str(ROOT),
        store=f"sqlite:///{tmp_path / 'observability.db'}",
        host=f"sqlite:///{tmp_path / 'host.db'}",
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    # The host's create_all() made its own table only, with its own columns.
    assert report["host_tables"] == {"invocations": ["id", "note"]}
    # Our invocation went to our store, and the service serves it from there.
    assert report["served"] == {"data": {"invocations": [{"id": report["invocation_id"]}]}}
