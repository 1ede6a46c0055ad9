"""An in-memory fake platform, type ``fake``: the core's test double and a runnable example.

It implements every hook the way a real plugin should: it journals before the
one non-idempotent call (creating a tenant), reads before writing so a
converged tenant costs no writes, revokes access on deletion, and reports costs
inside the period. Its "cloud" (:class:`FakeCloud`) counts reads and writes and
can inject failures, so tests can assert outcomes and call counts.

With ``state_file`` set in the platform config, the cloud persists to that JSON
file, so the CLI can be tried across processes without any cloud account.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from meshcore.errors import PlatformError
from meshcore.hookspecs import hookimpl
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

TYPE = "fake"


class FakeConfig(BaseModel):
    """Config of a fake platform."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state_file: str | None = Field(default=None, description="Persist the fake cloud to this JSON file.")
    name_pattern: str = Field(
        default="{workspace}-{project}", description="Tenant name; placeholders workspace, project, platform."
    )
    daily_cost: Decimal = Field(default=Decimal("1.50"), description="Synthetic cost per tenant and day.")


class FakeLandingZone(BaseModel):
    """Landing-zone config of a fake platform."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    folder: str = Field(default="default", description="Where tenants of this landing zone are placed.")
    guardrails: tuple[str, ...] = ()
    role_mappings: dict[str, str] = Field(default_factory=dict, description="Project role -> platform role.")
    forbidden_roles: tuple[str, ...] = ("owner",)


class FakeCloud:
    """The fake platform's state: tenants, access, and counters of every call."""

    def __init__(self, path: str | None = None):
        self.path = path
        self.lock = threading.RLock()
        self.tenants: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, str] = {}  # operation id -> tenant id
        self.next_id = 100000000001
        self.reads: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.fail: dict[str, BaseException] = {}  # "op" or "op:tenant-name" -> exception to raise once
        self.crash_after: set[str] = set()  # ops after which a simulated crash happens once
        self.external: set[str] = set()  # ids created outside meshcore (discoverable)
        self._saved: bytes | None = None
        if path and Path(path).exists():
            self._load()

    # persistence ----------------------------------------------------------------
    def reload_if_changed(self) -> None:
        """Pick up edits made to the state file by another process (or a test)."""
        if self.path and Path(self.path).exists():
            with self.lock:
                if Path(self.path).read_bytes() != self._saved:
                    self._load()

    def _load(self) -> None:
        self._saved = Path(self.path).read_bytes()  # type: ignore[arg-type]
        data = json.loads(self._saved)
        self.tenants = data["tenants"]
        self.operations = data["operations"]
        self.next_id = data["next_id"]
        self.external = set(data.get("external", []))

    def save(self) -> None:
        if self.path:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            data = {
                "tenants": self.tenants,
                "operations": self.operations,
                "next_id": self.next_id,
                "external": sorted(self.external),
            }
            text = json.dumps(data, indent=1, sort_keys=True).encode()
            tmp = Path(f"{self.path}.{threading.get_ident()}.tmp")
            tmp.write_bytes(text)
            os.replace(tmp, self.path)  # atomic: another process never reads half a file
            self._saved = text

    # calls ----------------------------------------------------------------------
    def _check(self, op: str, subject: str = "") -> None:
        for key in (f"{op}:{subject}", op):
            exc = self.fail.pop(key, None)
            if exc is not None:
                raise exc

    def read(self, op: str, subject: str = "") -> None:
        self.reads[op] += 1
        self._check(op, subject)

    def write(self, op: str, subject: str = "") -> None:
        self.writes[op] += 1
        self._check(op, subject)

    @property
    def write_count(self) -> int:
        return sum(self.writes.values())

    def create(self, name: str, operation_id: str) -> str:
        with self.lock:
            self.write("create", name)
            tid = str(self.next_id)
            self.next_id += 1
            self.tenants[tid] = {
                "name": name,
                "folder": "",
                "tags": {},
                "access": {},
                "status": "ACTIVE",
                "guardrails": [],
            }
            self.operations[operation_id] = tid
            self.save()
        if "create" in self.crash_after:
            self.crash_after.discard("create")
            raise SimulatedCrash("process died right after create returned")
        return tid

    def add_external(self, name: str) -> str:
        """Create a tenant outside meshcore (for discovery and import tests)."""
        with self.lock:
            tid = str(self.next_id)
            self.next_id += 1
            self.tenants[tid] = {
                "name": name,
                "folder": "",
                "tags": {},
                "access": {},
                "status": "ACTIVE",
                "guardrails": [],
            }
            self.external.add(tid)
            self.save()
            return tid


