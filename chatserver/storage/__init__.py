"""Where attachment bytes live: a small interface with two implementations, the local filesystem
under the data folder (the default) and S3-compatible object storage (shared by instances)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Protocol

# Chunk size for reading a stored file back (serving it).
READ_CHUNK = 256 * 1024


class StorageError(Exception):
    """The storage backend failed (disk full, object store unreachable)."""


class AttachmentStorage(Protocol):
    async def save(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        """Store the bytes `chunks` yields under `key`, as they come (memory stays bounded
        whatever the size); returns the size. An exception from `chunks` (too large, client
        gone) propagates, and nothing is left under `key`."""
        ...

    def read(self, key: str) -> AsyncGenerator[bytes, None]:
        """The stored bytes, in chunks. Raises FileNotFoundError when there is no such key."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key`; no error when it is already gone."""
        ...

    async def close(self) -> None: ...
