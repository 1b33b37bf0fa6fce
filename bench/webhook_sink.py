"""A webhook receiver for benchmarks: answers every POST with 204 at once (run as a process of
its own, so its CPU is not the benchmark client's).

    python -m bench.webhook_sink --port 8099
"""

from __future__ import annotations

import argparse

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
