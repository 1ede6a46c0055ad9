"""Dispatch and result validation: malformed answers are rejected with the plugin's name."""

from __future__ import annotations

import pytest

from meshcore import hookimpl
from meshcore.errors import PlatformError, PluginError
from meshcore.plugins import PluginRegistry
from meshcore.results import PlatformType, ProvisionResult
from meshcore.specs import PlatformSpec
from meshcore.testing.fake_platform import FakeConfig


class Sloppy:
    def __init__(self, answer):
        self.answer = answer

    @hookimpl
    def meshplatform_platform_types(self):
        return [PlatformType(name="sloppy", config_model=FakeConfig)]

    @hookimpl
    def meshplatform_update_tenant(self, platform, tenant, ctx):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def call(answer):
    registry = PluginRegistry()
    assert registry.register("sloppy", Sloppy(answer)).ok
    platform = PlatformSpec(id="p", type="sloppy", name="p", config=FakeConfig())
    return registry.call("meshplatform_update_tenant", platform, tenant=None, ctx=None)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"platform_tenant_id": ""}, "returned a malformed ProvisionResult: platform_tenant_id"),
        ({"unexpected": 1}, "returned a malformed ProvisionResult: unexpected: Extra inputs"),
        ("a string", "returned a malformed ProvisionResult"),
        (None, "returned None for its own platform type"),
        (ValueError("kaboom"), "meshplatform_update_tenant raised ValueError: kaboom"),
    ],
)
def test_malformed_results_name_the_plugin(answer, message):
    with pytest.raises(PluginError) as exc:
        call(answer)
    assert str(exc.value).startswith("plugin 'sloppy': ")
    assert message in str(exc.value)


def test_dict_answers_are_validated_into_models_and_core_errors_pass_through():
    assert call({"platform_tenant_id": "42", "changed": True}) == ProvisionResult(
        platform_tenant_id="42", changed=True
    )
    with pytest.raises(PlatformError, match="quota"):
        call(PlatformError("quota"))


def test_only_the_owning_plugin_is_called(fake_plugin):
    registry = PluginRegistry()
    registry.register("fake", fake_plugin)
    registry.register("sloppy", Sloppy({"platform_tenant_id": "from-sloppy"}))
    platform = PlatformSpec(id="p", type="sloppy", name="p", config=FakeConfig())
    result = registry.call("meshplatform_update_tenant", platform, tenant=None, ctx=None)
    assert result.platform_tenant_id == "from-sloppy"


def test_register_failure_is_rolled_back():
    class Bad:
        @hookimpl
        def meshplatform_update_tenant(self, platform, tenant, ctx, extra_arg):  # not in the spec
            return None

    registry = PluginRegistry()
    info = registry.register("bad", Bad())
    assert info.status == "broken" and "registration failed" in info.error
    assert registry.pm.get_plugin("bad") is None
