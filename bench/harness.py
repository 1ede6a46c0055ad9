"""Shared harness for the benchmarks: a sandbox organization, N generated tenants, per-operation call counts.

Calls are counted client-side on botocore's ``before-call`` event (one count per
HTTP request sent, retries included); the same hook can add latency per call.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from meshcore.config import load_config
from meshcore.plugins import PluginRegistry
from meshcore.reconciler import Reconciler
from meshcore.state import StateStore
from meshcore_aws import plugin as aws_plugin
from meshcore_aws import sessions as aws_sessions
from meshcore_aws.counting import CallCounter
from meshcore_aws.run import reset_sessions
from meshcore_aws.sandbox import Sandbox


def config(n: int, *, poll: float = 0.0, concurrency: int = 8, access: bool = True) -> dict[str, Any]:
    """N tenants in 10-project workspaces, two landing zones, one binding each."""
    users = [{"id": f"user{i}", "email": f"user{i}@example.com"} for i in range(3)]
    workspaces = []
    for w in range((n + 9) // 10):
        projects = []
        for p in range(min(10, n - w * 10)):
            projects.append(
                {
                    "id": f"p{p}",
                    "tags": {"environment": "dev" if p % 2 else "prod"},
                    "bindings": [{"user": f"user{p % 3}", "role": "admin"}],
                    "tenants": [{"platform": "aws", "landing_zone": "dev" if p % 2 else "prod"}],
                }
            )
        workspaces.append({"id": f"ws{w}", "projects": projects})
    platform: dict[str, Any] = {
        "management": "base",
        "account_email_pattern": "aws+{workspace}-{project}@bench.example.com",
        "poll_interval_seconds": poll,
        "create_wait_seconds": 600,
    }
    if access:
        platform["identity_center"] = {
            "region": "us-east-1",
            "permission_sets": [
                {"name": "Developer", "managed_policies": ["arn:aws:iam::aws:policy/PowerUserAccess"]}
            ],
            "role_mappings": {"admin": ["Developer"]},
        }
    return {
        "settings": {"concurrency": concurrency},
        "platforms": [{"id": "aws", "type": "aws", "config": platform}],
        "landing_zones": [
            {"id": "dev", "platform": "aws", "config": {"ou": "/Workloads/Dev", "create_ou": True}},
            {"id": "prod", "platform": "aws", "config": {"ou": "/Workloads/Prod", "create_ou": True}},
        ],
        "tag_definitions": [{"key": "environment", "replication_key": "env"}],
        "users": users,
        "workspaces": workspaces,
    }


@contextmanager
def sandbox(latency: float = 0.0):
    """A bootstrapped sandbox with sandbox users for the generated bindings; yields (box, counter)."""
    box = Sandbox()
    box.start()
    try:
        box.bootstrap()
        store = box.client("identitystore")
        instance = box.client("sso-admin").list_instances()["Instances"][0]
        for i in range(3):
            store.create_user(
                IdentityStoreId=instance["IdentityStoreId"],
                UserName=f"user{i}",
                DisplayName=f"u{i}",
                Name={"GivenName": "u", "FamilyName": str(i)},
            )
        os.environ.update(box.env())
        counter = CallCounter(latency)
        aws_sessions.EVENT_HOOKS[:] = counter.hooks()
        reset_sessions()
        yield box, counter
    finally:
        aws_sessions.EVENT_HOOKS[:] = []
        box.stop()


def reconciler(cfg: dict[str, Any], state_dir: str | None = None) -> Reconciler:
    directory = Path(state_dir or tempfile.mkdtemp(prefix="meshcore-bench-"))
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    registry = PluginRegistry()
    registry.register("aws", aws_plugin)
    store = StateStore.open(f"sqlite:///{directory / 'state.db'}")
    return Reconciler(load_config(path, registry), store, registry)


def timed(fn: Any) -> tuple[Any, float, float]:
    """(result, seconds, peak RSS MiB of the process so far — the in-process emulator included)."""
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result, seconds, peak
