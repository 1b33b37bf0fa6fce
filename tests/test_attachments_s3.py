"""The S3 attachment backend against a real S3-compatible server: moto's standalone server
(`moto_server`, an HTTP server speaking the S3 API) started on loopback by these tests."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from aiohttp.test_utils import TestClient

from chatserver.keys import ATTACHMENT_STORAGE, DB_POOL
from chatserver.services.attachments import sweep_orphans
from chatserver.settings import Settings
from chatserver.storage.s3 import S3_PART_BYTES, S3Storage

from .attachment_files import pdf, png
from .conftest import MakeUser, create_ticket
from .services import free_port, wait_for_port

MAX_BYTES = 3 * S3_PART_BYTES
PREFIX = "files/"
KEYS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def _moto_server() -> str:
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(exe).exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    return exe


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen([_moto_server(), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
async def s3(s3_endpoint: str) -> AsyncIterator[Any]:
    async with get_session().create_client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **KEYS) as c:
        yield c


@pytest.fixture
async def bucket(s3: Any) -> str:
    name = f"chatserver-{uuid.uuid4().hex[:12]}"
    await s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def settings(settings: Settings, s3_endpoint: str, bucket: str) -> Settings:
    return settings.with_overrides(
        attachment_max_bytes=MAX_BYTES,
        s3_bucket=bucket,
        s3_endpoint_url=s3_endpoint,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        s3_prefix=PREFIX,
        s3_addressing_style="path",
    )


async def objects(s3: Any, bucket: str) -> dict[str, int]:
    listing = await s3.list_objects_v2(Bucket=bucket)
    return {o["Key"]: o["Size"] for o in listing.get("Contents", [])}


async def upload(client: TestClient, headers: dict[str, str], ticket_id: str, data: bytes, name: str) -> Any:
    payload = aiohttp.FormData()
    payload.add_field("file", data, filename=name, content_type="application/octet-stream")
    resp = await client.post(f"/tickets/{ticket_id}/attachments", data=payload, headers=headers)
    return resp.status, await resp.json()


async def test_the_s3_backend_is_used_when_a_bucket_is_configured(client: TestClient) -> None:
    assert isinstance(client.app[ATTACHMENT_STORAGE], S3Storage)


async def test_an_image_goes_to_the_bucket_and_comes_back(
    client: TestClient, make_user: MakeUser, s3: Any, bucket: str, settings: Settings
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    image = png(32, 32)
    status, body = await upload(client, customer.headers, ticket["id"], image, "shot.png")
    assert status == 201, body
    attachment = body["attachment"]
    stored = await objects(s3, bucket)
    assert list(stored.values()) == [len(image)]
    assert all(key.startswith(PREFIX) for key in stored)
    assert not (settings.data_dir / "attachments").exists() or not any((settings.data_dir / "attachments").iterdir())
    head = await s3.head_object(Bucket=bucket, Key=next(iter(stored)))
    assert head["ContentType"] == "image/png"

    got = await client.get(attachment["url"], headers=customer.headers)
    assert got.status == 200
    assert await got.read() == image
    assert got.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_file_larger_than_one_part_streams_as_a_multipart_upload(
    client: TestClient, make_user: MakeUser, s3: Any, bucket: str
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    # Two full parts and a short last one.
    data = pdf() + bytes(range(256)) * ((2 * S3_PART_BYTES + 1000) // 256)
    status, body = await upload(client, customer.headers, ticket["id"], data, "manual.pdf")
    assert status == 201, body
    assert body["attachment"]["size"] == len(data)
    assert list((await objects(s3, bucket)).values()) == [len(data)]
    got = await client.get(body["attachment"]["url"], headers=customer.headers)
    assert hashlib.sha256(await got.read()).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_an_oversized_stream_leaves_no_object_and_no_unfinished_upload(
    client: TestClient, make_user: MakeUser, s3: Any, bucket: str
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    boundary = "b0undary"

    async def body() -> AsyncIterator[bytes]:
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.pdf"\r\n\r\n').encode()
        yield pdf()
        chunk = b"\x00" * (1024 * 1024)
        for _ in range(MAX_BYTES // len(chunk) + 2):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    resp = await client.post(
        f"/tickets/{ticket['id']}/attachments",
        data=body(),
        headers={**customer.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "attachment_too_large"
    assert await objects(s3, bucket) == {}
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []


async def test_the_sweep_deletes_orphaned_objects_from_the_bucket(
    client: TestClient, make_user: MakeUser, s3: Any, bucket: str
) -> None:
    customer = await make_user("customer")
    ticket = await create_ticket(client, customer)
    status, body = await upload(client, customer.headers, ticket["id"], png(), "orphan.png")
    assert status == 201
    assert len(await objects(s3, bucket)) == 1
    pool = client.app[DB_POOL]
    await pool.execute("UPDATE attachments SET created_at = now() - interval '2 days'")
    assert await sweep_orphans(pool, client.app[ATTACHMENT_STORAGE], 24 * 3600) == 1
    assert await objects(s3, bucket) == {}
    assert (await client.get(body["attachment"]["url"], headers=customer.headers)).status == 404
