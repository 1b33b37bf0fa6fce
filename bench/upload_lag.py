"""Event-loop lag beside uploads: the server's upload path (multipart reader, bandwidth budget,
local storage) in one thread's event loop, probed every millisecond by a task that measures how
late its sleep wakes, while another process uploads 1 MiB files at a given rate.

    python -m bench.upload_lag [--mib-per-s 8 0] [--seconds 5] [--budget BYTES_PER_SECOND]

Rate 0 uploads as fast as the bandwidth budget (ATTACHMENT_INSTANCE_BYTES_PER_SECOND) lets it;
"idle" is always measured first. docs/performance.md, "Attachments beside the message path".
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from chatserver.handlers.attachments import _chunks
from chatserver.services.attachments import UploadBandwidth
from chatserver.settings import Settings
from chatserver.storage.local import LocalStorage

PAYLOAD = b"%PDF-1.4\n" + os.urandom(2**20)


async def _serve(ports: queue.Queue[int], stop: threading.Event, result: dict[str, Any], budget: int) -> None:
    storage = LocalStorage(Path(tempfile.mkdtemp(prefix="upload-lag-")))
    bandwidth = UploadBandwidth(budget)

    async def upload(request: web.Request) -> web.Response:
        reader = await request.multipart()
        part = await reader.next()
        assert isinstance(part, aiohttp.BodyPartReader)
        size = await storage.save(os.urandom(8).hex(), _chunks(part, bandwidth), "application/pdf")
        return web.json_response({"size": size})

    app = web.Application(client_max_size=2**30)
    app.router.add_post("/upload", upload)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ports.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    lags: list[float] = []
    while not stop.is_set():
        began = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - began - 0.001) * 1000)
    lags.sort()
    result.update(
        p50_ms=round(lags[len(lags) // 2], 2), p99_ms=round(lags[int(len(lags) * 0.99)], 2), max_ms=round(lags[-1], 1)
    )
    await runner.cleanup()


async def _upload(port: int, seconds: float, mib_per_s: float) -> None:
    async with aiohttp.ClientSession() as session:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            began = time.monotonic()
            form = aiohttp.FormData()
            form.add_field("file", PAYLOAD, filename="bench.pdf", content_type="application/pdf")
            async with session.post(f"http://127.0.0.1:{port}/upload", data=form) as resp:
                await resp.read()
            if mib_per_s > 0:
                await asyncio.sleep(max(0.0, 1 / mib_per_s - (time.monotonic() - began)))


def _uploader(port: int, seconds: float, mib_per_s: float) -> None:
    asyncio.run(_upload(port, seconds, mib_per_s))


def measure(mib_per_s: float | None, seconds: float, budget: int) -> dict[str, Any]:
    ports: queue.Queue[int] = queue.Queue()
    stop = threading.Event()
    result: dict[str, Any] = {"uploads": "idle" if mib_per_s is None else (mib_per_s or "budget")}
    server = threading.Thread(target=lambda: asyncio.run(_serve(ports, stop, result, budget)))
    server.start()
    port = ports.get()
    if mib_per_s is None:
        time.sleep(seconds)
    else:
        proc = multiprocessing.Process(target=_uploader, args=(port, seconds, mib_per_s))
        proc.start()
        proc.join()
    stop.set()
    server.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib-per-s", type=float, nargs="+", default=[8, 0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument(
        "--budget",
        type=int,
        default=Settings().attachment_instance_bytes_per_second,
        help="ATTACHMENT_INSTANCE_BYTES_PER_SECOND (0: no limit)",
    )
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    for rate in [None, *args.mib_per_s]:
        print(measure(rate, args.seconds, args.budget), flush=True)


if __name__ == "__main__":
    main()
