"""Decide what each tenant needs: the diff of desired (config) against recorded (state store).

Pure logic, no I/O beyond the rows it is given: a :class:`Task` per tenant says
which lifecycle action applies. The reconciler then asks plugins for details
(``plan``) or carries the actions out (``apply``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from meshcore.config import LoadedConfig
from meshcore.models import TenantStatus
from meshcore.specs import LandingZoneSpec, ProjectRef, TenantSpec, WorkspaceRef, tenant_key
from meshcore.state.tables import TenantRow


class Action(StrEnum):
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
    action: Action
    tenant: TenantSpec | None
    row: TenantRow | None
    note: str = ""


def _spec_from_row(row: TenantRow, lz: LandingZoneSpec, status: TenantStatus) -> TenantSpec:
    """A spec for a tenant no longer in config: identity and recorded attributes only."""
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
        attributes={k: str(v) for k, v in (row.attributes or {}).items()},
    )


def tasks(config: LoadedConfig, desired: list[TenantSpec], recorded: list[TenantRow]) -> list[Task]:
    """One task per desired or recorded (not DELETED) tenant, desired ones first in config order."""
    by_key = {r.key: r for r in recorded}
    out: list[Task] = []
    for spec in desired:
        row = by_key.pop(spec.key, None)
        if row is None:
            out.append(Task(spec.key, Action.PROVISION, spec, None))
            continue
        live = spec.model_copy(
            update={
                "platform_tenant_id": row.platform_tenant_id,
                "attributes": {k: str(v) for k, v in (row.attributes or {}).items()},
            }
        )
        if row.status == TenantStatus.MARKED_FOR_DELETION:
            if row.approved_at is None:
                out.append(Task(spec.key, Action.RESTORE, live, row))
            else:
                out.append(
                    Task(
                        spec.key,
                        Action.DEPROVISION,
                        _deleting(live),
                        row,
                        "deletion already approved; it cannot be undone",
                    )
                )
        elif row.platform_tenant_id is None:
            out.append(Task(spec.key, Action.PROVISION, live, row))
        else:
            out.append(Task(spec.key, Action.UPDATE, live, row))

    for row in by_key.values():
        lz = config.landing_zones.get(row.landing_zone)
        if row.platform not in config.platforms or lz is None:
            missing = "platform" if row.platform not in config.platforms else "landing zone"
            out.append(
                Task(
                    row.key,
                    Action.ORPHANED,
                    None,
                    row,
                    f"its {missing} is no longer in the config; the tenant is left untouched",
                )
            )
            continue
        if row.status == TenantStatus.ACTIVE:
            out.append(
                Task(
                    row.key,
                    Action.MARK_FOR_DELETION,
                    _spec_from_row(row, lz, TenantStatus.MARKED_FOR_DELETION),
                    row,
                )
            )
        elif row.approved_at is None and not lz.auto_approve_deletion:
            out.append(
                Task(
                    row.key,
                    Action.AWAIT_APPROVAL,
                    _spec_from_row(row, lz, TenantStatus.MARKED_FOR_DELETION),
                    row,
                    f"run 'meshcore approve {row.key}' to delete it",
                )
            )
        else:
            out.append(
                Task(
                    row.key,
                    Action.DEPROVISION,
                    _spec_from_row(row, lz, TenantStatus.MARKED_FOR_DELETION),
                    row,
                )
            )
    return out


def _deleting(spec: TenantSpec) -> TenantSpec:
    return spec.model_copy(update={"status": TenantStatus.MARKED_FOR_DELETION, "bindings": ()})


__all__ = ["Action", "Task", "tasks", "tenant_key"]
