"""The conformance suite every platform plugin subclasses.

Subclass :class:`PlatformPluginConformance` in a test module and provide these
fixtures (set up whatever emulator your platform needs inside them):

``plugin``
    the plugin object your entry point loads;
``platform_type_name``
    the platform type (= your entry-point name);
``platform_config`` / ``landing_zone_config``
    dicts valid for your config models;
``count_writes``
    a callable returning how many write calls your plugin has made to the
    platform so far (the suite asserts that converged tenants cost none).

Example::

    from meshcore.testing.conformance import PlatformPluginConformance

    class TestMyPlatform(PlatformPluginConformance):
        @pytest.fixture
        def plugin(self):
            return my_plugin_module
        ...

The suite drives your plugin through the real core (``plan`` and ``apply``
on a small config), so it checks what users rely on: the type registers with
capabilities that match its hooks; ``plan`` makes no writes and lists what a
new tenant gets; ``apply`` runs exactly what ``plan`` listed and converges, so
that a second ``apply`` makes no writes and ``plan`` is empty; a deletion
revokes access and reaches ``DELETED``; cost records lie inside the period;
discovery lists the tenant; validate and preflight answer; importing the
plugin module starts no threads and imports no cloud SDK.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshcore.config import LoadedConfig, load_config
from meshcore.context import HookContext
from meshcore.plugins import CAPABILITY_HOOKS, PluginRegistry
from meshcore.reconciler import Reconciler
from meshcore.report import Report
from meshcore.results import Capability
from meshcore.specs import Period
from meshcore.state import StateStore

HEAVY_MODULES = ("boto3", "botocore", "azure", "google.cloud", "kubernetes")
TENANT = "conf/proj@conformance"


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
    def conformance_store(self, tmp_path: Path) -> Any:
        store = StateStore.open(f"sqlite:///{tmp_path / 'conformance.db'}")
        yield store
        store.close()

    @pytest.fixture
    def conformance_config(
        self, tmp_path: Path, platform_type_name: str, platform_config: dict, landing_zone_config: dict
    ) -> Callable[..., Path]:
        """``make(projects=1, bindings=True)`` writes a config with that many projects and returns its path."""

        def make(projects: int = 1, bindings: bool = True) -> Path:
            doc: dict[str, Any] = {
                "platforms": [{"id": "conformance", "type": platform_type_name, "config": platform_config}],
                "landing_zones": [
                    {
                        "id": "lz",
                        "platform": "conformance",
                        "deletion": {"auto_approve": True},
                        "config": landing_zone_config,
                    }
                ],
                "users": [{"id": "alice", "email": "alice@example.com"}],
                "tag_definitions": [{"key": "env", "replication_key": "env"}],
                "workspaces": [
                    {
                        "id": "conf",
                        "projects": [
                            {
                                "id": "proj" if i == 0 else f"proj{i}",
                                "tags": {"env": "dev"},
                                "bindings": [{"user": "alice", "role": "admin"}] if bindings else [],
                                "tenants": [{"platform": "conformance", "landing_zone": "lz"}],
                            }
                            for i in range(projects)
                        ],
                    }
                ]
                if projects
                else [],
            }
            path = tmp_path / f"conformance-{projects}-{int(bindings)}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            return path

        return make

    def loaded(self, path: Path, registry: PluginRegistry) -> LoadedConfig:
        return load_config(path, registry)

    def reconciler(self, path: Path, registry: PluginRegistry, store: StateStore) -> Reconciler:
        return Reconciler(self.loaded(path, registry), store, registry, sleep=lambda _s: None)

    def converge(self, rec: Reconciler, allow_deletions: int = 0) -> Report:
        """Apply until nothing is in progress (at most ``max_runs`` times)."""
        for _ in range(self.max_runs):
            report = rec.apply(allow_deletions=allow_deletions)
            assert not report.failed, [f"{i.key}: {i.message}" for i in report.failed]
            if all(i.status not in ("in_progress",) for i in report.items):
                return report
        pytest.fail(f"still in progress after {self.max_runs} applies")

    def has(self, registry: PluginRegistry, type_name: str, capability: Capability) -> bool:
        return capability in registry.platform_type(type_name).capabilities

    # -- the checks -------------------------------------------------------------------------

    def test_registers_its_platform_type(
        self, conformance_registry: PluginRegistry, platform_type_name: str
    ) -> None:
        ptype = conformance_registry.platform_type(platform_type_name)
        assert ptype.name == platform_type_name
        assert Capability.TENANTS in ptype.capabilities
        for capability in ptype.capabilities:
            assert conformance_registry.implements(platform_type_name, CAPABILITY_HOOKS[capability])

    def test_plan_makes_no_writes_and_lists_the_new_tenant(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        count_writes: Callable[[], int],
        platform_type_name: str,
    ) -> None:
        before = count_writes()
        plan = self.reconciler(conformance_config(), conformance_registry, conformance_store).plan()
        assert count_writes() == before, "plan made write calls"
        (item,) = [i for i in plan.tenants if i.key == TENANT]
        assert any(a.phase == "tenant" for a in item.actions), "plan does not announce the tenant's creation"
        if self.has(conformance_registry, platform_type_name, Capability.ACCESS):
            assert any(a.phase == "access" for a in item.actions), (
                "plan does not list the access a binding grants"
            )

    def test_apply_runs_what_plan_listed_and_converges(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        count_writes: Callable[[], int],
    ) -> None:
        rec = self.reconciler(conformance_config(), conformance_registry, conformance_store)
        plan = rec.plan()
        first = rec.apply()
        assert not first.failed, [f"{i.key}: {i.message}" for i in first.failed]
        planned = {i.key: [a.key for a in i.actions] for i in plan.items}
        applied = {i.key: [a.key for a in i.actions] for i in first.items}
        assert applied == {k: v for k, v in planned.items() if k in applied}, (
            "apply did not run what plan listed"
        )
        self.converge(rec)
        before = count_writes()
        again = rec.apply()
        assert count_writes() == before, "a converged apply made write calls"
        assert all(i.status == "ok" for i in again.tenants)
        assert all(not i.actions for i in rec.plan().items), "plan is not empty once converged"
        (row,) = conformance_store.tenants()
        assert row.platform_tenant_id, "the tenant was never bound to a platform id"

    def test_deletion_revokes_then_reaches_deleted(
        self, conformance_registry: PluginRegistry, conformance_store: StateStore, conformance_config: Any
    ) -> None:
        self.converge(self.reconciler(conformance_config(), conformance_registry, conformance_store))
        empty = self.reconciler(conformance_config(projects=0), conformance_registry, conformance_store)
        for _ in range(self.max_runs):
            report = empty.apply(allow_deletions=1)
            assert not report.failed, [f"{i.key}: {i.message}" for i in report.failed]
            rows = conformance_store.tenants(include_deleted=True)
            if rows and rows[0].status == "DELETED":
                assert rows[0].revoked_at is not None, "deleted without confirming access was revoked"
                return
        pytest.fail(f"the tenant was not DELETED after {self.max_runs} applies")

    def test_cost_records_lie_inside_the_period(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        platform_type_name: str,
    ) -> None:
        if not self.has(conformance_registry, platform_type_name, Capability.COSTS):
            pytest.skip("the plugin does not declare the costs capability")
        rec = self.reconciler(conformance_config(), conformance_registry, conformance_store)
        self.converge(rec)
        platform = rec.config.platforms["conformance"]
        period = Period(start=dt.date(2026, 3, 1), end=dt.date(2026, 4, 1))
        ctx = HookContext(backend=conformance_store, platform_id="conformance", run_id=0)
        collection = conformance_registry.call(
            "meshplatform_collect_costs", platform, period=period, tenants=[], ctx=ctx
        )
        for record in collection.records:
            assert period.start <= record.usage_start < period.end
            assert record.usage_end <= period.end

    def test_discovery_lists_the_tenant(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        platform_type_name: str,
    ) -> None:
        if not self.has(conformance_registry, platform_type_name, Capability.DISCOVERY):
            pytest.skip("the plugin does not declare the discovery capability")
        rec = self.reconciler(conformance_config(), conformance_registry, conformance_store)
        self.converge(rec)
        ctx = HookContext(backend=conformance_store, platform_id="conformance", run_id=0)
        found = conformance_registry.call(
            "meshplatform_discover_tenants", rec.config.platforms["conformance"], ctx=ctx
        )
        (row,) = conformance_store.tenants()
        assert row.platform_tenant_id in {d.platform_tenant_id for d in found}

    def test_validate_and_preflight_answer(
        self,
        conformance_registry: PluginRegistry,
        conformance_store: StateStore,
        conformance_config: Any,
        platform_type_name: str,
    ) -> None:
        loaded = self.loaded(conformance_config(), conformance_registry)  # runs meshplatform_validate
        if self.has(conformance_registry, platform_type_name, Capability.PREFLIGHT):
            ctx = HookContext(backend=conformance_store, platform_id="conformance", run_id=0)
            report = conformance_registry.call(
                "meshplatform_preflight", loaded.platforms["conformance"], ctx=ctx
            )
            assert report.checks

    def test_import_has_no_side_effects(self, plugin: Any) -> None:
        module = inspect.getmodule(plugin) if not inspect.ismodule(plugin) else plugin
        assert module is not None
        code = (
            "import sys, threading, json\n"
            f"import {module.__name__}\n"
            f"print(json.dumps([threading.active_count(), [m for m in {HEAVY_MODULES!r} if m in sys.modules]]))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        threads, heavy = json.loads(out.stdout.strip().splitlines()[-1])
        assert threads == 1, "importing the plugin started threads"
        assert heavy == [], f"importing the plugin imported {heavy}; import cloud SDKs lazily"
