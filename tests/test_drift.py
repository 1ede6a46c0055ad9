"""Incremental drift checks (``settings.drift_check.mode: incremental``) on the fake platform's change feed.

The feed names every tenant written since a time; ``cloud.unfed`` hides a tenant's next write from it
(a change the feed cannot see, like one made inside a tenant), which only the periodic full check finds.
"""

from __future__ import annotations

import datetime as dt

import pytest

from meshcore.config import load_config
from meshcore.drift import Feed, digest, unread
from meshcore.errors import ConfigError, PlatformError
from meshcore.lifecycle import Lifecycle, Task
from meshcore.reconciler import Reconciler
from meshcore.state.tables import PlatformRow, TenantRow


@pytest.fixture
def incremental(base_config):
    base_config["settings"] = {"drift_check": {"mode": "incremental", "full_every_hours": 24}}
    return base_config


@pytest.fixture
def make(write_config, meshcore_registry, state_store, fake_plugin):
    def make(cfg):
        loaded = load_config(write_config(cfg), meshcore_registry)
        rec = Reconciler(loaded, state_store, meshcore_registry, sleep=lambda _s: None)
        return rec, fake_plugin.cloud(loaded.platforms["demo"])

    return make


def statuses(report):
    return {i.key: i.status for i in report.tenants}


def observed(cloud) -> int:
    return sum(n for op, n in cloud.reads.items() if op.startswith("observe-tenant"))


def settle(make, cfg):
    """Provision, then the run that verifies (the feed names the tenants the first run wrote)."""
    rec, cloud = make(cfg)
    assert set(statuses(rec.apply()).values()) == {"changed"}
    assert set(statuses(rec.apply()).values()) == {"ok"}
    return rec, cloud


def test_unchanged_tenants_are_not_read_and_nothing_is_written(make, incremental, state_store):
    rec, cloud = settle(make, incremental)
    cloud.reads.clear()
    report = rec.apply()
    assert set(statuses(report).values()) == {"ok"}
    assert all("not read (incremental drift check" in i.message for i in report.tenants)
    assert observed(cloud) == 0, dict(cloud.reads)
    assert cloud.reads["changes"] == 1  # the feed: one read for the platform
    assert all(row.verified_at is not None for row in state_store.tenants())


def test_a_change_the_feed_names_is_read_and_repaired_and_only_that_tenant_is_read(make, incremental):
    rec, cloud = settle(make, incremental)
    tid = next(t for t, body in cloud.tenants.items() if body["name"].endswith("p2"))
    cloud.update(tid, "drift", tags={"env": "hacked"})
    cloud.reads.clear()
    report = rec.apply()
    assert statuses(report)["ws1/p2@demo"] == "changed"
    assert cloud.tenants[tid]["tags"].get("env") != "hacked"
    assert observed(cloud) == 1, dict(cloud.reads)


def test_a_change_the_feed_cannot_see_is_found_by_the_next_full_check(make, incremental, state_store):
    rec, cloud = settle(make, incremental)
    tid = next(t for t, body in cloud.tenants.items() if body["name"].endswith("p2"))
    cloud.unfed.add(tid)
    cloud.update(tid, "inside", tags={"env": "hacked"})
    assert statuses(rec.apply())["ws1/p2@demo"] == "ok"  # not read: the feed does not name it
    assert cloud.tenants[tid]["tags"]["env"] == "hacked"
    with state_store.session() as s:  # the last full check was 25 hours ago
        row = s.get(PlatformRow, "demo")
        row.full_check_at = row.full_check_at - dt.timedelta(hours=25)
    cloud.reads.clear()
    report = rec.apply()
    assert statuses(report)["ws1/p2@demo"] == "changed"
    assert cloud.tenants[tid]["tags"].get("env") != "hacked"
    assert observed(cloud) == 3, "a full check reads every tenant"


def test_a_tenant_whose_desired_state_changed_is_read(make, incremental):
    rec, cloud = settle(make, incremental)
    incremental["workspaces"][0]["projects"][0]["bindings"] = []  # alice and devs lose access to p1
    rec, cloud = make(incremental)
    cloud.reads.clear()
    report = rec.apply()
    assert statuses(report)["ws1/p1@demo"] == "changed"
    assert observed(cloud) == 1, dict(cloud.reads)
    tid = next(t for t, body in cloud.tenants.items() if body["name"].endswith("p1"))
    assert cloud.tenants[tid].get("access", {}) in ({}, [])


