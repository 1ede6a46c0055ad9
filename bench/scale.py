"""One scale measurement on the fake platform, in a process of its own (run by ``bench/run.py scale``).

    python bench/scale.py N STATE_DIR

Provisions N tenants, then times ``plan`` and a no-op ``apply``, the time from the
start of ``plan`` to its first cloud call, and the peak RSS of this process
(meshcore itself: the fake cloud is a SQLite file). Prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import yaml

from meshcore import gc_settings
from meshcore.config import load_config
from meshcore.plugins import PluginRegistry
from meshcore.reconciler import Reconciler
from meshcore.state import StateStore
from meshcore.testing.fake_cloud import FakeCloud
from meshcore.testing.fake_platform import FakePlatformPlugin


def config(n: int, cloud: Path) -> dict:
    users = [{"id": f"user{i}", "email": f"user{i}@example.com"} for i in range(10)]
    workspaces = [
        {
            "id": f"ws{w}",
            "projects": [
                {
                    "id": f"p{p}",
                    "bindings": [{"user": f"user{p % 10}", "role": "admin"}],
                    "tenants": [{"platform": "demo", "landing_zone": "sandbox"}],
                }
                for p in range(min(10, n - w * 10))
            ],
        }
        for w in range((n + 9) // 10)
    ]
    return {
        "version": 1,
        "settings": {"concurrency": 8, "max_deletions_per_run": 5},
        "platforms": [{"id": "demo", "type": "fake", "config": {"state_file": str(cloud)}}],
        "landing_zones": [
            {
                "id": "sandbox",
                "platform": "demo",
                "config": {
                    "folder": "/sandbox",
                    "guardrails": ["g1"],
                    "role_mappings": {"admin": "operator"},
                },
            }
        ],
        "users": users,
        "workspaces": workspaces,
    }


def main() -> None:
    gc_settings.tune()  # as the command line does
    n, directory = int(sys.argv[1]), Path(sys.argv[2])
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config(n, directory / "cloud.db")))
    registry = PluginRegistry()
    registry.register("fake", FakePlatformPlugin())
    store = StateStore.open(f"sqlite:///{directory / 'state.db'}")
    first: list[float] = []
    read = FakeCloud.read

    def timed_read(self, op: str, subject: str = "") -> None:  # type: ignore[no-untyped-def]
        if not first:
            first.append(time.perf_counter())
        read(self, op, subject)

    FakeCloud.read = timed_read  # type: ignore[method-assign]
    out = {"n": n}
    t0 = time.perf_counter()
    loaded = load_config(path, registry)
    out["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = Reconciler(loaded, store, registry).apply()
    out["provision_s"] = time.perf_counter() - t0
    out["failed"] = len(report.failed)
    first.clear()
    t0 = time.perf_counter()
    Reconciler(load_config(path, registry), store, registry).plan()
    out["plan_s"] = time.perf_counter() - t0
    out["first_call_s"] = first[0] - t0 if first else None
    t0 = time.perf_counter()
    Reconciler(load_config(path, registry), store, registry).apply()
    out["noop_s"] = time.perf_counter() - t0
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
