"""The conformance suite, run against the fake platform (as every plugin must run it)."""

from __future__ import annotations

import pytest

from meshcore.testing.conformance import PlatformPluginConformance
from meshcore.testing.fake_platform import FakePlatformPlugin


class TestFakePlatformConformance(PlatformPluginConformance):
    @pytest.fixture
    def plugin(self):
        return FakePlatformPlugin()

    @pytest.fixture
    def platform_type_name(self):
        return "fake"

    @pytest.fixture
    def platform_config(self):
        return {}

    @pytest.fixture
    def landing_zone_config(self):
        return {"folder": "/conformance", "guardrails": ["g"], "role_mappings": {"admin": "operator"}}

    @pytest.fixture
    def count_writes(self, plugin):
        return lambda: sum(c.write_count for c in plugin.clouds.values())


class BrokenIdempotency(FakePlatformPlugin):
    """A plugin that forgets the journal: creates a new tenant every time."""

    def meshplatform_provision_tenant(self, platform, tenant, ctx):
        cloud = self.cloud(platform)
        from meshcore.results import ProvisionResult

        return ProvisionResult(platform_tenant_id=cloud.create(tenant.key, f"op-{len(cloud.operations)}"))


def test_the_suite_catches_a_non_idempotent_plugin(tmp_path):
    """The conformance check must be able to fail."""
    from meshcore import hookimpl

    BrokenIdempotency.meshplatform_provision_tenant = hookimpl(
        BrokenIdempotency.meshplatform_provision_tenant
    )
    suite = TestFakePlatformConformance()
    from meshcore.context import HookContext
    from meshcore.plugins import PluginRegistry
    from meshcore.state import StateStore

    plugin = BrokenIdempotency()
    registry = PluginRegistry()
    assert registry.register("fake", plugin).ok
    store = StateStore.open(f"sqlite:///{tmp_path / 's.db'}")
    platform = PlatformPluginConformance.platform.__wrapped__(suite, registry, "fake", {})
    lz = PlatformPluginConformance.landing_zone.__wrapped__(suite, registry, "fake", {})
    tenant = PlatformPluginConformance.tenant.__wrapped__(suite, lz)
    ctx = HookContext(backend=store, platform_id="conformance", run_id=1)
    with pytest.raises(AssertionError, match="created another tenant"):
        suite.test_provision_is_idempotent(registry, platform, tenant, ctx)
