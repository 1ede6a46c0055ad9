"""docs/config.md documents every key of the config models."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshcore import models

DOC = (Path(__file__).parent.parent / "docs" / "config.md").read_text()
MODELS = [
    models.ConfigDocument,
    models.Settings,
    models.PlatformDecl,
    models.LandingZoneDecl,
    models.DeletionPolicy,
    models.TagDefinition,
    models.User,
    models.Group,
    models.Workspace,
    models.WorkspaceMember,
    models.Project,
    models.RoleBinding,
    models.PaymentMethod,
    models.TenantDecl,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_config_key_is_documented(model):
    missing = [f for f in model.model_fields if not any(p in DOC for p in (f"`{f}`", f".{f}`", f"`{f}."))]
    assert not missing, f"docs/config.md does not document {model.__name__} keys {missing}"


def test_generated_reference_pages_are_up_to_date():
    from meshcore.docgen import outputs

    generated = outputs()
    assert {p.name for p in generated} >= {"config.md", "hooks.md", "aws.md", "folders.md"}
    for path, text in generated.items():
        assert path.read_text() == text, f"{path} is stale: run python -m meshcore.docgen"
