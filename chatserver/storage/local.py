"""Attachments on the local filesystem, under DATA_DIR/attachments (one instance, or a shared
volume). Disk I/O runs in the default executor so a slow disk never blocks the event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

from . import READ_CHUNK


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # Keys are made by the server (uuid hex): never a client's file name. Checked anyway, so
        # a key can only name a file directly under root.
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise ValueError(f"bad storage key {key!r}")
        return self.root / key[:2] / key

    async def save(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        loop = asyncio.get_running_loop()
        path = self._path(key)
        tmp = path.with_name(f".{key}.part")
        await loop.run_in_executor(None, lambda: path.parent.mkdir(parents=True, exist_ok=True))
        fh = await loop.run_in_executor(None, open, tmp, "wb")
        size = 0
        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    await loop.run_in_executor(None, fh.write, chunk)
            finally:
                await loop.run_in_executor(None, fh.close)
            # Complete files only appear under their key.
            await loop.run_in_executor(None, os.replace, tmp, path)
        except BaseException:
            await loop.run_in_executor(None, lambda: tmp.unlink(missing_ok=True))
            raise
        return size

    async def read(self, key: str) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        fh = await loop.run_in_executor(None, open, self._path(key), "rb")
        try:
            while chunk := await loop.run_in_executor(None, fh.read, READ_CHUNK):
                yield chunk
        finally:
            await loop.run_in_executor(None, fh.close)

    async def delete(self, key: str) -> None:
        path = self._path(key)

        def remove() -> None:
            path.unlink(missing_ok=True)
            # An instance killed mid-upload leaves its partial file behind.
            path.with_name(f".{key}.part").unlink(missing_ok=True)

        await asyncio.get_running_loop().run_in_executor(None, remove)

    async def close(self) -> None:
        return None
