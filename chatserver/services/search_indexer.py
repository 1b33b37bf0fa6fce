"""The search indexer: a background task of every instance that appends new messages' words to
their tickets' search documents (migration 0019, chatserver/db/search.py INDEX_PENDING), off the
message write path. Passes of several instances take turns through an advisory lock; a search
also reads the messages a pass has not reached yet, so nothing waits for it to be found."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from ..db import search as search_db

log = logging.getLogger(__name__)

# Tickets per pass (one transaction): a pass stays a few milliseconds, and a backlog (after a
# restart, an import) is worked through in back-to-back passes.
BATCH = 500
# The sweep looks at every ticket, not just the recently active ones: at start-up and then every
# this many seconds. It catches what the activity window cannot see (a message transaction open
# for longer than the window's slack, messages stored by hand) and costs one read of the tickets.
SWEEP_EVERY_SECONDS = 300.0


async def index_until_caught_up(pool: asyncpg.Pool, *, sweep: bool = False, batch: int = BATCH) -> int:
    """Passes until one leaves nothing behind (or another instance holds the turn): tickets done."""
    total = 0
    while True:
        done = await search_db.index_pending(pool, batch, sweep=sweep)
        if done is None:
            return total
        total += done
        if done < batch:
            return total


async def indexer_loop(pool: asyncpg.Pool, every: float) -> None:
    """Runs on every instance until cancelled: a pass every `every` seconds, a sweep now and then."""
    next_sweep = 0.0
    while True:
        try:
            sweep = time.monotonic() >= next_sweep
            done = await index_until_caught_up(pool, sweep=sweep)
            if sweep:
                next_sweep = time.monotonic() + SWEEP_EVERY_SECONDS
            if done >= BATCH:
                log.info("search indexer: %d tickets' documents updated", done)
        except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
            log.warning("search indexer failed (%s); trying again later", type(exc).__name__)
        await asyncio.sleep(every)
