"""Attachments: uploads streamed to storage after their bytes are checked, who may read them, the
ids a message references, and the sweep of uploads never attached to a message."""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from ..db import attachments as attachments_db
from ..errors import ApiError, not_found, too_many_requests, validation_error
from ..security import Identity
from ..settings import Settings
from ..storage import AttachmentStorage, StorageError
from ..views import attachment_view
from .filetypes import SNIFF_BYTES, sniff
from .throttle import Throttle

log = logging.getLogger(__name__)

# Orphans deleted per transaction by the sweep.
SWEEP_BATCH = 100
MAX_FILENAME_CHARS = 255
# The upload bandwidth budget's burst: a quarter second's worth. A whole second's (32 MiB at the
# default) read in one go held the event loop up to ~100 ms (loop-lag probe beside uploads).
BANDWIDTH_BURST_SECONDS = 0.25


@dataclass(frozen=True)
class AttachmentPolicy:
    """The limits of docs/operations.md, "Attachments"."""

    max_bytes: int
    per_message: int
    allowed_types: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> AttachmentPolicy:
        return cls(
            settings.attachment_max_bytes,
            settings.attachments_per_message,
            frozenset(settings.attachment_allowed_types),
        )


class UploadBandwidth:
    """All uploads on this instance together read at most `bytes_per_second` (0: no limit), with
    up to BANDWIDTH_BURST_SECONDS' worth at once. Receiving a file costs the event loop CPU per byte
    (docs/performance.md, "Attachments beside the message path"), so this bounds the share of it
    uploads can take from messages, however many arrive at once. An upload over budget simply
    reads later: TCP slows its sender, and nothing is buffered meanwhile."""

    def __init__(self, bytes_per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(bytes_per_second)
        self.clock = clock
        self.burst = self.rate * BANDWIDTH_BURST_SECONDS
        self.tokens = self.burst
        self.stamp = clock()

    def reserve(self, size: int) -> float:
        """Account for `size` bytes just read; returns the seconds to wait before reading more."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate) - size
        self.stamp = now
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def too_large(max_bytes: int) -> ApiError:
    mib = max_bytes / (1024 * 1024)
    limit = f"{mib:g} MiB" if mib >= 1 else f"{max_bytes} bytes"
    return ApiError(413, "attachment_too_large", f"Files may be at most {limit}", details={"max_bytes": max_bytes})


def type_refused(reason: str) -> ApiError:
    return ApiError(415, "attachment_type_not_allowed", reason)


def attachments_unavailable() -> ApiError:
    return ApiError(
        422,
        "attachment_unavailable",
        "An attachment is not one of your uploads into this ticket, or is already part of another message",
    )


def parse_attachment_ids(raw: Any, limit: int) -> list[uuid.UUID]:
    """`attachment_ids` from message.send or POST /tickets/{id}/messages: distinct UUIDs, at most
    `limit` (ATTACHMENTS_PER_MESSAGE), in the order given."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise validation_error(
            "attachment_ids must be a list of attachment ids", details={"fields": {"attachment_ids": "must be a list"}}
        )
    if len(raw) > limit:
        raise ApiError(
            422,
            "too_many_attachments",
            f"A message may carry at most {limit} attachments",
            details={"max_attachments": limit},
        )
    ids: list[uuid.UUID] = []
    for value in raw:
        try:
            ids.append(uuid.UUID(value) if isinstance(value, str) else uuid.UUID(""))
        except ValueError:
            raise validation_error(
                "attachment_ids must hold attachment ids (UUIDs)",
                details={"fields": {"attachment_ids": "must hold UUIDs"}},
            ) from None
    return list(dict.fromkeys(ids))


