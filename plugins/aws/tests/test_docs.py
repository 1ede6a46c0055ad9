"""docs/aws.md documents every config key of the AWS plugin; the example config validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshcore_aws import config as cfg

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "aws.md").read_text()
MODELS = [
    cfg.AwsConfig,
    cfg.RoleRef,
    cfg.TagConfig,
    cfg.DeletionConfig,
    cfg.ClosureGuard,
    cfg.AwsLandingZone,
    cfg.IdentityCenterConfig,
    cfg.PermissionSetConfig,
    cfg.ScpConfig,
    cfg.BaselineConfig,
    cfg.LambdaHook,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_key_is_documented(model):
    missing = [f for f in model.model_fields if not any(p in DOC for p in (f"`{f}`", f".{f}`", f"`{f}."))]
    assert not missing, f"docs/aws.md does not document {model.__name__} keys {missing}"


def test_example_config_validates(registry, monkeypatch):
    from meshcore.config import load_config

    for scope in ("MANAGEMENT", "AUTOMATION", "COST_EXPLORER"):
        monkeypatch.setenv(f"MESHCORE_{scope}_EXTERNAL_ID", f"example-{scope.lower()}-external-id")
    loaded = load_config(ROOT / "examples" / "aws" / "meshcore.yaml", registry)
    assert loaded.platforms["aws"].config.deletion.guard.key == "closable"
