"""The ``folders`` platform: every tenant is a folder under ``root``.

It is deliberately small, so that what a plugin must do stands out:

* register a type with a config model and a landing-zone model;
* *observe* and return actions; never write outside an action's ``run``;
* look the tenant up by its natural key (the folder name) and by any open
  journal intent before planning a create; journal the intent before the one
  non-idempotent write (creating the folder) and record what was created in
  ``ctx.resources``; mark it in the cloud (``managed_by`` in its metadata) so a
  namesake made by someone else is refused, never adopted;
* say what is already in place (``in_place``) so that grants can ``require`` it;
* one revoke or grant action per (permission, user) that differs.

A tenant folder holds ``tenant.json`` (name, tags, guardrails, access, managed_by).
Costs are the folder's size priced per GB and day.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import threading
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from meshcore import (
    Action,
    ActionResult,
    Capability,
    ChangeAction,
    ConflictError,
    CostCollection,
    CostRecord,
    DiscoveredTenant,
    HookContext,
    LandingZoneSpec,
    Observation,
    Period,
    Phase,
    PlatformError,
    PlatformSpec,
    PlatformType,
    PreflightCheck,
    PreflightReport,
    TenantRef,
    TenantSpec,
    TenantStatus,
    ValidationProblem,
    hookimpl,
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


def _root(platform: PlatformSpec) -> Path:
    return Path(platform.config.root)


def _name(tenant: TenantSpec) -> str:
    return f"{tenant.workspace.id}--{tenant.project.id}"


def _free_name(ctx: HookContext, tenant: TenantSpec) -> str:
    """The folder name for a new tenant: the natural name, unless a tenant (live or deleted) was
    ever bound to it; then the next free ``--2``, ``--3``... A deleted tenant's id is never reused."""
    base, n = _name(tenant), 1
    while ctx.owner_of(base if n == 1 else f"{base}--{n}") is not None:
        n += 1
    return base if n == 1 else f"{base}--{n}"


def _read(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / META).read_text())
    except FileNotFoundError:
        return None


def _write(folder: Path, meta: dict[str, Any]) -> None:
    tmp = folder / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    os.replace(tmp, folder / META)


def _update(folder: Path, **fields: Any) -> None:
    """Change fields of a tenant's metadata (one write)."""
    with _lock:
        meta = _read(folder)
        if meta is None:
            raise PlatformError(f"folder {folder.name} no longer exists")
        meta.update(fields)
        _write(folder, meta)


def _access(tenant: TenantSpec) -> set[tuple[str, str]]:
    """(permission, user) pairs the bindings in force grant; none for a tenant being deleted."""
    if tenant.status != TenantStatus.ACTIVE:
        return set()
    mapping = tenant.landing_zone.config.role_mappings
    return {(mapping.get(b.role, b.role), u.id) for b in tenant.bindings for u in b.users}


def _folder(platform: PlatformSpec, ctx: HookContext) -> Path:
    """The tenant's folder inside an action (its id is set once the create action ran)."""
    if ctx.platform_tenant_id is None:
        raise PlatformError("the tenant has no folder yet")
    return _root(platform) / ctx.platform_tenant_id


# -- platform type and config --------------------------------------------------------------


@hookimpl
def meshplatform_platform_types() -> list[PlatformType]:
    return [
        PlatformType(
            name=TYPE,
            description="Tenants are folders on a file system (reference plugin)",
            config_model=FoldersConfig,
            landing_zone_model=FoldersLandingZone,
            capabilities=frozenset(
                {
                    Capability.TENANTS,
                    Capability.LANDING_ZONES,
                    Capability.ACCESS,
                    Capability.COSTS,
                    Capability.DISCOVERY,
                    Capability.PREFLIGHT,
                }
            ),
        )
    ]


@hookimpl
def meshplatform_validate(
    platform: PlatformSpec, landing_zones: list[LandingZoneSpec]
) -> list[ValidationProblem]:
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
def meshplatform_preflight(platform: PlatformSpec, ctx: HookContext) -> PreflightReport:
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


