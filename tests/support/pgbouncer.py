"""A throw-away PgBouncer in transaction pooling mode, in front of the test PostgreSQL.

Started like the test server (`pgserver.py`): Debian's `pgbouncer` (installed by
`scripts/ensure-system-deps`), run as the `postgres` OS user when the suite runs as root
(PgBouncer refuses root), on a free loopback port, with a configuration written to a
temporary directory. Few server connections (`pool_size`) serve many clients, so
statements of one client land on different server connections between transactions:
what breaks a client that keeps prepared statements.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.pgserver import PostgresUnavailable, _as_postgres, _wait_for_port, free_port


@dataclass(frozen=True)
class RunningPgBouncer:
    port: int

    def url_for(self, postgres_url: str) -> str:
        """`postgres_url` (a database on the test server) reached through the pooler."""
        parts = urlsplit(postgres_url)
        return parts._replace(netloc=f"{parts.username}@127.0.0.1:{self.port}").geturl()


def _pgbouncer() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    if found is None:
        raise PostgresUnavailable(
            "`pgbouncer` not found: install it (`make test` does, through "
            "scripts/ensure-system-deps)"
        )
    return found


@contextlib.contextmanager
def running_pgbouncer(postgres_url: str, *, pool_size: int = 3) -> Iterator[RunningPgBouncer]:
    """PgBouncer (pool_mode=transaction) in front of the server of `postgres_url`."""
    server = urlsplit(postgres_url)
    base = Path(tempfile.mkdtemp(prefix="event-detector-pgbouncer-"))
    port = free_port()
    (base / "users.txt").write_text(f'"{server.username}" ""\n')
    (base / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.hostname} port={server.port}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {base / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        "max_client_conn = 400\n"
        # Startup parameters PgBouncer does not track; drivers may send them.
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {base / 'pgbouncer.log'}\n"
        f"pidfile = {base / 'pgbouncer.pid'}\n"
    )
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        for child in base.iterdir():
            shutil.chown(child, "postgres", "postgres")
    started = subprocess.run(
        _as_postgres([_pgbouncer(), "-d", str(base / "pgbouncer.ini")]),
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        log = base / "pgbouncer.log"
        detail = log.read_text()[-1000:] if log.exists() else started.stderr
        raise PostgresUnavailable(f"pgbouncer did not start: {detail}")
    try:
        _wait_for_port(port)
        yield RunningPgBouncer(port)
    finally:
        pidfile = base / "pgbouncer.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().strip()), 15)
        shutil.rmtree(base, ignore_errors=True)
