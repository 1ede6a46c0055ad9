"""What the core gives a plugin during a hook call: :class:`HookContext`.

Plugins never touch the state store directly. They get:

* ``ctx.journal``: record an *intent* before a non-idempotent cloud call and the
  operation id right after; find the open intent again after a crash;
* ``ctx.resources``: the resources table: everything the plugin created or
  adopted (kind, key, cloud id, owning tenant, data, revision), so it can tell
  its own resources from foreign ones with the same name and find them again
  for removal;
* ``ctx.quota(name)``: a rolling-window quota whose slots are reserved
  atomically in the state store (e.g. account closures), safe across the
  tenants of a run and across runners;
* ``ctx.cache``: a per-run, per-platform cache for bulk reads shared by all
  tenants (list the organization's accounts once, not once per tenant);
* ``ctx.limiter(name, limit)``: a per-platform semaphore (a context manager)
  capping calls in flight across the tenants reconciled in parallel; with
  ``settings.runners: shared`` it is held in the state store and caps the calls
  in flight of all runners together (a slot a killed runner held frees itself
  when its lease expires; a slot is handed out only while the tenant's lease
  still holds, else :class:`~meshcore.errors.FencedError` and no call);
* ``ctx.owner_of(id)``: which tenant, live or deleted, owns a platform tenant id;
* ``ctx.platform_tenant_id``: the tenant's id as the core knows it *now*
  (inside action ``run`` closures: set by the action that created it);
* ``ctx.sleep(seconds)``: the core's sleep, so tests can make waiting instant.

With ``settings.runners: shared`` every state write a context makes (journal,
resources, quota) carries the fence of the lease its tenant (or platform) is
worked on under: once that lease is lost, the write raises
:class:`~meshcore.errors.FencedError` and nothing is recorded.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from meshcore.leases import Fence, Sharing
from meshcore.redaction import redact

T = TypeVar("T")
log = logging.getLogger("meshcore")


@dataclass(frozen=True)
class Resource:
    """One row of the resources table: something a plugin created or adopted.

    ``owner`` is the key of the tenant it belongs to, or ``""`` for a resource
    shared by the platform (e.g. a policy many landing zones attach).
    ``revision`` grows by one on every write.
    """

    kind: str
    key: str
    cloud_id: str = ""
    owner: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    revision: int = 1


class StateBackend(Protocol):
    """The part of :class:`meshcore.state.StateStore` a context needs."""

    def journal_begin(
        self,
        platform: str,
        tenant_key: str,
        kind: str,
        key: str,
        intent: dict[str, Any],
        *,
        fence: Fence | None = None,
    ) -> Any: ...
    def journal_find(self, platform: str, kind: str, key: str) -> Any: ...
    def journal_update(self, entry_id: int, *, fence: Fence | None = None, **fields: Any) -> None: ...
    def owner_of(self, platform: str, platform_tenant_id: str) -> str | None: ...
    def resource_get(self, platform: str, kind: str, key: str) -> Resource | None: ...
    def resource_put(
        self,
        platform: str,
        kind: str,
        key: str,
        cloud_id: str,
        owner: str,
        data: dict[str, Any],
        *,
        fence: Fence | None = None,
        journal: tuple[int, dict[str, Any]] | None = None,
    ) -> Resource: ...
    def resource_remove(self, platform: str, kind: str, key: str, *, fence: Fence | None = None) -> None: ...
    def resource_list(self, platform: str, kind: str | None, owner: str | None) -> list[Resource]: ...
    def quota_reserve(
        self,
        platform: str,
        name: str,
        key: str,
        limit: int,
        window: dt.timedelta,
        *,
        fence: Fence | None = None,
    ) -> tuple[bool, int]: ...
    def quota_used(self, platform: str, name: str, window: dt.timedelta) -> int: ...


class FencedBackend:
    """A backend whose every write carries ``fence`` (shared runners): refused once the lease is lost."""

    def __init__(self, backend: StateBackend, fence: Fence):
        self._backend = backend
        self.fence = fence

    def journal_begin(
        self,
        platform: str,
        tenant_key: str,
        kind: str,
        key: str,
        intent: dict[str, Any],
        *,
        fence: Fence | None = None,
    ) -> Any:
        return self._backend.journal_begin(platform, tenant_key, kind, key, intent, fence=self.fence)

    def journal_find(self, platform: str, kind: str, key: str) -> Any:
        return self._backend.journal_find(platform, kind, key)

    def journal_update(self, entry_id: int, *, fence: Fence | None = None, **fields: Any) -> None:
        self._backend.journal_update(entry_id, fence=self.fence, **fields)

    def owner_of(self, platform: str, platform_tenant_id: str) -> str | None:
        return self._backend.owner_of(platform, platform_tenant_id)

    def resource_get(self, platform: str, kind: str, key: str) -> Resource | None:
        return self._backend.resource_get(platform, kind, key)

    def resource_put(
        self,
        platform: str,
        kind: str,
        key: str,
        cloud_id: str,
        owner: str,
        data: dict[str, Any],
        *,
        fence: Fence | None = None,
        journal: tuple[int, dict[str, Any]] | None = None,
    ) -> Resource:
        return self._backend.resource_put(
            platform, kind, key, cloud_id, owner, data, fence=self.fence, journal=journal
        )

    def resource_remove(self, platform: str, kind: str, key: str, *, fence: Fence | None = None) -> None:
        self._backend.resource_remove(platform, kind, key, fence=self.fence)

    def resource_list(self, platform: str, kind: str | None, owner: str | None) -> list[Resource]:
        return self._backend.resource_list(platform, kind, owner)

    def quota_reserve(
        self,
        platform: str,
        name: str,
        key: str,
        limit: int,
        window: dt.timedelta,
        *,
        fence: Fence | None = None,
    ) -> tuple[bool, int]:
        return self._backend.quota_reserve(platform, name, key, limit, window, fence=self.fence)

    def quota_used(self, platform: str, name: str, window: dt.timedelta) -> int:
        return self._backend.quota_used(platform, name, window)


class JournalEntry:
    """An open intent. Call :meth:`record_operation` right after the cloud call
    returns an id, and :meth:`complete` or :meth:`fail` when it has finished."""

    def __init__(self, backend: StateBackend, row: Any):
        self._backend = backend
        self.id: int = row.id
        self.kind: str = row.kind
        self.key: str = row.key
        self.intent: dict[str, Any] = dict(row.intent or {})
        self.operation_id: str | None = row.operation_id
        self.tenant_key: str = row.tenant_key
        self.status: str = row.status
        created = row.created_at
        self.created_at: dt.datetime = created.replace(tzinfo=dt.UTC) if created.tzinfo is None else created

    def record_operation(self, operation_id: str) -> None:
        """Remember the cloud's id of the operation (right after the call returned it)."""
        self.operation_id = operation_id
        self._backend.journal_update(self.id, operation_id=operation_id)

    def complete(self, result: dict[str, Any] | None = None) -> None:
        """Close the intent: the operation finished (``find`` no longer returns it)."""
        self._backend.journal_update(self.id, **self._completion(result))
        self.status = "done"

    @staticmethod
    def _completion(result: dict[str, Any] | None) -> dict[str, Any]:
        """The journal row's fields that close an intent as done (see also :meth:`Resources.put`)."""
        return {"status": "done", "result": result or {}}

    def fail(self, message: str) -> None:
        """Close the intent as failed, with why (the next run starts afresh)."""
        self.status = "failed"
        self._backend.journal_update(self.id, status="failed", message=redact(message))