@hookimpl
def meshplatform_identity(platform: PlatformSpec, ctx: HookContext) -> str:
    return f"folders:{_root(platform).resolve()}"


# -- the tenant --------------------------------------------------------------------------------


@hookimpl
def meshplatform_tenant_actions(platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext) -> Observation:
    if tenant.status != TenantStatus.ACTIVE:
        return _deletion(platform, tenant, ctx)
    name = tenant.platform_tenant_id or tenant.import_id or _free_name(ctx, tenant)
    folder = _root(platform) / name
    meta = _read(folder)
    actions: list[Action] = []
    found: str | None = None
    if tenant.platform_tenant_id is None:
        if meta is not None:
            _check_ours(ctx, tenant, name, meta)
            found = name
            actions.append(_adopt(ctx, name, "import" if tenant.import_id else "resume"))
        elif tenant.import_id:
            raise PlatformError(f"cannot import {name}: no such folder")
        else:
            actions.append(
                Action(
                    phase=Phase.TENANT,
                    change=ChangeAction.CREATE,
                    resource="folder",
                    target=name,
                    after=str(folder),
                    run=lambda: _create(ctx, tenant, folder),
                )
            )
            meta = {"tags": dict(tenant.replicated_tags)}  # created with its tags
    elif meta is None:
        raise PlatformError(f"folder {name} no longer exists")
    if meta.get("tags") != tenant.replicated_tags:
        actions.append(
            Action(
                phase=Phase.CONFIGURE,
                change=ChangeAction.UPDATE,
                resource="tags",
                target=name,
                before=json.dumps(meta.get("tags"), sort_keys=True),
                after=json.dumps(tenant.replicated_tags, sort_keys=True),
                run=lambda: _update(_folder(platform, ctx), tags=dict(tenant.replicated_tags)),
            )
        )
    return Observation(actions=tuple(actions), platform_tenant_id=found, attributes={"path": str(folder)})


def _check_ours(ctx: HookContext, tenant: TenantSpec, name: str, meta: dict[str, Any]) -> None:
    """An existing folder may be adopted only if imported on purpose, or created by this tenant."""
    owner = ctx.owner_of(name)
    if owner and owner != tenant.key:
        raise ConflictError(f"folder {name} belongs to {owner}; a tenant id is never reused")
    if tenant.import_id:
        return
    recorded = ctx.resources.get("folder", name)
    if (
        meta.get("managed_by") != tenant.key
        and recorded is None
        and ctx.journal.find("create-folder", name) is None
    ):
        raise ConflictError(
            f"folder {name} exists and was not created by meshcore for {tenant.key}; "
            f"import it with 'import_id: {name}' or remove it"
        )


def _adopt(ctx: HookContext, name: str, how: str) -> Action:
    def run() -> ActionResult:
        ctx.resources.put("folder", name, cloud_id=name, data={"adopted": how})
        entry = ctx.journal.find("create-folder", name)
        if entry is not None:  # created by a run that died before recording it
            entry.complete({"recovered": "by name"})
        return ActionResult(platform_tenant_id=name, message=f"adopted folder {name} ({how})")

    return Action(
        phase=Phase.TENANT,
        change=ChangeAction.CREATE,
        resource="folder",
        target=name,
        detail=f"adopt ({how})",
        run=run,
    )


def _create(ctx: HookContext, tenant: TenantSpec, folder: Path) -> ActionResult:
    entry = ctx.journal.find("create-folder", folder.name) or ctx.journal.begin(
        "create-folder", folder.name, {"tenant": tenant.key}
    )
    with _lock:
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "name": folder.name,
            "managed_by": tenant.key,
            "tags": dict(tenant.replicated_tags),
            "guardrails": [],
            "access": {},
        }
        _write(folder, meta)
    entry.record_operation(folder.name)
    ctx.resources.put("folder", folder.name, cloud_id=folder.name, completes=entry)
    return ActionResult(platform_tenant_id=folder.name, message=f"created {folder}")


