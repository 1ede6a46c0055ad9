"""An in-memory fake platform, type ``fake``: the core's test double and a runnable example.

It implements the contract the way a real plugin should, on a small cloud
(:class:`~meshcore.testing.fake_cloud.FakeCloud`) of folders, tenants and access:

* **shared resources**: each landing zone's folder and the folder's guardrails
  (``target`` phase), created once for every tenant that uses them;
* **the tenant**: looked up by its natural key (the name) and by any open
  journal intent before it is created; created under a journal intent (the
  operation id recorded right after the call) and recorded in the resources
  table; placed in its folder; tagged; closed on deletion;
* **the landing zone on a tenant**: its guardrails and its baseline;
* **access**: one ``revoke`` or ``access`` action per (role, user) that differs;
  every grant requires the tenant's guardrails and placement to be confirmed.

Every observation names what it found in place, so ``requires`` can be checked.
With ``state_file`` set, the cloud persists, so the CLI can be tried across
processes without any cloud account.
"""

from __future__ import annotations

import datetime as dt
import string
import threading
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from meshcore.actions import Action, ActionResult, ActionStatus, Observation, Phase
from meshcore.context import HookContext
from meshcore.errors import ConflictError, PlatformError
from meshcore.hookspecs import hookimpl
from meshcore.models import TenantStatus
from meshcore.results import (
    Capability,
    ChangeAction,
    ChangedTenants,
    CostCollection,
    CostRecord,
    DiscoveredTenant,
    PlatformType,
    PreflightCheck,
    PreflightReport,
    ValidationProblem,
)
from meshcore.specs import LandingZoneSpec, PlatformSpec, TenantSpec
from meshcore.testing.fake_cloud import ACTIVE, CLOSED, CLOSING, FakeCloud, SimulatedCrash

TYPE = "fake"
#: What a tenant that does not exist yet looks like (it is created with its tags).
EMPTY: dict[str, Any] = {"folder": "", "guardrails": [], "baseline": "", "access": {}, "status": ACTIVE}


class FakeConfig(BaseModel):
    """Config of a fake platform."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state_file: str | None = Field(default=None, description="Persist the fake cloud to this SQLite file.")
    name_pattern: str = Field(
        default="{workspace}-{project}", description="Tenant name; placeholders workspace, project, platform."
    )
    daily_cost: Decimal = Field(default=Decimal("1.50"), description="Synthetic cost per tenant and day.")
    costs_estimated: bool = Field(default=False, description="Report every cost as still estimated.")
    create_polls: int = Field(
        default=0, ge=0, le=100, description="A creation stays in progress for this many status reads."
    )

    @field_validator("name_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            fields = [
                (name, spec, conv)
                for _text, name, spec, conv in string.Formatter().parse(value)
                if name is not None
            ]
        except ValueError as exc:
            raise ValueError(f"name_pattern: {exc}") from None
        for name, spec, conv in fields:
            if name not in {"workspace", "project", "platform"} or spec or conv:
                raise ValueError(
                    f"name_pattern: unknown placeholder {{{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}}}"
                    " (use {workspace}, {project}, {platform})"
                )
        return value


class FakeLandingZone(BaseModel):
    """Landing-zone config of a fake platform."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    folder: str = Field(default="/default", description="Where tenants of this landing zone are placed.")
    create_folder: bool = Field(default=True, description="Create the folder if it does not exist.")
    guardrails: tuple[str, ...] = Field(default=(), description="Set on the folder and on each tenant.")
    baseline: str = Field(default="", description="What is deployed into each tenant (a version string).")
    role_mappings: dict[str, str] = Field(default_factory=dict, description="Project role -> platform role.")
    forbidden_roles: tuple[str, ...] = ("owner",)
    deletion: Literal["close", "leave"] = Field(default="close", description="close the tenant, or leave it.")


