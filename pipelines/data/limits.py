"""Rate limits and retries shared by every step that calls a paid API.

``RateLimiter`` is an async token bucket (requests or tokens per minute). ``call_with_retries`` retries on
429 / 5xx / timeouts / connection errors with exponential backoff and full jitter, honouring ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")


class RateLimiter:
    """Token bucket refilled at ``per_minute / 60`` per second; capacity is ``burst_s`` seconds' worth, so only
    small bursts pass (providers enforce their per-minute limits over shorter windows)."""

    def __init__(self, per_minute: float | None, burst_s: float = 10.0):
        self.rate = per_minute / 60.0 if per_minute else None
        self.capacity = max(1.0, (per_minute or 0) / 60.0 * burst_s)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, amount: float = 1.0) -> None:
        if self.rate is None:
            return
        amount = min(amount, self.capacity)  # a request larger than the bucket waits for a full bucket
        async with self._lock:  # FIFO: waiters are served in order
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= amount:
                    self.tokens -= amount
                    return
                await asyncio.sleep((amount - self.tokens) / self.rate)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 6
    base_s: float = 1.0
    max_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^attempt)], never less than the server's Retry-After."""
        d = random.uniform(0, min(self.max_s, self.base_s * (2**attempt)))
        return max(d, retry_after or 0.0)


class PermanentError(Exception):
    """A failure that retrying cannot fix (bad request, auth); the item is recorded as failed."""


def classify(exc: BaseException) -> tuple[bool, float | None]:
    """(retryable, retry_after seconds) for openai/httpx errors."""
    import httpx
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, httpx.TimeoutException, httpx.TransportError)):
        return True, None
    status = None
    headers = None
    if isinstance(exc, openai.APIStatusError):
        status, headers = exc.status_code, exc.response.headers
    elif isinstance(exc, httpx.HTTPStatusError):
        status, headers = exc.response.status_code, exc.response.headers
    if status is None:
        return False, None
    retry_after = None
    if headers is not None and re.fullmatch(r"\d+(\.\d+)?", headers.get("retry-after", "") or ""):
        retry_after = float(headers["retry-after"])
    return (status in (408, 409, 429) or status >= 500), retry_after


async def call_with_retries(fn: Callable[[], Awaitable[T]], policy: RetryPolicy) -> tuple[T, int]:
    """Run ``fn`` until it succeeds; returns (result, attempts). Raises the last error when it gives up."""
    attempt = 0
    while True:
        try:
            return await fn(), attempt + 1
        except PermanentError:
            raise
        except Exception as e:  # noqa: BLE001 - classified below
            retryable, retry_after = classify(e)
            if not retryable or attempt >= policy.max_retries:
                raise
            await asyncio.sleep(policy.delay(attempt, retry_after))
            attempt += 1


def redact(text: str, secrets: list[str]) -> str:
    """Remove secrets (API keys, tokens) from an error text before it is stored or printed."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "[REDACTED]")
    return re.sub(r"([?&](?:key|access_token)=)[^&\s]+", r"\1[REDACTED]", text)
