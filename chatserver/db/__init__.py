"""Database access: the pool, the embedded PostgreSQL, migrations, and one query module per area."""

from typing import TypeAlias

import asyncpg

# Query functions accept the pool (one statement, autocommit) or a connection (inside a transaction).
Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool
