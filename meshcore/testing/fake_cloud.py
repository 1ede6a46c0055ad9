"""The fake platform's "cloud": folders with guardrails, tenants, access, and asynchronous operations.

It behaves like a small cloud where it matters to meshcore's promises:

* tenant creation is asynchronous when ``create_polls`` > 0 (the tenant is
  invisible until its operation finished, like an AWS account);
* closing a tenant goes ``ACTIVE`` → ``CLOSING`` → ``CLOSED``;
* every call is counted (``reads``, ``writes``, and reported to meshcore's
  telemetry as ``fake.<op>`` of its platform, as a plugin does), any call can be made to fail
  once (``fail``), and the process can be made to "die" after the k-th write
  (``crash_after_write``) or right after a given operation (``crash_after``);
* ``external`` tenants were made outside meshcore (discovery, import, and the
  "nothing foreign changed" checks).

With a path it persists to a SQLite file, one row per object, so one change
costs one small write whatever the cloud's size, and several processes (the
CLI across runs) see each other's changes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from meshcore import record_cloud_call

#: Tenant states.
ACTIVE, CLOSING, CLOSED = "ACTIVE", "CLOSING", "CLOSED"


class SimulatedCrash(BaseException):
    """Raised to simulate the process dying mid-operation (a ``BaseException``: nothing catches it)."""


class FakeCloud:
    """State and call accounting of one fake platform."""

    def __init__(self, path: str | None = None, create_polls: int = 0, platform_id: str = ""):
        self.path = path
        self.platform_id = platform_id  # names the platform in the calls reported to telemetry
        self.create_polls = create_polls
        self.lock = threading.RLock()
        self.folders: dict[str, dict[str, Any]] = {}
        self.tenants: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.external: set[str] = set()
        self.next_id = 100000000001
        self.reads: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.fail: dict[str, BaseException] = {}  # "op" or "op:subject" -> raised once
        self.crash_after: set[str] = set()  # ops after which a simulated crash happens, once each
        self.crash_after_write: int | None = None  # crash right after the k-th write from now
        self.changes: list[tuple[float, str]] = []  # its change feed: (time, tenant id) of every tenant write
        self.unfed: set[str] = set()  # tenant ids whose next write the change feed does not see
        self._db: sqlite3.Connection | None = None
        self._version = -1
        if path:
            self._open(path)

    # -- persistence -------------------------------------------------------------------

    def _open(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (kind TEXT, id TEXT, body TEXT, PRIMARY KEY (kind, id))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS changes (at REAL, tenant TEXT)")
        self._load()

    def _load(self) -> None:
        assert self._db is not None
        tables: dict[str, dict[str, Any]] = {"folder": {}, "tenant": {}, "operation": {}, "meta": {}}
        for kind, oid, body in self._db.execute("SELECT kind, id, body FROM objects"):
            tables.setdefault(kind, {})[oid] = json.loads(body)
        self.folders, self.tenants, self.operations = tables["folder"], tables["tenant"], tables["operation"]
        meta = tables["meta"]
        self.next_id = int(meta.get("next_id", {"value": self.next_id})["value"])
        self.external = set(meta.get("external", {"value": []})["value"])
        self._version = self._db.execute("PRAGMA data_version").fetchone()[0]

    def reload_if_changed(self) -> None:
        """Pick up changes another process made to the file."""
        if self._db is None:
            return
        with self.lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self._load()

    def _save(self, kind: str, oid: str, body: Any) -> None:
        if kind == "tenant":
            self._changed(oid)
        if self._db is None:
            return
        if body is None:
            self._db.execute("DELETE FROM objects WHERE kind = ? AND id = ?", (kind, oid))
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO objects (kind, id, body) VALUES (?, ?, ?)",
                (kind, oid, json.dumps(body, sort_keys=True)),
            )

    def _changed(self, tid: str) -> None:
        if tid in self.unfed:  # a change the feed cannot see (like one made inside a tenant)
            self.unfed.discard(tid)
            return
        at = time.time()
        self.changes.append((at, tid))
        if self._db is not None:
            self._db.execute("INSERT INTO changes (at, tenant) VALUES (?, ?)", (at, tid))

    def changed_since(self, since: float) -> set[str]:
        """The change feed: tenants written at or after ``since`` (seconds since the epoch)."""
        self.read("changes")
        if self._db is not None:
            rows = self._db.execute("SELECT tenant FROM changes WHERE at >= ?", (since,)).fetchall()
            return {str(r[0]) for r in rows}
        return {tid for at, tid in self.changes if at >= since}

    def _save_meta(self) -> None:
        self._save("meta", "next_id", {"value": self.next_id})
        self._save("meta", "external", {"value": sorted(self.external)})

    def disconnect(self) -> None:
        """Close the state file (the in-memory state stays)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- call accounting and faults ------------------------------------------------------

    def _check(self, op: str, subject: str) -> None:
        for key in (f"{op}:{subject}", op):
            exc = self.fail.pop(key, None)
            if exc is not None:
                record_cloud_call(self.platform_id, f"fake.{op}", "error")
                raise exc
        record_cloud_call(self.platform_id, f"fake.{op}", "ok")

    def read(self, op: str, subject: str = "") -> None:
        self.reads[op] += 1
        self._check(op, subject)

    def write(self, op: str, subject: str = "") -> None:
        """Count a write (and raise an injected failure) *before* it changes anything."""
        self.writes[op] += 1
        self._check(op, subject)

    def wrote(self, op: str) -> None:
        """After a write changed the cloud: simulate the process dying here, if asked."""
        if op in self.crash_after:
            self.crash_after.discard(op)
            raise SimulatedCrash(f"process died right after {op} returned")
        if self.crash_after_write is not None:
            self.crash_after_write -= 1
            if self.crash_after_write <= 0:
                self.crash_after_write = None
                raise SimulatedCrash(f"process died right after {op}")

    @property
    def write_count(self) -> int:
        return sum(self.writes.values())

    # -- folders -------------------------------------------------------------------------

    def create_folder(self, path: str) -> None:
        with self.lock:
            self.write("create-folder", path)
            self.folders.setdefault(path, {"guardrails": []})
            self._save("folder", path, self.folders[path])
        self.wrote("create-folder")

    def set_folder_guardrails(self, path: str, guardrails: list[str]) -> None:
        with self.lock:
            self.write("set-folder-guardrails", path)
            self.folders[path]["guardrails"] = list(guardrails)
            self._save("folder", path, self.folders[path])
        self.wrote("set-folder-guardrails")

    # -- tenants -------------------------------------------------------------------------

    def _new_tenant(self, name: str, tags: dict[str, str], marker: str = "") -> str:
        tid = str(self.next_id)
        self.next_id += 1
        self.tenants[tid] = {
            "name": name,
            "managed_by": marker,
            "folder": "",
            "tags": dict(tags),
            "access": {},
            "status": ACTIVE,
            "guardrails": [],
            "baseline": "",
        }
        self._save("tenant", tid, self.tenants[tid])
        self._save_meta()
        return tid

    def create(
        self, name: str, operation_id: str, tags: dict[str, str] | None = None, marker: str = ""
    ) -> str | None:
        """Start creating a tenant (``marker``: who it is made for); its id, or ``None`` while in progress."""
        with self.lock:
            self.write("create", name)
            op: dict[str, Any] = {
                "name": name,
                "tags": dict(tags or {}),
                "marker": marker,
                "polls": self.create_polls,
                "tenant": None,
            }
            if op["polls"] <= 0:
                op["tenant"] = self._new_tenant(name, op["tags"], marker)
            self.operations[operation_id] = op
            self._save("operation", operation_id, op)
        self.wrote("create")
        return op["tenant"]

    def poll(self, operation_id: str) -> tuple[str, str | None]:
        """(state, tenant id) of a creation: ``IN_PROGRESS``, ``SUCCEEDED`` or ``UNKNOWN``."""
        with self.lock:
            self.read("describe-operation", operation_id)
            op = self.operations.get(operation_id)
            if op is None:
                return "UNKNOWN", None
            if op["tenant"] is None:
                op["polls"] -= 1
                if op["polls"] <= 0:
                    op["tenant"] = self._new_tenant(op["name"], op["tags"], op.get("marker", ""))
                self._save("operation", operation_id, op)
            return ("SUCCEEDED", op["tenant"]) if op["tenant"] else ("IN_PROGRESS", None)

    def pending_creation(self, name: str) -> str | None:
        """The id of an unfinished creation of ``name`` (to recover a lost operation id)."""
        with self.lock:
            self.read("list-operations")
            return next(
                (oid for oid, op in self.operations.items() if op["name"] == name and not op["tenant"]), None
            )

    def find(self, name: str) -> str | None:
        """The id of the live (not closed) tenant called ``name``."""
        with self.lock:
            self.read("list", name)
            return next(
                (
                    tid
                    for tid, t in sorted(self.tenants.items())
                    if t["name"] == name and t["status"] == ACTIVE
                ),
                None,
            )

    def get(self, tid: str) -> dict[str, Any] | None:
        with self.lock:
            self.read("describe", tid)
            found = self.tenants.get(tid)
            return json.loads(json.dumps(found)) if found is not None else None

    def update(self, tid: str, op: str, **fields: Any) -> None:
        """Change fields of a tenant (one write)."""
        with self.lock:
            self.write(op, self.tenants[tid]["name"])
            self.tenants[tid].update(json.loads(json.dumps(fields)))
            self._save("tenant", tid, self.tenants[tid])
        self.wrote(op)

    def close_tenant(self, tid: str) -> None:
        """Start closing a tenant (it becomes ``CLOSING``; the platform finishes it later)."""
        self.update(tid, "close", status=CLOSING)

    def poll_closure(self, tid: str) -> str:
        """The tenant's state; a ``CLOSING`` tenant is found ``CLOSED`` from its first status read on."""
        with self.lock:
            self.read("describe-closure", tid)
            tenant = self.tenants.get(tid)
            if tenant is None:
                return CLOSED
            if tenant["status"] == CLOSING:
                tenant["status"] = CLOSED
                self._save("tenant", tid, tenant)
            return str(tenant["status"])

    def grant(self, tid: str, role: str, user: str) -> None:
        with self.lock:
            self.write("grant", self.tenants[tid]["name"])
            users = self.tenants[tid]["access"].setdefault(role, [])
            if user not in users:
                users.append(user)
                users.sort()
            self._save("tenant", tid, self.tenants[tid])
        self.wrote("grant")

    def revoke(self, tid: str, role: str, user: str) -> None:
        with self.lock:
            self.write("revoke", self.tenants[tid]["name"])
            access = self.tenants[tid]["access"]
            if user in access.get(role, []):
                access[role].remove(user)
            if not access.get(role, True):
                del access[role]
            self._save("tenant", tid, self.tenants[tid])
        self.wrote("revoke")

    def add_external(self, name: str) -> str:
        """Create a tenant outside meshcore (for discovery, import and foreign-resource tests)."""
        with self.lock:
            tid = self._new_tenant(name, {})
            self.external.add(tid)
            self._save_meta()
            return tid


__all__ = ["ACTIVE", "CLOSED", "CLOSING", "FakeCloud", "SimulatedCrash"]
