"""How many account creations one run keeps in progress at once.

AWS Organizations refuses a ``CreateAccount`` beyond "the number of accounts that can be in
progress at a time" with ``ConstraintViolationException`` ``ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED``
and does not publish the number (older documentation describes the same reason as the accounts
that can be created in one day). A run vending 100 accounts must not give up on the ones past
that number, nor send them again and again. The run counts the creations it has in progress
(sent by it and accepted by AWS, or started by an earlier run and awaited by it); a tenant sends
only while fewer than the limit are, and otherwise waits for one to end.

The limit is the platform's ``max_account_creations_in_flight`` if set (never exceeded), else
learnt: a refusal lowers it to the number of the run's creations AWS had accepted and still runs
at that moment, and it rises by one after each round of that many accepted sends without a
refusal (someone else's creations may have held slots when it was learnt). A refusal while none
of the run's own creations are in progress says the limit is held by others, or the day's
creations are used up: waiting for the run's own creations cannot help, so no creation is sent
again in this run (the next run tries again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CreationSlots:
    """The account creations this run has in progress, and how many it may have."""

    def __init__(self, limit: int | None = None):
        self._cond = threading.Condition()
        self._configured = limit
        self._limit = limit
        self._sending = 0  # slots taken for a CreateAccount not answered yet
        self._running = 0  # creations AWS accepted (or earlier runs' being awaited) that have not ended
        self._streak = 0  # sends accepted since the last refusal or rise of the limit
        self._ended = 0  # the run's creations that ended so far
        self._closed = False

    @property
    def limit(self) -> int | None:
        """The limit now: configured, learnt from a refusal, or ``None`` (none known yet)."""
        return self._limit

    @property
    def running(self) -> int:
        """The run's creations in progress in AWS."""
        return self._running

    @property
    def ended(self) -> int:
        """How many of the run's creations ended so far (read before a send, see :meth:`refused`)."""
        return self._ended

    @property
    def closed(self) -> bool:
        """AWS refused a creation while none of the run's were in progress: none is sent again this run."""
        return self._closed

    def acquire(self, timeout: float, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Take a slot before sending ``CreateAccount``, waiting up to ``timeout`` seconds for one to
        free up; ``False`` if none did, if the slots are :attr:`closed`, or if the run is ``stopping``
        (looked at every second)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed or stopping():
                    return False
                if self._limit is None or self._sending + self._running < self._limit:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
            self._sending += 1
            return True

    def sent(self) -> None:
        """AWS accepted the ``CreateAccount`` of the slot taken: the creation is in progress."""
        with self._cond:
            self._sending -= 1
            self._running += 1
            self._streak += 1
            if self._limit is not None and self._streak >= self._limit and self._limit != self._configured:
                self._limit, self._streak = self._limit + 1, 0  # a round without refusal: try one more
            self._cond.notify_all()

    def unsent(self) -> None:
        """The slot taken sent nothing AWS started (an error, or no clear answer): give it back."""
        with self._cond:
            self._sending -= 1
            self._cond.notify_all()

    def occupy(self) -> None:
        """Count a creation already in progress (an earlier run's, awaited now): it holds a slot in AWS."""
        with self._cond:
            self._running += 1

    def release(self) -> None:
        """A creation in progress ended (or is no longer awaited by this run)."""
        with self._cond:
            self._running -= 1
            self._ended += 1
            self._cond.notify_all()

    def refused(self, ended_before: int) -> bool:
        """AWS refused the ``CreateAccount`` of the slot taken (too many in progress); ``ended_before``:
        :attr:`ended` just before it was sent. Gives the slot back and lowers the limit to the run's
        creations in progress, once the run's other sends are answered. ``False`` if none of the run's
        creations were in progress all along (the slots are then :attr:`closed`: waiting for the run's
        own creations would not help); one that ended meanwhile may have freed the slot: send again."""
        with self._cond:
            self._sending -= 1
            self._streak = 0
            self._cond.notify_all()
            while self._running == 0 and self._sending > 0:
                self._cond.wait(
                    1.0
                )  # sends not answered yet may turn out to hold slots: wait for their answers
            if self._running == 0 and self._ended == ended_before:
                self._closed = True
                self._cond.notify_all()
                return False
            if self._running > 0:
                self._limit = self._running if self._limit is None else min(self._limit, self._running)
            return True