class Journal:
    """Intents of non-idempotent cloud calls (see :class:`JournalEntry`).

    The journal is for crash recovery only: what exists is recorded in
    :class:`Resources`, not here.
    """

    def __init__(self, backend: StateBackend, platform: str, tenant_key: str):
        self._backend = backend
        self._platform = platform
        self._tenant_key = tenant_key

    def begin(self, kind: str, key: str, intent: dict[str, Any]) -> JournalEntry:
        """Durably record the intent to perform ``kind`` on ``key`` (e.g. create-account / e-mail)."""
        row = self._backend.journal_begin(self._platform, self._tenant_key, kind, key, intent)
        return JournalEntry(self._backend, row)

    def find(self, kind: str, key: str) -> JournalEntry | None:
        """The newest open entry for ``kind`` and ``key``, left by an earlier run that did not finish."""
        row = self._backend.journal_find(self._platform, kind, key)
        return JournalEntry(self._backend, row) if row is not None else None


class Resources:
    """The resources table of one platform, seen from one tenant (or from the platform).

    The tenant's own resources are read in one query on first use and kept current with
    this context's writes (a context lives for one tenant in one run, and only its tenant
    records resources as its own), so observing a tenant costs one read, not one per kind.
    """

    def __init__(self, backend: StateBackend, platform: str, tenant_key: str):
        self._backend = backend
        self._platform = platform
        self._tenant_key = tenant_key
        self._lock = threading.Lock()
        self._mine: list[Resource] | None = None

    def _owned(self) -> list[Resource]:
        with self._lock:
            if self._mine is None:
                self._mine = self._backend.resource_list(self._platform, None, self._tenant_key)
            return self._mine

    def _forget(self) -> None:
        with self._lock:
            self._mine = None

    def _replace(self, kind: str, key: str, recorded: Resource | None) -> None:
        """Keep the tenant's resources current after a write of this context (``None``: no longer its own)."""
        with self._lock:
            if self._mine is None:
                return
            at = next((i for i, r in enumerate(self._mine) if (r.kind, r.key) == (kind, key)), None)
            if at is None:  # a new row: the table lists it last
                self._mine = [*self._mine, *((recorded,) if recorded is not None else ())]
            else:  # an updated row keeps its place in the table's order
                rest = self._mine[at + 1 :]
                self._mine = [*self._mine[:at], *((recorded,) if recorded is not None else ()), *rest]

    def get(self, kind: str, key: str) -> Resource | None:
        """The recorded resource, or ``None`` if meshcore never recorded it as its own."""
        found = next((r for r in self._owned() if r.kind == kind and r.key == key), None)
        return found if found is not None else self._backend.resource_get(self._platform, kind, key)

    def put(
        self,
        kind: str,
        key: str,
        *,
        cloud_id: str = "",
        data: dict[str, Any] | None = None,
        shared: bool = False,
        completes: JournalEntry | None = None,
        result: dict[str, Any] | None = None,
    ) -> Resource:
        """Record (or update) a resource owned by this context's tenant, or by the platform if ``shared``.

        With ``completes``, the journal entry whose operation made the resource is closed as
        done (with ``result``) in the same transaction: the resource is recorded exactly when
        its intent is closed, and it costs one write instead of two.

        Refuses (:class:`~meshcore.errors.ConflictError`) to take over a
        resource recorded for another owner.
        """
        owner = "" if shared else self._tenant_key
        journal = (completes.id, completes._completion(result)) if completes is not None else None
        try:
            recorded = self._backend.resource_put(
                self._platform, kind, key, cloud_id, owner, dict(data or {}), journal=journal
            )
        except BaseException:
            self._forget()
            raise
        if completes is not None:
            completes.status = "done"
        self._replace(kind, key, recorded if recorded.owner == self._tenant_key else None)
        return recorded

    def remove(self, kind: str, key: str) -> None:
        """Forget a resource after it was deleted in the cloud."""
        try:
            self._backend.resource_remove(self._platform, kind, key)
        except BaseException:
            self._forget()
            raise
        self._replace(kind, key, None)

    def owned(self, kind: str | None = None) -> list[Resource]:
        """Resources of this context's tenant (of one kind, or all)."""
        return [r for r in self._owned() if kind is None or r.kind == kind]

    def all(self, kind: str) -> list[Resource]:
        """Every recorded resource of one kind on the platform, whoever owns it."""
        return self._backend.resource_list(self._platform, kind, None)