def test_a_failing_feed_means_a_full_check(make, incremental):
    rec, cloud = settle(make, incremental)
    cloud.fail["changes"] = PlatformError("the audit log is unreachable")
    cloud.reads.clear()
    assert set(statuses(rec.apply()).values()) == {"ok"}
    assert observed(cloud) == 3


def test_full_mode_reads_every_tenant_and_records_no_verification(make, base_config, state_store):
    rec, cloud = make(base_config)
    rec.apply()
    cloud.reads.clear()
    rec.apply()
    assert observed(cloud) == 3 and cloud.reads["changes"] == 0
    assert all(row.verified_at is None for row in state_store.tenants())


def test_a_tenant_not_read_by_the_last_full_check_is_read(base_config, meshcore_registry, write_config):
    """E.g. the full check was stopped before it reached the tenant: its older verification does not count."""
    loaded = load_config(write_config(base_config), meshcore_registry)
    from meshcore.desired import desired_tenants

    spec = desired_tenants(loaded)[0].model_copy(update={"platform_tenant_id": "t-1"})
    platform = loaded.platforms["demo"]
    now = dt.datetime.now(dt.UTC)
    row = TenantRow(
        workspace=spec.workspace.id,
        project=spec.project.id,
        platform="demo",
        landing_zone=spec.landing_zone.id,
        status="ACTIVE",
        platform_tenant_id="t-1",
        provisioning="ready",
        last_error="",
        verified_at=now - dt.timedelta(hours=2),
        desired_digest=digest(spec, platform),
    )
    task = Task(spec.key, Lifecycle.UPDATE, spec, row)
    assert unread(task, Feed(full=False, full_check_at=now - dt.timedelta(hours=3)), platform) is not None
    assert unread(task, Feed(full=False, full_check_at=now - dt.timedelta(hours=1)), platform) is None
    assert (
        unread(
            task,
            Feed(full=False, changed=frozenset({"t-1"}), full_check_at=now - dt.timedelta(hours=3)),
            platform,
        )
        is None
    )
    assert unread(task, Feed(full=True), platform) is None


def test_incremental_checks_need_a_single_runner(base_config, meshcore_registry, write_config):
    base_config["settings"] = {"runners": "shared", "drift_check": {"mode": "incremental"}}
    with pytest.raises(ConfigError) as raised:
        load_config(write_config(base_config), meshcore_registry)
    assert any(
        p.path == "settings" and "drift_check.mode: incremental needs runners: single" in p.message
        for p in raised.value.problems
    ), raised.value.problems


def test_a_stopped_run_leaves_the_feed_where_it_was(make, incremental, state_store):
    """A tenant the feed named but a stopped run never started is named again by the next run's feed."""
    import threading

    rec, cloud = settle(make, incremental)
    tid = next(t for t, body in cloud.tenants.items() if body["name"].endswith("p3"))
    cloud.update(tid, "drift", tags={"env": "hacked"})
    incremental["settings"]["concurrency"] = 1
    stop = threading.Event()
    rec, cloud = make(incremental)
    rec.stop, rec.on_progress = stop, lambda item: stop.set()  # stops after the first tenant
    report = rec.apply()
    assert statuses(report)["ws2/p3@demo"] == "not_run"
    rec, cloud = make(incremental)
    assert statuses(rec.apply())["ws2/p3@demo"] == "changed"
    assert cloud.tenants[tid]["tags"].get("env") != "hacked"


def test_a_change_of_the_platform_config_means_every_tenant_is_read(make, incremental):
    rec, cloud = settle(make, incremental)
    incremental["platforms"][0]["config"] = {"daily_cost": "2.00"}
    rec, cloud = make(incremental)
    cloud.reads.clear()
    rec.apply()
    assert observed(cloud) == 3, "the platform's settings shape every tenant"


def test_a_feed_answer_without_a_time_zone_means_a_full_check_not_a_crash(make, incremental, fake_plugin):
    rec, cloud = settle(make, incremental)
    original = cloud.changed_since
    cloud.changed_since = lambda since: (_ for _ in ()).throw(TypeError("naive"))  # type: ignore[method-assign]
    cloud.reads.clear()
    report = rec.apply()
    cloud.changed_since = original  # type: ignore[method-assign]
    assert set(statuses(report).values()) == {"ok"} and observed(cloud) == 3
