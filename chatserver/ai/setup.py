"""The AI cleanup context: one Groq client per app (or the offline responder), the reply service
wired in as the message hook and app[AI], and its hub observer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import web

from ..keys import AI, AI_SERVICE, DB_POOL, HUB, MESSAGE_HOOK, PUBLISHER, SETTINGS
from ..services.demo_shop import demo_base_url, seed_demo_action
from ..settings import Settings
from .groq_client import create_groq_client
from .knowledge import load_sample_once
from .orphans import OrphanSweeper
from .service import AiService

log = logging.getLogger(__name__)


async def _load_sample(service: AiService, folder: Path) -> None:
    """The sample knowledge base on a first start (KB_SAMPLE_DIR); a failure only costs the sample."""
    try:
        loaded = await load_sample_once(service.pool, folder, service.knowledge.embedder)
    except (OSError, asyncpg.PostgresError) as exc:
        log.warning("could not load the sample knowledge base from %s: %s", folder, exc)
        return
    if loaded is not None:
        log.info("knowledge base: loaded %d sample articles from %s (once; delete them freely)", loaded, folder)


async def _prepare_knowledge(service: AiService, settings: Settings) -> None:
    """The handoff classifier (trained in under a second), MiniLM's weights (about a second) and,
    on a first start, the sample knowledge base (every section through MiniLM: seconds). In the
    background: the server listens meanwhile; a message that needs the detector first waits for
    it, and a question asked before the sample is in is answered from what is (docs/ai.md)."""
    await service.handoff.load()
    await service.knowledge.embedder.load()
    if settings.kb_sample_dir is not None:
        await _load_sample(service, settings.kb_sample_dir)


async def _seed_demo_action(service: AiService, settings: Settings) -> None:
    """The demo action against the demo shop's order API (DEMO_SHOP); a failure only costs it."""
    try:
        await seed_demo_action(
            service.pool,
            service.tools.box,
            settings.actions_secret_key,
            demo_base_url(settings.host, settings.port),
        )
    except asyncpg.PostgresError as exc:
        log.warning("could not register the demo AI action: %s", exc)


async def ai_ctx(app: web.Application) -> AsyncIterator[None]:
    """Runs after the database and realtime contexts (it needs the pool and the hub)."""
    settings = app[SETTINGS]
    client = create_groq_client(settings)
    service = AiService(
        pool=app[DB_POOL],
        settings=settings,
        # Looked up on each publish: the publisher is whatever the realtime context installed.
        publisher=lambda: app[PUBLISHER],
        groq=client,
    )
    await service.embedder.load()
    knowledge_ready = asyncio.get_running_loop().create_task(
        _prepare_knowledge(service, settings), name="ai-knowledge-ready"
    )
    service.knowledge_ready = knowledge_ready
    if settings.demo_shop:
        await _seed_demo_action(service, settings)
    hub = app.get(HUB)
    if hub is not None:
        # Every event from every instance: cross-instance cancellation and reply tracking.
        hub.add_observer(service.observe)
        service.feed_tracker_directly = False
    app[AI_SERVICE] = service
    app[AI] = service
    app[MESSAGE_HOOK] = service.on_message
    if client is None:
        log.info("AI: no GROQ_API_KEY, the offline knowledge-base responder answers")
    else:
        log.info(
            "AI: Groq model %s%s",
            settings.groq_model,
            f" at {settings.groq_base_url}" if settings.groq_base_url else "",
        )
    # Every instance sweeps: whichever survives (or restarts) takes over a dead one's replies.
    sweeper = OrphanSweeper(service, hub, settings.ai_sweep_interval_seconds)
    sweep = asyncio.get_running_loop().create_task(sweeper.run(), name="ai-orphan-sweeper")
    try:
        yield
    finally:
        # A sample load cut short rolls back whole (flag included): the next start loads it.
        for task in (sweep, knowledge_ready):
            task.cancel()
        await asyncio.wait({sweep, knowledge_ready})
        await service.close()
        if client is not None:
            await client.close()