class FakePlatformPlugin:
    """The plugin object registered under the entry point ``fake``."""

    def __init__(self) -> None:
        self.clouds: dict[str, FakeCloud] = {}
        self._lock = threading.Lock()

    def cloud(self, platform: PlatformSpec) -> FakeCloud:
        cfg: FakeConfig = platform.config
        with self._lock:
            key = f"{platform.id}:{cfg.state_file or ''}"
            if key not in self.clouds:
                self.clouds[key] = FakeCloud(
                    cfg.state_file, create_polls=cfg.create_polls, platform_id=platform.id
                )
            cloud = self.clouds[key]
        cloud.create_polls = cfg.create_polls
        cloud.reload_if_changed()
        return cloud

    def reset(self) -> None:
        for cloud in self.clouds.values():
            cloud.disconnect()
        self.clouds.clear()

    # -- platform types and config -------------------------------------------------------

    @hookimpl
    def meshplatform_platform_types(self) -> list[PlatformType]:
        return [
            PlatformType(
                name=TYPE,
                description="In-memory fake platform for tests and demos",
                config_model=FakeConfig,
                landing_zone_model=FakeLandingZone,
                capabilities=frozenset(Capability),
            )
        ]

    @hookimpl
    def meshplatform_validate(
        self, platform: PlatformSpec, landing_zones: list[LandingZoneSpec], tenants: list[TenantSpec]
    ) -> list[ValidationProblem]:
        problems = []
        names: dict[str, str] = {}
        for tenant in tenants:
            rendered = self._name(platform, tenant)
            owner = names.setdefault(rendered, tenant.key)
            if owner != tenant.key:
                problems.append(
                    ValidationProblem(
                        path="",
                        tenant=tenant.key,
                        message=f"tenant name {rendered!r} is also rendered for {owner}: change name_pattern",
                    )
                )
        folders: dict[str, tuple[str, tuple[str, ...]]] = {}
        for lz in landing_zones:
            zone: FakeLandingZone = lz.config
            for role, target in zone.role_mappings.items():
                if target in zone.forbidden_roles:
                    problems.append(
                        ValidationProblem(
                            path=f"role_mappings.{role}",
                            landing_zone=lz.id,
                            message=f"platform role {target!r} is forbidden in this landing zone",
                        )
                    )
            first = folders.setdefault(zone.folder, (lz.id, zone.guardrails))
            if first[1] != zone.guardrails:
                problems.append(
                    ValidationProblem(
                        path="guardrails",
                        landing_zone=lz.id,
                        message=f"landing zone {first[0]!r} puts other guardrails on folder {zone.folder}",
                    )
                )
        return problems

    @hookimpl
    def meshplatform_preflight(self, platform: PlatformSpec, ctx: HookContext) -> PreflightReport:
        self.cloud(platform).read("preflight")
        return PreflightReport(
            checks=(PreflightCheck(name="fake cloud reachable", ok=True, scope=platform.id),)
        )

    @hookimpl
    def meshplatform_identity(self, platform: PlatformSpec, ctx: HookContext) -> str:
        cfg: FakeConfig = platform.config
        if cfg.state_file:
            return f"fake:{Path(cfg.state_file).resolve()}"
        return f"fake:memory:{platform.id}"

    # -- shared resources ----------------------------------------------------------------

    @hookimpl
    def meshplatform_platform_actions(
        self, platform: PlatformSpec, landing_zones: list[LandingZoneSpec], ctx: HookContext
    ) -> Observation:
        cloud = self.cloud(platform)
        actions: list[Action] = []
        in_place: set[str] = set()
        problems: dict[str, str] = {}
        seen: set[str] = set()
        for lz in landing_zones:
            zone: FakeLandingZone = lz.config
            if zone.folder in seen:
                continue
            seen.add(zone.folder)
            cloud.read("describe-folder", zone.folder)
            folder = cloud.folders.get(zone.folder)
            folder_key, guard_key = f"folder:{zone.folder}", f"folder-guardrails:{zone.folder}"
            if folder is None and not zone.create_folder:
                problems[folder_key] = f"folder {zone.folder} does not exist (create_folder is off)"
                continue
            if folder is None:
                actions.append(
                    Action(
                        phase=Phase.TARGET,
                        change=ChangeAction.CREATE,
                        resource="folder",
                        target=zone.folder,
                        key=folder_key,
                        run=partial(cloud.create_folder, zone.folder),
                    )
                )
            else:
                in_place.add(folder_key)
            have = list(folder["guardrails"]) if folder else []
            if have != list(zone.guardrails):
                actions.append(
                    Action(
                        phase=Phase.TARGET,
                        change=ChangeAction.UPDATE,
                        resource="folder-guardrails",
                        target=zone.folder,
                        key=guard_key,
                        before=", ".join(have) or None,
                        after=", ".join(zone.guardrails) or None,
                        requires=(folder_key,),
                        run=partial(cloud.set_folder_guardrails, zone.folder, list(zone.guardrails)),
                    )
                )
            else:
                in_place.add(guard_key)
        return Observation(actions=tuple(actions), in_place=frozenset(in_place), problems=problems)

    # -- the tenant ----------------------------------------------------------------------

    def _name(self, platform: PlatformSpec, tenant: TenantSpec) -> str:
        cfg: FakeConfig = platform.config
        return cfg.name_pattern.format(
            workspace=tenant.workspace.id, project=tenant.project.id, platform=platform.id
        )

    @hookimpl
    def meshplatform_changed_tenants(
        self, platform: PlatformSpec, ctx: HookContext, since: dt.datetime
    ) -> ChangedTenants:
        """Every tenant write is in the fake's change feed (except one marked ``unfed``), at once."""
        cloud = self.cloud(platform)
        until = dt.datetime.now(dt.UTC)
        return ChangedTenants(
            platform_tenant_ids=frozenset(cloud.changed_since(since.timestamp())), until=until
        )

    @hookimpl
    def meshplatform_tenant_actions(
        self, platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
    ) -> Observation:
        cloud = self.cloud(platform)
        name = self._name(platform, tenant)
        cloud.read("observe-tenant", name)
        zone: FakeLandingZone = tenant.landing_zone.config
        if tenant.status != TenantStatus.ACTIVE:
            return self._deletion(cloud, tenant, zone, name, ctx)
        tid = tenant.platform_tenant_id
        actions: list[Action] = []
        found: str | None = None
        if tid is None:
            found, acquire = self._acquire(cloud, tenant, name, ctx)
            actions.append(acquire)
            current = (
                cloud.get(found) if found else {**EMPTY, "name": name, "tags": dict(tenant.replicated_tags)}
            )
        else:
            current = cloud.get(tid)
            if current is None or current["status"] != ACTIVE:
                raise PlatformError(
                    f"tenant {tid} is {current['status'] if current else 'gone'} on the platform; "
                    "it cannot be converged"
                )
        assert current is not None
        in_place: set[str] = set()
        folder_keys = (f"folder:{zone.folder}", f"folder-guardrails:{zone.folder}")
        placement = f"placement:{name}"
        if current["folder"] != zone.folder:
            actions.append(
                Action(
                    phase=Phase.PLACEMENT,
                    change=ChangeAction.UPDATE,
                    resource="placement",
                    target=name,
                    key=placement,
                    before=current["folder"] or None,
                    after=zone.folder,
                    requires=folder_keys,
                    run=lambda: cloud.update(_bound(ctx), "move", folder=zone.folder),
                )
            )
        else:
            in_place.add(placement)
        want_tags = dict(tenant.replicated_tags)
        if current["tags"] != want_tags:
            actions.append(
                Action(
                    phase=Phase.CONFIGURE,
                    change=ChangeAction.UPDATE,
                    resource="tags",
                    target=name,
                    before=_fmt(current["tags"]),
                    after=_fmt(want_tags),
                    run=lambda: cloud.update(_bound(ctx), "set-tags", tags=want_tags),
                )
            )
        return Observation(
            actions=tuple(actions),
            in_place=frozenset(in_place),
            platform_tenant_id=found,
            attributes={"name": name, "folder": zone.folder},
        )

    def _acquire(
        self, cloud: FakeCloud, tenant: TenantSpec, name: str, ctx: HookContext
    ) -> tuple[str | None, Action]:
        """For a tenant with no bound id: the action that creates, resumes or adopts it (and what it found)."""
        zone: FakeLandingZone = tenant.landing_zone.config
        needs = (f"folder:{zone.folder}", f"folder-guardrails:{zone.folder}")
        if tenant.import_id:
            current = cloud.get(tenant.import_id)
            if current is None or current["status"] != ACTIVE:
                raise PlatformError(f"cannot import {tenant.import_id}: no such live tenant on the platform")
            self._check_owner(ctx, tenant, tenant.import_id)
            return tenant.import_id, self._adopt(ctx, tenant.import_id, name, "import", needs)
        entry = ctx.journal.find("create", name)
        if entry is not None and entry.operation_id is None:
            pending = cloud.pending_creation(name)
            if pending is not None:
                entry.record_operation(pending)
        if entry is not None and entry.operation_id is not None:
            return None, Action(
                phase=Phase.TENANT,
                change=ChangeAction.WAIT,
                resource="tenant",
                target=name,
                detail=f"creation {entry.operation_id} started by an earlier run",
                requires=needs,
                run=lambda: self._await(cloud, ctx, name, entry),
            )
        existing = cloud.find(name)
        if existing is not None:
            recorded = ctx.resources.get("tenant", name)
            marked = (cloud.get(existing) or {}).get("managed_by") == tenant.key  # made for this tenant
            ours = entry is not None or marked or (recorded is not None and recorded.cloud_id == existing)
            if not ours:
                raise ConflictError(
                    f"a tenant named {name!r} ({existing}) exists on the platform and meshcore did not create it; "
                    f"adopt it with 'import_id: {existing}' or change name_pattern"
                )
            self._check_owner(ctx, tenant, existing)
            return existing, self._adopt(ctx, existing, name, "resume", needs, entry)
        return None, Action(
            phase=Phase.TENANT,
            change=ChangeAction.CREATE,
            resource="tenant",
            target=name,
            after=name,
            detail=f"in {zone.folder}",
            requires=needs,
            run=lambda: self._create(cloud, ctx, tenant, name),
        )

    @staticmethod
    def _check_owner(ctx: HookContext, tenant: TenantSpec, tid: str) -> None:
        owner = ctx.owner_of(tid)
        if owner and owner != tenant.key:
            raise ConflictError(f"tenant {tid} belongs to {owner}; a tenant id is never reused")

    def _adopt(
        self, ctx: HookContext, tid: str, name: str, how: str, needs: tuple[str, ...], entry: Any = None
    ) -> Action:
        """Adopt an existing tenant: an import, or one an interrupted run of ours created (``entry``)."""

        def run() -> ActionResult:
            ctx.resources.put("tenant", name, cloud_id=tid, data={"adopted": how})
            if entry is not None:
                entry.complete({"tenant": tid, "recovered": "by name"})
            return ActionResult(platform_tenant_id=tid, message=f"{how}: adopted {tid}")

        return Action(
            phase=Phase.TENANT,
            change=ChangeAction.CREATE,
            resource="tenant",
            target=name,
            after=tid,
            detail=f"adopt existing tenant {tid} ({how})",
            requires=needs,
            run=run,
        )

    def _create(self, cloud: FakeCloud, ctx: HookContext, tenant: TenantSpec, name: str) -> ActionResult:
        entry = ctx.journal.find("create", name) or ctx.journal.begin("create", name, {"tenant": tenant.key})
        op_id = f"op-{entry.id}"
        tid = cloud.create(name, op_id, dict(tenant.replicated_tags), marker=tenant.key)
        entry.record_operation(op_id)
        if tid is None:
            return ActionResult(status=ActionStatus.IN_PROGRESS, message=f"creation {op_id} in progress")
        return self._created(ctx, entry, name, tid)

    def _await(self, cloud: FakeCloud, ctx: HookContext, name: str, entry: Any) -> ActionResult:
        state, tid = cloud.poll(entry.operation_id)
        if state == "IN_PROGRESS":
            return ActionResult(
                status=ActionStatus.IN_PROGRESS, message=f"creation {entry.operation_id} in progress"
            )
        if tid is None:
            entry.fail(f"operation {entry.operation_id} is unknown to the platform")
            raise PlatformError(f"creation {entry.operation_id} of {name} is unknown to the platform")
        return self._created(ctx, entry, name, tid)

    @staticmethod
    def _created(ctx: HookContext, entry: Any, name: str, tid: str) -> ActionResult:
        ctx.resources.put("tenant", name, cloud_id=tid)
        entry.complete({"tenant": tid})
        return ActionResult(platform_tenant_id=tid, message=f"created {tid}")

    def _deletion(
        self, cloud: FakeCloud, tenant: TenantSpec, zone: FakeLandingZone, name: str, ctx: HookContext
    ) -> Observation:
        if not tenant.deletion_approved or zone.deletion == "leave" or tenant.platform_tenant_id is None:
            return Observation()
        tid = tenant.platform_tenant_id
        current = cloud.get(tid)
        if current is None or current["status"] == CLOSED:
            return Observation()
        if current["status"] == CLOSING:
            return Observation(
                actions=(
                    Action(
                        phase=Phase.DEPROVISION,
                        change=ChangeAction.WAIT,
                        resource="tenant",
                        target=name,
                        before=CLOSING,
                        after=CLOSED,
                        run=lambda: self._await_closure(cloud, tid),
                    ),
                )
            )
        return Observation(
            actions=(
                Action(
                    phase=Phase.DEPROVISION,
                    change=ChangeAction.DELETE,
                    resource="tenant",
                    target=name,
                    before=ACTIVE,
                    after=CLOSING,
                    run=lambda: cloud.close_tenant(tid),
                ),
            )
        )

    @staticmethod
    def _await_closure(cloud: FakeCloud, tid: str) -> ActionResult:
        if cloud.poll_closure(tid) == CLOSING:
            return ActionResult(status=ActionStatus.IN_PROGRESS, message=f"{tid} is still closing")
        return ActionResult(changed=False, message=f"{tid} is closed")

    # -- landing zone on the tenant -------------------------------------------------------

    @hookimpl
    def meshplatform_landing_zone_actions(
        self, platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
    ) -> Observation:
        cloud = self.cloud(platform)
        name = self._name(platform, tenant)
        cloud.read("observe-landing-zone", name)
        zone: FakeLandingZone = tenant.landing_zone.config
        tid = tenant.platform_tenant_id
        current = (cloud.get(tid) if tid else None) or dict(EMPTY)
        if tenant.status != TenantStatus.ACTIVE:
            if not tenant.deletion_approved or not current["baseline"] or current["status"] != ACTIVE:
                return Observation()
            return Observation(
                actions=(
                    Action(
                        phase=Phase.TEARDOWN,
                        change=ChangeAction.DELETE,
                        resource="baseline",
                        target=name,
                        before=current["baseline"],
                        run=lambda: cloud.update(_bound(ctx), "remove-baseline", baseline=""),
                    ),
                )
            )
        actions: list[Action] = []
        in_place: set[str] = set()
        guard_key = f"guardrails:{name}"
        if current["guardrails"] != list(zone.guardrails):
            actions.append(
                Action(
                    phase=Phase.GUARDRAILS,
                    change=ChangeAction.UPDATE,
                    resource="guardrails",
                    target=name,
                    key=guard_key,
                    before=", ".join(current["guardrails"]) or None,
                    after=", ".join(zone.guardrails) or None,
                    run=lambda: cloud.update(_bound(ctx), "set-guardrails", guardrails=list(zone.guardrails)),
                )
            )
        else:
            in_place.add(guard_key)
        if current["baseline"] != zone.baseline:
            actions.append(
                Action(
                    phase=Phase.BASELINE,
                    change=ChangeAction.UPDATE,
                    resource="baseline",
                    target=name,
                    before=current["baseline"] or None,
                    after=zone.baseline or None,
                    run=lambda: cloud.update(_bound(ctx), "set-baseline", baseline=zone.baseline),
                )
            )
        return Observation(actions=tuple(actions), in_place=frozenset(in_place))

    # -- access ---------------------------------------------------------------------------

    @staticmethod
    def _wanted(tenant: TenantSpec) -> set[tuple[str, str]]:
        if tenant.status != TenantStatus.ACTIVE:
            return set()
        zone: FakeLandingZone = tenant.landing_zone.config
        return {(zone.role_mappings.get(b.role, b.role), u.id) for b in tenant.bindings for u in b.users}

    @hookimpl
    def meshplatform_access_actions(
        self, platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
    ) -> Observation:
        cloud = self.cloud(platform)
        name = self._name(platform, tenant)
        tid = tenant.platform_tenant_id
        current = (cloud.get(tid) if tid else None) or dict(EMPTY)
        if current["status"] == CLOSED:
            return Observation()
        have = {(role, user) for role, users in current["access"].items() for user in users}
        want = self._wanted(tenant)
        actions = [
            Action(
                phase=Phase.REVOKE,
                change=ChangeAction.DELETE,
                resource="access",
                target=f"{role}/{user}",
                detail=f"{user} loses {role}",
                run=partial(self._revoke, cloud, ctx, role, user),
            )
            for role, user in sorted(have - want)
        ]
        guarded = (f"guardrails:{name}", f"placement:{name}")
        actions += [
            Action(
                phase=Phase.ACCESS,
                change=ChangeAction.CREATE,
                resource="access",
                target=f"{role}/{user}",
                detail=f"{user} gains {role}",
                requires=guarded,
                run=partial(self._grant, cloud, ctx, role, user),
            )
            for role, user in sorted(want - have)
        ]
        return Observation(actions=tuple(actions))

    @staticmethod
    def _revoke(cloud: FakeCloud, ctx: HookContext, role: str, user: str) -> None:
        cloud.revoke(_bound(ctx), role, user)

    @staticmethod
    def _grant(cloud: FakeCloud, ctx: HookContext, role: str, user: str) -> None:
        cloud.grant(_bound(ctx), role, user)

    # -- costs and discovery ------------------------------------------------------------

    @hookimpl
    def meshplatform_collect_costs(
        self, platform: PlatformSpec, period: Any, tenants: Any, ctx: HookContext
    ) -> CostCollection:
        cloud = self.cloud(platform)
        cloud.read("costs")
        cfg: FakeConfig = platform.config
        records = []
        day = period.start
        with cloud.lock:
            live = sorted(tid for tid, t in cloud.tenants.items() if t["status"] == ACTIVE)
        while day < period.end:
            for tid in live:
                records.append(
                    CostRecord(
                        platform_tenant_id=tid,
                        usage_start=day,
                        usage_end=day + dt.timedelta(days=1),
                        seller="Fake Cloud Inc.",
                        product="compute",
                        currency="EUR",
                        amount=cfg.daily_cost,
                        estimated=cfg.costs_estimated,
                    )
                )
            day += dt.timedelta(days=1)
        return CostCollection(records=tuple(records), requests=1, request_cost=Decimal("0"))

    @hookimpl
    def meshplatform_discover_tenants(
        self, platform: PlatformSpec, ctx: HookContext
    ) -> list[DiscoveredTenant]:
        cloud = self.cloud(platform)
        cloud.read("list")
        with cloud.lock:
            return [
                DiscoveredTenant(platform_tenant_id=tid, name=t["name"], status=t["status"])
                for tid, t in sorted(cloud.tenants.items())
                if t["status"] == ACTIVE  # closing and closed tenants are no candidates for import
            ]


