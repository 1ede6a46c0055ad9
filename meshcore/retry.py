"""Bounded, jittered exponential backoff, for the core and for plugins.

The core uses it to retry hooks that raise :class:`~meshcore.errors.RetryableError`;
plugins use it for their own API throttling (e.g. AWS ``TooManyRequestsException``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries in total; waits ``min(cap, base * 2**n)`` with full jitter."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 20.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        r = (rng or random).random()
        return r * min(self.cap, self.base * (2**attempt))


def call_with_retries(
    fn: Callable[[], T],
    retry_on: Callable[[BaseException], bool],
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Call ``fn``; when it raises an exception ``retry_on`` accepts, wait and try again.

    The last exception propagates once ``backoff.attempts`` are used up.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except BaseException as exc:
            attempt += 1
            if attempt >= backoff.attempts or not retry_on(exc):
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            sleep(backoff.delay(attempt - 1))
