"""AI reply limits counted in this process: per client address, and for the whole instance.

Fixed windows of AI_USER_RATE_WINDOW_SECONDS, kept in memory so the check adds nothing to the
time to first token (no database round trip; docs/performance.md). The cost of that choice: with
N instances behind a load balancer that spreads one address over them, the address can get up to
N times AI_ADDRESS_RATE_LIMIT replies per window, and a restart forgets the counts. The
per-customer limit (AI_USER_RATE_LIMIT) and the per-ticket budget stay exact across instances,
in the database. docs/ai.md, "Budgets and limits".
"""

from __future__ import annotations

import time
from collections.abc import Callable

ADDRESS_LIMIT = "address_rate_limit"
INSTANCE_LIMIT = "instance_rate_limit"


class ReplyLimits:
    """`hit(address)` counts one AI reply about to start, or says which limit refuses it."""

    def __init__(
        self,
        *,
        per_address: int,
        per_instance: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_address = per_address
        self.per_instance = per_instance
        self.window = window_seconds
        self.clock = clock
        self.window_start = clock()
        self.instance_count = 0
        # Reset with the window: holds only the addresses seen in the current one.
        self.address_counts: dict[str, int] = {}

    def hit(self, address: str | None) -> str | None:
        """None (and the reply is counted), or the limit it would exceed (nothing is counted).
        A reply without an address (a retry over the socket, say) counts for the instance only."""
        now = self.clock()
        if now - self.window_start >= self.window:
            self.window_start = now
            self.instance_count = 0
            self.address_counts.clear()
        if address is not None and self.address_counts.get(address, 0) >= self.per_address:
            return ADDRESS_LIMIT
        if self.instance_count >= self.per_instance:
            return INSTANCE_LIMIT
        self.instance_count += 1
        if address is not None:
            self.address_counts[address] = self.address_counts.get(address, 0) + 1
        return None
