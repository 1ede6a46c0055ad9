"""Plan and apply: observe through plugins, then run exactly the observed actions in the core's order.

Both commands observe the same way, so ``plan`` shows exactly what ``apply``
would run:

1. refusals before anything else (:mod:`meshcore.guards`): too many deletions,
   a vanished landing zone, a renamed platform;
2. per platform, the shared resources (``meshplatform_platform_actions``);
3. per tenant, in parallel (``settings.concurrency``): the tenant, landing-zone
   and access hooks, merged into one observation. Removed tenants start first and
   tenants still to create last (:func:`meshcore.lifecycle.start_order`).

``apply`` then runs the platform's actions, then each tenant's, by the rules of
:mod:`meshcore.execution`, recording every action as a step the moment it ends.
Tenants are independent: a failure in one never stops the others. A tenant
whose deletion is approved is ``DELETED`` only once observing it again finds
nothing left to do.

With ``settings.runners: shared`` several runners apply one state at once (see
:mod:`meshcore.leases`): there is no apply lease; each platform's shared work runs
under a platform lease and each tenant under a lease of its own, and every state
write for it is fenced by that lease's token. A tenant another runner holds, or
already did in this round, is reported ``elsewhere``; one whose lease was lost
mid-way is reported ``fenced``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from meshcore import drift, guards, logs
from meshcore.actions import (
    ACTIVE_PHASES,
    DELETION_PHASES,
    MARKED_PHASES,
    Action,
    ActionResult,
    Observation,
    Phase,
    merge,
)
from meshcore.config import LoadedConfig
from meshcore.context import HookContext, RunCache, StateBackend
from meshcore.desired import desired_tenants
from meshcore.errors import FencedError, LockHeldError, MeshcoreError, PluginError, RefusedError, StoppedError
from meshcore.execution import STOPPING, Confirmed, Outcome, execute, predict, step_name
from meshcore.leases import Fence, Sharing, working_under
from meshcore.lifecycle import Lifecycle, Task, start_order, tasks
from meshcore.models import TenantStatus
from meshcore.plugins import PluginRegistry
from meshcore.redaction import redact
from meshcore.report import ActionView, Item, Report
from meshcore.results import Capability
from meshcore.snapshot import SnapshotBackend
from meshcore.specs import PlatformSpec, TenantSpec
from meshcore.state import StateStore
from meshcore.state.tables import TenantRow, utcnow

log = logging.getLogger(__name__)

#: The status of a tenant (or platform) an ``apply`` asked to stop did not start.
NOT_RUN = "not_run"
#: Shared runners: the status of a tenant (or platform) another runner holds, or already did in this round.
ELSEWHERE = "elsewhere"
#: Shared runners: the status of a tenant whose lease was lost mid-way (nothing more recorded for it).
FENCED = "fenced"
#: Shared runners: seconds between two attempts to take a platform lease another runner holds.
PLATFORM_LEASE_POLL = 0.2
LEASE_NAME = "apply"
LEASE_TTL = 600.0
#: (capability, hook) of the hooks that observe one tenant, in the order they are asked.
TENANT_HOOKS: tuple[tuple[Capability, str], ...] = (
    (Capability.TENANTS, "meshplatform_tenant_actions"),
    (Capability.LANDING_ZONES, "meshplatform_landing_zone_actions"),
    (Capability.ACCESS, "meshplatform_access_actions"),
)


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


#: Apply leases this process holds right now (a lease of this process not among them was left behind).
_HELD: set[str] = set()
_HELD_LOCK = threading.Lock()


def _holder_is_dead(holder: str) -> bool:
    """True when ``holder`` names a process on this host that no longer exists, or this process when
    it no longer holds it (its release failed, e.g. the database was unreachable at that moment)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        with _HELD_LOCK:
            return holder not in _HELD
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def phases_for(tenant: TenantSpec) -> tuple[Phase, ...]:
    """The phases the core runs for a tenant in its lifecycle state."""
    if tenant.status == TenantStatus.ACTIVE:
        return ACTIVE_PHASES
    return DELETION_PHASES if tenant.deletion_approved else MARKED_PHASES


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
        on_progress: Callable[[Item], None] | None = None,
        stop: threading.Event | None = None,
    ):
        """``stop``, once set, ends ``apply`` early: the actions running finish, nothing else starts."""
        self.config = config
        self.store = store
        self.registry = registry
        self.sleep = sleep
        self.today = today
        self.on_progress = on_progress
        self.stop = stop
        # set when the apply lease could not be renewed (it expired, or another runner has it): no tenant starts
        self._lease_lost = threading.Event()
        self.concurrency = config.document.settings.concurrency
        self._identities: dict[str, str] = {}  # platform id -> identity, for this run
        self._run_started = utcnow()  # the start of the current apply

    # -- shared ---------------------------------------------------------------------

    def _tasks(self) -> tuple[list[Task], list[TenantRow]]:
        recorded = self.store.tenants()
        return tasks(self.config, desired_tenants(self.config, self.today), recorded), recorded

    def _contexts(
        self, run_id: int, sharing: Sharing | None = None, *, leased: bool = False
    ) -> dict[str, HookContext]:
        """Each platform's context for a run. Under the apply lease (``leased``), each platform's
        journal and resources are read once, not per tenant (:mod:`meshcore.snapshot`); shared
        runners and plans (which hold no lease) read the store each time."""

        def backend(pid: str) -> StateBackend:
            if not leased:
                return self.store
            return SnapshotBackend(self.store, pid, lambda p: self.store.journal_entries(p, status="open"))

        return {
            pid: HookContext(
                backend=backend(pid),
                platform_id=pid,
                run_id=run_id,
                cache=RunCache(),
                sleep=self.sleep,
                sharing=sharing,
                stop=self.stop,
            )
            for pid in self.config.platforms
        }

    def _can(self, platform: PlatformSpec, capability: Capability) -> bool:
        return self.registry.has_capability(platform.type, capability)

    def _refusals(self, work: list[Task], recorded: list[TenantRow], allow_deletions: int) -> None:
        guards.check_landing_zones(self.config, recorded)
        guards.check_deletions(self.config, work, recorded, allow_deletions)

    def _identity(self, platform: PlatformSpec, ctx: HookContext, record: bool) -> None:
        """Check (and on apply record) which cloud the platform points at; raises RefusedError."""
        implemented = self.registry.implements(platform.type, "meshplatform_identity")
        identity = self.registry.call("meshplatform_identity", platform, ctx=ctx) if implemented else None
        guards.check_identity(self.store, platform.id, platform.type, identity)
        if identity:
            guards.check_distinct(platform.id, identity, self._identities)
            self._identities[platform.id] = identity
        if record:
            self.store.record_platform(platform.id, platform.type, identity or "")

    def _observe_platform(self, platform: PlatformSpec, ctx: HookContext) -> Observation:
        if not self._can(platform, Capability.SHARED_RESOURCES):
            return Observation()
        lzs = [lz for lz in self.config.landing_zones.values() if lz.platform == platform.id]
        obs: Observation = self.registry.call(
            "meshplatform_platform_actions", platform, landing_zones=lzs, ctx=ctx
        )
        return obs

    def _observe_tenant(self, tenant: TenantSpec, ctx: HookContext) -> Observed:
        """Ask the tenant, landing-zone and access hooks, each on its own.

        The latter two see the tenant the first one found. A hook that fails does not
        keep the others from being asked: whatever else fails, the access hook's
        revocations are still known (and run, see :meth:`_converge`).
        """
        platform = self.config.platforms[tenant.platform_id]
        found: list[Observation] = []
        errors: dict[str, str] = {}
        live = tenant
        for capability, hook in TENANT_HOOKS:
            if not self._can(platform, capability):
                continue
            try:
                obs: Observation = self.registry.call(hook, platform, tenant=live, ctx=ctx)
                if hook == "meshplatform_tenant_actions":
                    seen = obs.platform_tenant_id
                    if seen and tenant.platform_tenant_id not in (None, seen):
                        raise PluginError(
                            platform.type,
                            f"observed tenant {seen} for {tenant.key}, which is bound to {tenant.platform_tenant_id}",
                        )
                    if seen and tenant.platform_tenant_id is None:
                        live = tenant.model_copy(update={"platform_tenant_id": seen})
            except MeshcoreError as exc:
                errors[hook] = redact(str(exc))
                continue
            found.append(obs)
        return Observed(merge(found), errors)

    # -- plan -----------------------------------------------------------------------

    def plan(self, *, allow_deletions: int = 0) -> Report:
        """What ``apply`` would run, per platform and per tenant, drift included. No cloud writes."""
        run = self.store.start_run("plan", runner_id())
        report = Report(run.id, "plan")
        work, recorded = self._tasks()
        try:
            self._refusals(work, recorded, allow_deletions)
        except MeshcoreError as exc:
            self.store.finish_run(run.id, "refused", {"refused": str(exc)})
            raise
        contexts = self._contexts(run.id)
        confirmed: dict[str, Confirmed] = {}
        broken: dict[str, str] = {}
        self._identities = {}
        for pid, platform in self.config.platforms.items():
            item = Item(f"platform:{pid}", scope="platform", lifecycle="shared")
            try:
                self._identity(platform, contexts[pid], record=False)
                obs = self._observe_platform(platform, contexts[pid])
                keys = confirmed[pid] = _confirmed_by(obs)
                item.actions = predict(obs.actions, phases=ACTIVE_PHASES, confirmed=keys, gated=False)
                for view in item.actions:  # planned shared actions confirm their keys for the tenants' plans
                    if view.status == "planned":
                        keys.add(view.key)
                item.status = "changes" if item.actions else "converged"
                item.events = [
                    f"cannot be put in place: {k}: {why}" for k, why in sorted(obs.problems.items())
                ]
            except MeshcoreError as exc:
                if isinstance(exc, RefusedError):
                    self.store.finish_run(run.id, "refused", {"refused": str(exc)})
                    raise
                broken[pid] = redact(str(exc))
                item.status, item.message = "error", broken[pid]
            if item.actions or item.message or item.events:
                report.items.append(item)

        def one(task: Task) -> Item:
            with logs.scope(run_id=run.id, tenant=task.key):
                return plan_one(task)

        def plan_one(task: Task) -> Item:
            item = Item(task.key, lifecycle=task.lifecycle.value, note=task.note)
            if task.tenant is None:
                item.status = "skipped"
                return item
            tenant = self._lifecycle_spec(task)
            ctx = contexts[tenant.platform_id].for_tenant(task.key, tenant.platform_tenant_id)
            observed = self._observe_tenant(tenant, ctx)
            obs = observed.obs
            reason = _degraded(broken.get(tenant.platform_id, ""), tenant.platform_id, observed)
            keys = Confirmed(confirmed.get(tenant.platform_id))
            keys.keys |= obs.in_place
            keys.problems.update(obs.problems)
            actions, phases = _runnable(obs.actions, phases_for(tenant), reason)
            item.actions = predict(actions, phases=phases, confirmed=keys)
            item.platform_tenant_id = tenant.platform_tenant_id or obs.platform_tenant_id
            item.events = _lifecycle_events(task)
            item.status = "changes" if item.actions or item.events else "converged"
            if reason:
                item.status, item.message = "error", reason
            return item

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            report.items.extend(pool.map(one, work))
        report.summary = {
            "tenants": len(report.tenants),
            "actions": report.pending_changes(),
            "blocked": sum(1 for i in report.items for a in i.actions if a.status in ("blocked", "refused")),
            "errors": len(report.failed),
        }
        self.store.finish_run(run.id, "ok" if not report.failed else "failed", report.summary)
        return report

    def _lifecycle_spec(self, task: Task) -> TenantSpec:
        """The spec as the tenant will be once this run's lifecycle step is taken."""
        assert task.tenant is not None
        if task.lifecycle == Lifecycle.MARK_FOR_DELETION:
            return task.tenant.model_copy(
                update={"deletion_approved": task.tenant.landing_zone.auto_approve_deletion}
            )
        return task.tenant

    # -- apply ----------------------------------------------------------------------

    @contextmanager
    def lease(self, wait: float = 0.0) -> Iterator[str]:
        """Hold the state store's apply lease (renewed in the background) for the block."""
        holder = runner_id()
        deadline = time.monotonic() + wait
        with _HELD_LOCK:  # before it is taken: no other thread of this process may think it left behind
            _HELD.add(holder)
        try:
            self._take_lease(holder, deadline)
            self._lease_lost.clear()
        except BaseException:
            with _HELD_LOCK:
                _HELD.discard(holder)
            raise
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(LEASE_TTL / 3):
                try:
                    held = self.store.renew_lease(LEASE_NAME, holder, LEASE_TTL)
                except MeshcoreError as exc:  # the store unreachable for a moment: try again
                    log.warning("could not renew the apply lease (trying again): %s", exc)
                    continue
                if not held:
                    log.error(
                        "the apply lease expired or another runner took it over: no further tenant is started"
                    )
                    self._lease_lost.set()
                    return

        t = threading.Thread(target=renew, daemon=True, name="meshcore-lease")
        t.start()
        try:
            yield holder
        finally:
            stop.set()
            with _HELD_LOCK:
                _HELD.discard(holder)
            try:
                self.store.release_lease(LEASE_NAME, holder)
            except MeshcoreError as exc:  # this process takes it back at once; others when it expires
                log.warning("could not release the apply lease: %s", exc)

    def _take_lease(self, holder: str, deadline: float) -> None:
        """Take the apply lease for ``holder``, taking over a void one; wait until ``deadline``."""
        while True:
            try:
                self.store.acquire_lease(LEASE_NAME, holder, LEASE_TTL)
                return
            except MeshcoreError:
                current = self.store.lease_holder(LEASE_NAME)
                # A runner on this host that was killed holds a void lease: take it over.
                if (
                    current
                    and _holder_is_dead(current[0])
                    and self.store.take_over_lease(LEASE_NAME, current[0], holder, LEASE_TTL)
                ):
                    self.store.audit("lease.taken_over", LEASE_NAME, {"from": current[0]})
                    return
                if time.monotonic() >= deadline:
                    raise
                self._pause(min(2.0, max(0.05, deadline - time.monotonic())))

    def _pause(self, seconds: float) -> None:
        """Wait while another runner holds the state, unless asked to stop (then nothing has started)."""
        if self._stopping():
            raise StoppedError("stopped while waiting for another runner: nothing was done")
        if self.stop is not None and self.sleep is time.sleep:
            if self.stop.wait(seconds):
                raise StoppedError("stopped while waiting for another runner: nothing was done")
            return
        self.sleep(seconds)

    def apply(self, *, wait: float = 0.0, allow_deletions: int = 0) -> Report:
        """Run every platform's and tenant's actions; refusals raise before any change.

        One runner at a time under the apply lease, or, with ``settings.runners:
        shared``, alongside other runners under a lease per tenant and platform.
        """
        with self._runners(wait) as sharing:
            started = utcnow()  # shared: a tenant another runner finishes after this is its, for this round
            work, recorded = self._tasks()
            self._refusals(work, recorded, allow_deletions)
            run = self.store.start_run("apply", sharing.holder if sharing else runner_id())
            report = Report(run.id, "apply")
            contexts = self._contexts(run.id, sharing, leased=sharing is None)
            confirmed: dict[str, Confirmed] = {}
            broken: dict[str, str] = {}
            self._identities = {}
            for pid, platform in self.config.platforms.items():
                try:
                    self._identity(platform, contexts[pid], record=True)
                except RefusedError as exc:
                    self.store.finish_run(run.id, "refused", {"refused": str(exc)})
                    raise
                except MeshcoreError as exc:
                    broken[pid] = redact(str(exc))
            for pid, platform in self.config.platforms.items():
                if pid in broken:
                    report.items.append(Item(f"platform:{pid}", "platform", "shared", "failed", broken[pid]))
                    continue
                if self._stopping():
                    report.items.append(Item(f"platform:{pid}", "platform", "shared", NOT_RUN, STOPPING))
                    continue
                with logs.scope(run_id=run.id, tenant=f"platform:{pid}"):
                    if sharing is None:
                        item, keys = self._apply_platform(platform, contexts[pid])
                    else:
                        item, keys = self._apply_platform_leased(platform, contexts[pid], sharing)
                confirmed[pid] = keys
                if item.status == "failed" and not item.actions:
                    broken[pid] = item.message
                if (
                    item.actions
                    or item.status in ("failed", FENCED)
                    or (item.status == ELSEWHERE and item.message)
                ):
                    report.items.append(item)

            self._run_started = started
            feeds = self._feeds(contexts, broken, started)

            def one(task: Task) -> Item:
                if self._stopping():  # never started: nothing of it is applied, nothing failed
                    return Item(task.key, lifecycle=task.lifecycle.value, status=NOT_RUN, message=STOPPING)
                unread = (
                    drift.unread(
                        task,
                        feeds.get(task.tenant.platform_id),
                        self.config.platforms[task.tenant.platform_id],
                    )
                    if task.tenant
                    else None
                )
                if unread is not None:  # incremental drift check: nothing says this tenant changed
                    item = Item(task.key, lifecycle=task.lifecycle.value, status="ok", message=unread)
                    item.platform_tenant_id = task.tenant.platform_tenant_id if task.tenant else None
                    if self.on_progress is not None:
                        self.on_progress(item)
                    return item
                with logs.scope(run_id=run.id, tenant=task.key):
                    if sharing is None or task.tenant is None:
                        item = self._apply_one(task, contexts, confirmed, broken)
                    else:
                        item = self._apply_leased(task, contexts, confirmed, broken, sharing, started)
                    if item.status == "failed":
                        log.warning("%s failed: %s", task.lifecycle.value, item.message)
                    elif item.status != "skipped":
                        log.info("%s: %s", task.lifecycle.value, item.status)
                if self.on_progress is not None:
                    self.on_progress(item)
                return item

            with logs.scope(run_id=run.id):
                log.info("apply: %d tenant(s), concurrency %d", len(work), self.concurrency)
            # Removed tenants start first, tenants to create last (see start_order); shared runners
            # start at different tenants (fewer lease races). The report keeps the config's order.
            order = start_order(work if sharing is None else random.sample(work, len(work)))
            try:
                with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                    done = {item.key: item for item in pool.map(one, order)}
            finally:  # a run ended by an error keeps the steps it took
                with suppress(MeshcoreError):
                    self.store.flush_steps(every_thread=True)
            report.items.extend(done[task.key] for task in work)
            self._record_feeds(feeds, broken, started)
            report.summary = _summary(report)
            status = "failed" if report.failed else "stopped" if report.summary["not_run"] else "ok"
            self.store.finish_run(run.id, status, report.summary)
            with logs.scope(run_id=run.id):
                log.info("apply finished: %s", report.summary)
            return report

    @contextmanager
    def _runners(self, wait: float) -> Iterator[Sharing | None]:
        """Single mode: hold the apply lease (none while shared runners work); yields ``None``.
        Shared mode: yields this runner's :class:`Sharing` (none while a single-mode runner works)."""
        settings = self.config.document.settings
        if settings.runners == "shared":
            self._wait_for_single_runner(wait)
            sharing = Sharing(self.store, runner_id(), settings.lease_seconds)
            try:
                yield sharing
            finally:
                sharing.close()
            return
        with self.lease(wait):
            live = self.store.live_tenant_leases()
            if live:
                raise LockHeldError(
                    f"runners in shared mode ({live[0].holder}, ...) are applying this state: set "
                    "settings.runners: shared here too, or stop them"
                )
            yield None

    def _wait_for_single_runner(self, wait: float) -> None:
        """Shared mode: refuse (after waiting up to ``wait`` s) while a single-mode runner holds the apply lease."""
        deadline = time.monotonic() + wait
        while (held := self.store.lease_holder(LEASE_NAME)) and held[1] > utcnow():
            if _holder_is_dead(held[0]):
                return
            if time.monotonic() >= deadline:
                raise LockHeldError(
                    f"a runner in single mode ({held[0]}) is applying this state until "
                    f"{held[1].isoformat(timespec='seconds')}; wait for it to finish or retry with --wait"
                )
            self._pause(min(2.0, max(0.05, deadline - time.monotonic())))

    def _stopping(self) -> bool:
        return (self.stop is not None and self.stop.is_set()) or self._lease_lost.is_set()

    def _feeds(
        self, contexts: dict[str, HookContext], broken: dict[str, str], started: dt.datetime
    ) -> dict[str, drift.Feed]:
        """Incremental drift checks: per platform, read in full or the tenants its change feed names."""
        settings = self.config.document.settings.drift_check
        if settings.mode != "incremental" or self._stopping():
            return {}  # stopping before the tenants: nothing skipped, the cursor left where it is
        feeds: dict[str, drift.Feed] = {}
        for pid, platform in self.config.platforms.items():
            row = self.store.platform_identity(pid)
            if pid in broken:
                continue  # its tenants are degraded anyway; the feed is not read, nothing is recorded
            if not self._can(platform, Capability.CHANGE_FEED):
                feeds[pid] = drift.full("the platform has no change feed")
            elif row is None or row.full_check_at is None or row.changes_read_to is None:
                feeds[pid] = drift.full("no full drift check recorded yet")
            elif started - row.full_check_at >= dt.timedelta(hours=settings.full_every_hours):
                feeds[pid] = drift.full(f"the last full drift check is {settings.full_every_hours:g} h old")
            else:
                try:
                    answer = self.registry.call(
                        "meshplatform_changed_tenants", platform, ctx=contexts[pid], since=row.changes_read_to
                    )
                    feeds[pid] = drift.from_answer(answer, started)
                except Exception as exc:  # the feed is an optimisation: without it, read everything
                    feeds[pid] = drift.feed_error(exc)
                feeds[pid].full_check_at = row.full_check_at
            log.info("platform %s: %s", pid, feeds[pid].describe())
        return feeds

    def _record_feeds(
        self, feeds: dict[str, drift.Feed], broken: dict[str, str], started: dt.datetime
    ) -> None:
        """Where each platform's change feed goes on next time; after a full read, when it began.

        A stopped run leaves an incremental feed where it was: the tenants it named but did not
        start are named again next time. (After a full read, a tenant not read keeps a verification
        older than the full check, so it is read next time anyway.)"""
        stopped = self._stopping()
        for pid, feed in feeds.items():
            if pid in broken or (stopped and not feed.full):
                continue
            if feed.full:
                self.store.record_drift_check(pid, changes_read_to=started, full_check_at=started)
            elif feed.until is not None:
                self.store.record_drift_check(pid, changes_read_to=feed.until)

    def _record(self, ctx: HookContext) -> Callable[[ActionView, Any, float], None]:
        """Records a step. A single runner's go into its thread's next state-store write (its caller
        flushes them before the tenant's turn ends); a shared runner's are written at once, under its lease."""

        def record(view: ActionView, started: Any, t0: float) -> None:
            self.store.record_step(
                ctx.run_id,
                ctx.tenant_key,
                ctx.platform_id,
                step_name(view),
                view.status,
                view.message or view.describe(),
                started,
                int((time.perf_counter() - t0) * 1000),
                fence=ctx.fence,
                deferred=ctx.fence is None,
            )

        return record

    def _apply_platform(self, platform: PlatformSpec, ctx: HookContext) -> tuple[Item, Confirmed]:
        item = Item(f"platform:{platform.id}", scope="platform", lifecycle="shared")
        try:
            obs = self._observe_platform(platform, ctx)
        except MeshcoreError as exc:
            item.status, item.message = "failed", redact(str(exc))
            return item, Confirmed()
        keys = _confirmed_by(obs)
        outcome = _run_independent(obs.actions, keys, platform.type, self._record(ctx), self.stop)
        self.store.flush_steps()
        item.actions = outcome.views
        item.events = [f"cannot be put in place: {k}: {why}" for k, why in sorted(obs.problems.items())]
        item.status = "failed" if outcome.failed else "changed" if outcome.changed else "ok"
        item.message = outcome.first_problem()
        return item, keys

    # -- shared runners -----------------------------------------------------------------

    def _apply_platform_leased(
        self, platform: PlatformSpec, ctx: HookContext, sharing: Sharing
    ) -> tuple[Item, Confirmed]:
        """The platform's shared actions under its lease; waits for another runner's (up to the lease time).

        If another runner still holds it then (or this one loses it), the platform is only
        observed: what is in place is confirmed; what it would put in place counts as in
        progress, so tenants that require it wait for a later run (never granted early).
        """
        deadline = time.monotonic() + sharing.ttl
        while True:
            with sharing.lease(f"platform:{platform.id}") as fence:
                if fence is not None:
                    try:
                        with working_under(fence):
                            return self._apply_platform(platform, ctx.for_tenant("", fence=fence))
                    except FencedError as exc:
                        return self._platform_elsewhere(platform, ctx, FENCED, redact(str(exc)))
            if time.monotonic() >= deadline or self._stopping():
                holder = self.store.tenant_lease(f"platform:{platform.id}")
                why = f"another runner ({holder.holder if holder else '?'}) holds the platform's lease"
                return self._platform_elsewhere(platform, ctx, ELSEWHERE, why)
            time.sleep(PLATFORM_LEASE_POLL)

    def _platform_elsewhere(
        self, platform: PlatformSpec, ctx: HookContext, status: str, why: str
    ) -> tuple[Item, Confirmed]:
        item = Item(f"platform:{platform.id}", scope="platform", lifecycle="shared", status=status)
        try:
            obs = self._observe_platform(platform, ctx)
        except MeshcoreError as exc:
            item.status, item.message = "failed", redact(str(exc))
            return item, Confirmed()
        keys = _confirmed_by(obs)
        for action in obs.actions:
            keys.pending[action.key] = f"{why}: observed, not changed by this runner"
        item.message = f"{why}: observed, not changed" if obs.actions else ""
        return item, keys

    def _apply_leased(
        self,
        task: Task,
        contexts: dict[str, HookContext],
        confirmed: dict[str, Confirmed],
        broken: dict[str, str],
        sharing: Sharing,
        started: dt.datetime,
    ) -> Item:
        """One tenant under its lease: skipped if another runner has it (or did it since ``started``)."""
        with sharing.lease(task.key, done_since=started) as fence:
            if fence is None:
                lease = self.store.tenant_lease(task.key)
                who = lease.holder if lease else "?"
                done = lease is not None and lease.released_at is not None
                why = (
                    f"applied by another runner ({who}) in this round"
                    if done
                    else f"another runner ({who}) is applying it"
                )
                return Item(task.key, lifecycle=task.lifecycle.value, status=ELSEWHERE, message=why)
            fresh = self._current(task)
            try:
                with working_under(fence):
                    return self._apply_one(fresh, contexts, confirmed, broken, fence)
            except FencedError as exc:
                log.warning("lease lost: %s", exc)
                return Item(
                    task.key, lifecycle=fresh.lifecycle.value, status=FENCED, message=redact(str(exc))
                )

    def _current(self, task: Task) -> Task:
        """``task`` as the state holds it now: another runner may have changed the tenant since the run began."""
        assert task.tenant is not None
        t = task.tenant
        row = self.store.find_tenant(t.workspace.id, t.project.id, t.platform_id)
        desired = [d for d in desired_tenants(self.config, self.today) if d.key == task.key]
        fresh = tasks(self.config, desired, [row] if row is not None else [])
        if not fresh:
            return Task(task.key, task.lifecycle, None, None, "nothing left to do: deleted by another runner")
        return fresh[0]

    # -- one tenant -------------------------------------------------------------------

    def _apply_one(
        self,
        task: Task,
        contexts: dict[str, HookContext],
        confirmed: dict[str, Confirmed],
        broken: dict[str, str],
        fence: Fence | None = None,
    ) -> Item:
        """One tenant's run; under a lease (``fence``) a lost lease raises :class:`FencedError`."""
        item = Item(task.key, lifecycle=task.lifecycle.value)
        if task.tenant is None:
            item.status, item.message = "skipped", task.note
            return item
        ctx = contexts[task.tenant.platform_id].for_tenant(
            task.key, task.tenant.platform_tenant_id, fence=fence
        )
        try:
            item = self._apply_one_recorded(task, ctx, item, confirmed, broken, fence)
        except BaseException:
            with suppress(MeshcoreError):
                self.store.flush_steps()
            raise
        self.store.flush_steps()  # its steps, before its turn ends (usually recorded already, by its writes)
        return item

    def _apply_one_recorded(
        self,
        task: Task,
        ctx: HookContext,
        item: Item,
        confirmed: dict[str, Confirmed],
        broken: dict[str, str],
        fence: Fence | None,
    ) -> Item:
        assert task.tenant is not None
        row: TenantRow | None = None
        try:
            row, tenant = self._enter_lifecycle(task, item, fence)
            platform_problem = broken.get(tenant.platform_id, "")
            self._converge(
                tenant, row, ctx, confirmed.get(tenant.platform_id) or Confirmed(), item, platform_problem
            )
        except FencedError:
            raise  # the lease is lost: nothing more is recorded for this tenant
        except MeshcoreError as exc:
            item.status, item.message = "failed", redact(str(exc))
        except Exception as exc:  # a core bug must not stop the other tenants either
            item.status, item.message = "failed", redact(f"internal error: {type(exc).__name__}: {exc}")
        if row is None:  # the lifecycle step failed: its row may exist or not
            row = self.store.find_tenant(
                task.tenant.workspace.id, task.tenant.project.id, task.tenant.platform_id
            )
        error = item.message if item.status == "failed" else ""
        fields: dict[str, Any] = {}
        if row is not None and (row.last_error or "") != error:  # nothing written for a tenant that stays ok
            fields["last_error"] = error
        if row is not None and self.config.document.settings.drift_check.mode == "incremental":
            found_nothing = item.status == "ok" and not item.actions and not item.events
            if found_nothing and task.lifecycle == Lifecycle.UPDATE:
                platform = self.config.platforms[task.tenant.platform_id]
                fields.update(drift.verified_fields(task.tenant, platform, self._run_started))
            elif row.verified_at is not None:
                fields["verified_at"] = None  # read again next run, whatever the change feed says
        if row is not None and fields:
            self.store.update_tenant(row.id, fence=fence, **fields)
        item.platform_tenant_id = item.platform_tenant_id or ctx.platform_tenant_id
        return item

    def _enter_lifecycle(self, task: Task, item: Item, fence: Fence | None) -> tuple[TenantRow, TenantSpec]:
        """Take the lifecycle step (create the row, mark, restore) and return the row and the spec to converge."""
        tenant = task.tenant
        assert tenant is not None
        row = task.row
        now = utcnow()
        if row is None:
            row = self.store.create_tenant(
                tenant.workspace.id,
                tenant.project.id,
                tenant.platform_id,
                tenant.landing_zone.id,
                fence=fence,
                audit=[("tenant.created", {"landing_zone": tenant.landing_zone.id})],
            )
        if task.lifecycle == Lifecycle.RESTORE:
            row = self.store.update_tenant(
                row.id,
                fence=fence,
                status=TenantStatus.ACTIVE.value,
                marked_at=None,
                approved_at=None,
                revoked_at=None,
                audit=[("tenant.deletion_cancelled", {})],
            )
            item.events.append("deletion cancelled: the tenant is back in the config")
        elif task.lifecycle == Lifecycle.MARK_FOR_DELETION:
            fields: dict[str, Any] = {"status": TenantStatus.MARKED_FOR_DELETION.value, "marked_at": now}
            if tenant.landing_zone.auto_approve_deletion:
                fields["approved_at"] = now
            entries: list[tuple[str, dict[str, Any]]] = [("tenant.marked_for_deletion", {})]
            if tenant.landing_zone.auto_approve_deletion:
                entries.append(("tenant.deletion_approved", {"by": "landing zone auto-approval"}))
            row = self.store.update_tenant(row.id, fence=fence, audit=entries, **fields)
            item.events.append("marked for deletion: removed from the config")
            if tenant.landing_zone.auto_approve_deletion:
                item.events.append("deletion auto-approved by the landing zone")
            tenant = self._lifecycle_spec(task)
        elif task.lifecycle == Lifecycle.DEPROVISION and row.approved_at is None:
            row = self.store.update_tenant(
                row.id,
                fence=fence,
                audit=[("tenant.deletion_approved", {"by": "landing zone auto-approval"})],
                approved_at=now,
            )
        if row.landing_zone != tenant.landing_zone.id and tenant.status == TenantStatus.ACTIVE:
            row = self.store.update_tenant(
                row.id,
                fence=fence,
                audit=[
                    (
                        "tenant.landing_zone_changed",
                        {"from": row.landing_zone, "to": tenant.landing_zone.id},
                    )
                ],
                landing_zone=tenant.landing_zone.id,
            )
        return row, tenant

    def _converge(
        self,
        tenant: TenantSpec,
        row: TenantRow,
        ctx: HookContext,
        platform_keys: Confirmed,
        item: Item,
        platform_problem: str = "",
    ) -> None:
        """Run the tenant's actions in phase order; with a failed observation, its revocations only."""
        platform = self.config.platforms[tenant.platform_id]
        observed = self._observe_tenant(tenant, ctx)
        obs = observed.obs
        reason = _degraded(platform_problem, tenant.platform_id, observed)
        keys = Confirmed(platform_keys)
        keys.keys |= obs.in_place
        keys.problems.update(obs.problems)
        bound: dict[str, Any] = {}

        def on_result(action: Action, result: ActionResult) -> None:
            new_id = result.platform_tenant_id
            if new_id and new_id != ctx.platform_tenant_id:
                if ctx.platform_tenant_id is not None:
                    raise PluginError(
                        platform.type,
                        f"action {action.key!r} returned {new_id}, but the tenant is bound to "
                        f"{ctx.platform_tenant_id}",
                    )
                fields: dict[str, Any] = {"platform_tenant_id": new_id, "provisioning": "ready"}
                if tenant.import_id:
                    fields["imported_at"] = utcnow()  # its earlier usage is not this project's
                how = "tenant.imported" if tenant.import_id else "tenant.bound"
                self.store.update_tenant(
                    row.id,
                    fence=ctx.fence,
                    audit=[(how, {"platform_tenant_id": new_id, "action": action.key})],
                    **fields,
                )
                ctx.platform_tenant_id = new_id
                bound["id"] = new_id

        actions, phases = _runnable(obs.actions, phases_for(tenant), reason)
        outcome = execute(
            actions,
            phases=phases,
            confirmed=keys,
            plugin=platform.type,
            record=self._record(ctx),
            on_result=on_result,
            stop=self.stop,
        )
        item.actions = outcome.views
        attributes = {**(row.attributes or {}), **obs.attributes, **outcome.attributes}
        fields: dict[str, Any] = {}
        if attributes != (row.attributes or {}):
            fields["attributes"] = attributes
        if ctx.platform_tenant_id is None:
            fields["provisioning"] = "in_progress" if outcome.in_progress else "pending"
        if fields:
            self.store.update_tenant(row.id, fence=ctx.fence, **fields)
        if bound:
            item.events.append(f"bound to {bound['id']}")
        self._settle(tenant, row, ctx, outcome, item, observed, reason)

    def _settle(
        self,
        tenant: TenantSpec,
        row: TenantRow,
        ctx: HookContext,
        outcome: Outcome,
        item: Item,
        observed: Observed,
        reason: str,
    ) -> None:
        """Record revocation and deletion, and the tenant's status for the report."""
        item.message = outcome.first_problem()
        if reason:
            item.status = "failed"
            item.message = reason + (f"; {item.message}" if item.message else "")
        elif outcome.failed:
            item.status = "failed"
        elif outcome.in_progress:
            item.status = "in_progress"
        elif outcome.changed or item.events:
            item.status = "changed"
        else:
            item.status = "ok"
        if tenant.status != TenantStatus.MARKED_FOR_DELETION:
            return
        revoked = (
            observed.access_known
            and outcome.phase_complete(Phase.REVOKE)
            and not any(v.status == "refused" for v in outcome.views)
        )
        if revoked and row.revoked_at is None:
            self.store.update_tenant(
                row.id, fence=ctx.fence, audit=[("tenant.access_revoked", {})], revoked_at=utcnow()
            )
            item.events.append("access revoked")
        if reason:
            return
        if not tenant.deletion_approved:
            if item.status in ("ok", "changed"):
                item.status = "waiting"
                item.message = f"awaiting approval: meshcore approve {tenant.key}"
            return
        if not outcome.complete:
            return
        again = self._observe_tenant(
            tenant.model_copy(update={"platform_tenant_id": ctx.platform_tenant_id}), ctx
        )
        if not again.complete:
            item.status, item.message = "failed", again.message()
            return
        if again.obs.actions:
            item.status = "in_progress"
            item.message = "deletion continues: " + "; ".join(a.describe() for a in again.obs.actions[:3])
            return
        self.store.update_tenant(
            row.id,
            fence=ctx.fence,
            audit=[("tenant.deleted", {"platform_tenant_id": ctx.platform_tenant_id})],
            status=TenantStatus.DELETED.value,
            deleted_at=utcnow(),
        )
        item.events.append("deleted")
        item.status = "changed"


