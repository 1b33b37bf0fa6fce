"""POST /tickets/{id}/attachments (a multipart upload, streamed) and GET /attachments/{id}."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import ApiError, validation_error
from ..jsonutil import json_response
from ..keys import ATTACHMENT_STORAGE, DB_POOL, SETTINGS, UPLOAD_BANDWIDTH, UPLOAD_THROTTLE
from ..services import attachments as attachment_service
from ..services.filetypes import IMAGE_TYPES
from ..validation import parse_uuid
from .identity import require_identity

# Bytes read from the request per step: what one upload holds in memory (with the sniffed head).
UPLOAD_CHUNK = 256 * 1024
# Multipart framing and headers around the file: a request longer than the size limit plus this
# is refused from its Content-Length before any of it is read.
MULTIPART_OVERHEAD = 16 * 1024


async def _chunks(part: BodyPartReader, bandwidth: attachment_service.UploadBandwidth) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(UPLOAD_CHUNK):
        yield chunk
        wait = bandwidth.reserve(len(chunk))
        if wait > 0:
            await asyncio.sleep(wait)


async def upload_attachment(request: web.Request) -> web.Response:
    who = require_identity(request)
    ticket_id = parse_uuid(request.match_info["ticket_id"], "Ticket")
    settings = request.app[SETTINGS]
    policy = attachment_service.AttachmentPolicy.from_settings(settings)
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "Send the file as multipart/form-data in a field named file")
    if request.content_length is not None and request.content_length > policy.max_bytes + MULTIPART_OVERHEAD:
        raise attachment_service.too_large(policy.max_bytes)
    try:
        async with asyncio.timeout(settings.attachment_upload_timeout):
            reader = await request.multipart()
            part = await reader.next()
            # Skip anything before the file field (a client may send its name first).
            while part is not None and (not isinstance(part, BodyPartReader) or part.name != "file"):
                if isinstance(part, BodyPartReader):
                    await part.release()
                part = await reader.next()
            if part is None or part.filename is None:
                raise validation_error(
                    "Send the file in a multipart field named file, with a file name",
                    details={"fields": {"file": "is required"}},
                )
            attachment = await attachment_service.upload(
                request.app[DB_POOL],
                request.app[ATTACHMENT_STORAGE],
                policy,
                request.app[UPLOAD_THROTTLE],
                who,
                ticket_id,
                filename=part.filename,
                declared_type=part.headers.get("Content-Type"),
                chunks=_chunks(part, request.app[UPLOAD_BANDWIDTH]),
            )
    except TimeoutError:
        raise ApiError(408, "request_timeout", "The upload did not arrive in time") from None
    except (ValueError, HttpProcessingError, web.RequestPayloadError) as exc:
        # aiohttp's multipart reader on a malformed body: no boundary, broken framing, a part
        # header it cannot parse (InvalidHeader, found by the fuzzer), a broken transfer encoding.
        raise ApiError(400, "bad_request", f"Malformed multipart body: {type(exc).__name__}") from None
    return json_response({"attachment": attachment}, status=201)


def _disposition(kind: str, filename: str) -> str:
    # RFC 6266: an ASCII fallback plus the exact name, percent-encoded (RFC 5987).
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def get_attachment(request: web.Request) -> web.StreamResponse:
    who = require_identity(request)
    attachment_id = parse_uuid(request.match_info["attachment_id"], "Attachment")
    row = await attachment_service.readable(request.app[DB_POOL], who, attachment_id)
    storage = request.app[ATTACHMENT_STORAGE]
    chunks = storage.read(row["storage_key"])
    try:
        first = await anext(chunks, b"")
    except FileNotFoundError:
        raise ApiError(404, "not_found", "Attachment not found") from None
    content_type = row["content_type"]
    # Only images whose bytes were checked (filetypes.py) are shown inline; everything else
    # downloads. nosniff: the browser keeps the type we checked; the CSP sandbox: even opened
    # directly, the response can run nothing.
    inline = content_type in IMAGE_TYPES
    response = web.StreamResponse(
        headers={
            "Content-Type": content_type,
            "Content-Length": str(row["size_bytes"]),
            "Content-Disposition": _disposition("inline" if inline else "attachment", row["filename"]),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
            "Cross-Origin-Resource-Policy": "same-origin",
        }
    )
    await response.prepare(request)
    try:
        await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
    finally:
        await chunks.aclose()
    await response.write_eof()
    return response
