"""bcrypt off the event loop, in two bounded lanes: one for checking passwords (logins), one for
hashing new ones (sign-ups, new visitors, accounts made by admins).

bcrypt at cost 12 is ~250 ms of CPU. In the loop's default executor every hash queues with every
other one, so a sign-up flood made an agent's login wait behind it (17 s with 60 concurrent
sign-ups). Separate lanes keep logins off that queue, and each lane has at most as many threads as
there are cores, so a flood cannot start more hashing than the machine can run at once; the rest
waits its turn in its own lane. bench/login_flood.py measures login latency during a sign-up flood.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import bcrypt

from ..security import PASSWORD_MAX_BYTES


def lane_sizes(cores: int | None = None) -> tuple[int, int]:
    """(login threads, hashing threads): logins may use every core, hashing half of them, so at
    least half the machine is left for logins and everything else while sign-ups flood."""
    cores = max(1, cores or os.cpu_count() or 1)
    return cores, max(1, cores // 2)


class PasswordLanes:
    def __init__(self, login_threads: int, hash_threads: int) -> None:
        self._check = ThreadPoolExecutor(login_threads, thread_name_prefix="bcrypt-login")
        self._hash = ThreadPoolExecutor(hash_threads, thread_name_prefix="bcrypt-hash")

    async def hash(self, password: str, rounds: int) -> str:
        loop = asyncio.get_running_loop()
        salt = bcrypt.gensalt(rounds)
        hashed = await loop.run_in_executor(self._hash, bcrypt.hashpw, password.encode(), salt)
        return hashed.decode()

    async def verify(self, password: str, hashed: str) -> bool:
        encoded = password.encode()
        if len(encoded) > PASSWORD_MAX_BYTES:
            return False
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._check, bcrypt.checkpw, encoded, hashed.encode())

    def close(self) -> None:
        # Queued hashes are for requests that are going away with the server: drop them.
        self._check.shutdown(wait=False, cancel_futures=True)
        self._hash.shutdown(wait=False, cancel_futures=True)
