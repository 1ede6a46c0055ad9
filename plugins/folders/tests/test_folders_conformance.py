"""The reference plugin passes the core's conformance suite — as every plugin should."""

from __future__ import annotations

import pytest

import meshcore_folders.plugin as folders
from meshcore.testing.conformance import PlatformPluginConformance


class TestFoldersConformance(PlatformPluginConformance):
    @pytest.fixture
    def plugin(self):
        return folders

    @pytest.fixture
    def platform_type_name(self):
        return "folders"

    @pytest.fixture
    def platform_config(self, tmp_path):
        (tmp_path / "tenants").mkdir()
        return {"root": str(tmp_path / "tenants")}

    @pytest.fixture
    def landing_zone_config(self):
        return {"guardrails": ["no-public-shares"], "role_mappings": {"admin": "admin"}}

    @pytest.fixture
    def count_writes(self, tmp_path, monkeypatch):
        writes = {"n": 0}
        original = folders._write

        def counting(folder, meta):
            writes["n"] += 1
            original(folder, meta)

        monkeypatch.setattr(folders, "_write", counting)
        return lambda: writes["n"]


def test_apply_through_the_cli(tmp_path, monkeypatch):
    """End to end: discovered through its entry point, driven by `meshcore apply`."""
    import yaml
    from typer.testing import CliRunner

    from meshcore.cli.app import app

    root = tmp_path / "tenants"
    root.mkdir()
    config = {
        "platforms": [{"id": "disk", "type": "folders", "config": {"root": str(root)}}],
        "landing_zones": [{"id": "std", "platform": "disk", "config": {"guardrails": ["quota"]}}],
        "users": [{"id": "ann", "email": "ann@example.com"}],
        "workspaces": [
            {
                "id": "team",
                "projects": [
                    {
                        "id": "web",
                        "bindings": [{"user": "ann", "role": "admin"}],
                        "tenants": [{"platform": "disk", "landing_zone": "std"}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    runner = CliRunner()
    args = ["-c", str(tmp_path / "c.yaml"), "--state", f"sqlite:///{tmp_path / 's.db'}"]
    assert runner.invoke(app, ["apply", *args]).exit_code == 0
    meta = (root / "team--web" / "tenant.json").read_text()
    assert '"quota"' in meta and '"ann"' in meta
    second = runner.invoke(app, ["apply", *args, "-o", "json"])
    assert '"ok": 1' in second.output
