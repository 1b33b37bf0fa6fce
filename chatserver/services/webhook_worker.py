"""`python -m chatserver webhook-worker`: a process that only delivers webhooks.

Every serving instance delivers by default. At high message rates the signed POSTs (one per
event and endpoint) compete with the message path for the same cores, so a deployment can set
WEBHOOK_DELIVERY=off on the instances that serve clients and run one or more of these on other
cores or machines, or at a lower CPU priority (`nice`). They share the work with each other and
with any instance still delivering through the same rows and locks (SKIP LOCKED claims, a lease,
the fan-out position row), so nothing is sent twice at the same time and a killed worker's claims
lapse to another (docs/integrations.md, "Delivery workers").

It has no sockets to be nudged by: it finds new events by polling (services/webhooks.py,
IDLE_POLL_SECONDS), which bounds the extra latency at about half a second.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from ..settings import Settings
from .webhooks import WebhookDispatcher, delivery_pool

log = logging.getLogger(__name__)


async def run_webhook_worker(settings: Settings, database_url: str, stop: asyncio.Event | None = None) -> None:
    """Deliver until `stop` is set, or until SIGTERM/SIGINT when it is not given."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    pool = await delivery_pool(database_url)
    dispatcher = WebhookDispatcher.from_settings(pool, settings)
    dispatcher.start()
    log.info("webhook worker delivering (up to %d in flight)", settings.webhook_workers)
    try:
        await stop.wait()
    finally:
        # Claims still in flight lapse after their lease and are sent again (at least once).
        await dispatcher.close()
        await pool.close()
    log.info("webhook worker stopped after %d attempts", dispatcher.sent)
