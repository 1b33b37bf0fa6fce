"""How many WebSockets one user and one client address may hold open on this instance
(SOCKETS_PER_USER, SOCKETS_PER_ADDRESS): checked before the upgrade, so a refusal is a plain 429."""

from __future__ import annotations

import uuid
from typing import TypeVar

from ..errors import too_many_requests

# What a refused client is told to wait: slots free up only as the client's other sockets close,
# which the server cannot predict; a few seconds keeps a reconnect loop from spinning.
RETRY_AFTER = 10.0

K = TypeVar("K")


class SocketLimits:
    def __init__(self, per_user: int, per_address: int) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self._users: dict[uuid.UUID, int] = {}
        self._addresses: dict[str, int] = {}

    def open_for(self, user_id: uuid.UUID) -> int:
        return self._users.get(user_id, 0)

    def acquire(self, user_id: uuid.UUID, address: str) -> None:
        """Take one socket slot for the user and the address; ApiError 429 when either is full.
        Every acquire is paired with one release()."""
        if self._users.get(user_id, 0) >= self.per_user:
            raise too_many_requests("Too many open sockets for this account; close some first", RETRY_AFTER)
        if self._addresses.get(address, 0) >= self.per_address:
            raise too_many_requests("Too many open sockets from this address; close some first", RETRY_AFTER)
        self._users[user_id] = self._users.get(user_id, 0) + 1
        self._addresses[address] = self._addresses.get(address, 0) + 1

    def release(self, user_id: uuid.UUID, address: str) -> None:
        _release(self._users, user_id)
        _release(self._addresses, address)


def _release(counts: dict[K, int], key: K) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        # No entry for a key with nothing open: the maps stay as small as what is connected.
        del counts[key]
