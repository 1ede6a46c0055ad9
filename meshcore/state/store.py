"""The state store: tenants, operations journal, runs and steps, audit trail, leases.

Backed by SQLAlchemy 2: a SQLite file by default, a PostgreSQL database
(``postgresql+psycopg://...``) when several runners share one state. The schema
is migrated to the newest revision on open. Access is thread-safe: the
reconciler records steps from several worker threads.

Every read-then-write transaction is atomic across processes on both backends:
on SQLite every transaction takes the database's write lock up front
(``BEGIN IMMEDIATE``); on PostgreSQL such a transaction first takes a
transaction-scoped advisory lock named after what it changes (see
:meth:`StateStore._exclusive`), or relies on a row lock or a unique key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, delete, event, insert, make_url, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from meshcore.context import Resource
from meshcore.errors import ConflictError, FencedError, LockHeldError, MeshcoreError, StateStoreError
from meshcore.leases import Fence
from meshcore.redaction import redact, redact_data, register_secret
from meshcore.state.tables import (
    AuditRow,
    Base,
    JournalRow,
    LeaseRow,
    LimiterSlotRow,
    PlatformRow,
    QuotaLockRow,
    QuotaRow,
    ResourceRow,
    RunRow,
    StatementRow,
    StepRow,
    TenantLeaseRow,
    TenantRow,
    UsageRow,
    utcnow,
)

#: Database backends the store is tested against (the dialect names of their URLs).
BACKENDS = ("sqlite", "postgresql")
#: Seconds to wait for a PostgreSQL server to accept a connection (unless the URL sets connect_timeout).
CONNECT_TIMEOUT = 10
#: PostgreSQL connections kept per process, and more opened under load (then closed).
POOL_SIZE, POOL_OVERFLOW = 8, 32

DEFAULT_STATE_URL = "sqlite:///.meshcore/state.db"
#: Fields whose values pass through secret redaction before they are stored.
_REDACTED = frozenset(
    {"attributes", "last_error", "intent", "result", "message", "summary", "details", "totals", "lines"}
)
log = logging.getLogger("meshcore")
_MIGRATIONS = Path(__file__).parent / "migrations"
_R = TypeVar("_R", bound=Base)
#: Alembic runs a migration through a module-global context: one migration at a time per process.
_MIGRATING = threading.Lock()
#: PostgreSQL advisory lock key held while the schema is migrated ("meshcore" in ASCII).
_MIGRATION_LOCK = 0x6D657368636F7265


def normalize_url(url: str) -> str:
    """Accept a plain file path as well as a SQLAlchemy URL; ``postgres://`` and ``postgresql://``
    (libpq's forms) mean the psycopg driver meshcore ships with."""
    if "://" not in url:
        return f"sqlite:///{url}"
    for alias in ("postgres://", "postgresql://"):
        if url.startswith(alias):
            return "postgresql+psycopg://" + url[len(alias) :]
    return url


class StateStore:
    """Durable record of what meshcore did. Open with :meth:`open`."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._lock = threading.RLock()
        # Step records waiting for their thread's next transaction (see record_step's ``deferred``), per thread.
        self._queues: dict[int, _StepQueue] = {}
        self._queues_lock = threading.Lock()
        # SQLite has one writer at a time (every transaction begins IMMEDIATE): threads queue here, in
        # order, rather than in SQLite's sleeping busy handler. PostgreSQL runs transactions side by side.
        self._serial: AbstractContextManager[Any] = (
            self._lock if engine.dialect.name == "sqlite" else nullcontext()
        )

    # -- opening and schema ---------------------------------------------------

    @classmethod
    def open(cls, url: str = DEFAULT_STATE_URL, *, create: bool = True) -> StateStore:
        """Open the store at ``url``, migrating its schema to the newest revision.

        ``create=False`` (read-only commands) refuses a store that does not
        exist instead of creating an empty one, so that a mistyped ``--state``
        is noticed. A new SQLite file is created under a temporary name and
        renamed into place once its schema is complete: a kill during creation
        never leaves a half-made store behind; in a PostgreSQL database the
        migration is one transaction, so the same holds there. Every problem is a
        :class:`StateStoreError` naming the store (never its password) and what
        to do.
        """
        url = normalize_url(url)
        parsed = _parse_url(url)
        for password in (parsed.password, parsed.query.get("password")):
            if password:  # never in a message, a log record or the state
                register_secret(str(password))
        path = sqlite_file(url)
        where = str(path) if path is not None else _safe_url(url)
        if path is not None and not path.exists():
            if not create:
                raise StateStoreError(
                    f"state store {where} does not exist: check --state (or MESHCORE_STATE); "
                    "'meshcore apply' creates it"
                )
            _create_sqlite(path)
        store = cls(_engine(parsed, where))
        try:
            if store.engine.dialect.name == "sqlite":
                store.check_integrity(where)
            store.migrate(create=create, where=where)
        except BaseException:
            store.close()
            raise
        return store

    def check_integrity(self, where: str) -> None:
        """Refuse a damaged SQLite file before anything reads or writes it (``PRAGMA quick_check``).

        SQLite notices damage only on the pages a statement touches: without this
        check a command that does not touch them would run, and write, on a
        damaged store.
        """
        try:
            with self.engine.connect() as conn:
                found = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check(5)")]
        except SQLAlchemyError as exc:
            raise state_error(exc, where, self.engine.url) from None
        if found != ["ok"]:
            raise StateStoreError(
                f"cannot use state store {where}: it is damaged ({'; '.join(found)}): restore it from a "
                "backup, or point --state elsewhere"
            )

    def migrate(self, *, create: bool = True, where: str = "") -> str:
        """Bring the schema to the newest revision (in one transaction); return that revision."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        where = where or _safe_url(self.engine.url)
        with self._lock, _MIGRATING:
            try:
                with self.engine.begin() as conn:
                    _lock_migrations(conn)
                    current = MigrationContext.configure(conn).get_current_revision()
                    if current == head:
                        return current or ""
                    if current is None and not create:
                        raise StateStoreError(
                            f"state store {where} holds no meshcore state: check --state (or MESHCORE_STATE)"
                        )
                    known = {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}
                    if current is not None and current not in known:
                        raise StateStoreError(
                            f"state store {where} has schema revision {current!r}, newer than this "
                            "meshcore knows: upgrade meshcore"
                        )
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            except SQLAlchemyError as exc:
                raise state_error(exc, where, self.engine.url) from None
        return head or ""

    def schema_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction; commits on success. On SQLite, serialised across threads; on PostgreSQL,
        concurrent (read-then-write methods lock what they change, see :meth:`_exclusive`).

        A broken database (damaged, read-only, unreachable) raises
        :class:`StateStoreError`; an :class:`IntegrityError` passes through for
        the caller to handle.
        """
        try:
            with self._serial, self._sessions.begin() as s:
                yield s
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise state_error(exc, _safe_url(self.engine.url), self.engine.url) from None

    @contextmanager
    def _transaction(self, queue: _StepQueue | None = None) -> Iterator[Connection]:
        """A transaction on a plain connection, for the per-tenant hot paths (steps, journal,
        resources, tenants): the same serialisation and errors as :meth:`session` without the
        ORM's unit of work, which tripled the CPU of a one-row insert. It first records the
        deferred steps of ``queue`` (by default, the calling thread's)."""
        with self._carrying(queue or self._queue()) as steps:
            try:
                with self._serial, self.engine.begin() as conn:
                    self._insert_steps(conn, steps)
                    yield conn
            except IntegrityError:
                raise
            except SQLAlchemyError as exc:
                raise state_error(exc, _safe_url(self.engine.url), self.engine.url) from None

    def _queue(self, thread: int | None = None) -> _StepQueue:
        """A thread's queue of deferred steps. ``_queues_lock`` is a leaf: nothing is awaited while it is held
        (a queue's lock is taken before it, never after)."""
        with self._queues_lock:
            return self._queues.setdefault(threading.get_ident() if thread is None else thread, _StepQueue())

    def _registered(self, queue: _StepQueue) -> bool:
        with self._queues_lock:
            return self._queues.get(threading.get_ident()) is queue

    @contextmanager
    def _carrying(self, queue: _StepQueue) -> Iterator[list[dict[str, Any]]]:
        """The queue's steps for the caller's transaction. The queue stays held until that transaction
        ends, so its steps are recorded in the order taken; if it fails they go back, first."""
        with queue.lock:
            steps, queue.rows = queue.rows, []
            try:
                yield steps
            except BaseException:
                queue.rows[:0] = steps
                raise

    @staticmethod
    def _insert_steps(conn: Connection, steps: list[dict[str, Any]]) -> None:
        """Insert deferred steps in their own savepoint: rows the database refuses are logged and dropped,
        never left to fail every later transaction."""
        if not steps:
            return
        try:
            with conn.begin_nested():
                conn.execute(insert(StepRow), steps)
        except SQLAlchemyError as exc:
            log.error(
                "%d step record(s) refused by the state store and dropped (%s): %s",
                len(steps),
                ", ".join(f"{r['tenant_key']} {r['name']}" for r in steps),
                _scrub(str(getattr(exc, "orig", None) or exc).strip(), conn.engine.url),
            )
            steps.clear()

    def _exclusive(self, s: Session | Connection, *name: str) -> None:
        """Serialise, until commit, every transaction that changes the thing called ``name``.

        SQLite needs nothing: each transaction already holds the database's write
        lock (``BEGIN IMMEDIATE``). PostgreSQL (read committed) would let two
        transactions both read "absent" and both insert; a transaction-scoped
        advisory lock makes the second wait, and its next statement then sees
        what the first committed.
        """
        if self.engine.dialect.name == "postgresql":
            digest = hashlib.blake2b("\0".join(name).encode(), digest_size=8).digest()
            s.execute(
                text("SELECT pg_advisory_xact_lock(:key)"),
                {"key": int.from_bytes(digest, "big", signed=True)},
            )

    def _check_fence(self, s: Session | Connection, fence: Fence | None) -> None:
        """Refuse the transaction's write unless ``fence``'s lease is still held by its holder and token.

        Runs first in the transaction, which then holds the lease row (``FOR SHARE`` on
        PostgreSQL, the write lock on SQLite) until commit: no runner takes the lease
        over between the check and the write.
        """
        if fence is None:
            return
        held = s.execute(
            select(TenantLeaseRow.token)
            .where(
                TenantLeaseRow.key == fence.key,
                TenantLeaseRow.holder == fence.holder,
                TenantLeaseRow.token == fence.token,
                TenantLeaseRow.expires_at > utcnow(),
            )
            .with_for_update(read=True)
        ).first()
        if held is None:
            raise FencedError(
                f"lease of {fence.key} lost (fencing token {fence.token} of {fence.holder} expired or taken "
                "over by another runner): nothing more is recorded for it by this runner"
            )

    def _insert_missing(self, s: Session, table: Any, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` into ``table``, leaving any whose primary key exists (also one inserted concurrently)."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        s.execute(dialect.insert(table).values(rows).on_conflict_do_nothing())

    # -- tenants ----------------------------------------------------------------

    def tenants(self, platform: str | None = None, include_deleted: bool = False) -> list[TenantRow]:
        """Tenants by workspace, project, platform (sorted here: a database's collation may ignore '-')."""
        with self.session() as s:
            q = select(TenantRow).order_by(TenantRow.id)
            if platform:
                q = q.where(TenantRow.platform == platform)
            if not include_deleted:
                q = q.where(TenantRow.status != "DELETED")
            return sorted(s.scalars(q), key=lambda t: (t.workspace, t.project, t.platform))

    def find_tenant(self, workspace: str, project: str, platform: str) -> TenantRow | None:
        """The live (not DELETED) tenant of a project on a platform, if any."""
        with self.session() as s:
            return s.scalars(
                select(TenantRow).where(
                    TenantRow.workspace == workspace,
                    TenantRow.project == project,
                    TenantRow.platform == platform,
                    TenantRow.status != "DELETED",
                )
            ).first()

    def create_tenant(
        self,
        workspace: str,
        project: str,
        platform: str,
        landing_zone: str,
        *,
        fence: Fence | None = None,
        audit: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> TenantRow:
        """Insert a tenant; with ``audit`` ((action, details), ...), its audit entries in the same transaction."""
        now = utcnow()
        values: dict[str, Any] = dict(
            workspace=workspace,
            project=project,
            platform=platform,
            landing_zone=landing_zone,
            status="ACTIVE",
            provisioning="pending",
            attributes={},
            last_error="",
            desired_digest="",
            created_at=now,
            updated_at=now,
        )
        key = f"{workspace}/{project}@{platform}"
        with self._transaction() as c:
            self._check_fence(c, fence)
            (values["id"],) = c.execute(insert(TenantRow).values(values)).inserted_primary_key or (None,)
            _insert_audit(c, [(action, key, details) for action, details in audit])
        return _detached(TenantRow, values)

    def update_tenant(
        self,
        tenant_id: int,
        *,
        fence: Fence | None = None,
        audit: Sequence[tuple[str, dict[str, Any]]] = (),
        **fields: Any,
    ) -> TenantRow:
        """Update fields of a tenant. Binding a platform id owned by another tenant is refused.

        With ``audit`` ((action, details), ...), the audit entries are written in the same
        transaction: a change and its record of who made it are never one without the other."""
        unknown = set(fields) - set(TenantRow.__table__.columns.keys())
        if unknown:
            raise MeshcoreError(f"tenant has no field {', '.join(sorted(unknown))}")
        values = {name: redact_data(value) if name in _REDACTED else value for name, value in fields.items()}
        values["updated_at"] = utcnow()
        with self._transaction() as c:
            self._check_fence(c, fence)
            found = c.execute(select(TenantRow).where(TenantRow.id == tenant_id)).first()
            if found is None:
                raise MeshcoreError(f"tenant #{tenant_id} not found in state store")
            row = dict(found._mapping)
            ptid = fields.get("platform_tenant_id")
            if ptid is not None and ptid != row["platform_tenant_id"]:
                self._exclusive(c, "platform-tenant", row["platform"], ptid)
                other = c.execute(
                    select(TenantRow.workspace, TenantRow.project, TenantRow.platform).where(
                        TenantRow.platform == row["platform"],
                        TenantRow.platform_tenant_id == ptid,
                        TenantRow.id != tenant_id,
                    )
                ).first()
                if other is not None:
                    raise MeshcoreError(
                        f"platform tenant {ptid!r} already belongs to {other[0]}/{other[1]}@{other[2]}; "
                        "a platform tenant id is never bound to two tenants"
                    )
            c.execute(update(TenantRow).where(TenantRow.id == tenant_id).values(values))
            row.update(values)
            key = f"{row['workspace']}/{row['project']}@{row['platform']}"
            _insert_audit(c, [(action, key, details) for action, details in audit])
        return _detached(TenantRow, row)

    def owner_of(self, platform: str, platform_tenant_id: str) -> str | None:
        """Key of the tenant (live or deleted) bound to a platform tenant id, if any."""
        with self.session() as s:
            row = s.scalars(
                select(TenantRow).where(
                    TenantRow.platform == platform, TenantRow.platform_tenant_id == platform_tenant_id
                )
            ).first()
            return row.key if row else None

    # -- journal ----------------------------------------------------------------

    def journal_begin(
        self,
        platform: str,
        tenant_key: str,
        kind: str,
        key: str,
        intent: dict[str, Any],
        *,
        fence: Fence | None = None,
    ) -> JournalRow:
        now = utcnow()
        values: dict[str, Any] = dict(
            platform=platform,
            tenant_key=tenant_key,
            kind=kind,
            key=redact(key),
            intent=redact_data(intent),
            operation_id=None,
            status="open",
            result={},
            message="",
            created_at=now,
            updated_at=now,
        )
        with self._transaction() as c:
            self._check_fence(c, fence)
            (values["id"],) = c.execute(insert(JournalRow).values(values)).inserted_primary_key or (None,)
        return _detached(JournalRow, values)

    def journal_find(self, platform: str, kind: str, key: str) -> JournalRow | None:
        with self._transaction() as c:
            found = c.execute(
                select(JournalRow)
                .where(
                    JournalRow.platform == platform,
                    JournalRow.kind == kind,
                    JournalRow.key == redact(key),
                    JournalRow.status == "open",
                )
                .order_by(JournalRow.id.desc())
            ).first()
        return _detached(JournalRow, found._mapping) if found is not None else None

    def journal_update(self, entry_id: int, *, fence: Fence | None = None, **fields: Any) -> None:
        with self._transaction() as c:
            self._check_fence(c, fence)
            self._journal_update(c, entry_id, fields)

    @staticmethod
    def _journal_update(s: Session | Connection, entry_id: int, fields: dict[str, Any]) -> None:
        fields = {k: redact_data(v) if k in _REDACTED else v for k, v in fields.items()}
        s.execute(update(JournalRow).where(JournalRow.id == entry_id).values(updated_at=utcnow(), **fields))

    def journal_entries(self, platform: str | None = None, status: str | None = None) -> list[JournalRow]:
        with self.session() as s:
            q = select(JournalRow).order_by(JournalRow.id)
            if platform:
                q = q.where(JournalRow.platform == platform)
            if status:
                q = q.where(JournalRow.status == status)
            return list(s.scalars(q))

    # -- resources ----------------------------------------------------------------

    def resource_get(self, platform: str, kind: str, key: str) -> Resource | None:
        key = redact(key)
        with self._transaction() as c:
            found = c.execute(
                select(ResourceRow).where(
                    ResourceRow.platform == platform, ResourceRow.kind == kind, ResourceRow.key == key
                )
            ).first()
        return _resource(found._mapping) if found is not None else None

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
        """Insert or update a resource; refuse to change its owner (a resource never changes hands).
        ``journal``: (entry id, fields) of the journal entry to update in the same transaction."""
        key, cloud_id, data = redact(key), redact(cloud_id), redact_data(data)
        now = utcnow()
        with self._transaction() as c:
            self._check_fence(c, fence)
            if journal is not None:
                self._journal_update(c, *journal)
            self._exclusive(c, "resource", platform, kind, key)
            found = c.execute(
                select(ResourceRow.id, ResourceRow.owner, ResourceRow.revision).where(
                    ResourceRow.platform == platform, ResourceRow.kind == kind, ResourceRow.key == key
                )
            ).first()
            if found is None:
                revision = 1
                c.execute(
                    insert(ResourceRow).values(
                        platform=platform,
                        kind=kind,
                        key=key,
                        cloud_id=cloud_id,
                        owner=owner,
                        data=data,
                        revision=revision,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                if found.owner != owner:
                    raise ConflictError(
                        f"{kind} {key!r} is recorded for {found.owner or 'the platform'}, not for "
                        f"{owner or 'the platform'}; a resource never changes owner"
                    )
                revision = found.revision + 1
                c.execute(
                    update(ResourceRow)
                    .where(ResourceRow.id == found.id)
                    .values(cloud_id=cloud_id, data=data, revision=revision, updated_at=now)
                )
        return Resource(
            kind=kind, key=key, cloud_id=cloud_id, owner=owner, data=dict(data), revision=revision
        )

    def resource_remove(self, platform: str, kind: str, key: str, *, fence: Fence | None = None) -> None:
        key = redact(key)
        with self.session() as s:
            self._check_fence(s, fence)
            s.execute(
                delete(ResourceRow).where(
                    ResourceRow.platform == platform, ResourceRow.kind == kind, ResourceRow.key == key
                )
            )

    def resource_list(self, platform: str | None, kind: str | None, owner: str | None) -> list[Resource]:
        q = select(ResourceRow).order_by(ResourceRow.id)
        if platform is not None:
            q = q.where(ResourceRow.platform == platform)
        if kind is not None:
            q = q.where(ResourceRow.kind == kind)
        if owner is not None:
            q = q.where(ResourceRow.owner == owner)
        with self._transaction() as c:
            return [_resource(r._mapping) for r in c.execute(q)]

    # -- quotas -------------------------------------------------------------------

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
        """Take a slot of a rolling-window quota atomically; returns (granted, slots used in the window).

        The first statement writes the quota's lock row, which serialises every
        reservation of this quota until commit (a row lock on PostgreSQL, the
        database write lock on SQLite), so the count and the insert that follow
        cannot race another thread or runner.
        """
        try:
            with self.session() as s:
                if s.get(QuotaLockRow, (platform, name)) is None:
                    s.add(QuotaLockRow(platform=platform, name=name))
        except IntegrityError:
            pass  # created concurrently
        now = utcnow()
        since = now - window
        with self.session() as s:
            self._check_fence(s, fence)
            s.execute(
                update(QuotaLockRow)
                .where(QuotaLockRow.platform == platform, QuotaLockRow.name == name)
                .values(touched_at=now)
            )
            window_rows = select(QuotaRow).where(
                QuotaRow.platform == platform, QuotaRow.name == name, QuotaRow.at >= since
            )
            used = len(list(s.scalars(window_rows)))
            if s.scalars(window_rows.where(QuotaRow.key == key)).first() is not None:
                return True, used
            if used >= limit:
                return False, used
            s.add(QuotaRow(platform=platform, name=name, key=key, at=now))
            return True, used + 1

    def quota_used(self, platform: str, name: str, window: dt.timedelta) -> int:
        since = utcnow() - window
        with self.session() as s:
            rows = s.scalars(
                select(QuotaRow).where(
                    QuotaRow.platform == platform, QuotaRow.name == name, QuotaRow.at >= since
                )
            )
            return len(list(rows))

    # -- platform identities ----------------------------------------------------------

    def platform_identity(self, platform: str) -> PlatformRow | None:
        with self.session() as s:
            return s.get(PlatformRow, platform)

    def platforms_with_identity(self, identity: str) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(PlatformRow.id).where(PlatformRow.identity == identity)))

    def record_platform(self, platform: str, type_name: str, identity: str) -> None:
        with self.session() as s:
            self._exclusive(s, "platform", platform)
            row = s.get(PlatformRow, platform)
            if row is None:
                s.add(PlatformRow(id=platform, type=type_name, identity=identity))
            else:
                row.type, row.identity, row.last_seen = type_name, identity, utcnow()

    # -- runs, steps, audit -----------------------------------------------------

    def record_drift_check(
        self, platform: str, *, changes_read_to: dt.datetime, full_check_at: dt.datetime | None = None
    ) -> None:
        """Record how far a platform's change feed was read, and (after a full check) when it began."""
        with self.session() as s:
            row = s.get(PlatformRow, platform)
            if row is None:
                return
            row.changes_read_to = changes_read_to
            if full_check_at is not None:
                row.full_check_at = full_check_at

    def start_run(self, command: str, runner: str) -> RunRow:
        row = RunRow(command=command, runner=runner, status="running", summary={})
        with self.session() as s:
            s.add(row)
        return row

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        self.flush_steps(every_thread=True)
        with self.session() as s:
            s.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(status=status, summary=redact_data(summary), finished_at=utcnow())
            )

    def runs(self, limit: int = 20) -> list[RunRow]:
        with self.session() as s:
            return list(s.scalars(select(RunRow).order_by(RunRow.id.desc()).limit(limit)))

    def record_step(
        self,
        run_id: int,
        tenant_key: str,
        platform: str,
        name: str,
        status: str,
        message: str,
        started_at: dt.datetime,
        duration_ms: int,
        *,
        fence: Fence | None = None,
        deferred: bool = False,
    ) -> None:
        """Record one step; under a lease (``fence``) also which runner and token recorded it.

        ``deferred`` (never with a fence): the record goes into this process's next transaction,
        whatever it writes, or into :meth:`flush_steps`'s, instead of one of its own. A single
        runner's steps ride along with the writes that follow them (a new AWS tenant's six steps
        cost no transaction); the reconciler flushes a tenant's before its turn ends. A killed
        process loses the records of steps not yet flushed, never what the steps did."""
        row = dict(
            run_id=run_id,
            tenant_key=tenant_key,
            platform=platform,
            name=redact(name),
            status=status,
            message=redact(message),
            started_at=started_at,
            duration_ms=duration_ms,
            runner=fence.holder if fence else "",
            token=fence.token if fence else 0,
        )
        if deferred and fence is None:
            while True:  # never into a queue flush_steps has just dropped (then this thread gets a new one)
                queue = self._queue()
                with queue.lock:
                    if self._registered(queue):
                        queue.rows.append(row)
                        return
        with self._transaction() as c:
            self._check_fence(c, fence)
            c.execute(insert(StepRow).values(row))

    def flush_steps(self, *, every_thread: bool = False) -> None:
        """Record this thread's deferred steps now (every thread's, with ``every_thread``): no transaction
        if there are none. Each thread's go in the order they were recorded."""
        with self._queues_lock:
            threads = list(self._queues) if every_thread else [threading.get_ident()]
        alive = {t.ident for t in threading.enumerate()} if every_thread else set()
        for thread in threads:
            queue = self._queue(thread)
            if queue.rows:
                with self._transaction(queue):
                    pass  # it records the queue's steps
            if every_thread and thread not in alive:  # an ended thread's queue is not kept
                with queue.lock:
                    if not queue.rows:
                        with self._queues_lock:
                            if self._queues.get(thread) is queue:
                                del self._queues[thread]

    def steps(self, run_id: int | None = None, tenant_key: str | None = None) -> list[StepRow]:
        """Recorded steps, oldest first (deferred ones of this process are recorded first)."""
        self.flush_steps(every_thread=True)
        with self.session() as s:
            q = select(StepRow).order_by(StepRow.id)
            if run_id is not None:
                q = q.where(StepRow.run_id == run_id)
            if tenant_key is not None:
                q = q.where(StepRow.tenant_key == tenant_key)
            return list(s.scalars(q))

    def audit(
        self,
        action: str,
        subject: str,
        details: dict[str, Any] | None = None,
        actor: str = "",
        *,
        fence: Fence | None = None,
    ) -> None:
        with self.session() as s:
            self._check_fence(s, fence)
            s.add(_audit_row(action, subject, details, actor))

    def audit_trail(self, subject: str | None = None) -> list[AuditRow]:
        with self.session() as s:
            q = select(AuditRow).order_by(AuditRow.id)
            if subject:
                q = q.where(AuditRow.subject == subject)
            return list(s.scalars(q))

    # -- usage lines and chargeback statements ----------------------------------------

    def replace_usage(self, platform: str, period: str, lines: list[dict[str, Any]]) -> None:
        """Replace a platform's usage lines of one month (re-collection is idempotent)."""
        with self.session() as s:
            self._exclusive(s, "usage", platform, period)
            s.execute(delete(UsageRow).where(UsageRow.platform == platform, UsageRow.period == period))
            for line in lines:
                s.add(UsageRow(platform=platform, period=period, **line))

    def usage(self, period: str) -> list[UsageRow]:
        with self.session() as s:
            return list(s.scalars(select(UsageRow).where(UsageRow.period == period).order_by(UsageRow.id)))

    def finalize_statement(
        self,
        workspace: str,
        project: str,
        period: str,
        lines: list[dict[str, Any]],
        totals: dict[str, str],
        payment_method: dict[str, Any],
        tags: dict[str, str],
    ) -> StatementRow:
        """Store the final statement; if the sums changed since the last final version, cancel it and add a new one.

        Another process finalizing the same version at once makes the insert fail: look again.
        """
        for attempt in range(3):
            try:
                with self.session() as s:
                    current = s.scalars(
                        select(StatementRow)
                        .where(
                            StatementRow.workspace == workspace,
                            StatementRow.project == project,
                            StatementRow.period == period,
                        )
                        .order_by(StatementRow.version.desc())
                    ).first()
                    if (
                        current is not None
                        and current.status == "FINAL"
                        and current.lines.get("items") == lines
                    ):
                        return current
                    if current is not None and current.status == "FINAL":
                        current.status = "CANCELLED"
                    row = StatementRow(
                        workspace=workspace,
                        project=project,
                        period=period,
                        version=(current.version + 1) if current else 1,
                        status="FINAL",
                        totals=totals,
                        lines={"items": lines},
                        payment_method=payment_method,
                        tags=tags,
                    )
                    s.add(row)
                    return row
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def statements(self, period: str) -> list[StatementRow]:
        """A month's statements by workspace, project, version (sorted here, as :meth:`tenants`)."""
        with self.session() as s:
            rows = s.scalars(select(StatementRow).where(StatementRow.period == period))
            return sorted(rows, key=lambda r: (r.workspace, r.project, r.version))

    # -- leases -----------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> None:
        """Take the named lease, or raise :class:`LockHeldError` if a live holder has it.

        Atomic on every backend: an UPDATE of an expired (or own) lease, else an
        INSERT that the primary key makes fail when someone else got there first.
        """
        now = utcnow()
        expires = now + dt.timedelta(seconds=ttl_seconds)
        with self.session() as s:
            res = s.execute(
                update(LeaseRow)
                .where(LeaseRow.name == name)
                .where((LeaseRow.expires_at < now) | (LeaseRow.holder == holder))
                .values(holder=holder, expires_at=expires)
            )
            if getattr(res, "rowcount", 0) == 1:
                return
        try:
            with self.session() as s:
                s.add(LeaseRow(name=name, holder=holder, expires_at=expires))
        except IntegrityError:
            current = self.lease_holder(name)
            raise LockHeldError(
                f"another runner ({current[0] if current else 'unknown'}) is applying this state "
                f"until {current[1].isoformat(timespec='seconds') if current else '?'}; "
                "wait for it to finish or retry with --wait"
            ) from None

    def renew_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Extend ``holder``'s live lease; ``False`` if it expired or another holder has it (it was lost:
        someone may have taken it and applied meanwhile, even if the row is free again)."""
        now = utcnow()
        with self.session() as s:
            res = s.execute(
                update(LeaseRow)
                .where(LeaseRow.name == name, LeaseRow.holder == holder, LeaseRow.expires_at > now)
                .values(expires_at=now + dt.timedelta(seconds=ttl_seconds))
            )
            return getattr(res, "rowcount", 0) == 1

    def take_over_lease(self, name: str, old_holder: str, holder: str, ttl_seconds: float) -> bool:
        """Replace ``old_holder`` (known dead) by ``holder``; False if someone else already did."""
        with self.session() as s:
            res = s.execute(
                update(LeaseRow)
                .where(LeaseRow.name == name, LeaseRow.holder == old_holder)
                .values(holder=holder, expires_at=utcnow() + dt.timedelta(seconds=ttl_seconds))
            )
            return bool(getattr(res, "rowcount", 0) == 1)

    def lease_holder(self, name: str) -> tuple[str, dt.datetime] | None:
        with self.session() as s:
            row = s.get(LeaseRow, name)
            return (row.holder, row.expires_at) if row else None

    def release_lease(self, name: str, holder: str) -> None:
        with self.session() as s:
            row = s.get(LeaseRow, name)
            if row is not None and row.holder == holder:
                s.delete(row)

    # -- shared runners: tenant leases with fencing tokens, API budgets -------------------

    def acquire_tenant_lease(
        self, key: str, holder: str, ttl_seconds: float, done_since: dt.datetime | None = None
    ) -> int | None:
        """Take the lease ``key`` for ``holder``; its new fencing token, or ``None`` if another runner has it.

        Free means expired (a released lease is expired). With ``done_since``, a lease
        another holder released at or after that time is not taken either: that runner
        did the tenant in this round. Atomic on both backends: the row exists (an insert
        that skips an existing key), and one conditional UPDATE takes it and adds one to
        its token.
        """
        now = utcnow()
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        free = (TenantLeaseRow.expires_at < now) | (TenantLeaseRow.holder == holder)
        if done_since is not None:
            free &= (
                TenantLeaseRow.released_at.is_(None)
                | (TenantLeaseRow.released_at < done_since)
                | (TenantLeaseRow.holder == holder)
            )
        with self.session() as s:
            self._insert_missing(
                s, TenantLeaseRow, [{"key": key, "holder": "", "token": 0, "expires_at": epoch}]
            )
            res = s.execute(
                update(TenantLeaseRow)
                .where(TenantLeaseRow.key == key, free)
                .values(
                    holder=holder,
                    token=TenantLeaseRow.token + 1,
                    expires_at=now + dt.timedelta(seconds=ttl_seconds),
                    released_at=None,
                )
            )
            if getattr(res, "rowcount", 0) != 1:
                return None
            token: int = s.execute(select(TenantLeaseRow.token).where(TenantLeaseRow.key == key)).scalar_one()
            return token

    def renew_tenant_lease(self, fence: Fence, ttl_seconds: float) -> bool:
        """Extend a lease still held under ``fence``; False if it expired or changed hands (it stays lost)."""
        now = utcnow()
        with self.session() as s:
            res = s.execute(
                update(TenantLeaseRow)
                .where(
                    TenantLeaseRow.key == fence.key,
                    TenantLeaseRow.holder == fence.holder,
                    TenantLeaseRow.token == fence.token,
                    TenantLeaseRow.expires_at > now,
                )
                .values(expires_at=now + dt.timedelta(seconds=ttl_seconds))
            )
            return bool(getattr(res, "rowcount", 0) == 1)

    def release_tenant_lease(self, fence: Fence) -> None:
        """End a lease held under ``fence`` (it expires now; its token stays for the next holder to raise)."""
        now = utcnow()
        with self.session() as s:
            s.execute(
                update(TenantLeaseRow)
                .where(
                    TenantLeaseRow.key == fence.key,
                    TenantLeaseRow.holder == fence.holder,
                    TenantLeaseRow.token == fence.token,
                )
                .values(expires_at=now, released_at=now)
            )

    def check_fence(self, fence: Fence) -> None:
        """Raise :class:`FencedError` unless the lease of ``fence`` is still held by its holder and token."""
        with self.session() as s:
            self._check_fence(s, fence)

    def tenant_lease(self, key: str) -> TenantLeaseRow | None:
        with self.session() as s:
            return s.get(TenantLeaseRow, key)

    def live_tenant_leases(self) -> list[TenantLeaseRow]:
        """Tenant and platform leases held now (not expired, not released)."""
        with self.session() as s:
            return list(s.scalars(select(TenantLeaseRow).where(TenantLeaseRow.expires_at > utcnow())))

    def limiter_acquire(self, name: str, limit: int, holder: str, ttl_seconds: float) -> int | None:
        """Take a free slot (0 .. ``limit``-1) of the API budget ``name``; its number, or ``None`` if all are held."""
        now = utcnow()
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        with self.session() as s:
            slots = {
                r.slot: r.expires_at
                for r in s.scalars(select(LimiterSlotRow).where(LimiterSlotRow.name == name))
            }
            missing = [i for i in range(limit) if i not in slots]
            if missing:
                self._insert_missing(
                    s,
                    LimiterSlotRow,
                    [{"name": name, "slot": i, "holder": "", "expires_at": epoch} for i in missing],
                )
            free = [i for i in range(limit) if slots.get(i, epoch) < now]
            for slot in free:  # another runner may take a slot first: its UPDATE then matches no row
                res = s.execute(
                    update(LimiterSlotRow)
                    .where(
                        LimiterSlotRow.name == name,
                        LimiterSlotRow.slot == slot,
                        LimiterSlotRow.expires_at < now,
                    )
                    .values(holder=holder, expires_at=now + dt.timedelta(seconds=ttl_seconds))
                )
                if getattr(res, "rowcount", 0) == 1:
                    return slot
            return None

    def limiter_renew(self, name: str, slot: int, holder: str, ttl_seconds: float) -> bool:
        now = utcnow()
        with self.session() as s:
            res = s.execute(
                update(LimiterSlotRow)
                .where(
                    LimiterSlotRow.name == name,
                    LimiterSlotRow.slot == slot,
                    LimiterSlotRow.holder == holder,
                    LimiterSlotRow.expires_at > now,
                )
                .values(expires_at=now + dt.timedelta(seconds=ttl_seconds))
            )
            return bool(getattr(res, "rowcount", 0) == 1)

    def limiter_release(self, name: str, slot: int, holder: str) -> None:
        with self.session() as s:
            s.execute(
                update(LimiterSlotRow)
                .where(
                    LimiterSlotRow.name == name, LimiterSlotRow.slot == slot, LimiterSlotRow.holder == holder
                )
                .values(expires_at=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
            )


class _StepQueue:
    """One thread's deferred step records; ``lock`` is held from taking them until their transaction ends."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.rows: list[dict[str, Any]] = []


def _resource(row: Mapping[Any, Any]) -> Resource:
    return Resource(
        kind=row["kind"],
        key=row["key"],
        cloud_id=row["cloud_id"],
        owner=row["owner"],
        data=dict(row["data"] or {}),
        revision=row["revision"],
    )


def _detached(table: type[_R], values: Mapping[Any, Any]) -> _R:
    """A row object holding ``values`` (read or written on a plain connection), attached to no session."""
    return table(**values)


def _insert_audit(c: Connection, entries: Sequence[tuple[str, str, dict[str, Any] | None]]) -> None:
    """Audit entries (action, subject, details) in the caller's transaction."""
    if entries:
        c.execute(
            insert(AuditRow),
            [
                {
                    "action": action,
                    "subject": redact(subject),
                    "details": redact_data(details or {}),
                    "actor": _actor(),
                    "at": utcnow(),
                }
                for action, subject, details in entries
            ],
        )


def _actor() -> str:
    actor = os.environ.get("MESHCORE_ACTOR") or os.environ.get("USER") or "meshcore"
    return actor[:256]  # the column's length: PostgreSQL refuses a longer value


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for other databases, memory and ``file:`` URIs)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    if parsed.query.get("uri") or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def _safe_url(url: str | URL) -> str:
    """A URL fit for a message: the password hidden."""
    try:
        rendered = make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could find either
        return "the given URL"
    return re.sub(r"([?&]password=)[^&]*", r"\1***", rendered)  # libpq's password=... query option


def _parse_url(url: str) -> URL:
    """The URL of a supported backend, or a :class:`StateStoreError` saying what is wrong (password hidden)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StateStoreError(
            "state store URL is not a valid SQLAlchemy URL: use a SQLite file path, sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    if parsed.get_backend_name() not in BACKENDS:
        raise StateStoreError(
            f"state store {_safe_url(parsed)}: database {parsed.get_backend_name()!r} is not supported; "
            "use SQLite (a file path or sqlite:///PATH) or PostgreSQL (postgresql+psycopg://...)"
        )
    return parsed


def _engine(url: URL, where: str) -> Engine:
    kwargs: dict[str, Any] = {}
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        # An unreachable server is an error in seconds, not a hang; a connection the server
        # dropped between two transactions (a restart, an idle timeout) is replaced, not reported.
        if "connect_timeout" not in url.query:
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        kwargs["pool_pre_ping"] = True
        # one connection per tenant worker (concurrency up to 32 by default) without waiting
        kwargs["pool_size"], kwargs["max_overflow"] = POOL_SIZE, POOL_OVERFLOW
    try:
        engine = create_engine(url, **kwargs)
    except Exception as exc:  # a missing driver or a bad option
        raise StateStoreError(
            f"cannot open state store {where}: {_scrub(str(exc), url)}{_driver_hint(exc)}"
        ) from None
    if sqlite:
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _driver_hint(exc: Exception) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name == "psycopg":
        return " (install the PostgreSQL driver: meshcore's postgres extra, e.g. pip install '.[postgres]' in a checkout)"
    return ""


def _scrub(message: str, url: URL | str) -> str:
    """``message`` without the URL's password (drivers may quote a connection string)."""
    try:
        parsed = make_url(url)
        password = parsed.password or parsed.query.get("password")
    except Exception:
        return message
    # as secret redaction does, a password shorter than 4 characters is left alone (it would mangle the text)
    return message.replace(str(password), "***") if password and len(str(password)) >= 4 else message


def _lock_migrations(conn: Connection) -> None:
    """On PostgreSQL, one migration at a time: runners opening a new database at once wait for
    the first, then find its schema complete (SQLite's ``BEGIN IMMEDIATE`` does this there)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})


def _create_sqlite(path: Path) -> None:
    """Create a new SQLite store under a temporary name, migrate it, then link it into place.

    Either the complete store appears at ``path`` or nothing does. If another
    process created it meanwhile, theirs is kept. Temporary files left by a
    killed creation are removed.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateStoreError(f"cannot create state store {path}: {exc.strerror or exc}") from None
    _remove_stale_creations(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.creating")
    try:
        store = StateStore(_engine(make_url(f"sqlite:///{tmp}"), str(path)))
        try:
            store.migrate(where=str(path))
        finally:
            store.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # created by another process meanwhile: keep theirs
        except OSError as exc:
            raise StateStoreError(f"cannot create state store {path}: {exc.strerror or exc}") from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            leftover.unlink(missing_ok=True)


def _remove_stale_creations(path: Path) -> None:
    for leftover in path.parent.glob(f".{path.name}.*.creating*"):
        pid = leftover.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def state_error(exc: SQLAlchemyError, where: str, url: URL) -> StateStoreError:
    """A database failure as a message a user can act on (never with the URL's password)."""
    detail = _scrub(str(getattr(exc, "orig", None) or exc).strip(), url)
    low = detail.lower()
    if "password authentication failed" in low or ('role "' in low and "does not exist" in low):
        hint = "check the user name and password in the state store URL"
    elif "does not exist" in low and "database" in low:
        hint = "create the database first: meshcore creates its tables, not the database"
    elif "connection refused" in low or "timeout" in low or "could not translate host" in low:
        hint = "check that the PostgreSQL server runs and the URL's host and port"
    elif "permission denied" in low:
        hint = "the database user must be allowed to create tables in the database (e.g. own it)"
    elif "not a database" in low or "malformed" in low:
        hint = "the file is not a meshcore state store or is damaged: restore it from a backup, or point --state elsewhere"
    elif "readonly" in low or "read-only" in low or "read only" in low:
        hint = "meshcore must write to its state store: check the file's and its directory's permissions"
    elif "unable to open" in low:
        hint = "check the path and the directory's permissions"
    elif "locked" in low:
        hint = "another process holds it locked; try again"
    else:
        hint = "check that the database is reachable and healthy"
    return StateStoreError(f"cannot use state store {where}: {detail} ({hint})")


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own transaction handling would commit DDL (CREATE TABLE) on its
    # own; with it off, every transaction, a migration included, is one BEGIN..COMMIT.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL never corrupts the file and survives a killed process; only a power loss or an OS
    # crash may lose the last commits (a journal entry then looks never begun: recovery by natural key,
    # which every write has, still finds what was created). FULL costs an fsync per transaction, ~30 per
    # tenant: it made the state store the bottleneck of parallel vending.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _audit_row(action: str, subject: str, details: dict[str, Any] | None, actor: str = "") -> AuditRow:
    return AuditRow(
        action=action, subject=redact(subject), details=redact_data(details or {}), actor=actor or _actor()
    )


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE: take the write lock up front, so a read-then-write transaction
    # (a quota reservation, a lease) is atomic across processes, not only threads.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
