"""Fixtures of meshcore's test kit (enabled with ``-p meshcore.testing``).

Enable it with ``-p meshcore.testing`` on the command line or
``pytest_plugins = ["meshcore.testing"]`` in a ``conftest.py``. It provides:

* ``meshcore_registry``: a :class:`~meshcore.plugins.PluginRegistry` with the
  in-memory fake platform registered as type ``fake``;
* ``fake_plugin``: that fake platform plugin (reset per test); its clouds count
  reads and writes and can inject failures;
* ``state_store``: a fresh SQLite state store in a temporary directory;
* ``write_config``: writes a YAML config (a dict or text) to a temporary file
  and returns its path.

Plugin authors subclass :class:`meshcore.testing.conformance.PlatformPluginConformance`
to check their plugin against the hook contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshcore.plugins import PluginRegistry
from meshcore.redaction import clear_secrets
from meshcore.state import StateStore
from meshcore.testing.fake_platform import FakePlatformPlugin
from meshcore.testing.fake_platform import plugin as _fake

__all__ = ["FakePlatformPlugin"]


@pytest.fixture
def fake_plugin() -> Iterator[FakePlatformPlugin]:
    _fake.reset()
    yield _fake
    _fake.reset()


@pytest.fixture
def meshcore_registry(fake_plugin: FakePlatformPlugin) -> PluginRegistry:
    registry = PluginRegistry()
    info = registry.register("fake", fake_plugin)
    assert info.ok, info.error
    return registry


@pytest.fixture
def state_store(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    store.close()
    clear_secrets()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    counter = {"n": 0}

    def write(content: dict[str, Any] | str, name: str | None = None) -> Path:
        counter["n"] += 1
        path = tmp_path / (name or f"config{counter['n']}.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text)
        return path

    return write
