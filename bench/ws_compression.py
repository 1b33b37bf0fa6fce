"""Per-message compression, measured: a bare aiohttp WebSocket server (the same aiohttp, uvloop and
heartbeat as chatserver, nothing else) holding idle sockets that were each sent one typical
chatserver frame, with permessage-deflate off and on (clients offer it); server RSS per
connection, then the server's CPU per frame and the bytes per frame when a burst is sent to all.
This is the evidence behind chatserver's compress=False (docs/performance.md).

    python -m bench.ws_compression [--sockets 2000] [--frames 20]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
import urllib.request
from typing import Any

import orjson
import psutil

from .common import HOST, PYTHON, ROOT, base_parser, emit, free_port, header, print_rows, stop_process, wait_for_port
from .connections import IdleWorker
from .workers import WorkerPool, split

KIB = 1024
# A typical room frame: a message.created of a one-line customer message.
SAMPLE = {
    "type": "message.created",
    "message": {
        "id": "4f0c9a57-8d1e-4a44-9a6f-0b1a7e3d2c11",
        "ticket_id": "7d3f2b10-5a6c-4e8f-9b0a-1c2d3e4f5a6b",
        "seq": 8,
        "author_id": "0b6f6f0e-2a1d-4c3b-8e9f-7a6b5c4d3e2f",
        "author_kind": "customer",
        "body": "Hello, my parcel has not arrived yet and the tracking page shows nothing.",
        "client_id": "c-5d1e0f3a-9b8c-4d7e-a6f5-e4d3c2b1a0f9",
        "visibility": "public",
        "metadata": {},
        "created_at": "2026-11-27T20:01:03.456+00:00",
    },
}


def serve(port: int, compress: bool) -> None:
    """The bare server: sends one sample frame on connect; /burst?n=N sends N more to every socket."""
    import uvloop
    from aiohttp import web

    sockets: set[web.WebSocketResponse] = set()
    frame = orjson.dumps({**SAMPLE, "type": "joined"}).decode()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, compress=compress)
        await ws.prepare(request)
        sockets.add(ws)
        try:
            await ws.send_str(frame)
            async for _ in ws:
                pass
        finally:
            sockets.discard(ws)
        return ws

    async def burst(request: web.Request) -> web.Response:
        n = int(request.query["n"])
        data = orjson.dumps(SAMPLE).decode()
        for _ in range(n):
            for ws in list(sockets):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(data)
        return web.json_response({"sockets": len(sockets)})

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/burst", burst)
    uvloop.install()
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)


def socket_bytes_sent(port: int) -> int:
    """Bytes the server's sockets on `port` have sent, from the kernel's TCP counters."""
    out = subprocess.run(["ss", "-tinH", "state", "established", f"sport = :{port}"], capture_output=True, text=True)
    total = 0
    for token in out.stdout.split():
        if token.startswith("bytes_acked:"):
            total += int(token.split(":", 1)[1])
    return total


def measure(args: Any, compress: bool) -> dict[str, Any]:
    port = free_port()
    flags = ["--serve", str(port), *(["--on"] if compress else [])]
    proc = subprocess.Popen([PYTHON, "-m", "bench.ws_compression", *flags], cwd=ROOT)
    try:
        wait_for_port(port, proc=proc)
        ps = psutil.Process(proc.pid)
        url = f"ws://{HOST}:{port}/ws"
        time.sleep(0.5)
        rss0 = ps.memory_info().rss
        sockets = [("-", "-", url)] * args.sockets
        configs = [{"sockets": part, "source": f"127.0.0.{30 + i}"} for i, part in enumerate(split(sockets, 2))]
        with WorkerPool(IdleWorker, configs) as pool:
            pool.call("setup", {"concurrency": 64, "compress": 15}, timeout=300)
            time.sleep(1)
            rss1 = ps.memory_info().rss
            sent0 = socket_bytes_sent(port)
            cpu0 = sum(ps.cpu_times()[:2])
            with urllib.request.urlopen(f"http://{HOST}:{port}/burst?n={args.frames}", timeout=300) as resp:
                resp.read()
            time.sleep(0.5)
            cpu1 = sum(ps.cpu_times()[:2])
            sent1 = socket_bytes_sent(port)
            rss2 = ps.memory_info().rss
        frames = args.sockets * args.frames
        return {
            "compress": compress,
            "sockets": args.sockets,
            "kib_per_conn_after_1_frame": round((rss1 - rss0) / KIB / args.sockets, 1),
            "kib_per_conn_after_burst": round((rss2 - rss0) / KIB / args.sockets, 1),
            "server_us_per_frame": round(1e6 * (cpu1 - cpu0) / frames, 1),
            "wire_bytes_per_frame": round((sent1 - sent0) / frames, 1) if sent1 > sent0 else "-",
            "json_bytes_per_frame": len(orjson.dumps(SAMPLE)),
        }
    finally:
        stop_process(proc, 10)


def run(args: Any) -> dict[str, Any]:
    header(f"Per-message compression: {args.sockets:,} idle sockets, then {args.frames} frames to each")
    rows = [measure(args, False), measure(args, True)]
    print_rows(rows)
    result = {"runs": rows}
    emit("ws_compression", result, args.json)
    return result


def main(argv: list[str] | None = None) -> None:
    if argv is None and "--serve" in sys.argv:
        serve(int(sys.argv[sys.argv.index("--serve") + 1]), "--on" in sys.argv)
        return
    parser: argparse.ArgumentParser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=20, help="frames sent to every socket in the burst")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
