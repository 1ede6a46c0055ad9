"""The conformance kit every platform plugin subclasses: it checks behaviour, not shape.

Subclass :class:`PlatformPluginConformance` in a test module and provide these fixtures
(start whatever emulator your platform needs inside them):

``plugin``
    the plugin object your entry point loads;
``platform_type_name``
    the platform type, which must also be your entry-point name;
``platform_config`` / ``landing_zone_config``
    dicts valid for your config models. The landing zone is used with and without
    automatic deletion approval;
``cloud``
    a :class:`ConformanceCloud`: a small window onto your (emulated) cloud through which
    the kit observes what your plugin did and tampers with it the way people and other
    tools do.

Example::

    from meshcore.testing.conformance import PlatformPluginConformance

    class TestAcme(PlatformPluginConformance):
        @pytest.fixture
        def plugin(self):
            return meshcore_acme.plugin

        @pytest.fixture
        def cloud(self, acme_emulator):
            return AcmeWindow(acme_emulator)   # implements ConformanceCloud
        ...

The kit drives the plugin through the real core (``plan`` and ``apply`` on small configs)
and checks what users rely on; each check's docstring says which rule it holds the plugin
to (see ``docs/writing-plugins.md``, "Rules for plugin authors").
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pytest
import yaml

from meshcore import execution
from meshcore.actions import Phase
from meshcore.config import LoadedConfig, load_config
from meshcore.context import HookContext
from meshcore.plugins import CAPABILITY_HOOKS, PluginRegistry
from meshcore.reconciler import Reconciler, approve_deletion
from meshcore.report import Report
from meshcore.results import Capability
from meshcore.specs import Period
from meshcore.state import StateStore

HEAVY_MODULES = ("boto3", "botocore", "azure", "google.cloud", "kubernetes")
WORKSPACE = "conf"
PLATFORM = "conformance"


@runtime_checkable
class ConformanceCloud(Protocol):
    """What the kit needs to see and touch in your cloud (implement it over your emulator).

    Tenant ids are your platform tenant ids (what your actions return as ``platform_tenant_id``).
    """

    def writes(self) -> int:
        """How many write calls your plugin has made to the cloud so far."""
        ...

    def live_tenants(self) -> set[str]:
        """Ids of every tenant that exists and is not deleted, closed or archived (yours and others')."""
        ...

    def natural_name(self, workspace: str, project: str) -> str:
        """The name your plugin gives a new tenant of this project (its natural key)."""
        ...

    def make_foreign(self, name: str) -> str:
        """Create a tenant outside meshcore, as someone else would, with this name; its id."""
        ...

    def tags_of(self, tenant_id: str) -> dict[str, str]:
        """The tenant's replicated tags, in the config's terms (without any prefix your plugin adds)."""
        ...

    def set_tags(self, tenant_id: str, tags: dict[str, str]) -> None:
        """Change the tenant's replicated tags by hand (drift)."""
        ...

    def users_of(self, tenant_id: str) -> set[str]:
        """User ids (``users[].id``) that have any access to the tenant."""
        ...

    def grant(self, tenant_id: str, user: str) -> None:
        """Give a user access by hand, bypassing meshcore (drift)."""
        ...


class SeedsCosts(Protocol):
    """Optional: a cloud whose emulator has no costs of its own gets some for a tenant and period."""

    def seed_costs(self, tenant_id: str, start: dt.date, end: dt.date) -> None: ...


class Crash(BaseException):
    """The kit's simulated crash: the process dies right after an action's cloud write."""


@contextmanager
def crash_after_action(k: int) -> Iterator[list[str]]:
    """Kill the run right after the k-th action's ``run`` returned (before the core records it)."""
    original = execution._run_one
    seen: list[str] = []

    def run_one(action: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(action, *args, **kwargs)
        seen.append(action.key)
        if len(seen) == k:
            raise Crash(f"killed after action {k} ({action.key})")
        return result

    execution._run_one = run_one
    try:
        yield seen
    finally:
        execution._run_one = original


#: Context calls a plugin makes around its cloud writes: the kit kills the run right before each.
CONTEXT_CALLS = (
    ("Journal", "begin"),
    ("JournalEntry", "record_operation"),
    ("JournalEntry", "complete"),
    ("Resources", "put"),
    ("Resources", "remove"),
)


@contextmanager
def crash_at_context_call(k: int) -> Iterator[list[str]]:
    """Kill the run right before the plugin's k-th journal or resources call (after the cloud
    write that call would record: the moment a real crash loses the most)."""
    from meshcore import context

    seen: list[str] = []
    originals = {(cls, name): getattr(getattr(context, cls), name) for cls, name in CONTEXT_CALLS}

    def wrap(cls: str, name: str) -> Callable[..., Any]:
        original = originals[(cls, name)]

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(f"{cls}.{name}")
            if len(seen) == k:
                raise Crash(f"killed before context call {k} ({cls}.{name})")
            return original(self, *args, **kwargs)

        return call

    for cls, name in CONTEXT_CALLS:
        setattr(getattr(context, cls), name, wrap(cls, name))
    try:
        yield seen
    finally:
        for (cls, name), original in originals.items():
            setattr(getattr(context, cls), name, original)


class PlatformPluginConformance:
    """Base class: subclass it and provide the fixtures named in the module docstring."""

    #: How many applies a tenant may need to converge (asynchronous platforms need more).
    max_runs: int = 10

    # -- building blocks ----------------------------------------------------------------

    @pytest.fixture
    def conformance_registry(self, plugin: Any, platform_type_name: str) -> PluginRegistry:
        registry = PluginRegistry()
        info = registry.register(platform_type_name, plugin)
        assert info.ok, f"plugin failed to register: {info.error}"
        return registry

    @pytest.fixture
    def conformance_store(self, tmp_path: Path) -> Iterator[StateStore]:
        store = StateStore.open(f"sqlite:///{tmp_path / 'conformance.db'}")
        yield store
        store.close()

    @pytest.fixture
    def conformance_config(
        self, tmp_path: Path, platform_type_name: str, platform_config: dict, landing_zone_config: dict
    ) -> Callable[..., Path]:
        """``make(projects=["proj"], users=["alice"], auto_approve=True, imports={}, workspaces=...)``
        writes a config and returns its path."""
        counter = {"n": 0}

        def make(
            projects: list[str] | tuple[str, ...] = ("proj",),
            users: list[str] | tuple[str, ...] = ("alice",),
            auto_approve: bool = True,
            imports: dict[str, str] | None = None,
            tags: dict[str, str] | None = None,
            workspaces: dict[str, list[str]] | None = None,
            concurrency: int = 4,
        ) -> Path:
            imports = imports or {}
            layout = workspaces if workspaces is not None else {WORKSPACE: list(projects)}

            def tenant(pid: str) -> dict[str, Any]:
                entry: dict[str, Any] = {"platform": PLATFORM, "landing_zone": "lz"}
                if pid in imports:
                    entry["import_id"] = imports[pid]
                return entry

            doc: dict[str, Any] = {
                "settings": {"concurrency": concurrency, "max_deletions_per_run": 50},
                "platforms": [{"id": PLATFORM, "type": platform_type_name, "config": platform_config}],
                "landing_zones": [
                    {
                        "id": "lz",
                        "platform": PLATFORM,
                        "deletion": {"auto_approve": auto_approve},
                        "config": landing_zone_config,
                    }
                ],
                "users": [{"id": u, "email": f"{u}@example.com"} for u in ("alice", "bob", "mallory")],
                "tag_definitions": [{"key": "env", "replication_key": "env"}],
                "workspaces": [
                    {
                        "id": ws,
                        "projects": [
                            {
                                "id": pid,
                                "tags": dict(tags or {"env": "dev"}),
                                "bindings": [{"user": u, "role": "admin"} for u in users],
                                "tenants": [tenant(pid)],
                            }
                            for pid in pids
                        ],
                    }
                    for ws, pids in layout.items()
                ],
            }
            counter["n"] += 1
            path = tmp_path / f"conformance-{counter['n']}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            return path

        return make

    def loaded(self, path: Path, registry: PluginRegistry) -> LoadedConfig:
        return load_config(path, registry)

    def reconciler(self, path: Path, registry: PluginRegistry, store: StateStore) -> Reconciler:
        return Reconciler(self.loaded(path, registry), store, registry, sleep=lambda _s: None)

    def converge(self, rec: Reconciler, allow_deletions: int = 0) -> Report:
        """Apply until nothing is in progress (at most ``max_runs`` times); nothing may fail."""
        for _ in range(self.max_runs):
            report = rec.apply(allow_deletions=allow_deletions)
            assert not report.failed, [f"{i.key}: {i.message}" for i in report.failed]
            if all(i.status != "in_progress" for i in report.items):
                return report
        pytest.fail(f"still in progress after {self.max_runs} applies")

    def bound(self, store: StateStore, project: str = "proj", workspace: str = WORKSPACE) -> str:
        (row,) = [
            t
            for t in store.tenants(include_deleted=True)
            if t.project == project and t.workspace == workspace and t.status != "DELETED"
        ]
        assert row.platform_tenant_id, f"{workspace}/{project} was never bound to a platform tenant"
        return row.platform_tenant_id

    def has(self, registry: PluginRegistry, type_name: str, capability: Capability) -> bool:
        return capability in registry.platform_type(type_name).capabilities

    def ctx(self, store: StateStore) -> HookContext:
        return HookContext(backend=store, platform_id=PLATFORM, run_id=0)

    # -- registration -------------------------------------------------------------------------

    def test_registers_its_platform_type(
        self, conformance_registry: PluginRegistry, platform_type_name: str
    ) -> None:
        """Capabilities and hooks agree (each capability's hook implemented, no hook without one)."""
        ptype = conformance_registry.platform_type(platform_type_name)
        assert ptype.name == platform_type_name
        assert Capability.TENANTS in ptype.capabilities
        for capability in ptype.capabilities:
            assert conformance_registry.implements(platform_type_name, CAPABILITY_HOOKS[capability])

    def test_is_discovered_under_its_entry_point_name(self, plugin: Any, platform_type_name: str) -> None:
        """Rule: the entry-point name is the platform type; ``meshcore plugins`` loads it through discovery."""
        registry = PluginRegistry.discover(only={platform_type_name})
        info = registry.infos.get(platform_type_name)
        assert info is not None, (
            f"no entry point named {platform_type_name!r} in the group 'meshcore.platforms' "
            "(install your distribution, e.g. pip install -e .)"
        )
        assert info.ok, f"meshcore plugins shows it {info.status}: {info.error}"

    def test_import_has_no_side_effects(self, plugin: Any) -> None:
        """Rule: importing the plugin starts no threads, opens no connections or files, imports no cloud SDK."""
        module = inspect.getmodule(plugin) if not inspect.ismodule(plugin) else plugin
        assert module is not None
        code = (
            "import gc, json, socket, sqlite3, sys, threading, io\n"
            f"import {module.__name__}\n"
            "objs = gc.get_objects()\n"
            "conns = sum(isinstance(o, (sqlite3.Connection, socket.socket)) for o in objs)\n"
            "files = sum(isinstance(o, io.IOBase) and not o.closed and getattr(o, 'name', None) "
            "not in (0, 1, 2, '<stdin>', '<stdout>', '<stderr>') for o in objs)\n"
            f"print(json.dumps([threading.active_count(), [m for m in {HEAVY_MODULES!r} if m in sys.modules], "
            "conns, files]))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        threads, heavy, conns, files = json.loads(out.stdout.strip().splitlines()[-1])
        assert threads == 1, "importing the plugin started threads"
        assert heavy == [], f"importing the plugin imported {heavy}; import cloud SDKs lazily"
        assert conns == 0, "importing the plugin opened a connection"
        assert files == 0, "importing the plugin left a file open"

    def test_validate_and_preflight_answer(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        platform_type_name: str,
    ) -> None:
        loaded = self.loaded(conformance_config(), conformance_registry)  # runs meshplatform_validate
        if self.has(conformance_registry, platform_type_name, Capability.PREFLIGHT):
            report = conformance_registry.call(
                "meshplatform_preflight", loaded.platforms[PLATFORM], ctx=self.ctx(conformance_store)
            )
            assert report.checks, "preflight declared but checks nothing"

    # -- plan and apply -------------------------------------------------------------------------

    def test_plan_makes_no_writes_and_lists_the_new_tenant(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
        platform_type_name: str,
    ) -> None:
        """Rule: observe, never write, outside an action's ``run``; a new tenant's plan lists what it gets."""
        before = cloud.writes()
        plan = self.reconciler(conformance_config(), conformance_registry, conformance_store).plan()
        assert cloud.writes() == before, "plan made write calls"
        (item,) = [i for i in plan.tenants if i.key == f"{WORKSPACE}/proj@{PLATFORM}"]
        assert any(a.phase == Phase.TENANT.value for a in item.actions), "plan does not announce the tenant"
        if self.has(conformance_registry, platform_type_name, Capability.ACCESS):
            grants = [a for a in item.actions if a.phase == Phase.ACCESS.value and a.change == "create"]
            assert grants, "plan does not list the access a binding grants (in the access phase)"
            if self.has(conformance_registry, platform_type_name, Capability.LANDING_ZONES):
                assert all(a.requires for a in grants), (
                    "a grant requires nothing: access could be given before the landing zone's guardrails"
                )

    def test_apply_runs_what_plan_listed_and_converges(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
        platform_type_name: str,
    ) -> None:
        """Rule: one action per difference; a converged tenant costs zero writes; the result is real."""
        rec = self.reconciler(conformance_config(), conformance_registry, conformance_store)
        plan = rec.plan()
        first = rec.apply()
        assert not first.failed, [f"{i.key}: {i.message}" for i in first.failed]
        planned = {i.key: [a.key for a in i.actions] for i in plan.items}
        applied = {i.key: [a.key for a in i.actions] for i in first.items}
        assert applied == {k: v for k, v in planned.items() if k in applied}, (
            "apply did not run what plan listed"
        )
        (item,) = first.tenants
        created = [a for a in item.actions if a.phase == Phase.TENANT.value and a.change == "create"]
        assert created and created[0].status in ("changed", "in_progress"), (
            "creating the tenant was reported as no change"
        )
        self.converge(rec)
        before = cloud.writes()
        again = rec.apply()
        assert cloud.writes() == before, "a converged apply made write calls"
        assert all(i.status == "ok" for i in again.tenants)
        assert all(not i.actions for i in rec.plan().items), "plan is not empty once converged"
        tid = self.bound(conformance_store)
        assert tid in cloud.live_tenants(), "the bound tenant does not exist on the platform"
        assert cloud.tags_of(tid).get("env") == "dev", "the project's tags were not replicated"
        if self.has(conformance_registry, platform_type_name, Capability.ACCESS):
            assert cloud.users_of(tid) == {"alice"}, "the binding's user has no access, or others have"
        assert conformance_store.journal_entries(status="open") == [], "intents were left open"

    def test_many_tenants_in_parallel_each_get_their_own(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
    ) -> None:
        """Tenants are reconciled in parallel: no lost writes, no collisions between look-alike names."""
        layout = {WORKSPACE: ["p1", "p2", "p3", "web"], "conf2": ["web"], "conf-2": ["x"]}
        rec = self.reconciler(
            conformance_config(workspaces=layout, concurrency=6), conformance_registry, conformance_store
        )
        self.converge(rec)
        ids = {self.bound(conformance_store, p, ws) for ws, ps in layout.items() for p in ps}
        assert len(ids) == 6 and ids <= cloud.live_tenants()
        assert all(cloud.tags_of(t).get("env") == "dev" for t in ids)
        before = cloud.writes()
        rec.apply()
        assert cloud.writes() == before, "a converged apply made write calls"

    # -- crashes, ownership, identity ---------------------------------------------------------

    @pytest.mark.parametrize("crash", [crash_after_action, crash_at_context_call], ids=["action", "context"])
    def test_a_crash_after_any_write_converges_without_duplicates(
        self,
        conformance_registry: PluginRegistry,
        conformance_config: Any,
        cloud: ConformanceCloud,
        tmp_path: Path,
        crash: Callable[[int], Any],
    ) -> None:
        """Rule: journal the intent before a non-idempotent write, find the tenant by its natural key
        and an open intent, complete every intent.

        The run is killed at every point in turn: right after each action (before the core records
        its result), and right before each journal or resources call (after the cloud write it
        would record). The next runs must finish the job with exactly one tenant and no open intents.
        """
        k = 0
        while True:
            k += 1
            project = f"crash{k}"
            store = StateStore.open(f"sqlite:///{tmp_path / f'{crash.__name__}{k}.db'}")
            try:
                before_live = cloud.live_tenants()
                rec = self.reconciler(conformance_config(projects=[project]), conformance_registry, store)
                with crash(k) as ran, suppress(Crash):
                    rec.apply()
                if len(ran) < k:  # the whole run had fewer points: every one was tried
                    assert k > 1 or crash is crash_at_context_call, "a new tenant's first apply ran no action"
                    return
                self.converge(rec)
                tid = self.bound(store, project)
                name = cloud.natural_name(WORKSPACE, project)
                assert cloud.live_tenants() - before_live == {tid}, (
                    f"killed at point {k} ({ran[-1]}), the next runs left "
                    f"{len(cloud.live_tenants() - before_live)} tenants for {name}"
                )
                assert store.journal_entries(status="open") == [], (
                    f"killed at point {k} ({ran[-1]}): intents left open"
                )
                before = cloud.writes()
                rec.apply()
                assert cloud.writes() == before, f"killed at point {k} ({ran[-1]}): not converged ({name})"
            finally:
                store.close()

    def test_a_lost_state_finds_what_meshcore_made_for_the_tenant(
        self,
        conformance_registry: PluginRegistry,
        conformance_config: Any,
        cloud: ConformanceCloud,
        tmp_path: Path,
    ) -> None:
        """Rule: mark what you create as meshcore's for its tenant, in the cloud: a state store that was
        lost (restored from an old backup, recreated) finds the tenant again instead of failing on it."""
        first = StateStore.open(f"sqlite:///{tmp_path / 'first.db'}")
        self.converge(self.reconciler(conformance_config(), conformance_registry, first))
        tid = self.bound(first)
        first.close()
        before = cloud.live_tenants()
        fresh = StateStore.open(f"sqlite:///{tmp_path / 'fresh.db'}")
        try:
            self.converge(self.reconciler(conformance_config(), conformance_registry, fresh))
            assert self.bound(fresh) == tid, "a fresh state store did not recognise meshcore's own tenant"
            assert cloud.live_tenants() == before, "a fresh state store made a second tenant"
        finally:
            fresh.close()

    def test_importing_a_tenant_bound_to_another_is_refused_before_anything_runs(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
    ) -> None:
        """Rule: ``ctx.owner_of`` tells which tenant owns an id; never adopt one that is another's."""
        self.converge(self.reconciler(conformance_config(), conformance_registry, conformance_store))
        taken = self.bound(conformance_store)
        tags, users = cloud.tags_of(taken), cloud.users_of(taken)
        thief = self.reconciler(
            conformance_config(projects=["proj", "thief"], imports={"thief": taken}),
            conformance_registry,
            conformance_store,
        )
        plan = {i.key: i for i in thief.plan().tenants}
        assert plan[f"{WORKSPACE}/thief@{PLATFORM}"].status == "error", (
            "plan offers to adopt a tenant bound to another"
        )
        report = {i.key: i for i in thief.apply().tenants}
        assert report[f"{WORKSPACE}/thief@{PLATFORM}"].status == "failed"
        assert (cloud.tags_of(taken), cloud.users_of(taken)) == (tags, users)

    def test_a_foreign_tenant_with_the_same_name_is_never_adopted(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
    ) -> None:
        """Rule: never adopt what is not yours; a namesake made by someone else is a conflict."""
        foreign = cloud.make_foreign(cloud.natural_name(WORKSPACE, "proj"))
        tags, users = cloud.tags_of(foreign), cloud.users_of(foreign)
        rec = self.reconciler(conformance_config(), conformance_registry, conformance_store)
        plan = rec.plan()
        report = rec.apply()
        (item,) = report.tenants
        assert item.status == "failed" and item.platform_tenant_id != foreign, (
            "a tenant someone else created was adopted"
        )
        assert any(i.status == "error" for i in plan.tenants), "plan did not report the conflict"
        assert foreign in cloud.live_tenants()
        assert (cloud.tags_of(foreign), cloud.users_of(foreign)) == (tags, users), (
            "the foreign tenant was changed"
        )
        assert all(t.platform_tenant_id != foreign for t in conformance_store.tenants())

    def test_import_adopts_an_existing_tenant_on_purpose(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
    ) -> None:
        """Rule: ``import_id`` adopts a tenant on purpose, and brings it in line."""
        existing = cloud.make_foreign("legacy-tenant")
        path = conformance_config(imports={"proj": existing})
        self.converge(self.reconciler(path, conformance_registry, conformance_store))
        assert self.bound(conformance_store) == existing
        assert cloud.tags_of(existing).get("env") == "dev"

    def test_a_deleted_tenants_id_is_never_reused(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
    ) -> None:
        """Rule: re-adding a deleted project gets a new tenant; the old id stays with its history."""
        self.converge(self.reconciler(conformance_config(), conformance_registry, conformance_store))
        old = self.bound(conformance_store)
        gone = self.reconciler(conformance_config(projects=[]), conformance_registry, conformance_store)
        for _ in range(self.max_runs):
            gone.apply(allow_deletions=1)
            if conformance_store.tenants(include_deleted=True)[0].status == "DELETED":
                break
        again = self.reconciler(conformance_config(), conformance_registry, conformance_store)
        self.converge(again)
        new = self.bound(conformance_store)
        assert new != old, "the deleted tenant's id was bound again"
        assert new in cloud.live_tenants()

    # -- access, drift, deletion ----------------------------------------------------------------

    def test_access_follows_the_bindings_and_revocation_comes_first(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
        platform_type_name: str,
    ) -> None:
        """Rule: access is exactly what bindings grant; extra access is revoked; a tenant marked
        for deletion loses all access at once, before any approval, and is not deleted yet."""
        if not self.has(conformance_registry, platform_type_name, Capability.ACCESS):
            pytest.skip("the plugin does not declare the access capability")
        self.converge(
            self.reconciler(conformance_config(auto_approve=False), conformance_registry, conformance_store)
        )
        tid = self.bound(conformance_store)
        cloud.grant(tid, "mallory")
        plan = self.reconciler(
            conformance_config(auto_approve=False), conformance_registry, conformance_store
        )
        assert any(a.phase == Phase.REVOKE.value for i in plan.plan().tenants for a in i.actions), (
            "plan does not show access granted by hand being revoked"
        )
        self.converge(plan)
        assert cloud.users_of(tid) == {"alice"}, "access granted by hand was not revoked"
        swap = self.reconciler(
            conformance_config(users=["bob"], auto_approve=False), conformance_registry, conformance_store
        )
        self.converge(swap)
        assert cloud.users_of(tid) == {"bob"}, "a removed binding was not revoked, or a new one not granted"
        marked = self.reconciler(
            conformance_config(projects=[], auto_approve=False), conformance_registry, conformance_store
        )
        marked.apply(allow_deletions=1)
        assert cloud.users_of(tid) == set(), "a tenant marked for deletion kept its access"
        assert tid in cloud.live_tenants(), "a tenant was deleted before its deletion was approved"
        (row,) = conformance_store.tenants()
        assert row.status == "MARKED_FOR_DELETION" and row.revoked_at is not None
        cloud.grant(tid, "mallory")
        marked.apply(allow_deletions=1)
        assert cloud.users_of(tid) == set(), "access given to a marked tenant by hand was not revoked"
        approve_deletion(conformance_store, row.key)
        for _ in range(self.max_runs):
            marked.apply(allow_deletions=1)
            if conformance_store.tenants(include_deleted=True)[0].status == "DELETED":
                break
        assert conformance_store.tenants(include_deleted=True)[0].status == "DELETED"

    def test_drift_is_planned_and_repaired(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
    ) -> None:
        """Rule: read, compare, write what differs: tags changed by hand, and changed in the config."""
        rec = self.reconciler(conformance_config(), conformance_registry, conformance_store)
        self.converge(rec)
        tid = self.bound(conformance_store)
        cloud.set_tags(tid, {"env": "tampered"})
        (item,) = rec.plan().tenants
        assert item.actions, "plan does not show drift"
        self.converge(rec)
        assert cloud.tags_of(tid).get("env") == "dev", "drift was not repaired"
        retagged = self.reconciler(
            conformance_config(tags={"env": "prod"}), conformance_registry, conformance_store
        )
        self.converge(retagged)
        assert cloud.tags_of(tid).get("env") == "prod", "a tag changed in the config was not converged"

    def test_deletion_removes_what_it_owns_and_nothing_else(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
    ) -> None:
        """Rule: delete only what is recorded as yours; a deletion is confirmed, not assumed."""
        foreign = cloud.make_foreign("someone-elses")
        self.converge(
            self.reconciler(
                conformance_config(projects=["proj", "keep"]), conformance_registry, conformance_store
            )
        )
        tid, kept = self.bound(conformance_store), self.bound(conformance_store, "keep")
        rec = self.reconciler(conformance_config(projects=["keep"]), conformance_registry, conformance_store)
        for _ in range(self.max_runs):
            report = rec.apply(allow_deletions=1)
            assert not report.failed, [f"{i.key}: {i.message}" for i in report.failed]
            rows = {t.project: t for t in conformance_store.tenants(include_deleted=True)}
            if rows["proj"].status == "DELETED":
                break
        else:
            pytest.fail(f"the tenant was not DELETED after {self.max_runs} applies")
        assert rows["proj"].revoked_at is not None, "deleted without confirming access was revoked"
        live = cloud.live_tenants()
        assert tid not in live, "the tenant is DELETED in meshcore but still exists on the platform"
        assert foreign in live and kept in live, "deleting one tenant removed others"

    # -- costs and discovery ----------------------------------------------------------------------

    def test_cost_records_are_plausible(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
        platform_type_name: str,
    ) -> None:
        """Records lie inside the period, the tenant has some, and its total is not negative."""
        if not self.has(conformance_registry, platform_type_name, Capability.COSTS):
            pytest.skip("the plugin does not declare the costs capability")
        rec = self.reconciler(conformance_config(), conformance_registry, conformance_store)
        self.converge(rec)
        tid = self.bound(conformance_store)
        today = dt.date.today()
        start = today.replace(day=1)
        period = Period(start=start, end=(start + dt.timedelta(days=32)).replace(day=1))
        seed = getattr(cloud, "seed_costs", None)  # optional: see SeedsCosts
        if seed is not None:
            seed(tid, period.start, period.end)
        collection = conformance_registry.call(
            "meshplatform_collect_costs",
            rec.config.platforms[PLATFORM],
            period=period,
            tenants=[],
            ctx=self.ctx(conformance_store),
        )
        for record in collection.records:
            assert period.start <= record.usage_start < period.end and record.usage_end <= period.end
        ours = [r for r in collection.records if r.platform_tenant_id == tid]
        assert ours or not collection.complete, "a live tenant has no cost records for the current month"
        assert sum(r.amount for r in ours) >= 0, "the tenant's costs add up to a negative amount"

    def test_discovery_lists_tenants_and_only_tenants(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        cloud: ConformanceCloud,
        platform_type_name: str,
    ) -> None:
        if not self.has(conformance_registry, platform_type_name, Capability.DISCOVERY):
            pytest.skip("the plugin does not declare the discovery capability")
        foreign = cloud.make_foreign("found-me")
        self.converge(
            self.reconciler(
                conformance_config(projects=["proj", "gone"]), conformance_registry, conformance_store
            )
        )
        gone = self.bound(conformance_store, "gone")
        rec = self.reconciler(conformance_config(), conformance_registry, conformance_store)
        for _ in range(self.max_runs):  # delete one: what is left of it is no tenant to import
            rec.apply(allow_deletions=1)
            if {t.project: t.status for t in conformance_store.tenants(include_deleted=True)}[
                "gone"
            ] == "DELETED":
                break
        found = {
            d.platform_tenant_id
            for d in conformance_registry.call(
                "meshplatform_discover_tenants",
                rec.config.platforms[PLATFORM],
                ctx=self.ctx(conformance_store),
            )
        }
        assert foreign in found and self.bound(conformance_store) in found
        assert gone not in found, "discovery lists a deleted tenant"
        assert found <= cloud.live_tenants(), (
            f"discovery lists what is no live tenant: {found - cloud.live_tenants()}"
        )


__all__ = [
    "ConformanceCloud",
    "Crash",
    "PlatformPluginConformance",
    "SeedsCosts",
    "crash_after_action",
    "crash_at_context_call",
]
