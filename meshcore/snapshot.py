"""A platform's open journal entries and recorded resources, read once per run.

A runner holding the apply lease is the only writer of the state store's journal and
resources (every such write goes through a hook context, and contexts exist only in
runs), so what it read at the start stays true but for its own writes. Observing a
tenant then costs no read of the store: its resources and the open intents it looks up
are answered from memory, and every write goes to the store first and to memory after.
A write that fails in a way that may have left it half done drops the memory; the next
lookup reads the store again.

Shared runners never use this: other runners write the same tables meanwhile.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from meshcore.context import Resource, StateBackend
from meshcore.errors import ConflictError
from meshcore.leases import Fence
from meshcore.redaction import redact, redact_data

#: Journal fields the store redacts on the way in.
_REDACTED = frozenset({"intent", "result", "message"})


@dataclass
class _Tables:
    """The platform's open journal rows (by id) and resources by owner (each by kind and key, in the store's order)."""

    journal: dict[int, Any] = field(default_factory=dict)
    owners: dict[str, dict[tuple[str, str], Resource]] = field(default_factory=dict)
    owner_of: dict[tuple[str, str], str] = field(default_factory=dict)
    order: dict[tuple[str, str], int] = field(default_factory=dict)  # the store's order (its ids' order)
    rows: Iterator[int] = field(default_factory=itertools.count)  # the next row's place, as the next id

    def put(self, res: Resource) -> None:
        where = (res.kind, res.key)
        old = self.owner_of.get(where)
        if old is not None and old != res.owner:
            del self.owners[old][where]
        if where not in self.order:
            self.order[where] = next(self.rows)
        self.owners.setdefault(res.owner, {})[where] = res
        self.owner_of[where] = res.owner

    def remove(self, where: tuple[str, str]) -> None:
        owner = self.owner_of.pop(where, None)
        if owner is not None:
            del self.owners[owner][where]
            del self.order[where]  # a key recorded again later is listed last, as its new row would be

    def get(self, where: tuple[str, str]) -> Resource | None:
        owner = self.owner_of.get(where)
        return self.owners[owner][where] if owner is not None else None


class SnapshotBackend:
    """A :class:`~meshcore.context.StateBackend` for one platform, reading its journal and
    resources from the store once (on first use) and keeping that copy current with the run's writes.

    Writes of different things go to the store side by side (on PostgreSQL they run concurrently);
    two writes of the same resource or journal entry take turns, so memory ends as the store does."""

    def __init__(self, backend: StateBackend, platform: str, open_entries: Any):
        """``open_entries(platform)``: the platform's open journal rows (the store's ``journal_entries``)."""
        self._backend = backend
        self._platform = platform
        self._open_entries = open_entries
        self._lock = threading.Lock()  # memory only, never held across a store call
        self._read_lock = threading.Lock()  # one reader fills memory; the others wait for it
        self._key_locks: dict[Any, threading.Lock] = {}
        self._tables: _Tables | None = None
        self._writes = 0  # store writes so far: a read that overlapped one is read again

    # -- memory ---------------------------------------------------------------------

    def _read(self) -> _Tables:
        with self._lock:
            if self._tables is not None:
                return self._tables
        with self._read_lock:
            for _ in range(3):
                with self._lock:
                    if self._tables is not None:
                        return self._tables
                    writes = self._writes
                tables = _Tables()
                for row in self._open_entries(self._platform):
                    tables.journal[row.id] = row
                for res in self._backend.resource_list(self._platform, None, None):
                    tables.put(res)
                with self._lock:
                    if self._writes == writes:  # no write ended meanwhile (it would be missing, or half seen)
                        self._tables = tables
                        return tables
            return (
                tables  # writes keep overlapping the read: answer from it, keep nothing, read again next time
            )

    @contextmanager
    def _writing(self, what: Any) -> Iterator[None]:
        """One write of ``what`` at a time; a write that fails other than by being refused drops memory."""
        with self._lock:
            key_lock = self._key_locks.setdefault(what, threading.Lock())
        with key_lock:
            try:
                yield
            except ConflictError:
                raise  # refused and rolled back: memory is still the store's
            except BaseException:
                with self._lock:
                    self._tables = None
                    self._writes += 1
                raise

    def _memory(self, platform: str) -> _Tables | None:
        """The memory to update after a write of ``platform`` (``None``: not read yet, or not this platform's)."""
        return self._tables if platform == self._platform else None

    # -- journal ----------------------------------------------------------------------

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
        try:
            row = self._backend.journal_begin(platform, tenant_key, kind, key, intent, fence=fence)
        except BaseException:
            with self._lock:  # it may have been recorded all the same
                self._tables = None
                self._writes += 1
            raise
        with self._lock:
            self._writes += 1
            tables = self._memory(platform)
            if tables is not None:
                tables.journal[row.id] = row
        return row

    def journal_find(self, platform: str, kind: str, key: str) -> Any:
        if platform != self._platform:
            return self._backend.journal_find(platform, kind, key)
        tables = self._read()
        key = redact(key)
        with self._lock:
            found = [r for r in tables.journal.values() if r.kind == kind and r.key == key]
            return max(found, key=lambda r: r.id) if found else None

    def journal_update(self, entry_id: int, *, fence: Fence | None = None, **fields: Any) -> None:
        with self._writing(("journal", entry_id)):
            self._backend.journal_update(entry_id, fence=fence, **fields)
            with self._lock:
                self._writes += 1
                if self._tables is not None:
                    self._journal_changed(self._tables, entry_id, fields)

    def _journal_changed(self, tables: _Tables, entry_id: int, fields: dict[str, Any]) -> None:
        """Apply a journal update to memory: a closed entry is no longer open; an open one takes the fields."""
        row = tables.journal.get(entry_id)
        if fields.get("status", "open") != "open":
            tables.journal.pop(entry_id, None)
        elif row is None:
            if "status" in fields:  # an entry opened again (of this platform or not): read it all next time
                self._tables = None
        else:
            for name, value in fields.items():
                setattr(row, name, redact_data(value) if name in _REDACTED else value)

    # -- resources --------------------------------------------------------------------

    def resource_get(self, platform: str, kind: str, key: str) -> Resource | None:
        if platform != self._platform:
            return self._backend.resource_get(platform, kind, key)
        tables = self._read()
        with self._lock:
            found = tables.get((kind, redact(key)))
        return _copy(found) if found is not None else None

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
        with self._writing(("resource", platform, kind, redact(key))):
            recorded = self._backend.resource_put(
                platform, kind, key, cloud_id, owner, data, fence=fence, journal=journal
            )
            with self._lock:
                self._writes += 1
                tables = self._memory(platform)
                if tables is not None:
                    tables.put(_stored(recorded))
                    if journal is not None:
                        self._journal_changed(tables, *journal)
        return recorded

    def resource_remove(self, platform: str, kind: str, key: str, *, fence: Fence | None = None) -> None:
        with self._writing(("resource", platform, kind, redact(key))):
            self._backend.resource_remove(platform, kind, key, fence=fence)
            with self._lock:
                self._writes += 1
                tables = self._memory(platform)
                if tables is not None:
                    tables.remove((kind, redact(key)))

    def resource_list(self, platform: str, kind: str | None, owner: str | None) -> list[Resource]:
        if platform != self._platform:
            return self._backend.resource_list(platform, kind, owner)
        tables = self._read()
        with self._lock:
            if owner is not None:
                found = list(tables.owners.get(owner, {}).values())
            else:
                found = [r for rows in tables.owners.values() for r in rows.values()]
            chosen = [r for r in found if kind is None or r.kind == kind]
            chosen.sort(key=lambda r: tables.order[(r.kind, r.key)])
        return [_copy(r) for r in chosen]

    # -- the rest goes to the store ----------------------------------------------------------

    def owner_of(self, platform: str, platform_tenant_id: str) -> str | None:
        return self._backend.owner_of(platform, platform_tenant_id)

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
        return self._backend.quota_reserve(platform, name, key, limit, window, fence=fence)

    def quota_used(self, platform: str, name: str, window: dt.timedelta) -> int:
        return self._backend.quota_used(platform, name, window)


def _stored(resource: Resource) -> Resource:
    """The resource as a read of the store would return it: its data through JSON, secrets redacted."""
    return replace(resource, data=json.loads(json.dumps(redact_data(resource.data))))


def _copy(resource: Resource) -> Resource:
    return replace(resource, data=json.loads(json.dumps(resource.data)))
