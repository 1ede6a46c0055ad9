"""Asynchronous AWS requests in flight, looked at together (account creations, Identity Center assignments).

One listing of the requests still ``IN_PROGRESS`` answers every waiting tenant; a request
no longer listed is described once to learn how it ended (and why, if it failed). A waiter
passes the listing generation it last saw and gets a newer one, no older than the
``max_age`` it asks for, so tenants that look together share one listing: with 32 tenants
waiting, one request per look instead of 32, which keeps a large vending run below AWS's
request rates. If listing fails (a role without the List permission, throttled past its
retries), every waiter describes its own request from then on instead of failing it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

Status = dict[str, Any]


class RequestWatch:
    """Requests of one kind in flight. ``running(id)`` is the status to answer for a listed request."""

    def __init__(
        self,
        list_in_progress: Callable[[], set[str]],
        describe: Callable[[str], Status],
        running: Callable[[str], Status],
    ):
        self._list = list_in_progress
        self._describe = describe
        self._running = running
        self._lock = threading.Lock()
        self._epoch = time.monotonic()
        self._generation = 0
        self._listed_at = self._epoch
        self._in_progress: set[str] = set()
        self._unlisted: ClientError | None = None  # the listing failed: describe each request instead

    def until_next_look(self, interval: float) -> float:
        """Seconds until the watch's next look, one every ``interval`` for every waiter (so one listing
        serves them all); a look due within a quarter interval is skipped for the one after."""
        if interval <= 0:
            return 0.0
        wait = interval - (time.monotonic() - self._epoch) % interval
        return wait if wait >= interval / 4 else wait + interval

    def status(self, request_id: str, seen: int, max_age: float = float("inf")) -> tuple[Status, int]:
        """The request's status (``running`` while listed in progress) and the listing generation it comes
        from: the current listing if it is newer than generation ``seen`` and ended at most ``max_age`` ago."""
        with self._lock:  # the listing every waiter needs: made once, under the lock, by the first to ask
            if self._unlisted is None and (
                self._generation <= seen or time.monotonic() - self._listed_at > max_age
            ):
                try:
                    self._in_progress = self._list()
                except ClientError as exc:
                    self._unlisted = exc
                    log.warning("listing requests in progress failed, each is described instead: %s", exc)
                else:
                    self._generation += 1
                    self._listed_at = time.monotonic()
            if self._unlisted is not None:
                return self._describe(request_id), seen
            generation, listed = self._generation, request_id in self._in_progress
        if listed:
            return self._running(request_id), generation
        return self._describe(request_id), generation

    def looker(self, max_age: float) -> Callable[[str], Status]:
        """A status function for one waiter (it remembers the generation that waiter last saw)."""
        seen = 0

        def look(request_id: str) -> Status:
            nonlocal seen
            status, seen = self.status(request_id, seen, max_age)
            return status

        return look
