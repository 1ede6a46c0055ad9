"""Plan and apply: drive plugins from the lifecycle tasks, tenant by tenant.

* ``plan`` asks each plugin what applying would change (reads only) and records
  nothing but the run itself.
* ``apply`` carries out every task. Tenants run in parallel (``settings.concurrency``)
  and independently: an exception in one tenant fails that tenant only. Every
  step's outcome is written to the state store the moment it ends.
* A hook that raises :class:`~meshcore.errors.RetryableError` is retried with
  bounded, jittered backoff (``settings.hook_retries``).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from meshcore.config import LoadedConfig
from meshcore.context import HookContext, RunCache
from meshcore.desired import desired_tenants, spec_hash
from meshcore.errors import MeshcoreError, RetryableError
from meshcore.lifecycle import Action, Task, tasks
from meshcore.models import TenantStatus
from meshcore.plugins import PluginRegistry
from meshcore.redaction import redact
from meshcore.results import Capability, Change, ChangeAction, DeprovisionStatus, ProvisionStatus
from meshcore.retry import Backoff, call_with_retries
from meshcore.specs import TenantSpec
from meshcore.state import StateStore
from meshcore.state.tables import utcnow

LEASE_NAME = "apply"
LEASE_TTL = 600.0


@dataclass
class PlanItem:
    key: str
    action: str
    changes: list[Change] = field(default_factory=list)
    note: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.key,
            "action": self.action,
            "note": self.note,
            "error": self.error,
            "changes": [c.model_dump(mode="json") for c in self.changes],
        }


@dataclass
class TenantResult:
    key: str
    action: str
    status: str = "ok"  # ok | changed | failed | in_progress | waiting | skipped
    message: str = ""
    platform_tenant_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Report:
    run_id: int
    plan: list[PlanItem] = field(default_factory=list)
    results: list[TenantResult] = field(default_factory=list)

    @property
    def failed(self) -> list[TenantResult]:
        return [r for r in self.results if r.status == "failed"]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(holder: str) -> bool:
    """True when ``holder`` names a process on this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Reconciler:
    """Reconciles one validated config against one state store through the registry's plugins."""

    def __init__(
        self,
        config: LoadedConfig,
        store: StateStore,
        registry: PluginRegistry,
        *,
        sleep: Callable[[float], None] = time.sleep,
        today: dt.date | None = None,
        on_progress: Callable[[TenantResult], None] | None = None,
    ):
        self.config = config
        self.store = store
        self.registry = registry
        self.sleep = sleep
        self.today = today
        self.on_progress = on_progress
        settings = config.document.settings
        self.concurrency = settings.concurrency
        self.backoff = Backoff(attempts=settings.hook_retries + 1, base=1.0, cap=30.0)

    # -- shared ---------------------------------------------------------------------

    def _tasks(self) -> list[Task]:
        return tasks(self.config, desired_tenants(self.config, self.today), self.store.tenants())

    def _contexts(self, run_id: int) -> dict[str, HookContext]:
        return {
            pid: HookContext(
                backend=self.store, platform_id=pid, run_id=run_id, cache=RunCache(), sleep=self.sleep
            )
            for pid in self.config.platforms
        }

    def _call(self, hook: str, tenant: TenantSpec, ctx: HookContext) -> Any:
        platform = self.config.platforms[tenant.platform_id]
        mark = len(ctx.failed_steps)

        def attempt() -> Any:
            # Steps that failed in an attempt that is then retried stay in the history,
            # but only the last attempt decides the tenant's outcome.
            del ctx.failed_steps[mark:]
            return self.registry.call(hook, platform, tenant=tenant, ctx=ctx)

        return call_with_retries(
            attempt,
            retry_on=lambda exc: isinstance(exc, RetryableError),
            backoff=self.backoff,
            sleep=self.sleep,
        )

    def _can(self, tenant: TenantSpec, capability: Capability) -> bool:
        return self.registry.has_capability(self.config.platforms[tenant.platform_id].type, capability)

    # -- plan -----------------------------------------------------------------------

    def plan(self) -> Report:
        """What ``apply`` would do, per tenant, including drift the plugins see. No writes."""
        run = self.store.start_run("plan", runner_id())
        report = Report(run.id)
        contexts = self._contexts(run.id)
        work = self._tasks()

        def one(task: Task) -> PlanItem:
            item = PlanItem(task.key, task.action.value, note=task.note)
            if task.tenant is None:
                return item
            ctx = contexts[task.tenant.platform_id].for_tenant(task.key)
            lifecycle = {
                Action.MARK_FOR_DELETION: Change(
                    action=ChangeAction.UPDATE,
                    resource="tenant",
                    detail="mark for deletion and revoke all access",
                    before="ACTIVE",
                    after="MARKED_FOR_DELETION",
                ),
                Action.RESTORE: Change(
                    action=ChangeAction.UPDATE,
                    resource="tenant",
                    detail="cancel the pending deletion",
                    before="MARKED_FOR_DELETION",
                    after="ACTIVE",
                ),
                Action.DEPROVISION: Change(
                    action=ChangeAction.DELETE,
                    resource="tenant",
                    detail="deletion approved"
                    if task.row and task.row.approved_at
                    else "deletion auto-approved by the landing zone",
                ),
            }.get(task.action)
            if lifecycle is not None:
                item.changes.append(lifecycle)
            if task.action == Action.AWAIT_APPROVAL:
                return item
            try:
                item.changes.extend(self._call("meshplatform_plan_tenant", task.tenant, ctx))
            except MeshcoreError as exc:
                item.error = redact(str(exc))
            return item

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            report.plan = list(pool.map(one, work))
        self.store.finish_run(run.id, "ok", {"tenants": len(work)})
        return report

    # -- apply ----------------------------------------------------------------------

    @contextmanager
    def lease(self, wait: float = 0.0):
        """Hold the state store's apply lease (renewed in the background) for the block."""
        holder = runner_id()
        deadline = time.monotonic() + wait
        while True:
            try:
                self.store.acquire_lease(LEASE_NAME, holder, LEASE_TTL)
                break
            except MeshcoreError:
                current = self.store.lease_holder(LEASE_NAME)
                # A runner on this host that was killed holds a void lease: take it over.
                if (
                    current
                    and _holder_is_dead(current[0])
                    and self.store.take_over_lease(LEASE_NAME, current[0], holder, LEASE_TTL)
                ):
                    self.store.audit("lease.taken_over", LEASE_NAME, {"from": current[0]})
                    break
                if time.monotonic() >= deadline:
                    raise
                self.sleep(min(2.0, max(0.05, deadline - time.monotonic())))
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(LEASE_TTL / 3):
                try:
                    self.store.acquire_lease(LEASE_NAME, holder, LEASE_TTL)
                except MeshcoreError:
                    return

        t = threading.Thread(target=renew, daemon=True, name="meshcore-lease")
        t.start()
        try:
            yield holder
        finally:
            stop.set()
            self.store.release_lease(LEASE_NAME, holder)

    def apply(self, *, wait: float = 0.0) -> Report:
        """Carry out every task; returns per-tenant results. Holds the apply lease."""
        with self.lease(wait):
            run = self.store.start_run("apply", runner_id())
            report = Report(run.id)
            contexts = self._contexts(run.id)
            work = self._tasks()

            def one(task: Task) -> TenantResult:
                result = self._apply_one(task, contexts)
                if self.on_progress is not None:
                    self.on_progress(result)
                return result

            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                report.results = list(pool.map(one, work))
            status = "failed" if report.failed else "ok"
            self.store.finish_run(run.id, status, report.counts())
            return report

    def _apply_one(self, task: Task, contexts: dict[str, HookContext]) -> TenantResult:
        result = TenantResult(task.key, task.action.value)
        if task.tenant is None:
            result.status, result.message = "skipped", task.note
            return result
        ctx = contexts[task.tenant.platform_id].for_tenant(task.key)
        try:
            handler = {
                Action.PROVISION: self._provision,
                Action.UPDATE: self._update,
                Action.RESTORE: self._restore,
                Action.MARK_FOR_DELETION: self._mark,
                Action.AWAIT_APPROVAL: self._await,
                Action.DEPROVISION: self._deprovision,
            }[task.action]
            handler(task, ctx, result)
            if ctx.failed_steps and result.status != "failed":
                result.status = "failed"
                result.message = result.message or f"failed steps: {', '.join(ctx.failed_steps)}"
        except MeshcoreError as exc:
            result.status, result.message = "failed", redact(str(exc))
        except Exception as exc:  # a core bug must not stop the other tenants either
            result.status, result.message = "failed", redact(f"internal error: {type(exc).__name__}: {exc}")
        if task.row is not None or result.status == "failed":
            row = task.row or self.store.find_tenant(
                task.tenant.workspace.id, task.tenant.project.id, task.tenant.platform_id
            )
            if row is not None:
                self.store.update_tenant(
                    row.id, last_error=result.message if result.status == "failed" else ""
                )
        return result

    @contextmanager
    def _step(self, ctx: HookContext, name: str):
        with ctx.step(name) as handle:
            yield handle

    def _provision(self, task: Task, ctx: HookContext, result: TenantResult) -> None:
        tenant = task.tenant
        assert tenant is not None
        row = task.row
        if row is None:
            row = self.store.create_tenant(
                tenant.workspace.id, tenant.project.id, tenant.platform_id, tenant.landing_zone.id
            )
            self.store.audit("tenant.created", tenant.key, {"landing_zone": tenant.landing_zone.id})
        with self._step(ctx, "provision") as step:
            outcome = self._call("meshplatform_provision_tenant", tenant, ctx)
            if outcome.status == ProvisionStatus.IN_PROGRESS:
                step.note(outcome.message or "in progress")
                self.store.update_tenant(
                    row.id, provisioning="in_progress", attributes={**row.attributes, **outcome.attributes}
                )
                result.status, result.message = "in_progress", outcome.message or "provisioning in progress"
                return
            if not outcome.platform_tenant_id:
                raise MeshcoreError("the plugin reported the tenant ready without a platform tenant id")
            step.changed(
                f"provisioned {outcome.platform_tenant_id}"
                + (f": {outcome.message}" if outcome.message else "")
            )
            self.store.update_tenant(
                row.id,
                platform_tenant_id=outcome.platform_tenant_id,
                provisioning="ready",
                attributes=dict(outcome.attributes),
                spec_hash=spec_hash(tenant),
                landing_zone=tenant.landing_zone.id,
            )
            action = "tenant.imported" if tenant.import_id else "tenant.provisioned"
            self.store.audit(action, tenant.key, {"platform_tenant_id": outcome.platform_tenant_id})
        result.platform_tenant_id = outcome.platform_tenant_id
        result.status = "changed"
        live = tenant.model_copy(
            update={"platform_tenant_id": outcome.platform_tenant_id, "attributes": dict(outcome.attributes)}
        )
        self._converge_rest(live, ctx, result)

    def _update(self, task: Task, ctx: HookContext, result: TenantResult) -> None:
        tenant = task.tenant
        assert tenant is not None and task.row is not None
        result.platform_tenant_id = tenant.platform_tenant_id
        with self._step(ctx, "update") as step:
            outcome = self._call("meshplatform_update_tenant", tenant, ctx)
            if outcome.changed:
                step.changed(outcome.message)
                result.status = "changed"
            else:
                step.note(outcome.message)
        fields: dict[str, Any] = {}
        if outcome.attributes and outcome.attributes != task.row.attributes:
            fields["attributes"] = dict(outcome.attributes)
        new_hash = spec_hash(tenant)
        if new_hash != task.row.spec_hash:
            fields["spec_hash"] = new_hash
        if task.row.landing_zone != tenant.landing_zone.id:
            fields["landing_zone"] = tenant.landing_zone.id
            self.store.audit(
                "tenant.landing_zone_changed",
                tenant.key,
                {"from": task.row.landing_zone, "to": tenant.landing_zone.id},
            )
        if fields:
            self.store.update_tenant(task.row.id, **fields)
        self._converge_rest(tenant, ctx, result)

    def _converge_rest(self, tenant: TenantSpec, ctx: HookContext, result: TenantResult) -> None:
        """Landing zone then access, each its own step; a failure in one still runs the other."""
        for capability, hook, name in (
            (Capability.LANDING_ZONES, "meshplatform_apply_landing_zone", "landing-zone"),
            (Capability.ACCESS, "meshplatform_replicate_access", "access"),
        ):
            if not self._can(tenant, capability):
                continue
            try:
                with self._step(ctx, name) as step:
                    outcome = self._call(hook, tenant, ctx)
                    if outcome.changed:
                        step.changed(outcome.message)
                        if result.status == "ok":
                            result.status = "changed"
                    else:
                        step.note(outcome.message)
            except MeshcoreError as exc:
                result.status = "failed"
                result.message = result.message or redact(str(exc))

    def _restore(self, task: Task, ctx: HookContext, result: TenantResult) -> None:
        assert task.row is not None
        self.store.update_tenant(task.row.id, status=TenantStatus.ACTIVE.value, marked_at=None)
        self.store.audit("tenant.deletion_cancelled", task.key, {})
        with self._step(ctx, "restore") as step:
            step.changed("deletion cancelled: the tenant is back in the config")
        result.status = "changed"
        self._update(task, ctx, result)

    def _revoke(self, tenant: TenantSpec, ctx: HookContext) -> None:
        if self._can(tenant, Capability.ACCESS):
            with self._step(ctx, "revoke-access") as step:
                outcome = self._call("meshplatform_replicate_access", tenant, ctx)
                if outcome.changed:
                    step.changed(outcome.message or "access revoked")

    def _mark(self, task: Task, ctx: HookContext, result: TenantResult) -> None:
        assert task.row is not None and task.tenant is not None
        now = utcnow()
        self.store.update_tenant(task.row.id, status=TenantStatus.MARKED_FOR_DELETION.value, marked_at=now)
        self.store.audit("tenant.marked_for_deletion", task.key, {})
        with self._step(ctx, "mark-for-deletion") as step:
            step.changed("removed from config")
        result.status = "changed"
        self._revoke(task.tenant, ctx)
        if task.tenant.landing_zone.auto_approve_deletion:
            self.store.update_tenant(task.row.id, approved_at=now)
            self.store.audit("tenant.deletion_approved", task.key, {"by": "landing zone auto-approval"})
            self._deprovision(task, ctx, result)
        else:
            result.status, result.message = "waiting", f"awaiting approval: meshcore approve {task.key}"

    def _await(self, task: Task, ctx: HookContext, result: TenantResult) -> None:
        with self._step(ctx, "await-approval") as step:
            step.skip(task.note)
        result.status, result.message = "waiting", task.note

    def _deprovision(self, task: Task, ctx: HookContext, result: TenantResult) -> None:
        tenant, row = task.tenant, task.row
        assert tenant is not None and row is not None
        if row.approved_at is None:
            self.store.update_tenant(row.id, approved_at=utcnow())
        with self._step(ctx, "deprovision") as step:
            outcome = self._call("meshplatform_deprovision_tenant", tenant, ctx)
            if outcome.status == DeprovisionStatus.DELETED:
                step.changed(outcome.message or "deleted")
            elif outcome.status == DeprovisionStatus.BLOCKED:
                step.skip(outcome.message)
            else:
                step.note(outcome.message or "in progress")
        if outcome.status == DeprovisionStatus.DELETED:
            self.store.update_tenant(row.id, status=TenantStatus.DELETED.value, deleted_at=utcnow())
            self.store.audit("tenant.deleted", task.key, {"platform_tenant_id": row.platform_tenant_id})
            if self._can(tenant, Capability.ACCESS):
                gone = tenant.model_copy(update={"status": TenantStatus.DELETED, "bindings": ()})
                with self._step(ctx, "cleanup-access") as step:
                    out = self._call("meshplatform_replicate_access", gone, ctx)
                    if out.changed:
                        step.changed(out.message)
            result.status, result.message = "changed", outcome.message or "deleted"
        elif outcome.status == DeprovisionStatus.BLOCKED:
            result.status, result.message = "waiting", outcome.message
        else:
            result.status, result.message = "in_progress", outcome.message or "deletion in progress"


def approve_deletion(store: StateStore, key: str) -> str:
    """Approve the deletion of a tenant marked for deletion; the next ``apply`` deprovisions it."""
    for row in store.tenants():
        if row.key == key:
            if row.status != TenantStatus.MARKED_FOR_DELETION:
                raise MeshcoreError(f"tenant {key} is {row.status}, not marked for deletion")
            if row.approved_at is not None:
                return f"deletion of {key} was already approved"
            store.update_tenant(row.id, approved_at=utcnow())
            store.audit("tenant.deletion_approved", key, {})
            return f"deletion of {key} approved; the next 'meshcore apply' deletes it"
    raise MeshcoreError(f"no tenant {key!r} in the state store (see 'meshcore status')")
