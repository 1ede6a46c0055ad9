"""Dispatch and result validation: malformed answers are rejected with the plugin's name."""

from __future__ import annotations

import pytest

from meshcore import hookimpl
from meshcore.actions import Action, Observation, Phase
from meshcore.errors import PlatformError, PluginError
from meshcore.plugins import PluginRegistry
from meshcore.results import Capability, ChangeAction, PlatformType
from meshcore.specs import PlatformSpec
from meshcore.testing.fake_platform import FakeConfig


class Sloppy:
    def __init__(self, answer, capabilities=frozenset({Capability.TENANTS})):
        self.answer = answer
        self.capabilities = capabilities

    @hookimpl
    def meshplatform_platform_types(self):
        return [PlatformType(name="sloppy", config_model=FakeConfig, capabilities=self.capabilities)]

    @hookimpl
    def meshplatform_tenant_actions(self, platform, tenant, ctx):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def call(answer):
    registry = PluginRegistry()
    info = registry.register("sloppy", Sloppy(answer))
    assert info.ok, info.error
    platform = PlatformSpec(id="p", type="sloppy", name="p", config=FakeConfig())
    return registry.call("meshplatform_tenant_actions", platform, tenant=None, ctx=None)


def act(key: str, phase: Phase = Phase.TENANT) -> Action:
    return Action(phase=phase, change=ChangeAction.CREATE, resource="thing", target=key, run=lambda: None)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"actions": "nope"}, "returned a malformed Observation: actions"),
        ({"unexpected": 1}, "returned a malformed Observation: unexpected: Extra inputs"),
        ("a string", "returned a malformed Observation"),
        ([act("a"), act("a")], "two actions share the key 'thing:a'"),
        ([{"phase": "tenant", "change": "create", "resource": "x"}], "run: Field required"),
        (None, "meshplatform_tenant_actions returned None"),
        (ValueError("kaboom"), "meshplatform_tenant_actions raised ValueError: kaboom"),
    ],
)
def test_malformed_results_name_the_plugin(answer, message):
    with pytest.raises(PluginError) as exc:
        call(answer)
    assert str(exc.value).startswith("plugin 'sloppy': ")
    assert message in str(exc.value)


def test_a_list_of_actions_is_an_observation_and_core_errors_pass_through():
    obs = call([act("a"), act("b", Phase.ACCESS)])
    assert isinstance(obs, Observation) and [a.key for a in obs.actions] == ["thing:a", "thing:b"]
    with pytest.raises(PlatformError, match="quota"):
        call(PlatformError("quota"))


def test_only_the_owning_plugin_is_called(fake_plugin):
    registry = PluginRegistry()
    registry.register("fake", fake_plugin)
    registry.register("sloppy", Sloppy([act("from-sloppy")]))
    platform = PlatformSpec(id="p", type="sloppy", name="p", config=FakeConfig())
    result = registry.call("meshplatform_tenant_actions", platform, tenant=None, ctx=None)
    assert [a.target for a in result.actions] == ["from-sloppy"]


def test_register_failure_is_rolled_back():
    class Bad:
        @hookimpl
        def meshplatform_tenant_actions(self, platform, tenant, ctx, extra_arg):  # not in the spec
            return extra_arg

    registry = PluginRegistry()
    info = registry.register("bad", Bad())
    assert info.status == "broken" and "registration failed" in info.error
    assert registry.pm.get_plugin("bad") is None


def test_capabilities_and_hooks_must_agree():
    registry = PluginRegistry()
    info = registry.register("sloppy", Sloppy([], frozenset({Capability.TENANTS, Capability.ACCESS})))
    assert info.status == "broken" and "meshplatform_access_actions" in info.error
    registry = PluginRegistry()
    info = registry.register("sloppy", Sloppy([], frozenset({Capability.COSTS})))
    assert info.status == "broken" and "needs the 'tenants' capability" in info.error
    assert "without declaring the capability: meshplatform_tenant_actions" in info.error


def test_a_plugin_of_the_old_contract_is_told_what_changed():
    class Old:
        @hookimpl
        def meshplatform_platform_types(self):
            return [PlatformType(name="old", config_model=FakeConfig)]

        @hookimpl
        def meshplatform_provision_tenant(self, platform, tenant, ctx):
            return None

    info = PluginRegistry().register("old", Old())
    assert info.status == "broken"
    assert "contract 1 (meshplatform_provision_tenant)" in info.error and "contract 2" in info.error
