"""In-memory rate limits: sliding-window counters (logins, sign-ups, widget visitors), the
failed-login policy built on them, and the per-user message-post budget (token buckets).

All of them are per process: with several instances an attacker gets at most the limit times
the number of instances per window, which still bounds guessing and flooding; docs/operations.md
says so next to each setting. The limits that must hold across instances (tickets per customer)
count rows in the database instead (services/tickets.py).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable

Clock = Callable[[], float]


class Throttle:
    """At most `max_events` events per key inside a sliding window of `window` seconds."""

    def __init__(
        self, max_failures: int, window: float, clock: Clock = time.monotonic, max_keys: int = 100_000
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
        stamps = self._failures.setdefault(key, deque())
        stamps.append(self.clock())
        # Only the newest max_failures stamps decide a lock-out: a flood keeps no more.
        if len(stamps) > self.max_failures:
            stamps.popleft()

    def hit(self, key: str) -> float:
        """Count one event for `key` unless it is over the limit: 0 when counted, else the
        seconds to wait (and nothing is counted, so a refused flood does not extend its wait)."""
        wait = self.retry_after(key)
        if wait > 0:
            return wait
        self.record_failure(key)
        return 0.0

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)


class LoginThrottle:
    """Failed logins, counted so that an attacker cannot lock a user out of their own address.

    - per (account, address): LOGIN_MAX_FAILURES, the tight limit on guessing one password;
    - per address, across accounts: LOGIN_ADDRESS_MAX_FAILURES, against one address spraying
      many accounts;
    - per account, from addresses that have never signed in to it (on this instance):
      LOGIN_ACCOUNT_MAX_FAILURES, against guessing one password from many addresses. An address
      the account has signed in from is exempt, so a distributed attack does not lock the
      user out where they usually are.

    A success resets only its own (account, address) count: resetting the address count would
    let an attacker clear it by signing in to an account of their own between guesses.
    """

    def __init__(
        self,
        *,
        per_pair: int,
        per_address: int,
        per_account: int,
        window: float,
        clock: Clock = time.monotonic,
        max_known: int = 100_000,
    ) -> None:
        self.pairs = Throttle(per_pair, window, clock)
        self.addresses = Throttle(per_address, window, clock)
        self.accounts = Throttle(per_account, window, clock)
        self.max_known = max_known
        # (account, address) pairs that signed in successfully; oldest first.
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()

    def _known_pair(self, account: str, address: str) -> bool:
        return (account, address) in self._known

    def retry_after(self, account: str, address: str) -> float:
        wait = max(self.pairs.retry_after(f"{account}\0{address}"), self.addresses.retry_after(address))
        if not self._known_pair(account, address):
            wait = max(wait, self.accounts.retry_after(account))
        return wait

    def record_failure(self, account: str, address: str) -> None:
        self.pairs.record_failure(f"{account}\0{address}")
        self.addresses.record_failure(address)
        if not self._known_pair(account, address):
            self.accounts.record_failure(account)

    def record_success(self, account: str, address: str) -> None:
        self.pairs.reset(f"{account}\0{address}")
        key = (account, address)
        self._known[key] = None
        self._known.move_to_end(key)
        if len(self._known) > self.max_known:
            self._known.popitem(last=False)


class TokenBucket:
    """`rate` events per second on average, `burst` at once."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """0 when allowed (a token is used), else the seconds until a token is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def full_at(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.burst


class SendBudget:
    """One token bucket per user for posting messages (WS_SEND_RATE / WS_SEND_BURST), shared by
    all of the user's sockets and REST posts on this instance."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic, max_users: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_users = max_users
        self._buckets: dict[uuid.UUID, TokenBucket] = {}

    def take(self, user_id: uuid.UUID) -> float:
        """0 when the user may post now, else the seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            if len(self._buckets) >= self.max_users:
                self._forget_idle(now)
            bucket = self._buckets[user_id] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def _forget_idle(self, now: float) -> None:
        # A full bucket is the same as no bucket, so dropping those loses nothing. If every bucket
        # is in use (a flood from more users than max_users), drop the oldest half anyway: memory
        # stays bounded, and each of those users merely gets one fresh burst.
        idle = [user for user, bucket in self._buckets.items() if bucket.full_at(now)]
        for user in idle:
            del self._buckets[user]
        if len(self._buckets) >= self.max_users:
            for user in list(self._buckets)[: self.max_users // 2]:
                del self._buckets[user]
