"""Decide what each tenant needs: the diff of desired (config) against recorded (state store).

Pure logic, no I/O beyond the rows it is given: a :class:`Task` per tenant says
which lifecycle step applies. The reconciler then asks plugins what each tenant
needs (``plan``) and runs it (``apply``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from meshcore.config import LoadedConfig
from meshcore.models import TenantStatus
from meshcore.specs import LandingZoneSpec, ProjectRef, TenantSpec, WorkspaceRef, tenant_key
from meshcore.state.tables import TenantRow


class Lifecycle(StrEnum):
    PROVISION = "provision"  # never provisioned (or creation still in progress)
    UPDATE = "update"  # converge an existing tenant
    RESTORE = "restore"  # back in config before its deletion was approved
    MARK_FOR_DELETION = "mark"  # removed from config: revoke access, await approval
    AWAIT_APPROVAL = "await_approval"  # marked, approval pending
    DEPROVISION = "deprovision"  # approved: close/quarantine until deleted
    ORPHANED = "orphaned"  # its platform or landing zone left the config


@dataclass
class Task:
    key: str
    lifecycle: Lifecycle
    tenant: TenantSpec | None
    row: TenantRow | None
    note: str = ""


def _spec_from_row(row: TenantRow, lz: LandingZoneSpec, status: TenantStatus, approved: bool) -> TenantSpec:
    """A spec for a tenant no longer in config: its identity only (no tags, no bindings)."""
    return TenantSpec(
        workspace=WorkspaceRef(id=row.workspace, name=row.workspace, tags={}),
        project=ProjectRef(id=row.project, name=row.project, tags={}),
        platform_id=row.platform,
        landing_zone=lz,
        status=status,
        platform_tenant_id=row.platform_tenant_id,
        tags={},
        replicated_tags={},
        bindings=(),
        deletion_approved=approved,
    )


#: Lifecycles of tenants no longer in the config (or whose deletion is approved).
REMOVED = frozenset(
    {Lifecycle.MARK_FOR_DELETION, Lifecycle.AWAIT_APPROVAL, Lifecycle.DEPROVISION, Lifecycle.ORPHANED}
)


def start_order(work: list[Task]) -> list[Task]:
    """The order tenants start in: tenants removed from the config first (their access is revoked,
    or checked to stay revoked), then the other tenants already in their cloud, then tenants still to
    create, an earlier run's creation still in progress before a new one.

    A creation waits on the cloud for minutes (an AWS account takes one to several) and holds a
    worker meanwhile. Started first, a large vending run would hold every worker and delay other
    tenants' revocations and drift repairs by as long; started last, the creations begin once every
    other tenant has started, and the run may end later by up to that time. The order given (the
    config's, or a shared runner's shuffle) is kept within each group.
    """

    def rank(task: Task) -> int:
        if task.lifecycle in REMOVED:
            return 0
        if task.lifecycle != Lifecycle.PROVISION:
            return 1
        return 2 if task.row is not None else 3

    return sorted(work, key=rank)


def tasks(config: LoadedConfig, desired: list[TenantSpec], recorded: list[TenantRow]) -> list[Task]:
    """One task per desired or recorded (not DELETED) tenant, desired ones first in config order."""
    by_key = {r.key: r for r in recorded}
    out: list[Task] = []
    for spec in desired:
        row = by_key.pop(spec.key, None)
        if row is None:
            out.append(Task(spec.key, Lifecycle.PROVISION, spec, None))
            continue
        live = spec.model_copy(update={"platform_tenant_id": row.platform_tenant_id})
        if row.status == TenantStatus.MARKED_FOR_DELETION:
            if row.approved_at is None:
                out.append(Task(spec.key, Lifecycle.RESTORE, live, row))
            else:
                out.append(
                    Task(
                        spec.key,
                        Lifecycle.DEPROVISION,
                        _deleting(live),
                        row,
                        "deletion already approved; it cannot be undone",
                    )
                )
        elif row.platform_tenant_id is None:
            out.append(Task(spec.key, Lifecycle.PROVISION, live, row))
        else:
            out.append(Task(spec.key, Lifecycle.UPDATE, live, row))

    for row in by_key.values():
        lz = config.landing_zones.get(row.landing_zone)
        if row.platform not in config.platforms:
            out.append(
                Task(
                    row.key,
                    Lifecycle.ORPHANED,
                    None,
                    row,
                    "its platform is no longer in the config: left untouched, access NOT revoked",
                )
            )
            continue
        if lz is None:  # refused before any change: see missing_landing_zones()
            out.append(
                Task(row.key, Lifecycle.ORPHANED, None, row, f"landing zone {row.landing_zone!r} is gone")
            )
            continue
        if row.status == TenantStatus.ACTIVE:
            out.append(
                Task(
                    row.key,
                    Lifecycle.MARK_FOR_DELETION,
                    _spec_from_row(row, lz, TenantStatus.MARKED_FOR_DELETION, lz.auto_approve_deletion),
                    row,
                )
            )
        elif row.approved_at is None and not lz.auto_approve_deletion:
            out.append(
                Task(
                    row.key,
                    Lifecycle.AWAIT_APPROVAL,
                    _spec_from_row(row, lz, TenantStatus.MARKED_FOR_DELETION, False),
                    row,
                    f"run 'meshcore approve {row.key}' to delete it",
                )
            )
        else:
            out.append(
                Task(
                    row.key,
                    Lifecycle.DEPROVISION,
                    _spec_from_row(row, lz, TenantStatus.MARKED_FOR_DELETION, True),
                    row,
                )
            )
    return out


def _deleting(spec: TenantSpec) -> TenantSpec:
    return spec.model_copy(
        update={"status": TenantStatus.MARKED_FOR_DELETION, "bindings": (), "deletion_approved": True}
    )


def missing_landing_zones(config: LoadedConfig, recorded: list[TenantRow]) -> dict[str, list[str]]:
    """Landing zones gone from the config while live tenants of a configured platform still use them."""
    out: dict[str, list[str]] = {}
    for row in recorded:
        if row.platform in config.platforms and row.landing_zone not in config.landing_zones:
            out.setdefault(row.landing_zone, []).append(row.key)
    return out


__all__ = ["Lifecycle", "Task", "missing_landing_zones", "start_order", "tasks", "tenant_key"]
