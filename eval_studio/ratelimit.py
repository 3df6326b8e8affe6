"""Rate limits for the studio: token buckets per visitor session and for all visitors together, per action.

Pure and testable: the clock is injected (``time.monotonic`` by default). A limit of N per minute is a bucket of N
tokens refilled at N/60 per second, so a visitor may spend a minute's worth at once and then one every 60/N s. A
request takes one token from its session's bucket and one from the global bucket, or none at all: a refusal
(``RateLimited``, with the seconds until a token is back) changes nothing, so nothing is half-counted either.
Idle, full session buckets are dropped, so memory stays bounded by the visitors of the last minute or so.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

PERIOD_S = 60.0
GLOBAL = "\0global"  # the key of the bucket all sessions share
PRUNE_EVERY = 1024  # takes between sweeps of idle session buckets


class RateLimited(Exception):
    """``retry_after``: whole seconds until the request would be accepted."""

    def __init__(self, action: str, retry_after: int):
        super().__init__(f"too many {action} requests; try again in {retry_after} s")
        self.action, self.retry_after = action, retry_after


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``limits``: action -> (per session, global), each a number per minute; 0 means no limit."""

    def __init__(self, limits: Mapping[str, tuple[int, int]], clock: Callable[[], float] = time.monotonic):
        self.limits = {a: (max(0, int(s)), max(0, int(g))) for a, (s, g) in limits.items()}
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self._takes = 0

    def take(self, action: str, session: str | None) -> None:
        """Spend one ``action`` for ``session`` (None: only the global limit applies) or raise ``RateLimited``."""
        per_session, overall = self.limits.get(action, (0, 0))
        wanted = [(key, cap) for key, cap in ((session, per_session), (GLOBAL, overall)) if cap and key is not None]
        if not wanted:
            return
        with self._lock:
            now = self.clock()
            buckets = [(self._refilled((action, key), cap, now), cap) for key, cap in wanted]
            short = [math.ceil((1.0 - b.tokens) * PERIOD_S / cap - 1e-9) for b, cap in buckets if b.tokens < 1.0]
            if short:
                raise RateLimited(action, max(1, max(short)))
            for b, _ in buckets:
                b.tokens -= 1.0
            self._takes += 1
            if self._takes % PRUNE_EVERY == 0:
                self._prune(now)

    def _refilled(self, key: tuple[str, str], cap: int, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(float(cap), now)
        else:
            b.tokens = min(float(cap), b.tokens + (now - b.updated) * cap / PERIOD_S)
            b.updated = now
        return b

    def _prune(self, now: float) -> None:
        """Forget session buckets that would be full by now (a new one starts full: nothing changes)."""
        for (action, key), b in list(self._buckets.items()):
            if key != GLOBAL and now - b.updated >= PERIOD_S:
                del self._buckets[(action, key)]