class SimulatedCrash(BaseException):
    """Raised by :class:`FakeCloud` to simulate the process dying mid-operation (not an Exception)."""


def serialized(hook):
    """Run a hook under its cloud's lock: tenants are reconciled in parallel, the fake cloud is a plain dict."""

    @functools.wraps(hook)
    def run(self, platform, *args, **kwargs):
        if getattr(platform, "type", None) != TYPE:
            return hook(self, platform, *args, **kwargs)
        with self.cloud(platform).lock:
            return hook(self, platform, *args, **kwargs)

    return run


class FakePlatformPlugin:
    """The plugin object registered under the entry point ``fake``."""

    def __init__(self) -> None:
        self.clouds: dict[str, FakeCloud] = {}
        self._lock = threading.Lock()

    def cloud(self, platform: Any) -> FakeCloud:
        with self._lock:
            key = f"{platform.id}:{platform.config.state_file or ''}"
            if key not in self.clouds:
                self.clouds[key] = FakeCloud(platform.config.state_file)
            cloud = self.clouds[key]
        cloud.reload_if_changed()  # outside the plugin lock: it takes the cloud's lock
        return cloud

    def reset(self) -> None:
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
    def meshplatform_validate(self, platform, landing_zones):
        if platform.type != TYPE:
            return None
        problems = []
        for lz in landing_zones:
            for role, target in lz.config.role_mappings.items():
                if target in lz.config.forbidden_roles:
                    problems.append(
                        ValidationProblem(
                            path=f"role_mappings.{role}",
                            landing_zone=lz.id,
                            message=f"platform role {target!r} is forbidden in this landing zone",
                        )
                    )
        return problems

    @hookimpl
    @serialized
    def meshplatform_preflight(self, platform, ctx):
        if platform.type != TYPE:
            return None
        cloud = self.cloud(platform)
        cloud.read("preflight")
        return PreflightReport(
            checks=(PreflightCheck(name="fake cloud reachable", ok=True, scope=platform.id),)
        )

    # -- tenant lifecycle --------------------------------------------------------------------

    def _name(self, platform, tenant) -> str:
        return platform.config.name_pattern.format(
            workspace=tenant.workspace.id, project=tenant.project.id, platform=platform.id
        )

    def _desired(self, platform, tenant) -> dict[str, Any]:
        return {
            "name": self._name(platform, tenant),
            "folder": tenant.landing_zone.config.folder,
            "tags": dict(tenant.replicated_tags),
        }

    @hookimpl
    @serialized
    def meshplatform_plan_tenant(self, platform, tenant, ctx):
        if platform.type != TYPE:
            return None
        cloud = self.cloud(platform)
        if tenant.status == TenantStatus.MARKED_FOR_DELETION:
            return [Change(action=ChangeAction.DELETE, resource="tenant", detail="close")]
        if tenant.platform_tenant_id is None:
            return [Change(action=ChangeAction.CREATE, resource="tenant", after=self._name(platform, tenant))]
        cloud.read("describe", tenant.platform_tenant_id)
        current = cloud.tenants.get(tenant.platform_tenant_id)
        if current is None:
            raise PlatformError(f"tenant {tenant.platform_tenant_id} no longer exists on the platform")
        changes = []
        for field, want in self._desired(platform, tenant).items():
            if current[field] != want:
                changes.append(
                    Change(
                        action=ChangeAction.UPDATE,
                        resource=field,
                        before=str(current[field]),
                        after=str(want),
                    )
                )
        want_access = self._access(tenant)
        if current["access"] != want_access:
            changes.append(
                Change(
                    action=ChangeAction.UPDATE,
                    resource="access",
                    before=json.dumps(current["access"], sort_keys=True),
                    after=json.dumps(want_access, sort_keys=True),
                )
            )
        return changes

    @hookimpl
    @serialized
    def meshplatform_provision_tenant(self, platform, tenant, ctx):
        if platform.type != TYPE:
            return None
        cloud = self.cloud(platform)
        if tenant.import_id:
            cloud.read("describe", tenant.import_id)
            if tenant.import_id not in cloud.tenants:
                raise PlatformError(f"cannot import {tenant.import_id}: no such tenant on the platform")
            owner = ctx.owner_of(tenant.import_id)
            if owner and owner != tenant.key:
                raise PlatformError(f"cannot import {tenant.import_id}: it belongs to {owner}")
            tid = tenant.import_id
        else:
            name = self._name(platform, tenant)
            entry = ctx.journal.find("create", tenant.key)
            tid = None
            if entry is not None and entry.operation_id:
                cloud.read("describe-operation", entry.operation_id)
                tid = cloud.operations.get(entry.operation_id)
            else:
                # No operation id (lost, or the core never recorded our answer): look the
                # tenant up by name, the natural dedupe key, before creating anything.
                cloud.read("list")
                tid = next(
                    (
                        i
                        for i, t in cloud.tenants.items()
                        if t["name"] == name and t["status"] == "ACTIVE" and i not in cloud.external
                    ),
                    None,
                )
                owner = ctx.owner_of(tid) if tid else None
                if owner and owner != tenant.key:
                    raise PlatformError(f"a tenant named {name!r} exists and belongs to {owner}")
            if tid is None:
                entry = entry or ctx.journal.begin("create", tenant.key, {"name": name})
                op_id = f"op-{entry.id}"
                entry.record_operation(op_id)
                tid = cloud.create(name, op_id)
            if entry is not None:
                entry.complete({"platform_tenant_id": tid})
        self._converge(cloud, platform, tenant.model_copy(update={"platform_tenant_id": tid}))
        return ProvisionResult(
            platform_tenant_id=tid, changed=True, attributes={"name": self._name(platform, tenant)}
        )

    def _converge(self, cloud: FakeCloud, platform, tenant) -> bool:
        tid = tenant.platform_tenant_id
        cloud.read("describe", tid)
        current = cloud.tenants.get(tid)
        if current is None:
            raise PlatformError(f"tenant {tid} no longer exists on the platform")
        changed = False
        for field, want in self._desired(platform, tenant).items():
            if current[field] != want:
                cloud.write(f"set-{field}", current["name"])
                current[field] = want
                changed = True
        if changed:
            cloud.save()
        return changed

    @hookimpl
    @serialized
    def meshplatform_update_tenant(self, platform, tenant, ctx):
        if platform.type != TYPE:
            return None
        cloud = self.cloud(platform)
        changed = self._converge(cloud, platform, tenant)
        return ProvisionResult(
            platform_tenant_id=tenant.platform_tenant_id,
            changed=changed,
            attributes={"name": self._name(platform, tenant)},
        )

    @hookimpl
    @serialized
    def meshplatform_deprovision_tenant(self, platform, tenant, ctx):
        if platform.type != TYPE:
            return None
        cloud = self.cloud(platform)
        tid = tenant.platform_tenant_id
        if tid is None:
            return DeprovisionResult(status=DeprovisionStatus.DELETED, message="never provisioned")
        cloud.read("describe", tid)
        current = cloud.tenants.get(tid)
        if current is None or current["status"] == "CLOSED":
            return DeprovisionResult(status=DeprovisionStatus.DELETED, message="closed")
        if current["status"] == "ACTIVE":
            cloud.write("close", current["name"])
            current["status"] = "CLOSING"
            cloud.save()
            return DeprovisionResult(status=DeprovisionStatus.IN_PROGRESS, message="closing")
        current["status"] = "CLOSED"
        cloud.save()
        return DeprovisionResult(status=DeprovisionStatus.DELETED, message="closed")

    # -- landing zones and access ------------------------------------------------------------

    @hookimpl
    @serialized
    def meshplatform_apply_landing_zone(self, platform, tenant, ctx):
        if platform.type != TYPE:
            return None
        cloud = self.cloud(platform)
        current = cloud.tenants[tenant.platform_tenant_id]
        want = list(tenant.landing_zone.config.guardrails)
        with ctx.step("guardrails") as step:
            if current["guardrails"] != want:
                cloud.write("set-guardrails", current["name"])
                current["guardrails"] = want
                cloud.save()
                step.changed(f"guardrails: {', '.join(want) or 'none'}")
                return StepOutcome(changed=True, message="guardrails applied")
        return StepOutcome(changed=False)

    def _access(self, tenant) -> dict[str, list[str]]:
        mapping = tenant.landing_zone.config.role_mappings
        out: dict[str, set[str]] = {}
        for b in tenant.bindings:
            role = mapping.get(b.role, b.role)
            out.setdefault(role, set()).update(u.id for u in b.users)
        return {r: sorted(u) for r, u in sorted(out.items())}

    @hookimpl
    @serialized
    def meshplatform_replicate_access(self, platform, tenant, ctx):
        if platform.type != TYPE:
            return None
        cloud = self.cloud(platform)
        tid = tenant.platform_tenant_id
        if tid is None or tid not in cloud.tenants:
            return StepOutcome(changed=False, message="nothing to do")
        current = cloud.tenants[tid]
        want = {} if tenant.status != TenantStatus.ACTIVE else self._access(tenant)
        if current["access"] == want:
            return StepOutcome(changed=False)
        cloud.write("set-access", current["name"])
        before = current["access"]
        current["access"] = want
        cloud.save()
        gained = {r: sorted(set(u) - set(before.get(r, []))) for r, u in want.items()}
        lost = {r: sorted(set(u) - set(want.get(r, []))) for r, u in before.items()}
        msg = "; ".join(
            [f"+{r}: {', '.join(u)}" for r, u in gained.items() if u]
            + [f"-{r}: {', '.join(u)}" for r, u in lost.items() if u]
        )
        return StepOutcome(changed=True, message=msg)

    # -- costs and discovery ------------------------------------------------------------------

    @hookimpl
    @serialized
    def meshplatform_collect_costs(self, platform, period, tenants, ctx):
        if platform.type != TYPE:
            return None
        cloud = self.cloud(platform)
        cloud.read("costs")
        records = []
        day = period.start
        while day < period.end:
            for tid, t in sorted(cloud.tenants.items()):
                if t["status"] == "ACTIVE":
                    records.append(
                        CostRecord(
                            platform_tenant_id=tid,
                            usage_start=day,
                            usage_end=day + dt.timedelta(days=1),
                            seller="Fake Cloud Inc.",
                            product="compute",
                            currency="EUR",
                            amount=platform.config.daily_cost,
                        )
                    )
            day += dt.timedelta(days=1)
        return CostCollection(records=tuple(records), requests=1, request_cost=Decimal("0"))

    @hookimpl
    @serialized
    def meshplatform_discover_tenants(self, platform, ctx):
        if platform.type != TYPE:
            return None
        cloud = self.cloud(platform)
        cloud.read("list")
        return [
            DiscoveredTenant(platform_tenant_id=tid, name=t["name"], status=t["status"])
            for tid, t in sorted(cloud.tenants.items())
        ]


plugin = FakePlatformPlugin()
