"""Shared runners (``settings.runners: shared``): leases with fencing tokens, and the shared API budget.

Several runners on one state split the tenants: each tenant (and each platform's
shared work) is worked on under a lease of its own in the state store, taken
atomically, renewed in the background (every third of its time) and released at
the end. Every acquisition hands out a new, larger *fencing token*; every state
write made for that tenant carries the :class:`Fence` (key, holder, token) and the
store refuses it (:class:`~meshcore.errors.FencedError`) unless the lease row
still names this holder and token and has not expired. So a runner that was
paused or cut off past its lease can no longer record anything for that tenant.

:class:`SharedLimiter` is ``ctx.limiter`` across runners: at most ``limit``
slots of a named budget are held at once by all runners together; each slot is a
short lease, so a killed runner's slot frees itself when it expires. A slot taken
while working on a tenant is handed out only after that tenant's lease was checked
again: a runner that waited for a slot past its lease (paused, cut off) gets
:class:`~meshcore.errors.FencedError` instead of making the call. Only a call already in
flight, or sent in the instant between that check and the request, can still reach the
cloud after the lease was lost; it is not undone (such calls are idempotent or journaled).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

#: How long a runner waits between two attempts to take a slot of a full API budget (seconds).
SLOT_POLL = 0.05


@dataclass(frozen=True)
class Fence:
    """What a state write made under a lease must still find in the lease's row to be recorded."""

    key: str
    holder: str
    token: int


#: The lease the current thread works under (set by the reconciler around one tenant or platform).
_working_under: ContextVar[Fence | None] = ContextVar("meshcore_fence", default=None)


@contextmanager
def working_under(fence: Fence) -> Iterator[None]:
    """Mark the current thread as working under ``fence`` for the block (see :class:`SharedLimiter`)."""
    token = _working_under.set(fence)
    try:
        yield
    finally:
        _working_under.reset(token)


class LeaseBackend(Protocol):
    """The part of :class:`meshcore.state.StateStore` that leases and API budgets need."""

    def acquire_tenant_lease(
        self, key: str, holder: str, ttl_seconds: float, done_since: Any = None
    ) -> int | None: ...
    def renew_tenant_lease(self, fence: Fence, ttl_seconds: float) -> bool: ...
    def release_tenant_lease(self, fence: Fence) -> None: ...
    def check_fence(self, fence: Fence) -> None: ...
    def limiter_acquire(self, name: str, limit: int, holder: str, ttl_seconds: float) -> int | None: ...
    def limiter_renew(self, name: str, slot: int, holder: str, ttl_seconds: float) -> bool: ...
    def limiter_release(self, name: str, slot: int, holder: str) -> None: ...


class Renewer:
    """One background thread that renews leases every third of their time until closed."""

    def __init__(self, ttl_seconds: float):
        self._ttl = ttl_seconds
        self._renewals: dict[Any, Callable[[], bool]] = {}  # lease -> renew it (False: lost, stop)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="meshcore-leases")
        self._thread.start()

    def add(self, lease: Any, renew: Callable[[], bool]) -> None:
        with self._lock:
            self._renewals[lease] = renew

    def discard(self, lease: Any) -> None:
        with self._lock:
            self._renewals.pop(lease, None)

    def _loop(self) -> None:
        while not self._stop.wait(self._ttl / 3):
            with self._lock:
                due = list(self._renewals.items())
            for lease, renew in due:
                try:
                    kept = renew()
                except Exception:  # a database hiccup: try again next time (the lease may expire meanwhile)
                    kept = True
                if not kept:
                    self.discard(lease)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Sharing:
    """One runner's part in a shared apply: who it is, its leases' time, and their renewal."""

    def __init__(self, store: LeaseBackend, holder: str, ttl_seconds: float):
        self.store = store
        self.holder = holder
        self.ttl = ttl_seconds
        self.renewer = Renewer(ttl_seconds)

    @contextmanager
    def lease(self, key: str, done_since: Any = None) -> Iterator[Fence | None]:
        """Hold the lease ``key`` (renewed in the background) for the block; ``None`` if another runner has it.

        ``done_since``: also ``None`` when another runner released the lease at or
        after that time (it did this tenant in the current round).
        """
        token = self.store.acquire_tenant_lease(key, self.holder, self.ttl, done_since)
        if token is None:
            yield None
            return
        fence = Fence(key, self.holder, token)
        self.renewer.add(fence, lambda: self.store.renew_tenant_lease(fence, self.ttl))
        try:
            yield fence
        finally:
            self.renewer.discard(fence)
            self.store.release_tenant_lease(fence)

    def limiter(self, name: str, limit: int) -> SharedLimiter:
        return SharedLimiter(self, name, limit)

    def close(self) -> None:
        """Stop renewing: the run is over (a lease still held expires on its own)."""
        self.renewer.close()


class SharedLimiter:
    """A semaphore of ``limit`` slots held in the state store, shared by every runner (a context manager)."""

    def __init__(self, sharing: Sharing, name: str, limit: int):
        self._sharing = sharing
        self.name = name
        self.limit = limit
        self._local = threading.local()  # the slots this thread holds, innermost last

    def acquire(self) -> None:
        """Wait for a free slot (one a killed runner held frees itself once its lease expires)."""
        store, ttl = self._sharing.store, self._sharing.ttl
        holder = f"{self._sharing.holder}:{uuid.uuid4().hex[:8]}"
        while (slot := store.limiter_acquire(self.name, self.limit, holder, ttl)) is None:
            time.sleep(SLOT_POLL * (1 + random.random()))
        fence = _working_under.get()
        if fence is not None:
            try:
                store.check_fence(fence)  # waited past the tenant's lease: make no call for it
            except BaseException:
                store.limiter_release(self.name, slot, holder)
                raise
        held = (slot, holder)
        self._sharing.renewer.add(
            (self.name, *held), lambda: store.limiter_renew(self.name, slot, holder, ttl)
        )
        self._local.__dict__.setdefault("held", []).append(held)

    def release(self) -> None:
        slot, holder = self._local.held.pop()
        self._sharing.renewer.discard((self.name, slot, holder))
        self._sharing.store.limiter_release(self.name, slot, holder)

    def __enter__(self) -> SharedLimiter:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
