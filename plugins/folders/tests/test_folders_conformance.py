"""The reference plugin passes the core's conformance suite — as every plugin should."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import meshcore_folders.plugin as folders
from meshcore.testing.conformance import PlatformPluginConformance


class FoldersWindow:
    """The conformance kit's window onto a folders "cloud": the directory tree under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self._count = 0
        self._last: tuple = ()

    def writes(self) -> int:
        """Changes to the tree since the last call count as one write (any file written, moved, removed)."""
        files = tuple(
            sorted((str(p.relative_to(self.root)), p.stat().st_mtime_ns) for p in self.root.rglob("*"))
        )
        if files != self._last:
            self._count, self._last = self._count + 1, files
        return self._count

    def _meta(self, tid: str) -> dict:
        return json.loads((self.root / tid / folders.META).read_text())

    def _save(self, tid: str, meta: dict) -> None:
        (self.root / tid / folders.META).write_text(json.dumps(meta))

    def live_tenants(self) -> set[str]:
        return {
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and (p / folders.META).exists() and ".archived-" not in p.name
        }

    def natural_name(self, workspace: str, project: str) -> str:
        return f"{workspace}--{project}"

    def make_foreign(self, name: str) -> str:
        (self.root / name).mkdir()
        self._save(name, {"name": name, "tags": {"team": "theirs"}, "guardrails": [], "access": {}})
        return name

    def tags_of(self, tenant_id: str) -> dict[str, str]:
        return dict(self._meta(tenant_id).get("tags", {}))

    def set_tags(self, tenant_id: str, tags: dict[str, str]) -> None:
        meta = self._meta(tenant_id)
        meta["tags"] = tags
        self._save(tenant_id, meta)

    def users_of(self, tenant_id: str) -> set[str]:
        return {u for users in self._meta(tenant_id).get("access", {}).values() for u in users}

    def grant(self, tenant_id: str, user: str) -> None:
        meta = self._meta(tenant_id)
        meta.setdefault("access", {}).setdefault("admin", []).append(user)
        self._save(tenant_id, meta)


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
    def cloud(self, tmp_path, platform_config):
        return FoldersWindow(Path(platform_config["root"]))


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
