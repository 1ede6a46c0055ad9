"""The reconcile loop against the fake platform: outcomes, call counts, isolation, crashes, deletion."""

from __future__ import annotations

import datetime as dt

import pytest

from meshcore.config import load_config
from meshcore.errors import LockHeldError, RetryableError
from meshcore.reconciler import Reconciler, approve_deletion
from meshcore.testing.fake_platform import SimulatedCrash


@pytest.fixture
def setup(write_config, meshcore_registry, state_store, fake_plugin, base_config):
    """Returns run(config_dict=None, **kw) -> (reconciler, cloud)."""

    def make(cfg=None, today=None):
        loaded = load_config(write_config(cfg or base_config), meshcore_registry)
        rec = Reconciler(loaded, state_store, meshcore_registry, sleep=lambda _s: None, today=today)
        cloud = fake_plugin.cloud(loaded.platforms["demo"])
        return rec, cloud

    return make


def by_key(report):
    return {r.key: r for r in report.results}


def test_apply_creates_tenants_in_place_and_second_apply_writes_nothing(setup, state_store):
    rec, cloud = setup()
    report = rec.apply()
    assert {r.status for r in report.results} == {"changed"}
    assert len(cloud.tenants) == 3
    tid = by_key(report)["ws1/p1@demo"].platform_tenant_id
    t = cloud.tenants[tid]
    assert t["name"] == "ws1-p1" and t["folder"] == "/sandbox" and t["tags"] == {"env": "dev"}
    assert t["guardrails"] == ["g1"]
    assert t["access"] == {"operator": ["alice"], "user": ["bob"]}
    writes = cloud.write_count
    second = rec.apply()
    assert {r.status for r in second.results} == {"ok"}
    assert cloud.write_count == writes, "a converged second apply made write calls"
    assert [t.platform_tenant_id for t in state_store.tenants()] and all(
        t.platform_tenant_id for t in state_store.tenants()
    )


def test_plan_shows_creates_then_nothing_and_makes_no_writes(setup):
    rec, cloud = setup()
    plan = rec.plan()
    assert all(any(c.action == "create" for c in item.changes) for item in plan.plan)
    assert cloud.write_count == 0
    rec.apply()
    assert all(item.changes == [] for item in rec.plan().plan)


def test_drift_is_planned_and_repaired(setup):
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p1@demo"].platform_tenant_id
    cloud.tenants[tid]["folder"] = "/moved-by-hand"
    cloud.tenants[tid]["access"]["operator"].append("mallory")
    item = next(i for i in rec.plan().plan if i.key == "ws1/p1@demo")
    assert {c.resource for c in item.changes} == {"folder", "access"}
    assert by_key(rec.apply())["ws1/p1@demo"].status == "changed"
    assert cloud.tenants[tid]["folder"] == "/sandbox"
    assert cloud.tenants[tid]["access"] == {"operator": ["alice"], "user": ["bob"]}


def test_one_failing_tenant_does_not_stop_the_others_and_every_step_is_recorded(setup, state_store):
    rec, cloud = setup()
    cloud.fail["create:ws1-p2"] = RuntimeError("simulated platform outage")
    report = rec.apply()
    results = by_key(report)
    assert results["ws1/p2@demo"].status == "failed"
    assert "simulated platform outage" in results["ws1/p2@demo"].message
    assert "plugin 'fake'" in results["ws1/p2@demo"].message
    assert results["ws1/p1@demo"].status == results["ws2/p3@demo"].status == "changed"
    steps = state_store.steps(run_id=report.run_id)
    assert {(s.tenant_key, s.name, s.status) for s in steps} >= {
        ("ws1/p2@demo", "provision", "failed"),
        ("ws1/p1@demo", "provision", "changed"),
        ("ws1/p1@demo", "access", "changed"),
        ("ws2/p3@demo", "landing-zone", "changed"),
    }
    failed_row = next(t for t in state_store.tenants() if t.key == "ws1/p2@demo")
    assert "simulated platform outage" in failed_row.last_error
    assert state_store.runs(1)[0].status == "failed"
    # the next run converges the failed tenant without duplicating the others
    report = rec.apply()
    assert by_key(report)["ws1/p2@demo"].status == "changed"
    assert len(cloud.tenants) == 3


