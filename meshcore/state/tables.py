"""Tables of the state store (SQLAlchemy 2 declarative models).

The schema is versioned by the migrations in ``migrations/versions``; change a
table here only together with a new migration.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Text, TypeDecorator

from meshcore.redaction import redact, redact_data


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RedactedJSON(TypeDecorator[Any]):
    """JSON whose every string is redacted on the way in: no write path can store a secret."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return redact_data(value)


class RedactedText(TypeDecorator[str]):
    """Free text (messages, errors), redacted on the way in.

    A NUL character (which a cloud's error text may carry) becomes U+FFFD on every
    backend: PostgreSQL refuses NUL in text.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return redact(value).replace("\x00", "\ufffd") if value else value


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A point in time, always handed back as an aware UTC datetime, whatever the database.

    SQLite keeps no offset (it returned naive datetimes and stored an aware one's wall
    time); PostgreSQL hands values back in its session time zone and reads a naive one
    in it. Here a naive datetime is taken as UTC, an aware one converted to UTC, on the
    way in and out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return _as_utc(value)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return _as_utc(value)


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: RedactedJSON, dt.datetime: UTCDateTime}


class TenantRow(Base):
    """A tenant: a project's presence on one platform, and its platform id once known."""

    __tablename__ = "tenants"
    __table_args__ = (
        UniqueConstraint("platform", "platform_tenant_id", name="uq_tenant_platform_id"),
        Index("ix_tenant_identity", "workspace", "project", "platform"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace: Mapped[str] = mapped_column(String(64))
    project: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(64))
    landing_zone: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    platform_tenant_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    provisioning: Mapped[str] = mapped_column(String(32), default="pending")
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_error: Mapped[str] = mapped_column(RedactedText, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    marked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    imported_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)  # bound to an existing tenant
    # incremental drift checks: when a full observation last found nothing to do, for which desired state
    verified_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    desired_digest: Mapped[str] = mapped_column(String(64), default="")

    @property
    def key(self) -> str:
        return f"{self.workspace}/{self.project}@{self.platform}"


class ResourceRow(Base):
    """Something a plugin created or adopted: kind, natural key, cloud id, owning tenant ("" = platform)."""

    __tablename__ = "resources"
    __table_args__ = (
        UniqueConstraint("platform", "kind", "key", name="uq_resource"),
        Index("ix_resource_owner", "platform", "owner"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(512))
    cloud_id: Mapped[str] = mapped_column(String(512), default="")
    owner: Mapped[str] = mapped_column(String(256), default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QuotaLockRow(Base):
    """One row per quota: writing it first serialises reservations (row lock / SQLite write lock)."""

    __tablename__ = "quota_locks"

    platform: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    touched_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class QuotaRow(Base):
    """A reserved slot of a rolling-window quota (e.g. one account closure)."""

    __tablename__ = "quota_reservations"
    __table_args__ = (Index("ix_quota_window", "platform", "name", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(512))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PlatformRow(Base):
    """A platform id seen in a run, with the cloud instance its plugin said it points at."""

    __tablename__ = "platforms"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    identity: Mapped[str] = mapped_column(String(512), default="")
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # incremental drift checks: the start of the last full check, and how far the change feed was read
    full_check_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    changes_read_to: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class JournalRow(Base):
    """An intent recorded before a non-idempotent cloud call, and its operation id after."""

    __tablename__ = "journal"
    __table_args__ = (Index("ix_journal_lookup", "platform", "kind", "key", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(64))
    tenant_key: Mapped[str] = mapped_column(String(256), default="")
    kind: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(512))
    intent: Mapped[dict[str, Any]] = mapped_column(default=dict)
    operation_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message: Mapped[str] = mapped_column(RedactedText, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RunRow(Base):
    """One invocation of plan/apply/collect: when, by whom, how it ended."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    command: Mapped[str] = mapped_column(String(32))
    runner: Mapped[str] = mapped_column(String(256), default="")
    status: Mapped[str] = mapped_column(String(16), default="running")
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class StepRow(Base):
    """The outcome of one step of one tenant in one run."""

    __tablename__ = "steps"
    __table_args__ = (Index("ix_steps_run", "run_id"), Index("ix_steps_tenant", "tenant_key"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer)
    tenant_key: Mapped[str] = mapped_column(String(256), default="")
    platform: Mapped[str] = mapped_column(String(64), default="")
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(RedactedText, default="")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    # shared runners: who recorded it, under which fencing token of the tenant's (or platform's) lease
    runner: Mapped[str] = mapped_column(String(256), default="")
    token: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditRow(Base):
    """Append-only trail of lifecycle decisions (marked, approved, deleted, imported, ...)."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(256), default="")
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LeaseRow(Base):
    """A named lease so that two runners never apply the same state at once."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[dt.datetime] = mapped_column()


class TenantLeaseRow(Base):
    """Shared runners: the lease of one tenant (its key) or platform (``platform:ID``).

    ``token`` (the fencing token) grows by one on every acquisition and is never
    reset: a released lease keeps its row, with ``expires_at`` in the past.
    ``released_at`` is when its holder finished with it.
    """

    __tablename__ = "tenant_leases"

    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256), default="")
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column()
    released_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class LimiterSlotRow(Base):
    """Shared runners: one slot of an API budget (``ctx.limiter``), free once ``expires_at`` is past."""

    __tablename__ = "limiter_slots"

    name: Mapped[str] = mapped_column(String(192), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(256), default="")
    expires_at: Mapped[dt.datetime] = mapped_column()


class UsageRow(Base):
    """One usage line of a tenant usage report (platform tenant x month x seller x product x currency)."""

    __tablename__ = "usage_lines"
    __table_args__ = (
        Index("ix_usage_period", "period", "platform"),
        UniqueConstraint(
            "platform",
            "platform_tenant_id",
            "tenant_key",
            "period",
            "seller",
            "product",
            "currency",
            name="uq_usage_line",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(64))
    platform_tenant_id: Mapped[str] = mapped_column(String(256))
    tenant_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    period: Mapped[str] = mapped_column(String(7))
    seller: Mapped[str] = mapped_column(String(256), default="")
    product: Mapped[str] = mapped_column(String(256), default="")
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[str] = mapped_column(String(64))
    estimated: Mapped[bool] = mapped_column(default=False)
    collected_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StatementRow(Base):
    """A versioned chargeback statement of one project for one month."""

    __tablename__ = "chargeback_statements"
    __table_args__ = (
        UniqueConstraint("workspace", "project", "period", "version", name="uq_statement_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace: Mapped[str] = mapped_column(String(64))
    project: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(7))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    totals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lines: Mapped[dict[str, Any]] = mapped_column(default=dict)
    payment_method: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
