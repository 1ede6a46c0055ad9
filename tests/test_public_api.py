"""The public API for plugin authors is exactly what ``meshcore`` exports, and it is enough."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

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


class _Sink:
    def __init__(self) -> None:
        self.seen: list[tuple[object, ...]] = []

    def cloud_call(self, platform: str, operation: str, outcome: str) -> None:
        self.seen.append(("call", platform, operation, outcome))

    def retry(self, platform: str, operation: str, throttled: bool) -> None:
        self.seen.append(("retry", platform, operation, throttled))


class _BrokenSink:
    def cloud_call(self, platform: str, operation: str, outcome: str) -> None:
        raise RuntimeError("sink down")

    def retry(self, platform: str, operation: str, throttled: bool) -> None:
        raise RuntimeError("sink down")


def test_plugins_report_cloud_calls_and_retries_through_the_public_api():
    from meshcore import telemetry

    assert {"record_cloud_call", "record_retry"} <= set(meshcore.__all__)
    sink = _Sink()
    previous = telemetry.install(sink)
    try:
        meshcore.record_cloud_call("aws", "organizations.CreateAccount", "throttled")
        meshcore.record_retry("aws", "organizations.CreateAccount", throttled=True)
        telemetry.install(_BrokenSink())
        meshcore.record_cloud_call("aws", "organizations.ListAccounts")  # a failing sink fails no call
        meshcore.record_retry("aws", "organizations.ListAccounts", throttled=False)
    finally:
        telemetry.install(previous)
    assert sink.seen == [
        ("call", "aws", "organizations.CreateAccount", "throttled"),
        ("retry", "aws", "organizations.CreateAccount", True),
    ]
    with pytest.raises(ValueError, match="outcome must be one of ok, throttled, error"):
        meshcore.record_cloud_call("aws", "organizations.ListAccounts", "maybe")
