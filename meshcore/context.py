"""What the core gives a plugin during a hook call: :class:`HookContext`.

Plugins never touch the state store directly. They get:

* ``ctx.journal``: record an intent before a non-idempotent cloud call and the
  operation id right after, find the open entry again after a crash;
* ``ctx.step(name)``: record a step's outcome the moment it ends, so nothing
  done is lost when a later step fails;
* ``ctx.cache``: a per-run, per-platform cache for bulk reads shared by all
  tenants (list the organization's accounts once, not once per tenant);
* ``ctx.limiter(name, limit)``: a per-run, per-platform semaphore capping calls
  in flight across the tenants reconciled in parallel;
* ``ctx.owner_of(id)``: which tenant, if any, owns a platform tenant id;
* ``ctx.sleep(seconds)``: the core's sleep, so tests can make waiting instant.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from meshcore.redaction import redact
from meshcore.state.tables import utcnow

T = TypeVar("T")
log = logging.getLogger("meshcore")


class StateBackend(Protocol):
    """The part of :class:`meshcore.state.StateStore` a context needs."""

    def journal_begin(
        self, platform: str, tenant_key: str, kind: str, key: str, intent: dict[str, Any]
    ) -> Any: ...
    def journal_find(self, platform: str, kind: str, key: str) -> Any: ...
    def journal_update(self, entry_id: int, **fields: Any) -> None: ...
    def journal_history(
        self, platform: str, kind: str, since: Any, key: str | None = None, key_prefix: str | None = None
    ) -> list[Any]: ...
    def record_step(
        self,
        run_id: int,
        tenant_key: str,
        platform: str,
        name: str,
        status: str,
        message: str,
        started_at: Any,
        duration_ms: int,
    ) -> None: ...
    def owner_of(self, platform: str, platform_tenant_id: str) -> str | None: ...


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
        self.result: dict[str, Any] = dict(row.result or {})

    def record_operation(self, operation_id: str) -> None:
        self.operation_id = operation_id
        self._backend.journal_update(self.id, operation_id=operation_id)

    def complete(self, result: dict[str, Any] | None = None) -> None:
        self._backend.journal_update(self.id, status="done", result=result or {})

    def fail(self, message: str) -> None:
        self._backend.journal_update(self.id, status="failed", message=redact(message))


class Journal:
    """Per-platform operations journal (see :class:`JournalEntry`)."""

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

    def last(self, kind: str, key: str) -> JournalEntry | None:
        """The newest entry for ``kind`` and ``key`` in any status (e.g. to skip repeating a done action)."""
        rows = self._backend.journal_history(self._platform, kind, None, key)
        return JournalEntry(self._backend, rows[-1]) if rows else None

    def history(self, kind: str, since: Any = None, key_prefix: str | None = None) -> list[JournalEntry]:
        """Entries of ``kind`` on this platform (any status), oldest first, created at or after ``since``
        and with keys starting with ``key_prefix``.

        For quotas over a rolling window (account closures in the last 30 days), or to find what
        was recorded for one resource (every StackSet instance of an account).
        """
        rows = self._backend.journal_history(self._platform, kind, since, key_prefix=key_prefix)
        return [JournalEntry(self._backend, r) for r in rows]


class RunCache:
    """A thread-safe memo for one run and one platform. Each key is computed once."""

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

    def invalidate(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)


class StepHandle:
    """Lets the code inside ``ctx.step(...)`` say what happened."""

    def __init__(self) -> None:
        self.status = "ok"
        self.message = ""

    def changed(self, message: str = "") -> None:
        self.status, self.message = "changed", message

    def note(self, message: str) -> None:
        self.message = message

    def warn(self, message: str) -> None:
        """Record a problem that does not fail the tenant (e.g. a notification hook's own error)."""
        self.status, self.message = "warning", message

    def skip(self, message: str = "") -> None:
        self.status, self.message = "skipped", message

    def fail(self, message: str) -> None:
        """Mark the step failed without raising (the hook carries on)."""
        self.status, self.message = "failed", message


class StepRecorder(Protocol):
    def __call__(self, name: str, status: str, message: str, started_at: Any, duration_ms: int) -> None: ...


class HookContext:
    """Per-platform, per-run services for plugins; ``for_tenant`` scopes it to one tenant."""

    def __init__(
        self,
        *,
        backend: StateBackend,
        platform_id: str,
        run_id: int,
        cache: RunCache | None = None,
        limiters: dict[str, threading.BoundedSemaphore] | None = None,
        tenant_key: str = "",
        dry_run: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._backend = backend
        self.platform_id = platform_id
        self.run_id = run_id
        self.tenant_key = tenant_key
        self.dry_run = dry_run
        self.cache = cache if cache is not None else RunCache()
        self._limiters = limiters if limiters is not None else {}
        self._limiters_lock = threading.Lock()
        self._sleep = sleep
        self.journal = Journal(backend, platform_id, tenant_key)
        self.failed_steps: list[str] = []
        self.log = logging.LoggerAdapter(log, {"platform": platform_id, "tenant": tenant_key})

    def for_tenant(self, tenant_key: str) -> HookContext:
        """A context for one tenant sharing this one's cache and limiters."""
        ctx = HookContext(
            backend=self._backend,
            platform_id=self.platform_id,
            run_id=self.run_id,
            cache=self.cache,
            limiters=self._limiters,
            tenant_key=tenant_key,
            dry_run=self.dry_run,
            sleep=self._sleep,
        )
        ctx._limiters_lock = self._limiters_lock
        return ctx

    @contextmanager
    def step(self, name: str) -> Iterator[StepHandle]:
        """Record one step. An exception marks it failed (with its message) and propagates."""
        handle = StepHandle()
        started = utcnow()
        t0 = time.perf_counter()
        try:
            yield handle
        except BaseException as exc:
            handle.status = "failed"
            handle.message = handle.message or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.record(name, handle.status, handle.message, started, t0)

    def record(self, name: str, status: str, message: str, started: Any, t0: float) -> None:
        """Store a step result now (used by :meth:`step` and by the reconciler)."""
        if status == "failed":
            self.failed_steps.append(name)
        self._backend.record_step(
            self.run_id,
            self.tenant_key,
            self.platform_id,
            name,
            status,
            redact(message),
            started,
            int((time.perf_counter() - t0) * 1000),
        )

    def limiter(self, name: str, limit: int) -> threading.BoundedSemaphore:
        """A semaphore shared by every tenant of this platform in this run (created on first use)."""
        with self._limiters_lock:
            sem = self._limiters.get(name)
            if sem is None:
                sem = self._limiters[name] = threading.BoundedSemaphore(limit)
            return sem

    def owner_of(self, platform_tenant_id: str) -> str | None:
        """The key of the tenant bound to ``platform_tenant_id`` on this platform, or ``None``."""
        return self._backend.owner_of(self.platform_id, platform_tenant_id)

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)
