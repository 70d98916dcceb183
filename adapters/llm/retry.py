"""Retry with exponential backoff, jitter and ``Retry-After`` (ULS 6.6).

Retries are per LLM call: ``generate()`` wraps each step, never the whole
multi-step operation. ``sleep`` is injectable so tests can use a fake clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import SDKError

T = TypeVar("T")


@dataclass
class RetryPolicy:
    max_retries: int = 2
    base_delay: float = 1.0
    max_delay: float = 60.0
    backoff_multiplier: float = 2.0
    jitter: bool = True
    on_retry: Callable[[SDKError, int, float], None] | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before retry number ``attempt`` (0-based), without Retry-After."""
        delay = min(self.base_delay * self.backoff_multiplier**attempt, self.max_delay)
        if self.jitter:
            delay *= (rng or random).uniform(0.5, 1.5)
        return delay

    def delay_for(self, error: SDKError, attempt: int) -> float | None:
        """Seconds to wait before retrying ``error``, or None to give up."""
        if attempt >= self.max_retries or not error.retryable:
            return None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            # the server named its price: honour it, unless it is more than we will wait
            return retry_after if retry_after <= self.max_delay else None
        return self.backoff(attempt)


async def retry(fn: Callable[[], Awaitable[T]], policy: RetryPolicy | None = None) -> T:
    """Call ``fn`` until it succeeds, the error is not retryable, or retries run out."""
    policy = policy or RetryPolicy()
    attempt = 0
    while True:
        try:
            return await fn()
        except SDKError as error:
            delay = policy.delay_for(error, attempt)
            if delay is None:
                raise
            if policy.on_retry is not None:
                policy.on_retry(error, attempt + 1, delay)
            await policy.sleep(delay)
            attempt += 1
