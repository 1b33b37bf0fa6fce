"""Sliding-window failure counters, used to throttle login attempts.

Per process: with several instances an attacker gets at most N x instances tries per window,
which still bounds guessing; docs/operations.md notes it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class Throttle:
    def __init__(
        self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float] | None:
        stamps = self._failures.get(key)
        if stamps is None:
            return None
        cutoff = self.clock() - self.window
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return None
        return stamps

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it is not locked out."""
        stamps = self._recent(key)
        if stamps is None or len(stamps) < self.max_failures:
            return 0.0
        return stamps[-self.max_failures] + self.window - self.clock()

    def record_failure(self, key: str) -> None:
        if key not in self._failures and len(self._failures) >= self.max_keys:
            # Bound memory under a spray of distinct keys: forget the oldest entry.
            del self._failures[next(iter(self._failures))]
        self._failures.setdefault(key, deque()).append(self.clock())

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)
