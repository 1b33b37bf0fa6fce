"""Migrations on a throwaway database: apply, roll back everything, apply again."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from chatserver.db.migrate import MIGRATIONS_DIR, apply_migrations, rollback_migrations

from .dbutil import schema_snapshot, throwaway_database, user_tables

APP_TABLES = {"users", "tickets", "messages"}


@pytest.fixture
def empty_db(server_url: str) -> Iterator[str]:
    with throwaway_database(server_url) as url:
        yield url


def migration_ids() -> list[str]:
    return sorted(
        p.name.removesuffix(".sql") for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql")
    )


def test_every_migration_has_a_rollback() -> None:
    assert migration_ids(), "no migrations found"
    for migration in migration_ids():
        assert (MIGRATIONS_DIR / f"{migration}.rollback.sql").is_file(), f"{migration} has no rollback"


def test_up_down_up(empty_db: str) -> None:
    count = len(migration_ids())
    assert user_tables(empty_db) == set()

    assert apply_migrations(empty_db) == count
    assert user_tables(empty_db) >= APP_TABLES
    first = schema_snapshot(empty_db)
    assert apply_migrations(empty_db) == 0, "applying twice must be a no-op"

    assert rollback_migrations(empty_db) == count
    assert user_tables(empty_db) == set(), "rolling everything back must leave no table behind"

    assert apply_migrations(empty_db) == count
    assert schema_snapshot(empty_db) == first, "the schema after down-and-up must equal the first one"


def test_rolling_back_one_at_a_time(empty_db: str) -> None:
    count = apply_migrations(empty_db)
    for remaining in range(count, 0, -1):
        assert rollback_migrations(empty_db, 1) == 1
        with psycopg.connect(empty_db) as conn:
            applied = conn.execute("SELECT count(*) FROM _yoyo_migration").fetchone()
        assert applied is not None and applied[0] == remaining - 1
    assert rollback_migrations(empty_db, 1) == 0
    assert user_tables(empty_db) == set()


def test_the_schema_enforces_its_rules(empty_db: str) -> None:
    """A few constraints the application relies on, checked at the database itself."""
    apply_migrations(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("INSERT INTO users (email, password_hash, role) VALUES ('a@x.io', 'h', 'customer')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO users (email, password_hash, role) VALUES ('A@X.IO', 'h', 'customer')")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO users (email, password_hash, role) VALUES ('b@x.io', 'h', 'root')")
        (user_id,) = conn.execute("SELECT id FROM users").fetchone() or (None,)
        (ticket_id,) = conn.execute(
            "INSERT INTO tickets (customer_id, subject) VALUES (%s, 's') RETURNING id", (user_id,)
        ).fetchone() or (None,)
        insert = (
            "INSERT INTO messages (ticket_id, seq, author_id, author_kind, body, client_id)"
            " VALUES (%s, %s, %s, 'customer', 'b', %s)"
        )
        conn.execute(insert, (ticket_id, 1, user_id, "c1"))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, (ticket_id, 1, user_id, None))  # seq is unique per ticket
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, (ticket_id, 2, user_id, "c1"))  # client_id is unique per author and ticket