@dataclass
class Observed:
    """What the tenant hooks said, and which of them failed (hook name -> message)."""

    obs: Observation
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.errors

    @property
    def access_known(self) -> bool:
        """Whether the access hook answered, i.e. the revocations are known."""
        return "meshplatform_access_actions" not in self.errors

    def message(self) -> str:
        return "; ".join(self.errors.values())


def _degraded(platform_problem: str, platform_id: str, observed: Observed) -> str:
    """Why only revocations may run for this tenant in this run ("" when everything was observed)."""
    parts = [f"platform {platform_id}: {platform_problem}"] if platform_problem else []
    if observed.errors:
        parts.append(observed.message())
    return "; ".join(parts)


def _runnable(
    actions: tuple[Action, ...], phases: tuple[Phase, ...], reason: str
) -> tuple[tuple[Action, ...], tuple[Phase, ...]]:
    """Everything in the tenant's phases; after a failed observation, only what revokes access.

    What the plugin could not observe may hide a missing guardrail or a wrong account, so
    nothing is created or granted; taking access away is always safe, and never waits.
    """
    if not reason:
        return actions, phases
    return tuple(a for a in actions if a.phase == Phase.REVOKE), (Phase.REVOKE,)


def _confirmed_by(obs: Observation) -> Confirmed:
    keys = Confirmed()
    keys.keys |= obs.in_place
    keys.problems.update(obs.problems)
    return keys