def clean_filename(raw: str | None) -> str:
    """A display name: the last path segment, no control characters, at most 255 characters.
    Only shown and put in Content-Disposition; the stored object's key is the server's own."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().lstrip(".")
    return name[:MAX_FILENAME_CHARS] or "file"


async def _head_and_rest(chunks: AsyncIterator[bytes]) -> tuple[bytes, bool]:
    """Read at least SNIFF_BYTES (or everything, if the file is shorter). Returns (head, complete)."""
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            return bytes(head), False
    return bytes(head), True


async def upload(
    pool: asyncpg.Pool,
    storage: AttachmentStorage,
    policy: AttachmentPolicy,
    throttle: Throttle,
    who: Identity,
    ticket_id: uuid.UUID,
    *,
    filename: str | None,
    declared_type: str | None,
    chunks: AsyncIterator[bytes],
) -> dict[str, Any]:
    """Check the caller's upload budget and the file's type (from its first bytes), then stream
    it to storage, refusing it as soon as it grows past the size limit. Memory per upload is
    the sniffed head plus one chunk (plus one S3 part with object storage)."""
    key = str(who.user_id)
    wait = throttle.retry_after(key)
    if wait > 0:
        raise too_many_requests("Uploading too fast; retry after Retry-After seconds", wait)
    throttle.record_failure(key)  # every attempt counts: a refused file cost us its bytes too

    name = clean_filename(filename)
    head, complete = await _head_and_rest(chunks)
    if not head:
        raise validation_error("The file is empty", details={"fields": {"file": "must not be empty"}})
    if len(head) > policy.max_bytes:
        raise too_large(policy.max_bytes)
    sniffed = sniff(head, name, declared_type, complete=complete)
    if sniffed.content_type is None:
        raise type_refused(sniffed.problem)
    if sniffed.content_type not in policy.allowed_types:
        raise type_refused(f"Files of type {sniffed.content_type} are not accepted here")

    storage_key = uuid.uuid4().hex
    row = await attachments_db.insert_upload(
        pool,
        ticket_id=ticket_id,
        uploader_id=who.user_id,
        owner_id=None if who.is_staff else who.user_id,
        filename=name,
        storage_key=storage_key,
    )
    if row is None:
        raise not_found("Ticket")

    async def checked_chunks() -> AsyncIterator[bytes]:
        size = len(head)
        yield head
        if complete:
            return
        async for chunk in chunks:
            size += len(chunk)
            if size > policy.max_bytes:
                raise too_large(policy.max_bytes)
            yield chunk

    try:
        size = await storage.save(storage_key, checked_chunks(), sniffed.content_type)
        stored = await attachments_db.mark_stored(pool, row["id"], sniffed.content_type, size)
    except BaseException as exc:
        await _forget_upload(pool, storage, row["id"], storage_key)
        if isinstance(exc, StorageError):
            log.error("attachment storage failed: %s", exc)
            raise ApiError(503, "storage_unavailable", "The file could not be stored; try again later") from None
        raise
    if stored is None:  # the ticket was deleted meanwhile (cascade)
        await storage.delete(storage_key)
        raise not_found("Ticket")
    return attachment_view(stored)


async def _forget_upload(pool: asyncpg.Pool, storage: AttachmentStorage, attachment_id: uuid.UUID, key: str) -> None:
    """Best effort after a failed upload; whatever is left is an orphan the sweep removes."""
    try:
        await asyncio.shield(storage.delete(key))
        await asyncio.shield(attachments_db.delete(pool, attachment_id))
    except (StorageError, OSError, asyncpg.PostgresError, asyncio.CancelledError) as exc:
        log.warning("could not remove a failed upload (%s); the orphan sweep will", type(exc).__name__)


def may_read(row: asyncpg.Record, who: Identity) -> bool:
    """Customer owner and staff, once the attachment belongs to a message (internal notes' to
    staff only); before that, only its uploader."""
    if row["state"] != "stored":
        return False
    if row["message_id"] is None:
        return row["uploader_id"] == who.user_id
    if who.is_staff:
        return True
    return row["customer_id"] == who.user_id and row["visibility"] == "public"


async def readable(pool: asyncpg.Pool, who: Identity, attachment_id: uuid.UUID) -> asyncpg.Record:
    """The attachment's row, when `who` may read it; else 404 (as if it did not exist)."""
    row = await attachments_db.get_readable(pool, attachment_id)
    if row is None or not may_read(row, who):
        raise not_found("Attachment")
    return row


async def sweep_orphans(pool: asyncpg.Pool, storage: AttachmentStorage, older_than_seconds: float) -> int:
    """Delete uploads never attached to a message and older than `older_than_seconds`, their
    stored bytes first. Safe with sweeps on other instances (SKIP LOCKED) and with messages
    linking an upload at the same moment (they lock the row: one of the two waits). Returns how
    many were deleted."""
    deleted = 0
    older_than = timedelta(seconds=older_than_seconds)
    while True:
        async with pool.acquire() as conn, conn.transaction():
            claimed = await attachments_db.claim_orphans(conn, older_than, SWEEP_BATCH)
            gone: list[uuid.UUID] = []
            for orphan in claimed:
                try:
                    await storage.delete(orphan["storage_key"])
                except (StorageError, OSError) as exc:
                    log.warning("could not delete orphaned attachment %s: %s", orphan["id"], exc)
                    continue
                gone.append(orphan["id"])
            await attachments_db.delete_orphans(conn, gone)
        deleted += len(gone)
        if len(claimed) < SWEEP_BATCH or not gone:
            return deleted