def _deletion(platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext) -> Observation:
    if not tenant.deletion_approved or tenant.platform_tenant_id is None:
        return Observation()
    folder = _root(platform) / tenant.platform_tenant_id
    if not folder.exists():
        return Observation()
    archive = tenant.landing_zone.config.archive_on_delete

    def run() -> ActionResult:
        if archive:
            target = folder.with_name(f"{folder.name}.archived-{dt.date.today().isoformat()}")
            os.replace(folder, target)
            message = f"archived to {target.name}"
        else:
            shutil.rmtree(folder)
            message = "removed"
        ctx.resources.remove("folder", folder.name)
        return ActionResult(message=message)

    return Observation(
        actions=(
            Action(
                phase=Phase.DEPROVISION,
                change=ChangeAction.DELETE,
                resource="folder",
                target=folder.name,
                detail="archive" if archive else "remove",
                run=run,
            ),
        )
    )


# -- the landing zone on a tenant --------------------------------------------------------------


@hookimpl
def meshplatform_landing_zone_actions(
    platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
) -> Observation:
    if tenant.status != TenantStatus.ACTIVE:
        return Observation()
    name = tenant.platform_tenant_id or _name(tenant)
    meta = _read(_root(platform) / name) if tenant.platform_tenant_id else None
    have = (meta or {}).get("guardrails", [])
    want = list(tenant.landing_zone.config.guardrails)
    key = f"guardrails:{name}"
    if have == want:
        return Observation(in_place=frozenset({key}))
    action = Action(
        phase=Phase.GUARDRAILS,
        change=ChangeAction.UPDATE,
        resource="guardrails",
        target=name,
        key=key,
        before=", ".join(have) or None,
        after=", ".join(want) or None,
        run=lambda: _update(_folder(platform, ctx), guardrails=want),
    )
    return Observation(actions=(action,))


# -- access ----------------------------------------------------------------------------------


@hookimpl
def meshplatform_access_actions(platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext) -> Observation:
    name = tenant.platform_tenant_id or _name(tenant)
    meta = _read(_root(platform) / name) if tenant.platform_tenant_id else None
    have = {(perm, user) for perm, users in (meta or {}).get("access", {}).items() for user in users}
    want = _access(tenant)

    def change(perm: str, user: str, grant: bool) -> None:
        folder = _folder(platform, ctx)
        with _lock:
            meta = _read(folder) or {}
            users = set(meta.setdefault("access", {}).get(perm, []))
            users = users | {user} if grant else users - {user}
            if users:
                meta["access"][perm] = sorted(users)
            else:
                meta["access"].pop(perm, None)
            _write(folder, meta)

    actions = [
        Action(
            phase=Phase.REVOKE,
            change=ChangeAction.DELETE,
            resource="access",
            target=f"{perm}/{user}",
            run=partial(change, perm, user, False),
        )
        for perm, user in sorted(have - want)
    ]
    actions += [
        Action(
            phase=Phase.ACCESS,
            change=ChangeAction.CREATE,
            resource="access",
            target=f"{perm}/{user}",
            requires=(f"guardrails:{name}",),
            run=partial(change, perm, user, True),
        )
        for perm, user in sorted(want - have)
    ]
    return Observation(actions=tuple(actions))


# -- costs and discovery -------------------------------------------------------------------------


@hookimpl
def meshplatform_collect_costs(
    platform: PlatformSpec, period: Period, tenants: list[TenantRef], ctx: HookContext
) -> CostCollection:
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
def meshplatform_discover_tenants(platform: PlatformSpec, ctx: HookContext) -> list[DiscoveredTenant]:
    return [
        DiscoveredTenant(platform_tenant_id=p.name, name=p.name, status="ACTIVE")
        for p in sorted(_root(platform).iterdir())
        if p.is_dir() and not p.name.startswith(".") and ".archived-" not in p.name
    ]
