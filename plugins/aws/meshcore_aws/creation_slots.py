"""How many account creations one run keeps in progress at once.

AWS Organizations refuses a ``CreateAccount`` beyond "the number of accounts that can be in
progress at a time" with ``ConstraintViolationException`` ``ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED``
and does not publish the number. A run vending 100 accounts must not give up on the ones past
that number (every peer's answer: fail, or one account at a time). The run counts the creations
it has in progress (sent by it, or started by an earlier run and awaited by it); a tenant sends
only while fewer than the limit are, and otherwise waits for one to end. The limit is the
platform's ``max_account_creations_in_flight`` if set, else learnt from AWS: a refusal lowers it
to the number in progress at that moment, for the rest of the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CreationSlots:
    """The account creations this run has in progress, and how many AWS lets it have."""

    def __init__(self, limit: int | None = None):
        self._cond = threading.Condition()
        self._limit = limit
        self._in_flight = 0

    @property
    def limit(self) -> int | None:
        """The limit now: configured, learnt from a refusal, or ``None`` (none known yet)."""
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def acquire(self, timeout: float, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Take a slot before sending ``CreateAccount``, waiting up to ``timeout`` seconds for one to
        free up; ``False`` if none did, or the run is ``stopping`` (looked at every second)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if stopping():
                    return False
                if self._limit is None or self._in_flight < self._limit:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
            self._in_flight += 1
            return True

    def occupy(self) -> None:
        """Count a creation already in progress (an earlier run's, awaited now): it holds a slot in AWS."""
        with self._cond:
            self._in_flight += 1

    def release(self) -> None:
        """The creation holding a slot ended (or is no longer awaited by this run)."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify()

    def refused(self) -> bool:
        """AWS refused the ``CreateAccount`` of the slot just taken: give the slot back and lower the
        limit to the creations in progress now. ``False`` if this run has none in progress (the
        organization's creations in progress are someone else's): waiting for a slot of this run would
        not help, the caller waits a poll interval instead."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify()
            if self._in_flight == 0:
                return False
            self._limit = self._in_flight if self._limit is None else min(self._limit, self._in_flight)
            return True