def test_crash_right_after_create_is_recovered_from_the_journal(setup, state_store):
    rec, cloud = setup()
    cloud.crash_after.add("create")
    with pytest.raises(SimulatedCrash):
        rec.apply()
    created = len(cloud.tenants)
    assert created >= 1
    open_entries = state_store.journal_entries(status="open")
    assert open_entries and all(e.operation_id for e in open_entries)
    report = rec.apply()
    assert not report.failed
    assert by_key(report)  # every tenant reported
    assert len(cloud.tenants) == 3, "the rerun duplicated a tenant created before the crash"
    assert state_store.journal_entries(status="open") == []
    ids = [t.platform_tenant_id for t in state_store.tenants()]
    assert len(set(ids)) == 3 and set(ids) == set(cloud.tenants)


def test_crash_between_intent_and_operation_id_recovers_by_name(setup, state_store, monkeypatch):
    rec, cloud = setup()
    from meshcore.context import JournalEntry

    original = JournalEntry.record_operation
    calls = {"n": 0}

    def dying(self, op):
        if self.key == "ws1/p1@demo" and calls["n"] == 0:
            calls["n"] += 1
            cloud.create("ws1-p1", "lost-op")  # the call went out, the id never got recorded
            raise SimulatedCrash("died before recording the operation id")
        return original(self, op)

    monkeypatch.setattr(JournalEntry, "record_operation", dying)
    with pytest.raises(SimulatedCrash):
        Reconciler(rec.config, state_store, rec.registry, sleep=lambda _s: None).apply()
    monkeypatch.setattr(JournalEntry, "record_operation", original)
    rec.apply()
    names = sorted(t["name"] for t in cloud.tenants.values())
    assert names == ["ws1-p1", "ws1-p2", "ws2-p3"], names


def test_retryable_errors_are_retried_with_backoff(setup):
    rec, cloud = setup()
    sleeps = []
    rec.sleep = sleeps.append
    cloud.fail["set-guardrails"] = RetryableError("throttled")
    report = rec.apply()
    assert {r.status for r in report.results} == {"changed"}
    assert len(sleeps) == 1


def test_removed_tenant_is_marked_revoked_and_waits_for_approval(setup, base_config, state_store):
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p2@demo"].platform_tenant_id  # p2 lives in 'prod': no auto-approval
    assert cloud.tenants[tid]["access"] == {"reader": ["bob"]}
    del base_config["workspaces"][0]["projects"][1]
    rec2, _ = setup(base_config)
    result = by_key(rec2.apply())["ws1/p2@demo"]
    assert result.status == "waiting" and "meshcore approve ws1/p2@demo" in result.message
    assert cloud.tenants[tid]["access"] == {}, "access must be revoked at once"
    assert cloud.tenants[tid]["status"] == "ACTIVE", "nothing may be closed before approval"
    assert by_key(rec2.apply())["ws1/p2@demo"].status == "waiting"
    print(approve_deletion(state_store, "ws1/p2@demo"))
    assert by_key(rec2.apply())["ws1/p2@demo"].status == "in_progress"
    assert cloud.tenants[tid]["status"] == "CLOSING"
    assert by_key(rec2.apply())["ws1/p2@demo"].status == "changed"
    assert cloud.tenants[tid]["status"] == "CLOSED"
    row = next(t for t in state_store.tenants(include_deleted=True) if t.key == "ws1/p2@demo")
    assert row.status == "DELETED" and row.deleted_at is not None
    actions = [a.action for a in state_store.audit_trail("ws1/p2@demo")]
    assert actions == [
        "tenant.created",
        "tenant.provisioned",
        "tenant.marked_for_deletion",
        "tenant.deletion_approved",
        "tenant.deleted",
    ]
    assert "ws1/p2@demo" not in {r.key for r in rec2.apply().results}


