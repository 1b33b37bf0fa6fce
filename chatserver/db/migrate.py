"""Schema migrations with yoyo (SQL files with rollbacks in ./migrations), under yoyo's lock."""

from __future__ import annotations

import logging
from pathlib import Path

from yoyo import get_backend, read_migrations

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"


def yoyo_url(database_url: str) -> str:
    """yoyo picks its driver from the scheme: psycopg 3 is `postgresql+psycopg`."""
    _scheme, rest = database_url.split("://", 1)
    return f"postgresql+psycopg://{rest}"


def apply_migrations(database_url: str, migrations_dir: Path = MIGRATIONS_DIR) -> int:
    """Apply every pending migration; returns how many were applied. Blocking: run in an executor."""
    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(migrations_dir))
    # yoyo's lock row serialises several instances starting at once against one database.
    with backend.lock(timeout=60):
        pending = backend.to_apply(migrations)
        if pending:
            log.info("applying %d migration(s): %s", len(pending), ", ".join(m.id for m in pending))
            backend.apply_migrations(pending)
    backend.connection.close()
    return len(pending)


def rollback_migrations(database_url: str, count: int | None = None, migrations_dir: Path = MIGRATIONS_DIR) -> int:
    """Roll back the newest `count` applied migrations (all of them when None)."""
    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(migrations_dir))
    with backend.lock(timeout=60):
        applied = backend.to_rollback(migrations)
        if count is not None:
            applied = applied[:count]
        if applied:
            backend.rollback_migrations(applied)
    backend.connection.close()
    return len(applied)
