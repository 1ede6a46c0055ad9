"""The ``folders`` platform: every tenant is a folder under ``root``.

It is deliberately simple, so that what a plugin must do stands out:

* register a type with a config model and a landing-zone model;
* journal before the one non-idempotent write (creating the folder) and look
  the tenant up by its natural key (the folder name) before creating it;
* read before writing, so a converged tenant costs no writes;
* return ``None`` for platform types it does not own;
* implement every hook: validate, preflight, plan, provision, update,
  deprovision, landing zone, access, costs, discovery.

A tenant folder holds ``tenant.json`` (name, tags, guardrails, access, status).
Costs are the folder's size priced per GB and day.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from meshcore import hookimpl
from meshcore.errors import PlatformError
from meshcore.models import TenantStatus
from meshcore.results import (
    Capability,
    Change,
    ChangeAction,
    CostCollection,
    CostRecord,
    DeprovisionResult,
    DeprovisionStatus,
    DiscoveredTenant,
    PlatformType,
    PreflightCheck,
    PreflightReport,
    ProvisionResult,
    StepOutcome,
    ValidationProblem,
)

TYPE = "folders"
META = "tenant.json"
_lock = threading.Lock()  # tenants run in parallel; folder metadata is read-modify-write


class FoldersConfig(BaseModel):
    """``platforms[].config`` for ``type: folders``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str = Field(description="Directory holding one folder per tenant.")
    price_per_gb_day: Decimal = Field(
        default=Decimal("0.10"), ge=0, description="Price of storage, per GB and day."
    )
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")