class Quota:
    """A rolling-window quota of one platform (e.g. AWS account closures per 30 days).

    :meth:`reserve` takes a slot in one state-store transaction, so parallel
    tenants and concurrent runners never exceed ``limit`` together. A slot is
    kept once taken (a refused or failed attempt still used it); reserving the
    same ``key`` again inside the window returns the slot it already holds.
    """

    def __init__(self, backend: StateBackend, platform: str, name: str):
        self._backend = backend
        self._platform = platform
        self.name = name

    def reserve(self, key: str, limit: int, window: dt.timedelta) -> bool:
        """Take one slot for ``key`` if fewer than ``limit`` were taken in the last ``window``
        (atomically, across tenants and runners); a key reserved before keeps its slot."""
        granted, _used = self._backend.quota_reserve(self._platform, self.name, key, limit, window)
        return granted

    def used(self, window: dt.timedelta) -> int:
        """Slots taken in the last ``window``."""
        return self._backend.quota_used(self._platform, self.name, window)


class RunCache:
    """A thread-safe memo for one run and one platform. Each key is computed once.

    It is never invalidated, not even by the plugin's own writes: cache what a run reads in
    bulk, and read again (or update the cached value) inside an action's ``run`` when the
    current value matters.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}
        self._key_locks: dict[str, threading.Lock] = {}

    def get(self, key: str, compute: Callable[[], T]) -> T:
        """Return the cached value for ``key``, computing it once if absent."""
        with self._lock:
            if key in self._values:
                return self._values[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._values:
                    return self._values[key]
            value = compute()
            with self._lock:
                self._values[key] = value
            return value


class HookContext:
    """Per-platform, per-run services for plugins; ``for_tenant`` scopes it to one tenant."""

    def __init__(
        self,
        *,
        backend: StateBackend,
        platform_id: str,
        run_id: int,
        cache: RunCache | None = None,
        limiters: dict[str, AbstractContextManager[Any]] | None = None,
        tenant_key: str = "",
        platform_tenant_id: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        sharing: Sharing | None = None,
        fence: Fence | None = None,
        stop: threading.Event | None = None,
    ):
        """``sharing``: this runner's part in a shared apply (limiters held in the state store);
        ``fence``: the lease every state write of this context must still hold; ``stop``: set when
        the run is asked to stop (see :meth:`stopping`)."""
        self._store = backend
        self.sharing = sharing
        self.fence = fence
        if fence is not None:
            backend = FencedBackend(backend, fence)
        self._backend = backend
        self.platform_id = platform_id
        self.run_id = run_id
        self.tenant_key = tenant_key
        self.platform_tenant_id = platform_tenant_id
        self.cache = cache if cache is not None else RunCache()
        self._limiters = limiters if limiters is not None else {}
        self._limiters_lock = threading.Lock()
        self._sleep = sleep
        self._stop = stop
        self.journal = Journal(backend, platform_id, tenant_key)
        self.resources = Resources(backend, platform_id, tenant_key)
        self.log = logging.LoggerAdapter(log, {"platform": platform_id, "tenant": tenant_key})

    def for_tenant(
        self, tenant_key: str, platform_tenant_id: str | None = None, *, fence: Fence | None = None
    ) -> HookContext:
        """A context for one tenant sharing this one's cache and limiters (its writes checked against ``fence``)."""
        ctx = HookContext(
            backend=self._store,
            platform_id=self.platform_id,
            run_id=self.run_id,
            cache=self.cache,
            limiters=self._limiters,
            tenant_key=tenant_key,
            platform_tenant_id=platform_tenant_id,
            sleep=self._sleep,
            sharing=self.sharing,
            fence=fence,
            stop=self._stop,
        )
        ctx._limiters_lock = self._limiters_lock
        return ctx

    def limiter(self, name: str, limit: int) -> AbstractContextManager[Any]:
        """A semaphore (``with ctx.limiter(name, n):``) shared by this platform's tenants, and by every shared runner."""
        with self._limiters_lock:
            sem = self._limiters.get(name)
            if sem is None:
                if self.sharing is not None:
                    sem = self.sharing.limiter(f"{self.platform_id}/{name}", limit)
                else:
                    sem = threading.BoundedSemaphore(limit)
                self._limiters[name] = sem
            return sem

    def quota(self, name: str) -> Quota:
        """The platform's rolling-window quota called ``name``."""
        return Quota(self._backend, self.platform_id, name)

    def owner_of(self, platform_tenant_id: str) -> str | None:
        """The key of the tenant (live or deleted) bound to ``platform_tenant_id`` on this platform."""
        return self._backend.owner_of(self.platform_id, platform_tenant_id)

    def sleep(self, seconds: float) -> None:
        """The core's sleep (instant in tests): use it while polling an asynchronous operation."""
        self._sleep(seconds)

    def stopping(self) -> bool:
        """Whether the run was asked to stop (SIGTERM, Ctrl-C, a service shutting down).

        The action running is let finish, and no other starts. An action that would now wait
        long (for a slot, for an operation it has journaled) should instead return
        ``ActionResult(status=ActionStatus.IN_PROGRESS)``: the next run goes on from there.
        Example: ``while not done(): if ctx.stopping(): return ActionResult(status=IN_PROGRESS)``.
        """
        return self._stop is not None and self._stop.is_set()
