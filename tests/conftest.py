"""Shared helpers for the core tests (fixtures come from the meshcore.testing plugin)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

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