def test_auto_approved_landing_zone_deletes_without_approval(setup, base_config, state_store):
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws2/p3@demo"].platform_tenant_id
    base_config["workspaces"].pop()
    rec2, _ = setup(base_config)
    assert by_key(rec2.apply())["ws2/p3@demo"].status == "in_progress"
    assert by_key(rec2.apply())["ws2/p3@demo"].status == "changed"
    assert cloud.tenants[tid]["status"] == "CLOSED"


def test_readding_before_approval_restores_the_tenant(setup, base_config):
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p2@demo"].platform_tenant_id
    removed = base_config["workspaces"][0]["projects"].pop(1)
    setup(base_config)[0].apply()
    base_config["workspaces"][0]["projects"].append(removed)
    rec3, _ = setup(base_config)
    result = by_key(rec3.apply())["ws1/p2@demo"]
    assert result.action == "restore" and result.status == "changed"
    assert result.platform_tenant_id == tid and cloud.tenants[tid]["access"] == {"reader": ["bob"]}


def test_expired_binding_is_revoked(setup, base_config):
    base_config["workspaces"][0]["projects"][0]["bindings"][0]["expires"] = "2026-06-30"
    rec, cloud = setup(base_config, today=dt.date(2026, 6, 30))
    tid = by_key(rec.apply())["ws1/p1@demo"].platform_tenant_id
    assert "operator" in cloud.tenants[tid]["access"]
    rec_later, _ = setup(base_config, today=dt.date(2026, 7, 1))
    rec_later.apply()
    assert cloud.tenants[tid]["access"] == {"user": ["bob"]}


def test_import_adopts_an_existing_tenant_and_refuses_a_taken_one(setup, base_config, fake_plugin):
    rec, cloud = setup()
    existing = cloud.add_external("legacy")
    base_config["workspaces"][1]["projects"][0]["tenants"][0]["import_id"] = existing
    rec, _ = setup(base_config)
    result = by_key(rec.apply())["ws2/p3@demo"]
    assert result.platform_tenant_id == existing and len(cloud.tenants) == 3
    assert cloud.tenants[existing]["tags"] == {}  # converged; p3 has no replicated tags
    assert cloud.tenants[existing]["name"] == "ws2-p3"


def test_a_second_runner_is_refused_while_the_lease_is_held(setup, state_store):
    rec, _ = setup()
    with rec.lease(), pytest.raises(LockHeldError, match="another runner"):
        rec.apply()
    assert rec.apply().results  # released afterwards


def test_lease_of_a_dead_process_on_this_host_is_taken_over(setup, state_store):
    import socket
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    holder = f"{socket.gethostname()}:{dead.stdout.strip()}:deadbeef"
    state_store.acquire_lease("apply", holder, 600)
    rec, _ = setup()
    assert rec.apply().results
    alive_holder = f"{socket.gethostname()}:1:cafe"  # pid 1 is alive
    state_store.acquire_lease("apply", alive_holder, 600)
    with pytest.raises(LockHeldError):
        rec.apply()


def test_landing_zone_change_moves_the_tenant(setup, base_config, state_store):
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p1@demo"].platform_tenant_id
    base_config["workspaces"][0]["projects"][0]["tenants"][0]["landing_zone"] = "prod"
    rec2, _ = setup(base_config)
    assert by_key(rec2.apply())["ws1/p1@demo"].status == "changed"
    assert cloud.tenants[tid]["folder"] == "/prod" and cloud.tenants[tid]["guardrails"] == ["g1", "g2"]
    assert next(t for t in state_store.tenants() if t.key == "ws1/p1@demo").landing_zone == "prod"
