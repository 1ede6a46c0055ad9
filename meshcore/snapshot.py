"""A platform's open journal entries and recorded resources, read once per run.

A runner holding the apply lease is the only writer of the state store's journal and
resources (every such write goes through a hook context, and contexts exist only in
runs), so what it read at the start stays true but for its own writes. Observing a
tenant then costs no read of the store: its resources and the open intents it looks up
are answered from memory, and every write goes to the store first and to memory after.
A write that fails (or may have been half done) drops the memory; the next lookup
reads the store again.

Shared runners never use this: other runners write the same tables meanwhile.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field, replace
from typing import Any

from meshcore.context import Resource, StateBackend
from meshcore.leases import Fence
from meshcore.redaction import redact


@dataclass
class _Tables:
    """The platform's open journal rows (by id) and resources (by kind and key, in the store's order)."""

    journal: dict[int, Any] = field(default_factory=dict)
    resources: dict[tuple[str, str], Resource] = field(default_factory=dict)


class SnapshotBackend:
    """A :class:`~meshcore.context.StateBackend` for one platform, reading its journal and
    resources from the store once (on first use) and keeping that copy current with the run's writes."""

    def __init__(self, backend: StateBackend, platform: str, open_entries: Any):
        """``open_entries(platform)``: the platform's open journal rows (the store's ``journal_entries``)."""
        self._backend = backend
        self._platform = platform
        self._open_entries = open_entries
        self._lock = threading.RLock()
        self._tables: _Tables | None = None

    # -- memory ---------------------------------------------------------------------

    def _read(self) -> _Tables:
        with self._lock:
            if self._tables is None:
                tables = _Tables()
                for row in self._open_entries(self._platform):
                    tables.journal[row.id] = row
                for res in self._backend.resource_list(self._platform, None, None):
                    tables.resources[(res.kind, res.key)] = res
                self._tables = tables
            return self._tables

    @contextmanager
    def _writing(self) -> Iterator[_Tables | None]:
        """Hold the memory while a write goes to the store; drop it if the write fails."""
        with self._lock:
            try:
                yield self._tables
            except BaseException:
                self._tables = None
                raise

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
        with self._writing() as tables:
            row = self._backend.journal_begin(platform, tenant_key, kind, key, intent, fence=fence)
            if tables is not None and platform == self._platform:
                tables.journal[row.id] = row
            return row

    def journal_find(self, platform: str, kind: str, key: str) -> Any:
        if platform != self._platform:
            return self._backend.journal_find(platform, kind, key)
        key = redact(key)
        with self._lock:
            rows = self._read().journal.values()
            found = [r for r in rows if r.kind == kind and r.key == key]
            return max(found, key=lambda r: r.id) if found else None

    def journal_update(self, entry_id: int, *, fence: Fence | None = None, **fields: Any) -> None:
        with self._writing() as tables:
            self._backend.journal_update(entry_id, fence=fence, **fields)
            if tables is not None:
                _journal_changed(tables, entry_id, fields)

    # -- resources --------------------------------------------------------------------

    def resource_get(self, platform: str, kind: str, key: str) -> Resource | None:
        if platform != self._platform:
            return self._backend.resource_get(platform, kind, key)
        with self._lock:
            found = self._read().resources.get((kind, redact(key)))
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
        with self._writing() as tables:
            recorded = self._backend.resource_put(
                platform, kind, key, cloud_id, owner, data, fence=fence, journal=journal
            )
            if tables is not None and platform == self._platform:
                tables.resources[(recorded.kind, recorded.key)] = recorded
                if journal is not None:
                    _journal_changed(tables, *journal)
            return recorded

    def resource_remove(self, platform: str, kind: str, key: str, *, fence: Fence | None = None) -> None:
        with self._writing() as tables:
            self._backend.resource_remove(platform, kind, key, fence=fence)
            if tables is not None and platform == self._platform:
                tables.resources.pop((kind, redact(key)), None)

    def resource_list(self, platform: str, kind: str | None, owner: str | None) -> list[Resource]:
        if platform != self._platform:
            return self._backend.resource_list(platform, kind, owner)
        with self._lock:
            return [
                _copy(r)
                for r in self._read().resources.values()
                if (kind is None or r.kind == kind) and (owner is None or r.owner == owner)
            ]

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


def _copy(resource: Resource) -> Resource:
    """A resource whose data the caller may change without changing memory (as a fresh read would be)."""
    return replace(resource, data=deepcopy(resource.data))


def _journal_changed(tables: _Tables, entry_id: int, fields: dict[str, Any]) -> None:
    """Apply a journal update to memory: a closed entry is no longer open; an open one takes the fields."""
    row = tables.journal.get(entry_id)
    if row is None:
        return
    if fields.get("status", "open") != "open":
        del tables.journal[entry_id]
        return
    for name, value in fields.items():
        setattr(row, name, value)
