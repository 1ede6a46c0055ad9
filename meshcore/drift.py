"""Incremental drift checks: which tenants an ``apply`` may leave unread.

With ``settings.drift_check.mode: incremental``, a tenant is not read again when all of
these hold (otherwise it is read and converged as in a full check):

* its task is a plain update (not a creation, restore, deletion or orphan);
* the last run that read it found nothing to do (``verified_at``), for the desired
  state it has now (``desired_digest``), and recorded no error since;
* its platform's last full check is younger than ``drift_check.full_every_hours``,
  the platform's shared resources were observed in this run, and the platform's
  change feed (``meshplatform_changed_tenants``) answered from where the last run
  left off without naming the tenant or ``everything``.

A tenant read in a run that finds nothing to do is verified as of that run's start;
the feed is then read from the run's start on in the next run, so a change made
while the run read the tenant is either seen by that read or named by the next feed.
``plan`` always reads every tenant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from meshcore.errors import MeshcoreError
from meshcore.lifecycle import Lifecycle, Task
from meshcore.models import TenantStatus
from meshcore.redaction import redact
from meshcore.results import ChangedTenants
from meshcore.specs import PlatformSpec, TenantSpec


def digest(tenant: TenantSpec, platform: PlatformSpec) -> str:
    """A digest of the desired state of a tenant: what the config says of it and of its platform
    (whose settings shape every tenant, e.g. role mappings), not what was recorded."""
    wanted = tenant.model_dump_json(exclude={"platform_tenant_id", "status", "deletion_approved"})
    return hashlib.sha256((wanted + platform.model_dump_json()).encode()).hexdigest()


@dataclass
class Feed:
    """What this run knows of one platform's changes: read in full, or from its change feed."""

    full: bool
    reason: str = ""  # why the platform is read in full
    changed: frozenset[str] = field(default_factory=frozenset)
    until: dt.datetime | None = None  # the feed's end, where the next run goes on
    full_check_at: dt.datetime | None = None  # the last full check: a tenant not read since is read

    def describe(self) -> str:
        if self.full:
            return f"drift check in full: {self.reason}"
        return f"incremental drift check: the change feed names {len(self.changed)} tenant(s)"


def full(reason: str) -> Feed:
    return Feed(full=True, reason=reason)


def from_answer(answer: ChangedTenants | None, started: dt.datetime) -> Feed:
    if answer is None:
        return full("the platform's change feed could not tell this time")
    if answer.everything:
        return full("the platform's change feed names a change that may concern every tenant")
    # never past the run's start: what changes while this run reads tenants is read again next time
    return Feed(full=False, changed=answer.platform_tenant_ids, until=min(answer.until, started))


def unread(task: Task, feed: Feed | None, platform: PlatformSpec) -> str | None:
    """Why ``task``'s tenant need not be read in this run, or ``None`` if it must be."""
    row, tenant = task.row, task.tenant
    if feed is None or feed.full or row is None or tenant is None or task.lifecycle != Lifecycle.UPDATE:
        return None
    if row.status != TenantStatus.ACTIVE or row.last_error or row.verified_at is None:
        return None
    if feed.full_check_at is None or row.verified_at < feed.full_check_at:
        return None  # not read by the last full check (e.g. that run was stopped): read it now
    if row.platform_tenant_id is None or row.platform_tenant_id in feed.changed:
        return None
    if row.desired_digest != digest(tenant, platform):
        return None
    return (
        f"unchanged since {row.verified_at:%Y-%m-%d %H:%M:%S} UTC: not read "
        "(incremental drift check; the platform's change feed names no change to it)"
    )


def verified_fields(tenant: TenantSpec, platform: PlatformSpec, started: dt.datetime) -> dict[str, object]:
    """The tenant row's fields that record a read that found nothing to do."""
    return {"verified_at": started, "desired_digest": digest(tenant, platform)}


def feed_error(exc: Exception) -> Feed:
    if isinstance(exc, MeshcoreError):
        return full(f"the platform's change feed failed: {redact(str(exc))}")
    return full(f"the platform's change feed failed: {type(exc).__name__}: {redact(str(exc))}")
