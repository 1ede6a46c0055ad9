"""The public API for plugin authors is exactly what ``meshcore`` exports, and it is enough."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import meshcore

ROOT = Path(__file__).resolve().parents[1]


def test_every_exported_name_resolves_and_is_listed_once():
    assert len(meshcore.__all__) == len(set(meshcore.__all__))
    for name in meshcore.__all__:
        assert getattr(meshcore, name) is not None, name


def test_type_checkers_see_the_same_names_as_run_time():
    tree = ast.parse((ROOT / "meshcore" / "__init__.py").read_text())
    typed = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for stmt in node.body
        if isinstance(stmt, ast.ImportFrom)
        for alias in stmt.names
    }
    assert typed == set(meshcore.__all__) - {"CONTRACT_VERSION", "__version__", "hookimpl"}


def test_importing_meshcore_stays_cheap():
    code = "import sys, meshcore; print(sorted(m for m in sys.modules if m.startswith(('meshcore.', 'pydantic', 'sqlalchemy'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "sqlalchemy" not in out and "meshcore.reconciler" not in out, out


def test_the_plugins_in_this_repository_import_only_the_public_api():
    """A plugin that needs an internal module shows a gap in the public API."""
    offenders = []
    for path in (ROOT / "plugins").glob("*/meshcore_*/**/*.py"):
        if "emulator" in path.parts[-2]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("meshcore."):
                offenders.append(f"{path.relative_to(ROOT)}: from {node.module} import ...")
            if isinstance(node, ast.Import):
                offenders += [
                    f"{path.relative_to(ROOT)}: import {a.name}"
                    for a in node.names
                    if a.name.startswith("meshcore.")
                ]
    assert not offenders, offenders