class FoldersLandingZone(BaseModel):
    """``landing_zones[].config`` for landing zones on a ``folders`` platform."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    guardrails: tuple[str, ...] = Field(default=(), description="Names written into each tenant's metadata.")
    role_mappings: dict[str, str] = Field(
        default_factory=dict, description="Project role -> folder permission."
    )
    archive_on_delete: bool = Field(
        default=True, description="Rename deleted tenants' folders instead of removing them."
    )


# -- helpers ---------------------------------------------------------------------------


def _root(platform: Any) -> Path:
    return Path(platform.config.root)


def _name(tenant: Any) -> str:
    return f"{tenant.workspace.id}--{tenant.project.id}"


def _read(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / META).read_text())
    except FileNotFoundError:
        return None


def _write(folder: Path, meta: dict[str, Any]) -> None:
    tmp = folder / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    os.replace(tmp, folder / META)


def _desired(tenant: Any) -> dict[str, Any]:
    lz: FoldersLandingZone = tenant.landing_zone.config
    access: dict[str, list[str]] = {}
    if tenant.status == TenantStatus.ACTIVE:
        for b in tenant.bindings:
            access.setdefault(lz.role_mappings.get(b.role, b.role), [])
            access[lz.role_mappings.get(b.role, b.role)] += [u.id for u in b.users]
    return {
        "tags": dict(tenant.replicated_tags),
        "guardrails": list(lz.guardrails),
        "access": {k: sorted(set(v)) for k, v in sorted(access.items())},
    }


# -- platform type and config --------------------------------------------------------------


@hookimpl
def meshplatform_platform_types():
    return [
        PlatformType(
            name=TYPE,
            description="Tenants are folders on a file system (reference plugin)",
            config_model=FoldersConfig,
            landing_zone_model=FoldersLandingZone,
            capabilities=frozenset(Capability),
        )
    ]


@hookimpl
def meshplatform_validate(platform, landing_zones):
    if platform.type != TYPE:
        return None
    problems = []
    for lz in landing_zones:
        for role, permission in lz.config.role_mappings.items():
            if permission not in ("read", "write", "admin"):
                problems.append(
                    ValidationProblem(
                        path=f"role_mappings.{role}",
                        landing_zone=lz.id,
                        message=f"{permission!r} is not read, write or admin",
                    )
                )
    return problems


@hookimpl
def meshplatform_preflight(platform, ctx):
    if platform.type != TYPE:
        return None
    root = _root(platform)
    ok = root.is_dir() and os.access(root, os.W_OK)
    return PreflightReport(
        checks=(
            PreflightCheck(
                name="root is a writable directory",
                ok=ok,
                scope=str(root),
                message="" if ok else f"{root} is missing or read-only",
            ),
        )
    )


# -- tenant lifecycle -------------------------------------------------------------------------


@hookimpl
def meshplatform_plan_tenant(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    if tenant.status != TenantStatus.ACTIVE:
        return [
            Change(
                action=ChangeAction.DELETE,
                resource="folder",
                detail="archive" if tenant.landing_zone.config.archive_on_delete else "remove",
            )
        ]
    if tenant.platform_tenant_id is None:
        return [Change(action=ChangeAction.CREATE, resource="folder", after=_name(tenant))]
    meta = _read(_root(platform) / tenant.platform_tenant_id)
    if meta is None:
        raise PlatformError(f"folder {tenant.platform_tenant_id} no longer exists")
    return [
        Change(
            action=ChangeAction.UPDATE, resource=key, before=json.dumps(meta.get(key)), after=json.dumps(want)
        )
        for key, want in _desired(tenant).items()
        if meta.get(key) != want
    ]


@hookimpl
def meshplatform_provision_tenant(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    name = tenant.import_id or _name(tenant)
    folder = _root(platform) / name
    if tenant.import_id and not folder.is_dir():
        raise PlatformError(f"cannot import {name}: no such folder")
    owner = ctx.owner_of(name)
    if owner and owner != tenant.key:
        raise PlatformError(f"folder {name} belongs to {owner}")
    with _lock:
        if _read(folder) is None:  # natural key first: a folder left by an interrupted run is reused
            entry = ctx.journal.find("create-folder", name) or ctx.journal.begin(
                "create-folder", name, {"tenant": tenant.key}
            )
            folder.mkdir(parents=True, exist_ok=True)
            _write(folder, {"name": name, "status": "ACTIVE", "tags": {}, "guardrails": [], "access": {}})
            entry.record_operation(name)
            entry.complete({})
    changed = _converge(platform, tenant.model_copy(update={"platform_tenant_id": name}), keys=("tags",))
    return ProvisionResult(
        platform_tenant_id=name,
        changed=True,
        attributes={"path": str(folder)},
        message="imported" if tenant.import_id else ("created" if changed else ""),
    )


def _converge(platform: Any, tenant: Any, keys: tuple[str, ...]) -> bool:
    folder = _root(platform) / tenant.platform_tenant_id
    with _lock:
        meta = _read(folder)
        if meta is None:
            raise PlatformError(f"folder {tenant.platform_tenant_id} no longer exists")
        want = {k: v for k, v in _desired(tenant).items() if k in keys}
        if all(meta.get(k) == v for k, v in want.items()):
            return False
        meta.update(want)
        _write(folder, meta)
        return True


@hookimpl
def meshplatform_update_tenant(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    changed = _converge(platform, tenant, keys=("tags",))
    return ProvisionResult(
        platform_tenant_id=tenant.platform_tenant_id,
        changed=changed,
        attributes={"path": str(_root(platform) / tenant.platform_tenant_id)},
    )


@hookimpl
def meshplatform_deprovision_tenant(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    if tenant.platform_tenant_id is None:
        return DeprovisionResult(status=DeprovisionStatus.DELETED, message="never provisioned")
    folder = _root(platform) / tenant.platform_tenant_id
    if not folder.exists():
        return DeprovisionResult(status=DeprovisionStatus.DELETED, message="already gone")
    if tenant.landing_zone.config.archive_on_delete:
        target = folder.with_name(f"{folder.name}.archived-{dt.date.today().isoformat()}")
        os.replace(folder, target)
        return DeprovisionResult(status=DeprovisionStatus.DELETED, message=f"archived to {target.name}")
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()
    return DeprovisionResult(status=DeprovisionStatus.DELETED, message="removed")


# -- landing zones and access ----------------------------------------------------------------


@hookimpl
def meshplatform_apply_landing_zone(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    with ctx.step("guardrails") as step:
        changed = _converge(platform, tenant, keys=("guardrails",))
        if changed:
            step.changed(", ".join(tenant.landing_zone.config.guardrails) or "none")
    return StepOutcome(changed=changed)


@hookimpl
def meshplatform_replicate_access(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    if tenant.platform_tenant_id is None or not (_root(platform) / tenant.platform_tenant_id).exists():
        return StepOutcome(changed=False, message="no folder")
    return StepOutcome(changed=_converge(platform, tenant, keys=("access",)))


# -- costs and discovery -------------------------------------------------------------------------


@hookimpl
def meshplatform_collect_costs(platform, period, tenants, ctx):
    if platform.type != TYPE:
        return None
    cfg: FoldersConfig = platform.config
    records = []
    days = (period.end - period.start).days
    for folder in sorted(p for p in _root(platform).iterdir() if (p / META).exists()):
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        amount = (Decimal(size) / Decimal(1024**3) * cfg.price_per_gb_day * days).quantize(
            Decimal("0.000001")
        )
        records.append(
            CostRecord(
                platform_tenant_id=folder.name,
                usage_start=period.start,
                usage_end=period.end,
                seller="local disk",
                product="storage",
                currency=cfg.currency,
                amount=amount,
            )
        )
    return CostCollection(records=tuple(records), requests=0)


@hookimpl
def meshplatform_discover_tenants(platform, ctx):
    if platform.type != TYPE:
        return None
    return [
        DiscoveredTenant(platform_tenant_id=p.name, name=p.name, status="ACTIVE")
        for p in sorted(_root(platform).iterdir())
        if p.is_dir() and not p.name.startswith(".")
    ]
