"""Attachments in S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, ...): what several
instances share. Uses aiobotocore (pinned in requirements.txt): botocore's request signing,
retries, checksums and error parsing over aiohttp, the HTTP stack this server already runs on.
Signing S3 requests by hand would be a second copy of SigV4, multipart and error handling to get
right; a thread-pool boto3 would park a thread per transfer (docs/operations.md, "Attachments").

Uploads stream: up to S3_PART_BYTES are buffered, then sent as one part of a multipart upload,
so memory per upload is one part whatever the file size; a file smaller than one part goes as a
single PUT.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from . import READ_CHUNK, StorageError

# S3's smallest allowed part (except the last): the memory one upload may hold.
S3_PART_BYTES = 5 * 1024 * 1024


class S3Storage:
    def __init__(self, client: Any, stack: AsyncExitStack, bucket: str, prefix: str) -> None:
        self._client = client
        self._stack = stack
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    async def connect(
        cls,
        *,
        bucket: str,
        prefix: str,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        addressing_style: str = "auto",
    ) -> S3Storage:
        stack = AsyncExitStack()
        config = AioConfig(
            s3={"addressing_style": addressing_style},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )
        client = await stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=config,
            )
        )
        return cls(client, stack, bucket, prefix)

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def save(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        buffer = bytearray()
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                size += len(chunk)
                buffer += chunk
                if len(buffer) >= S3_PART_BYTES:
                    if upload_id is None:
                        created = await self._client.create_multipart_upload(
                            Bucket=self.bucket, Key=self._key(key), ContentType=content_type
                        )
                        upload_id = created["UploadId"]
                    part = bytes(buffer[:S3_PART_BYTES])
                    del buffer[:S3_PART_BYTES]
                    answer = await self._client.upload_part(
                        Bucket=self.bucket,
                        Key=self._key(key),
                        UploadId=upload_id,
                        PartNumber=len(parts) + 1,
                        Body=part,
                    )
                    parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})
            if upload_id is None:
                await self._client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=bytes(buffer), ContentType=content_type
                )
                return size
            if buffer:
                answer = await self._client.upload_part(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    UploadId=upload_id,
                    PartNumber=len(parts) + 1,
                    Body=bytes(buffer),
                )
                parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})
            await self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            upload_id = None
            return size
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"object storage refused the upload: {exc}") from exc
        finally:
            if upload_id is not None:
                # An unfinished multipart upload keeps its parts (and their cost) until aborted.
                try:
                    await self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=self._key(key), UploadId=upload_id
                    )
                except (BotoCoreError, ClientError):
                    pass  # the bucket's lifecycle rule for stale multipart uploads is the backstop

    async def read(self, key: str) -> AsyncGenerator[bytes, None]:
        try:
            answer = await self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from None
            raise StorageError(f"object storage refused the download: {exc}") from exc
        async with answer["Body"] as body:
            async for chunk in body.iter_chunks(READ_CHUNK):
                yield chunk

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"object storage refused the delete: {exc}") from exc

    async def close(self) -> None:
        await self._stack.aclose()
