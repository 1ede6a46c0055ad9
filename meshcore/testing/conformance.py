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

The suite checks what the core relies on: the type registers and its models
accept the given config; foreign platform types get ``None``; provision is
idempotent and resumes from the journal; a converged update and a second
access replication make no writes; plan is read-only; deprovision reaches
``deleted``; cost records lie inside the period; importing the plugin module
starts no threads and imports no cloud SDK.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import subprocess
import sys
from typing import Any

import pytest

from meshcore.context import HookContext
from meshcore.models import TenantStatus, User
from meshcore.plugins import RESULT_TYPES, PluginRegistry
from meshcore.results import Capability, DeprovisionStatus, ProvisionStatus
from meshcore.specs import (
    BindingSpec,
    LandingZoneSpec,
    Period,
    PlatformSpec,
    ProjectRef,
    TenantSpec,
    WorkspaceRef,
)
from meshcore.state import StateStore

HEAVY_MODULES = ("boto3", "botocore", "azure", "google.cloud", "kubernetes")


class PlatformPluginConformance:
    """Base class: subclass it and provide the fixtures named in the module docstring."""

    max_polls: int = 20

    # -- building blocks ----------------------------------------------------------------

    @pytest.fixture
    def conformance_registry(self, plugin: Any, platform_type_name: str) -> PluginRegistry:
        registry = PluginRegistry()
        info = registry.register(platform_type_name, plugin)
        assert info.ok, f"plugin failed to register: {info.error}"
        return registry

    @pytest.fixture
    def conformance_store(self, tmp_path: Any) -> Any:
        store = StateStore.open(f"sqlite:///{tmp_path / 'conformance.db'}")
        yield store
        store.close()

    @pytest.fixture
    def platform(
        self, conformance_registry: PluginRegistry, platform_type_name: str, platform_config: dict
    ) -> PlatformSpec:
        ptype = conformance_registry.platform_type(platform_type_name)
        return PlatformSpec(
            id="conformance",
            type=platform_type_name,
            name="conformance",
            config=ptype.config_model.model_validate(platform_config),
        )

    @pytest.fixture
    def landing_zone(
        self, conformance_registry: PluginRegistry, platform_type_name: str, landing_zone_config: dict
    ) -> LandingZoneSpec:
        model = conformance_registry.platform_type(platform_type_name).landing_zone_model
        cfg = model.model_validate(landing_zone_config) if model else landing_zone_config
        return LandingZoneSpec(
            id="lz", platform="conformance", name="lz", auto_approve_deletion=True, config=cfg
        )

    @pytest.fixture
    def ctx(self, conformance_store: StateStore) -> HookContext:
        run = conformance_store.start_run("conformance", "test")
        return HookContext(
            backend=conformance_store, platform_id="conformance", run_id=run.id, sleep=lambda _s: None
        ).for_tenant("conf/proj@conformance")

    @pytest.fixture
    def tenant(self, landing_zone: LandingZoneSpec) -> TenantSpec:
        user = User(id="alice", email="alice@example.com", name="Alice")
        return TenantSpec(
            workspace=WorkspaceRef(id="conf", name="Conformance", tags={}),
            project=ProjectRef(id="proj", name="Project", tags={"env": "dev"}),
            platform_id="conformance",
            landing_zone=landing_zone,
            tags={"env": "dev"},
            replicated_tags={"env": "dev"},
            bindings=(BindingSpec(role="admin", user="alice", users=(user,)),),
        )

    def call(self, registry: PluginRegistry, hook: str, platform: PlatformSpec, **kw: Any) -> Any:
        return registry.call(hook, platform, **kw)

    def provision(
        self, registry: PluginRegistry, platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
    ) -> TenantSpec:
        for _ in range(self.max_polls):
            result = self.call(registry, "meshplatform_provision_tenant", platform, tenant=tenant, ctx=ctx)
            if result.status == ProvisionStatus.READY:
                assert result.platform_tenant_id, "a ready ProvisionResult must carry platform_tenant_id"
                return tenant.model_copy(update={"platform_tenant_id": result.platform_tenant_id})
        pytest.fail(f"provision still in progress after {self.max_polls} calls")

    def has(self, registry: PluginRegistry, platform: PlatformSpec, capability: Capability) -> bool:
        return capability in registry.platform_type(platform.type).capabilities

    # -- the checks -------------------------------------------------------------------------

    def test_registers_its_platform_type(
        self, conformance_registry: PluginRegistry, platform_type_name: str
    ) -> None:
        ptype = conformance_registry.platform_type(platform_type_name)
        assert ptype.name == platform_type_name
        assert Capability.TENANTS in ptype.capabilities

    def test_hook_results_have_declared_types(self) -> None:
        from meshcore import hookspecs

        specs = {
            n for n, _ in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("meshplatform_")
        }
        assert specs - {"meshplatform_platform_types", "meshplatform_cli_commands"} == set(RESULT_TYPES)

    def test_returns_none_for_foreign_platform_types(
        self,
        conformance_registry: PluginRegistry,
        plugin: Any,
        platform: PlatformSpec,
        tenant: TenantSpec,
        ctx: HookContext,
    ) -> None:
        foreign = platform.model_copy(update={"type": "not-" + platform.type})
        args = {
            "platform": foreign,
            "tenant": tenant,
            "ctx": ctx,
            "landing_zones": [],
            "period": Period(start=dt.date(2026, 1, 1), end=dt.date(2026, 2, 1)),
            "tenants": [],
        }
        for impl_name in RESULT_TYPES:
            hook = getattr(conformance_registry.pm.hook, impl_name)
            for impl in hook.get_hookimpls():
                if impl.plugin is plugin:
                    answer = impl.function(**{a: args[a] for a in impl.argnames})
                    assert answer is None, f"{impl_name} answered for a foreign platform type"

    def test_provision_is_idempotent(
        self,
        conformance_registry: PluginRegistry,
        platform: PlatformSpec,
        tenant: TenantSpec,
        ctx: HookContext,
    ) -> None:
        first = self.provision(conformance_registry, platform, tenant, ctx)
        again = self.provision(conformance_registry, platform, tenant, ctx)
        assert again.platform_tenant_id == first.platform_tenant_id, (
            "a second provision created another tenant"
        )

    def test_converged_update_makes_no_writes(
        self,
        conformance_registry: PluginRegistry,
        platform: PlatformSpec,
        tenant: TenantSpec,
        ctx: HookContext,
        count_writes: Any,
    ) -> None:
        live = self.provision(conformance_registry, platform, tenant, ctx)
        self.call(conformance_registry, "meshplatform_update_tenant", platform, tenant=live, ctx=ctx)
        for capability, hook in (
            (Capability.LANDING_ZONES, "meshplatform_apply_landing_zone"),
            (Capability.ACCESS, "meshplatform_replicate_access"),
        ):
            if self.has(conformance_registry, platform, capability):
                self.call(conformance_registry, hook, platform, tenant=live, ctx=ctx)
        before = count_writes()
        result = self.call(conformance_registry, "meshplatform_update_tenant", platform, tenant=live, ctx=ctx)
        assert result.changed is False
        for capability, hook in (
            (Capability.LANDING_ZONES, "meshplatform_apply_landing_zone"),
            (Capability.ACCESS, "meshplatform_replicate_access"),
        ):
            if self.has(conformance_registry, platform, capability):
                outcome = self.call(conformance_registry, hook, platform, tenant=live, ctx=ctx)
                assert outcome.changed is False, f"{hook} changed a converged tenant"
        assert count_writes() == before, "a converged tenant cost write calls"

    def test_plan_is_read_only_and_empty_when_converged(
        self,
        conformance_registry: PluginRegistry,
        platform: PlatformSpec,
        tenant: TenantSpec,
        ctx: HookContext,
        count_writes: Any,
    ) -> None:
        before = count_writes()
        planned = self.call(
            conformance_registry, "meshplatform_plan_tenant", platform, tenant=tenant, ctx=ctx
        )
        assert planned, "plan of an unprovisioned tenant must announce its creation"
        assert count_writes() == before, "plan made write calls"
        live = self.provision(conformance_registry, platform, tenant, ctx)
        for capability, hook in (
            (Capability.LANDING_ZONES, "meshplatform_apply_landing_zone"),
            (Capability.ACCESS, "meshplatform_replicate_access"),
        ):
            if self.has(conformance_registry, platform, capability):
                self.call(conformance_registry, hook, platform, tenant=live, ctx=ctx)
        assert (
            self.call(conformance_registry, "meshplatform_plan_tenant", platform, tenant=live, ctx=ctx) == []
        )

    def test_deprovision_reaches_deleted(
        self,
        conformance_registry: PluginRegistry,
        platform: PlatformSpec,
        tenant: TenantSpec,
        ctx: HookContext,
    ) -> None:
        live = self.provision(conformance_registry, platform, tenant, ctx)
        gone = live.model_copy(update={"status": TenantStatus.MARKED_FOR_DELETION, "bindings": ()})
        for _ in range(self.max_polls):
            result = self.call(
                conformance_registry, "meshplatform_deprovision_tenant", platform, tenant=gone, ctx=ctx
            )
            if result.status == DeprovisionStatus.DELETED:
                return
        pytest.fail(f"deprovision did not reach 'deleted' in {self.max_polls} calls")

    def test_cost_records_lie_inside_the_period(
        self,
        conformance_registry: PluginRegistry,
        platform: PlatformSpec,
        tenant: TenantSpec,
        ctx: HookContext,
    ) -> None:
        if not self.has(conformance_registry, platform, Capability.COSTS):
            return
        self.provision(conformance_registry, platform, tenant, ctx)
        period = Period(start=dt.date(2026, 3, 1), end=dt.date(2026, 4, 1))
        collection = self.call(
            conformance_registry, "meshplatform_collect_costs", platform, period=period, tenants=[], ctx=ctx
        )
        for record in collection.records:
            assert period.start <= record.usage_start < period.end
            assert record.usage_end <= period.end

    def test_discovery_lists_valid_tenants(
        self,
        conformance_registry: PluginRegistry,
        platform: PlatformSpec,
        tenant: TenantSpec,
        ctx: HookContext,
    ) -> None:
        if not self.has(conformance_registry, platform, Capability.DISCOVERY):
            return
        live = self.provision(conformance_registry, platform, tenant, ctx)
        found = self.call(conformance_registry, "meshplatform_discover_tenants", platform, ctx=ctx)
        assert live.platform_tenant_id in {d.platform_tenant_id for d in found}

    def test_validate_and_preflight_answer(
        self,
        conformance_registry: PluginRegistry,
        platform: PlatformSpec,
        landing_zone: LandingZoneSpec,
        ctx: HookContext,
    ) -> None:
        assert (
            self.call(conformance_registry, "meshplatform_validate", platform, landing_zones=[landing_zone])
            == []
        )
        if self.has(conformance_registry, platform, Capability.PREFLIGHT):
            report = self.call(conformance_registry, "meshplatform_preflight", platform, ctx=ctx)
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
