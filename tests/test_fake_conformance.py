"""The conformance suite, run against the fake platform (as every plugin must run it), and shown able to fail."""

from __future__ import annotations

import pytest

from meshcore import hookimpl
from meshcore.actions import Action, Observation, Phase
from meshcore.results import ChangeAction
from meshcore.testing.conformance import PlatformPluginConformance
from meshcore.testing.fake_platform import FakeConformanceCloud, FakePlatformPlugin


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
    def cloud(self, plugin):
        return FakeConformanceCloud(plugin)


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


def test_the_kit_fails_a_plugin_that_never_looks_at_what_exists(tmp_path):
    """A plugin that plans a new tenant on every run: the kit's convergence check must fail it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    module = tmp_path / "test_always_creates.py"
    module.write_text(
        "import pytest\n"
        "from test_fake_conformance import AlwaysCreates, TestFakePlatformConformance\n"
        "class TestAlwaysCreates(TestFakePlatformConformance):\n"
        "    @pytest.fixture\n"
        "    def plugin(self):\n"
        "        return AlwaysCreates()\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-p",
            "meshcore.testing",
            str(module),
            "-k",
            "test_apply_runs_what_plan_listed_and_converges",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        cwd=tmp_path,
    )
    assert "1 failed" in out.stdout, out.stdout[-3000:]
