"""The conformance suite, run against the fake platform (as every plugin must run it), and shown able to fail."""

from __future__ import annotations

import pytest

from meshcore import hookimpl
from meshcore.actions import Action, Observation, Phase
from meshcore.results import ChangeAction
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


class AlwaysCreates(FakePlatformPlugin):
    """A plugin that never looks at what exists: it plans a new tenant on every run."""

    @hookimpl
    def meshplatform_tenant_actions(self, platform, tenant, ctx):
        cloud = self.cloud(platform)
        name = self._name(platform, tenant)
        return Observation(
            actions=(
                Action(
                    phase=Phase.TENANT,
                    change=ChangeAction.CREATE,
                    resource="tenant",
                    target=name,
                    run=lambda: {"platform_tenant_id": cloud.create(name, f"op-{len(cloud.operations)}")},
                ),
            )
        )


class TestTheSuiteCanFail(TestFakePlatformConformance):
    @pytest.fixture
    def plugin(self):
        return AlwaysCreates()

    def test_apply_runs_what_plan_listed_and_converges(
        self, conformance_registry, conformance_store, conformance_config, count_writes
    ):
        with pytest.raises(AssertionError):
            super().test_apply_runs_what_plan_listed_and_converges(
                conformance_registry, conformance_store, conformance_config, count_writes
            )

    test_registers_its_platform_type = None
    test_plan_makes_no_writes_and_lists_the_new_tenant = None
    test_deletion_revokes_then_reaches_deleted = None
    test_cost_records_lie_inside_the_period = None
    test_discovery_lists_the_tenant = None
    test_validate_and_preflight_answer = None
    test_import_has_no_side_effects = None
