"""Throwaway databases on the test PostgreSQL server, for tests that migrate or run the CLI."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """An empty database (no migrations applied), dropped afterwards."""
    name = f"chatserver_tmp_{secrets.token_hex(4)}"
    admin_url = with_database(server_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def user_tables(url: str) -> set[str]:
    """Tables in the public schema, leaving out yoyo's bookkeeping."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows if not name.lstrip("_").startswith("yoyo")}


def schema_snapshot(url: str) -> list[tuple[str, ...]]:
    """Every column and index of the public schema, to compare two states of a database."""
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            """SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '')
               FROM information_schema.columns WHERE table_schema = 'public'
               ORDER BY table_name, column_name"""
        ).fetchall()
        indexes = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"
        ).fetchall()
    return [tuple(str(v) for v in row) for row in [*columns, *indexes] if "yoyo" not in str(row[0])]
