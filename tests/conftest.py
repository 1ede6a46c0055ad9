"""Shared helpers for the core tests (more fixtures come from the meshcore.testing plugin).

State-store tests run on both backends: ``store_url`` (and ``state_store``, which overrides
the test kit's SQLite-only fixture) is parametrised over ``sqlite`` and ``postgresql``; see
``state_testlib`` for what the PostgreSQL runs need.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshcore.redaction import clear_secrets
from meshcore.state import StateStore
from signal_testlib import watch_cli_signals
from state_testlib import postgres_database

BASE: dict[str, Any] = {
    "version": 1,
    "platforms": [{"id": "demo", "type": "fake", "config": {}}],
    "landing_zones": [
        {
            "id": "sandbox",
            "platform": "demo",
            "deletion": {"auto_approve": True},
            "config": {"folder": "/sandbox", "guardrails": ["g1"], "role_mappings": {"admin": "operator"}},
        },
        {"id": "prod", "platform": "demo", "config": {"folder": "/prod", "guardrails": ["g1", "g2"]}},
    ],
    "tag_definitions": [{"key": "environment", "replication_key": "env", "allowed_values": ["dev", "prod"]}],
    "users": [{"id": "alice", "email": "alice@example.com"}, {"id": "bob", "email": "bob@example.com"}],
    "groups": [{"id": "devs", "members": ["bob"]}],
    "workspaces": [
        {
            "id": "ws1",
            "projects": [
                {
                    "id": "p1",
                    "tags": {"environment": "dev"},
                    "bindings": [{"user": "alice", "role": "admin"}, {"group": "devs", "role": "user"}],
                    "tenants": [{"platform": "demo", "landing_zone": "sandbox"}],
                },
                {
                    "id": "p2",
                    "bindings": [{"user": "bob", "role": "reader"}],
                    "tenants": [{"platform": "demo", "landing_zone": "prod"}],
                },
            ],
        },
        {
            "id": "ws2",
            "projects": [
                {"id": "p3", "tenants": [{"platform": "demo", "landing_zone": "sandbox"}]},
            ],
        },
    ],
}


@pytest.fixture
def base_config() -> dict[str, Any]:
    """A valid config dict with three tenants on the fake platform; tests mutate their copy."""
    return copy.deepcopy(BASE)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty state store on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
def state_store(store_url: str) -> Iterator[StateStore]:
    """A fresh state store on each backend (overrides the test kit's SQLite one in the core tests)."""
    store = StateStore.open(store_url)
    yield store
    store.close()
    clear_secrets()


@pytest.fixture
def signal_handled(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once the CLI's signal handler has run. Python runs a handler in the main thread when that
    thread next can, so a worker that sends itself SIGTERM waits on this before it goes on; otherwise
    a fast worker could start the next tenant before the run knows it was stopped."""
    handled = threading.Event()
    watch_cli_signals(monkeypatch, handled)
    return handled
