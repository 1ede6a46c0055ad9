"""Values made once per key by concurrent threads: the first asker makes it, the others of that key wait.

Askers of other keys never wait, so a slow call for one account or user does
not hold up the rest; and no two threads make the same value (a cache that
two tenants fill at once would otherwise be read from AWS twice).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

_MISSING = object()


class Once:
    """A dictionary whose values are made on first use, once per key, under a lock of that key."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()  # guards the two dictionaries only, never a call

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        found = self._values.get(key, _MISSING)
        if found is not _MISSING:
            return found
        with self._lock:
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            found = self._values.get(key, _MISSING)
            if found is _MISSING:
                found = make()
                with self._lock:
                    self._values[key] = found
            return found

    def forget(self, matching: Callable[[Hashable], bool]) -> None:
        """Drop the values whose key matches (they are made again when next asked for)."""
        with self._lock:
            for key in [k for k in self._values if matching(k)]:
                del self._values[key]