def _run_independent(
    actions: tuple[Action, ...],
    keys: Confirmed,
    plugin: str,
    record: Callable[[ActionView, Any, float], None],
    stop: threading.Event | None = None,
) -> Outcome:
    """Shared resources: phase order and ``requires``, but no gate between phases (they are independent)."""
    outcome = Outcome()
    for phase in ACTIVE_PHASES:
        batch = [a for a in actions if a.phase == phase]
        if batch:
            part = execute(batch, phases=(phase,), confirmed=keys, plugin=plugin, record=record, stop=stop)
            outcome.views.extend(part.views)
    others = [a for a in actions if a.phase not in ACTIVE_PHASES]
    if others:
        part = execute(others, phases=(), confirmed=keys, plugin=plugin, record=record, stop=stop)
        outcome.views.extend(part.views)
    return outcome


def _lifecycle_events(task: Task) -> list[str]:
    if task.lifecycle == Lifecycle.MARK_FOR_DELETION:
        assert task.tenant is not None
        return [
            "mark for deletion"
            + (" (auto-approved)" if task.tenant.landing_zone.auto_approve_deletion else "")
        ]
    if task.lifecycle == Lifecycle.RESTORE:
        return ["cancel the pending deletion"]
    if task.lifecycle == Lifecycle.AWAIT_APPROVAL:
        return [task.note]
    if task.lifecycle == Lifecycle.DEPROVISION:
        return ["delete (approved)"]
    return []


