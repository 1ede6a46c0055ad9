"""Plugin discovery through real entry points: loaded, broken, duplicate, disabled, misspelled hooks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from stevedore.extension import ExtensionManager

from meshcore.config import load_config
from meshcore.errors import ConfigError, PluginError
from meshcore.plugins import PluginRegistry

GOOD = """
from pydantic import BaseModel, ConfigDict
from meshcore import hookimpl
from meshcore.results import PlatformType

class Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str = "x"

@hookimpl
def meshplatform_platform_types():
    return [PlatformType(name="{name}", config_model=Cfg)]

@hookimpl
def meshplatform_tenant_actions(platform, tenant, ctx):
    return []
"""


def make_dist(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    info = site / f"{dist}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[meshcore.platforms]\n{lines}\n")
    (info / "RECORD").write_text("")
    for name, code in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(code))
    (info / "top_level.txt").write_text("\n".join(modules) + "\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    ExtensionManager.ENTRY_POINT_CACHE.clear()
    yield site
    ExtensionManager.ENTRY_POINT_CACHE.clear()


def test_installed_entry_point_is_loaded_with_version(site):
    make_dist(
        site,
        "mc-alpha",
        {"alpha": "mc_alpha:plugin_module"},
        {"mc_alpha": "import mc_alpha_impl as plugin_module\n", "mc_alpha_impl": GOOD.format(name="alpha")},
    )
    registry = PluginRegistry.discover()
    info = registry.infos["alpha"]
    assert info.status == "loaded", info.error
    assert info.platform_type.name == "alpha"
    assert (info.distribution, info.version) == ("mc-alpha", "1.2.3")
    assert registry.infos["fake"].status == "loaded"  # the built-in one is still there


def test_broken_plugin_is_reported_and_fatal_only_when_used(site, write_config):
    make_dist(
        site, "mc-broken", {"broken": "mc_broken:plugin"}, {"mc_broken": "import not_a_real_module_xyz\n"}
    )
    registry = PluginRegistry.discover()
    info = registry.infos["broken"]
    assert info.status == "broken"
    assert "No module named 'not_a_real_module_xyz'" in info.error
    # a config that does not use it loads fine
    ok = {"platforms": [{"id": "p", "type": "fake"}]}
    assert load_config(write_config(ok), registry).platforms["p"].type == "fake"
    # a config that needs it fails, naming the plugin and the error
    bad = {"platforms": [{"id": "p", "type": "broken"}]}
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(bad), registry)
    assert "platforms[0].type: plugin 'broken': is broken: import failed" in str(exc.value.problems[0])


def test_duplicate_platform_type_is_an_error(site):
    make_dist(site, "mc-one", {"dup": "mc_one:x"}, {"mc_one": GOOD.format(name="dup")})
    make_dist(site, "mc-two", {"dup": "mc_two:x"}, {"mc_two": GOOD.format(name="dup")})
    registry = PluginRegistry.discover()
    assert registry.infos["dup"].status == "duplicate"
    assert "mc_one:x" in registry.infos["dup"].error and "mc_two:x" in registry.infos["dup"].error
    with pytest.raises(PluginError, match="duplicate"):
        registry.platform_type("dup")


def test_disabled_by_environment(site, monkeypatch):
    make_dist(site, "mc-off", {"off": "mc_off_never_imported:x"}, {})
    monkeypatch.setenv("MESHCORE_DISABLE_PLUGINS", "off, other")
    registry = PluginRegistry.discover()
    assert registry.infos["off"].status == "disabled"


def test_misspelled_hook_is_caught(site):
    code = (
        GOOD.format(name="typo")
        + "\n@hookimpl\ndef meshplatform_tenant_action(platform, tenant, ctx):\n    return None\n"
    )
    make_dist(site, "mc-typo", {"typo": "mc_typo"}, {"mc_typo": code})
    registry = PluginRegistry.discover()
    info = registry.infos["typo"]
    assert info.status == "broken"
    assert "meshplatform_tenant_action" in info.error and "unknown hook" in info.error
    assert registry.pm.get_plugin("typo") is None  # rolled back


def test_entry_point_must_register_its_own_type(site):
    make_dist(site, "mc-wrong", {"wrong": "mc_wrong"}, {"mc_wrong": GOOD.format(name="something-else")})
    info = PluginRegistry.discover().infos["wrong"]
    assert info.status == "broken"
    assert "must register platform type 'wrong' (it registered: something-else)" in info.error


def test_plugin_list_cli_shows_broken_plugins(site):
    from typer.testing import CliRunner

    from meshcore.cli.app import app

    make_dist(
        site,
        "mc-broken2",
        {"broken2": "mc_broken2:plugin"},
        {"mc_broken2": "raise RuntimeError('boom at import')\n"},
    )
    result = CliRunner().invoke(app, ["plugins", "--output", "json"])
    assert result.exit_code == 0
    assert '"broken2"' in result.output and "boom at import" in result.output