def _bound(ctx: HookContext) -> str:
    """The tenant's id inside a ``run`` closure (set by the action that created it, if this run did)."""
    if ctx.platform_tenant_id is None:
        raise PlatformError("the tenant has no platform id yet")
    return ctx.platform_tenant_id


def _fmt(tags: dict[str, str]) -> str | None:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) or None


plugin = FakePlatformPlugin()

__all__ = ["FakeCloud", "FakeConfig", "FakeLandingZone", "FakePlatformPlugin", "SimulatedCrash", "plugin"]


class FakeConformanceCloud:
    """The conformance kit's window onto the fake platform (an example ``ConformanceCloud``)."""

    def __init__(self, plugin: FakePlatformPlugin, platform_id: str = "conformance", state_file: str = ""):
        key = f"{platform_id}:{state_file}"
        with plugin._lock:
            if key not in plugin.clouds:
                plugin.clouds[key] = FakeCloud(state_file or None)
            self.cloud = plugin.clouds[key]

    def writes(self) -> int:
        return self.cloud.write_count

    def live_tenants(self) -> set[str]:
        with self.cloud.lock:
            return {tid for tid, t in self.cloud.tenants.items() if t["status"] == ACTIVE}

    def natural_name(self, workspace: str, project: str) -> str:
        return f"{workspace}-{project}"  # FakeConfig.name_pattern's default

    def make_foreign(self, name: str) -> str:
        return self.cloud.add_external(name)

    def tags_of(self, tenant_id: str) -> dict[str, str]:
        return dict(self.cloud.tenants[tenant_id]["tags"])

    def set_tags(self, tenant_id: str, tags: dict[str, str]) -> None:
        self.cloud.update(tenant_id, "tag-by-hand", tags=tags)

    def users_of(self, tenant_id: str) -> set[str]:
        return {u for users in self.cloud.tenants[tenant_id]["access"].values() for u in users}

    def grant(self, tenant_id: str, user: str) -> None:
        self.cloud.grant(tenant_id, "operator", user)