def _summary(report: Report) -> dict[str, int]:
    events = [e for i in report.tenants for e in i.events]
    return {
        "tenants": len(report.tenants),
        "bound": sum(1 for e in events if e.startswith("bound to")),
        "marked_for_deletion": sum(1 for e in events if e.startswith("marked for deletion")),
        "access_revoked": sum(1 for e in events if e == "access revoked"),
        "deleted": sum(1 for e in events if e == "deleted"),
        "changed": sum(1 for i in report.tenants if i.status == "changed"),
        "failed": len([i for i in report.items if i.status == "failed"]),
        "in_progress": sum(1 for i in report.tenants if i.status == "in_progress"),
        "waiting": sum(1 for i in report.tenants if i.status == "waiting"),
        "not_run": sum(1 for i in report.tenants if i.status == NOT_RUN),
        ELSEWHERE: sum(1 for i in report.tenants if i.status == ELSEWHERE),
        FENCED: sum(1 for i in report.tenants if i.status == FENCED),
    }


def approve_deletion(store: StateStore, key: str) -> str:
    """Approve the deletion of a tenant marked for deletion; the next ``apply`` deprovisions it."""
    for row in store.tenants():
        if row.key == key:
            if row.status != TenantStatus.MARKED_FOR_DELETION:
                raise MeshcoreError(f"tenant {key} is {row.status}, not marked for deletion")
            if row.approved_at is not None:
                return f"deletion of {key} was already approved"
            store.update_tenant(row.id, audit=[("tenant.deletion_approved", {})], approved_at=utcnow())
            return f"deletion of {key} approved; the next 'meshcore apply' deletes it"
    raise MeshcoreError(f"no tenant {key!r} in the state store (see 'meshcore status')")
