"""The attachments' cleanup context: the storage backend chosen by the settings, the per-user
upload budget, and the periodic sweep of orphaned uploads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from ..keys import ATTACHMENT_STORAGE, DB_POOL, SETTINGS, UPLOAD_BANDWIDTH, UPLOAD_THROTTLE
from ..services.attachments import UploadBandwidth, sweep_orphans
from ..services.throttle import Throttle
from ..settings import Settings
from . import AttachmentStorage, StorageError
from .local import LocalStorage

log = logging.getLogger(__name__)


async def open_storage(settings: Settings) -> AttachmentStorage:
    if settings.s3_bucket is None:
        return LocalStorage(settings.data_dir / "attachments")
    from .s3 import S3Storage

    return await S3Storage.connect(
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
        addressing_style=settings.s3_addressing_style,
    )


async def _sweep_forever(pool: asyncpg.Pool, storage: AttachmentStorage, settings: Settings) -> None:
    while True:
        try:
            deleted = await sweep_orphans(pool, storage, settings.attachment_orphan_seconds)
            if deleted:
                log.info("deleted %d orphaned attachment(s)", deleted)
        except (asyncpg.PostgresError, OSError, StorageError) as exc:
            log.warning("the orphaned-attachment sweep failed (%s); trying again later", type(exc).__name__)
        await asyncio.sleep(settings.attachment_cleanup_interval_seconds)


async def attachments_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    storage = await open_storage(settings)
    app[ATTACHMENT_STORAGE] = storage
    app[UPLOAD_BANDWIDTH] = UploadBandwidth(settings.attachment_instance_bytes_per_second)
    app[UPLOAD_THROTTLE] = Throttle(settings.attachment_uploads_per_window, settings.attachment_upload_window_seconds)
    sweeper = asyncio.create_task(_sweep_forever(app[DB_POOL], storage, settings), name="attachment-sweep")
    try:
        yield
    finally:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)
        await storage.close()
