"""Hook specs are the public contract: every hook documented in code and in docs/, and nothing else."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from meshcore import hookspecs
from meshcore.plugins import RESULT_TYPES

DOCS = Path(__file__).parent.parent / "docs"
SPECS = {n: f for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("meshplatform_")}


NOT_DISPATCHED = {"meshplatform_platform_types", "meshplatform_cli_commands"}


def test_every_hook_has_a_result_type_and_a_place_in_the_reference():
    from meshcore.hookdocs import grouped_hooks

    assert set(SPECS) - NOT_DISPATCHED == set(RESULT_TYPES)
    assert sorted(grouped_hooks()) == sorted(SPECS)


def test_every_capability_has_its_hook():
    from meshcore.plugins import CAPABILITY_HOOKS
    from meshcore.results import Capability

    assert set(CAPABILITY_HOOKS) == set(Capability)
    assert set(CAPABILITY_HOOKS.values()) <= set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_docstring_has_the_standard_shape(name):
    doc = inspect.getdoc(SPECS[name])
    assert doc, f"{name} has no docstring"
    for section in (":returns:", ":raises", "Example::", "firstresult", ".. versionadded::"):
        assert section in doc, f"{name}'s docstring lacks {section!r}"
    for param in inspect.signature(SPECS[name]).parameters:
        assert f":param {param}:" in doc, f"{name}'s docstring does not document {param!r}"


def test_docs_name_exactly_the_existing_hooks():
    text = (DOCS / "hooks.md").read_text()
    sections = re.findall(r"^### `(meshplatform_\w+)`", text, re.M)
    assert sorted(sections) == sorted(SPECS), "docs/hooks.md sections differ from the hook specs"
    mentioned = set()
    for page in DOCS.rglob("*.md"):
        mentioned |= set(re.findall(r"\bmeshplatform_\w+", page.read_text()))
    unknown = mentioned - set(SPECS)
    assert not unknown, f"docs mention hooks that do not exist: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_documented_signature_matches_the_spec(name):
    text = (DOCS / "hooks.md").read_text()
    m = re.search(rf"^def {name}\(([^)]*)\)", text, re.M)
    assert m, f"docs/hooks.md shows no signature for {name}"
    documented = [a.strip() for a in m.group(1).split(",") if a.strip()]
    assert documented == list(inspect.signature(SPECS[name]).parameters)
