"""Limits on the HTTP connections themselves: how long a request's body may take to arrive, and
the process's open-file limit. (How long its headers may take is aiohttp's keep-alive timeout,
set where the server starts: __main__.py.)"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from .errors import ApiError
from .keys import SETTINGS

log = logging.getLogger(__name__)

# Enough sockets for a large instance; the kernel's hard limit may be "unlimited", which is not
# a value to set a soft limit to.
FD_LIMIT_CEILING = 1 << 20


@asynccontextmanager
async def body_deadline(request: web.Request) -> AsyncIterator[None]:
    """Read the request body inside this block: a body that has not fully arrived within
    HTTP_BODY_TIMEOUT_SECONDS is answered with 408 (slow-body attacks hold a connection and a
    handler open for as long as the client dribbles). aiohttp then drains what is left of the
    body for a few seconds and closes the connection."""
    try:
        async with asyncio.timeout(request.app[SETTINGS].http_body_timeout):
            yield
    except TimeoutError:
        raise ApiError(408, "request_timeout", "The request body did not arrive in time") from None


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one: every connection is a file descriptor, and
    the usual soft default (1024) is a few hundred slow clients. Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_LIMIT_CEILING if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT_CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as err:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, err)
            return soft, soft
        return soft, target
    return soft, soft
