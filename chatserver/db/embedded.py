"""A private PostgreSQL under the data directory, for running with no DATABASE_URL.

Uses the `pgserver` wheel, which bundles PostgreSQL binaries. When run as root, pgserver runs
initdb and postgres as a dedicated system user named `pgserver` (PostgreSQL refuses to run as
root), creating that user if needed and making the data directory's parent folders traversable.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

EMBEDDED_DB_NAME = "chatserver"


@contextmanager
def embedded_postgres(data_dir: Path, *, delete_on_exit: bool = False) -> Iterator[str]:
    """Start (or reuse) the embedded server and yield a URL to its `chatserver` database."""
    with warnings.catch_warnings():
        # pgserver keeps a lock file (and, when pgdata's path is too long, the socket) under the
        # user's runtime dir; without XDG_RUNTIME_DIR (root, containers, CI) platformdirs falls
        # back to /tmp/runtime-<uid> and warns about it on every start. The fallback is fine.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
        import pgserver

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    log.info("starting embedded PostgreSQL in %s", pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode="delete" if delete_on_exit else "stop")
    try:
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DB_NAME}';")
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {EMBEDDED_DB_NAME};")
        # The URL names the socket folder in ?host=; asyncpg and psycopg both accept that form.
        yield server.get_uri(EMBEDDED_DB_NAME)
    finally:
        log.info("stopping embedded PostgreSQL")
        server.cleanup()
        log.info("embedded PostgreSQL stopped")
