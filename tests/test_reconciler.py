"""The reconcile loop against the fake platform: outcomes, call counts, isolation, crashes, deletion."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event

from meshcore.config import load_config
from meshcore.errors import LockHeldError
from meshcore.reconciler import Reconciler, approve_deletion
from meshcore.testing.fake_platform import SimulatedCrash


@pytest.fixture
def setup(write_config, meshcore_registry, state_store, fake_plugin, base_config):
    """Returns make(config_dict=None, today=None) -> (reconciler, cloud)."""

    def make(cfg=None, today=None):
        loaded = load_config(write_config(cfg or base_config), meshcore_registry)
        rec = Reconciler(loaded, state_store, meshcore_registry, sleep=lambda _s: None, today=today)
        cloud = fake_plugin.cloud(loaded.platforms["demo"])
        return rec, cloud

    return make


def by_key(report):
    return {i.key: i for i in report.tenants}


def test_apply_creates_tenants_in_place_and_second_apply_writes_nothing(setup, state_store):
    rec, cloud = setup()
    report = rec.apply()
    assert {i.status for i in report.tenants} == {"changed"}
    assert len(cloud.tenants) == 3
    tid = by_key(report)["ws1/p1@demo"].platform_tenant_id
    t = cloud.tenants[tid]
    assert t["name"] == "ws1-p1" and t["folder"] == "/sandbox" and t["tags"] == {"env": "dev"}
    assert t["guardrails"] == ["g1"]
    assert t["access"] == {"operator": ["alice"], "user": ["bob"]}
    assert cloud.folders == {"/sandbox": {"guardrails": ["g1"]}, "/prod": {"guardrails": ["g1", "g2"]}}
    writes = cloud.write_count
    second = rec.apply()
    assert {i.status for i in second.tenants} == {"ok"}
    assert second.platforms == [], "a converged platform reports no shared actions"
    assert cloud.write_count == writes, "a converged second apply made write calls"
    rows = state_store.tenants()
    assert sorted(r.platform_tenant_id for r in rows) == sorted(cloud.tenants)


def test_plan_lists_everything_a_new_tenant_gets_and_apply_runs_exactly_that(setup, state_store):
    rec, cloud = setup()
    plan = rec.plan()
    assert cloud.write_count == 0, "plan made writes"
    p1 = by_key(plan)["ws1/p1@demo"]
    planned = [(a.phase, a.change, a.resource, a.target) for a in p1.actions]
    assert planned == [
        ("tenant", "create", "tenant", "ws1-p1"),
        ("guardrails", "update", "guardrails", "ws1-p1"),
        ("placement", "update", "placement", "ws1-p1"),
        ("access", "create", "access", "operator/alice"),
        ("access", "create", "access", "user/bob"),
    ]
    assert all(a.status == "planned" for i in plan.items for a in i.actions)
    report = rec.apply()
    for before, after in zip(plan.items, report.items, strict=True):
        assert before.key == after.key
        assert [a.key for a in before.actions] == [a.key for a in after.actions], before.key
        assert {a.status for a in after.actions} <= {"changed"}
    steps = [s.name for s in state_store.steps(run_id=report.run_id) if s.tenant_key == "ws1/p1@demo"]
    assert steps == [f"{a.phase} {a.resource} {a.target}" for a in p1.actions], (
        "one step per action, in order"
    )
    assert all(not i.actions for i in rec.plan().items)


def test_drift_is_planned_and_repaired(setup):
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p1@demo"].platform_tenant_id
    cloud.tenants[tid]["folder"] = "/moved-by-hand"
    cloud.tenants[tid]["access"]["operator"].append("mallory")
    item = by_key(rec.plan())["ws1/p1@demo"]
    assert {(a.phase, a.resource, a.target) for a in item.actions} == {
        ("placement", "placement", "ws1-p1"),
        ("revoke", "access", "operator/mallory"),
    }
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
    steps = {(s.tenant_key, s.name, s.status) for s in state_store.steps(run_id=report.run_id)}
    assert ("ws1/p2@demo", "tenant tenant ws1-p2", "failed") in steps
    assert ("ws1/p2@demo", "guardrails guardrails ws1-p2", "blocked") in steps
    assert ("ws1/p1@demo", "access access operator/alice", "changed") in steps
    failed_row = next(t for t in state_store.tenants() if t.key == "ws1/p2@demo")
    assert "simulated platform outage" in failed_row.last_error
    assert state_store.runs(1)[0].status == "failed"
    report = rec.apply()  # the next run converges the failed tenant without duplicating the others
    assert by_key(report)["ws1/p2@demo"].status == "changed"
    assert len(cloud.tenants) == 3


def test_no_access_is_granted_when_the_guardrails_did_not_go_on(setup, state_store):
    rec, cloud = setup()
    cloud.fail["set-guardrails:ws1-p1"] = RuntimeError("guardrail service down")
    item = by_key(rec.apply())["ws1/p1@demo"]
    tid = item.platform_tenant_id
    assert item.status == "failed" and "guardrail service down" in item.message
    assert cloud.tenants[tid]["access"] == {}, "access was granted without guardrails"
    assert cloud.tenants[tid]["folder"] == "", "the tenant was placed without its guardrails"
    blocked = {a.key: a.status for a in item.actions}
    assert blocked["access:operator/alice"] == "blocked" and blocked["placement:ws1-p1"] == "blocked"
    assert by_key(rec.apply())["ws1/p1@demo"].status == "changed"
    assert cloud.tenants[tid]["access"] == {"operator": ["alice"], "user": ["bob"]}


def test_folder_guardrails_failing_blocks_creation_of_its_tenants(setup):
    rec, cloud = setup()
    cloud.fail["set-folder-guardrails:/sandbox"] = RuntimeError("policy engine down")
    report = rec.apply()
    assert report.platforms[0].status == "failed"
    for key in ("ws1/p1@demo", "ws2/p3@demo"):
        item = by_key(report)[key]
        assert item.status == "failed" and item.platform_tenant_id is None
        assert "folder-guardrails:/sandbox" in item.message and "policy engine down" in item.message
    assert sorted(t["name"] for t in cloud.tenants.values()) == ["ws1-p2"], "tenants were created unguarded"
    assert {a.status for a in by_key(report)["ws1/p1@demo"].actions} == {"blocked"}


def test_missing_placement_target_fails_before_anything_is_created(setup, base_config, state_store):
    base_config["landing_zones"][0]["config"]["folder"] = "/Workloads/Development"
    base_config["landing_zones"][0]["config"]["create_folder"] = False
    rec, cloud = setup(base_config)
    plan = rec.plan()
    p1 = by_key(plan)["ws1/p1@demo"]
    assert p1.actions[0].status == "blocked"
    assert "folder /Workloads/Development does not exist" in p1.actions[0].message
    report = rec.apply()
    item = by_key(report)["ws1/p1@demo"]
    assert item.status == "failed" and "does not exist" in item.message
    assert "ws1-p1" not in {t["name"] for t in cloud.tenants.values()}, "a tenant was created with no target"
    assert by_key(report)["ws1/p2@demo"].status == "changed", "other landing zones go on"


def test_crash_after_every_write_converges_without_duplicates(setup, state_store, fake_plugin):
    rec, cloud = setup()
    clean = rec.apply()
    writes = cloud.write_count
    expected = {k: cloud.tenants[i.platform_tenant_id] for k, i in by_key(clean).items()}
    for k in range(1, writes + 1):
        fake_plugin.reset()
        state_store.engine.dispose()
        for table in ("tenants", "journal", "resources", "steps", "runs", "audit", "platforms"):
            with state_store.engine.begin() as conn:
                conn.exec_driver_sql(f"DELETE FROM {table}")
        rec, cloud = setup()
        cloud.crash_after_write = k
        with pytest.raises(SimulatedCrash):
            rec.apply()
        report = rec.apply()
        assert not report.failed, (k, [i.message for i in report.failed])
        assert len(cloud.tenants) == 3, f"crash after write {k} duplicated a tenant"
        got = {i.key: cloud.tenants[i.platform_tenant_id] for i in report.tenants}
        assert got == expected, k
        assert state_store.journal_entries(status="open") == []
        assert all(not i.actions for i in rec.plan().items), f"not converged after crash at write {k}"


def test_crash_between_intent_and_operation_id_recovers_by_name(setup, state_store, monkeypatch):
    rec, cloud = setup()
    from meshcore.context import JournalEntry

    original = JournalEntry.record_operation
    calls = {"n": 0}

    def dying(self, op):
        if self.key == "ws1-p1" and calls["n"] == 0:
            calls["n"] += 1
            raise SimulatedCrash("died before recording the operation id")
        return original(self, op)

    monkeypatch.setattr(JournalEntry, "record_operation", dying)
    with pytest.raises(SimulatedCrash):
        rec.apply()
    monkeypatch.setattr(JournalEntry, "record_operation", original)
    report = rec.apply()
    assert not report.failed
    resumed = by_key(report)["ws1/p1@demo"].actions[0]
    assert resumed.change == "create" and "adopt existing tenant" in resumed.detail, resumed
    names = sorted(t["name"] for t in cloud.tenants.values())
    assert names == ["ws1-p1", "ws1-p2", "ws2-p3"], names
    assert state_store.journal_entries(status="open") == []


def test_asynchronous_creation_is_awaited_across_runs(setup, base_config, state_store):
    base_config["platforms"][0]["config"]["create_polls"] = 1
    rec, cloud = setup(base_config)
    first = by_key(rec.apply())["ws1/p1@demo"]
    assert first.status == "in_progress" and first.platform_tenant_id is None
    assert {a.status for a in first.actions[1:]} == {"waiting"}
    assert cloud.tenants == {}, "the tenant is invisible while its creation runs"
    plan = by_key(rec.plan())["ws1/p1@demo"]
    assert plan.actions[0].change == "wait"
    second = by_key(rec.apply())["ws1/p1@demo"]
    assert second.status == "changed" and second.platform_tenant_id
    assert cloud.writes["create"] == 3, "a creation was sent twice"
    assert cloud.tenants[second.platform_tenant_id]["access"] == {"operator": ["alice"], "user": ["bob"]}


def test_removed_tenant_is_marked_revoked_and_waits_for_approval(setup, base_config, state_store):
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p2@demo"].platform_tenant_id  # p2 lives in 'prod': no auto-approval
    assert cloud.tenants[tid]["access"] == {"reader": ["bob"]}
    del base_config["workspaces"][0]["projects"][1]
    rec2, _ = setup(base_config)
    plan = by_key(rec2.plan())["ws1/p2@demo"]
    assert [(a.phase, a.target) for a in plan.actions] == [("revoke", "reader/bob")]
    report = rec2.apply()
    result = by_key(report)["ws1/p2@demo"]
    assert result.status == "waiting" and "meshcore approve ws1/p2@demo" in result.message
    assert report.summary["marked_for_deletion"] == 1 and report.summary["access_revoked"] == 1
    assert cloud.tenants[tid]["access"] == {}, "access must be revoked at once"
    assert cloud.tenants[tid]["status"] == "ACTIVE", "nothing may be closed before approval"
    assert by_key(rec2.apply())["ws1/p2@demo"].status == "waiting"
    approve_deletion(state_store, "ws1/p2@demo")
    assert by_key(rec2.apply())["ws1/p2@demo"].status == "in_progress"
    assert cloud.tenants[tid]["status"] == "CLOSING"
    assert by_key(rec2.apply())["ws1/p2@demo"].status == "changed"
    assert cloud.tenants[tid]["status"] == "CLOSED"
    row = next(t for t in state_store.tenants(include_deleted=True) if t.key == "ws1/p2@demo")
    assert row.status == "DELETED" and row.deleted_at is not None and row.revoked_at is not None
    actions = [a.action for a in state_store.audit_trail("ws1/p2@demo")]
    assert actions == [
        "tenant.created",
        "tenant.bound",
        "tenant.marked_for_deletion",
        "tenant.access_revoked",
        "tenant.deletion_approved",
        "tenant.deleted",
    ]
    assert "ws1/p2@demo" not in by_key(rec2.apply())


def test_a_failed_revocation_is_retried_every_run_and_shown_by_plan(setup, base_config, state_store):
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p2@demo"].platform_tenant_id
    del base_config["workspaces"][0]["projects"][1]
    rec2, _ = setup(base_config)
    cloud.fail["revoke:ws1-p2"] = RuntimeError("identity service down")
    item = by_key(rec2.apply())["ws1/p2@demo"]
    assert item.status == "failed" and "identity service down" in item.message
    assert cloud.tenants[tid]["access"] == {"reader": ["bob"]}
    row = next(t for t in state_store.tenants() if t.key == "ws1/p2@demo")
    assert row.status == "MARKED_FOR_DELETION" and row.revoked_at is None
    plan = by_key(rec2.plan())["ws1/p2@demo"]
    assert [(a.phase, a.target) for a in plan.actions] == [("revoke", "reader/bob")], (
        "plan hides a pending revoke"
    )
    assert by_key(rec2.apply())["ws1/p2@demo"].status == "waiting"
    assert cloud.tenants[tid]["access"] == {}
    assert next(t for t in state_store.tenants() if t.key == "ws1/p2@demo").revoked_at is not None


@pytest.mark.parametrize(
    "failing", ["observe-tenant:ws1-p2", "observe-landing-zone:ws1-p2", "describe-folder:/prod"]
)
def test_revocation_runs_even_when_another_observation_fails(setup, base_config, state_store, failing):
    """A tenant, landing-zone or platform observation that fails never holds up taking access away."""
    from meshcore.errors import PlatformError

    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p2@demo"].platform_tenant_id
    del base_config["workspaces"][0]["projects"][1]
    rec2, _ = setup(base_config)
    cloud.fail[failing] = PlatformError("the policy service is down")
    plan = by_key(rec2.plan())["ws1/p2@demo"]
    assert plan.status == "error" and "the policy service is down" in plan.message
    assert [(a.phase, a.target) for a in plan.actions] == [("revoke", "reader/bob")]
    cloud.fail[failing] = PlatformError("the policy service is down")
    item = by_key(rec2.apply())["ws1/p2@demo"]
    assert item.status == "failed" and "the policy service is down" in item.message
    assert cloud.tenants[tid]["access"] == {}, "access stayed because something else could not be observed"
    row = next(t for t in state_store.tenants() if t.key == "ws1/p2@demo")
    assert row.status == "MARKED_FOR_DELETION" and row.revoked_at is not None


def test_nothing_but_revocation_runs_after_a_failed_observation(setup, base_config):
    """A removed binding is revoked, but a new one is not granted while the guardrails cannot be observed."""
    from meshcore.errors import PlatformError

    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p1@demo"].platform_tenant_id
    assert cloud.tenants[tid]["access"]["operator"] == ["alice"]
    project = base_config["workspaces"][0]["projects"][0]
    project["bindings"] = [{"group": "devs", "role": "user"}, {"user": "alice", "role": "reader"}]
    rec2, _ = setup(base_config)
    cloud.fail["observe-landing-zone:ws1-p1"] = PlatformError("the policy service is down")
    item = by_key(rec2.apply())["ws1/p1@demo"]
    assert item.status == "failed" and "the policy service is down" in item.message
    assert "operator" not in cloud.tenants[tid]["access"], "the removed binding was not revoked"
    assert "reader" not in cloud.tenants[tid]["access"], "granted while the guardrails could not be observed"
    assert by_key(rec2.apply())["ws1/p1@demo"].status == "changed"
    assert cloud.tenants[tid]["access"]["reader"] == ["alice"]


def test_access_added_by_hand_to_a_marked_tenant_is_revoked_again(setup, base_config):
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p2@demo"].platform_tenant_id
    del base_config["workspaces"][0]["projects"][1]
    rec2, _ = setup(base_config)
    rec2.apply()
    cloud.tenants[tid]["access"] = {"reader": ["mallory"]}
    rec2.apply()
    assert cloud.tenants[tid]["access"] == {}


def test_auto_approved_landing_zone_deletes_without_approval(setup, base_config, state_store):
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws2/p3@demo"].platform_tenant_id
    base_config["workspaces"].pop()
    rec2, _ = setup(base_config)
    first = rec2.apply()
    assert by_key(first)["ws2/p3@demo"].status == "in_progress"
    assert first.summary["marked_for_deletion"] == 1 and first.summary["deleted"] == 0
    second = rec2.apply()
    assert by_key(second)["ws2/p3@demo"].status == "changed" and second.summary["deleted"] == 1
    assert cloud.tenants[tid]["status"] == "CLOSED"


def test_more_deletions_than_allowed_are_refused_before_any_change(setup, base_config, state_store):
    from meshcore.errors import RefusedError

    rec, cloud = setup()
    rec.apply()
    writes = cloud.write_count
    base_config["settings"] = {"max_deletions_per_run": 1}
    base_config["workspaces"][0]["projects"] = base_config["workspaces"][0]["projects"][:0]
    rec2, _ = setup(base_config)
    with pytest.raises(RefusedError, match="would mark 2 tenant"):
        rec2.plan()
    with pytest.raises(RefusedError, match="--allow-deletions 2"):
        rec2.apply()
    assert cloud.write_count == writes and {t.status for t in state_store.tenants()} == {"ACTIVE"}
    report = rec2.apply(allow_deletions=2)
    assert report.summary["marked_for_deletion"] == 2


def test_an_empty_config_never_empties_the_state(setup, base_config, state_store):
    from meshcore.errors import RefusedError

    rec, cloud = setup()
    rec.apply()
    base_config["workspaces"] = []
    rec2, _ = setup(base_config)
    with pytest.raises(RefusedError, match="declares no workspaces"):
        rec2.apply()
    assert {t.status for t in state_store.tenants()} == {"ACTIVE"}
    assert all(t["access"] for t in cloud.tenants.values() if t["name"] != "ws2-p3")


def test_readding_before_approval_restores_the_tenant(setup, base_config):
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p2@demo"].platform_tenant_id
    removed = base_config["workspaces"][0]["projects"].pop(1)
    setup(base_config)[0].apply()
    base_config["workspaces"][0]["projects"].append(removed)
    rec3, _ = setup(base_config)
    result = by_key(rec3.apply())["ws1/p2@demo"]
    assert result.lifecycle == "restore" and result.status == "changed"
    assert result.platform_tenant_id == tid and cloud.tenants[tid]["access"] == {"reader": ["bob"]}


def test_readding_a_deleted_project_never_reuses_its_tenant(setup, base_config, state_store):
    rec, cloud = setup()
    old = by_key(rec.apply())["ws2/p3@demo"].platform_tenant_id
    removed = base_config["workspaces"].pop()
    rec2, _ = setup(base_config)
    rec2.apply()
    rec2.apply()
    base_config["workspaces"].append(removed)
    rec3, _ = setup(base_config)
    item = by_key(rec3.apply())["ws2/p3@demo"]
    assert item.status == "changed" and item.platform_tenant_id not in (None, old)
    assert cloud.tenants[old]["status"] == "CLOSED"


def test_expired_binding_is_revoked(setup, base_config):
    base_config["workspaces"][0]["projects"][0]["bindings"][0]["expires"] = "2026-06-30"
    rec, cloud = setup(base_config, today=dt.date(2026, 6, 30))
    tid = by_key(rec.apply())["ws1/p1@demo"].platform_tenant_id
    assert "operator" in cloud.tenants[tid]["access"]
    rec_later, _ = setup(base_config, today=dt.date(2026, 7, 1))
    rec_later.apply()
    assert cloud.tenants[tid]["access"] == {"user": ["bob"]}


def test_import_adopts_an_existing_tenant_and_a_namesake_is_never_adopted(setup, base_config):
    rec, cloud = setup()
    existing = cloud.add_external("legacy")
    namesake = cloud.add_external("ws1-p1")  # made outside meshcore, named like a tenant would be
    base_config["workspaces"][1]["projects"][0]["tenants"][0]["import_id"] = existing
    rec, _ = setup(base_config)
    report = rec.apply()
    result = by_key(report)["ws2/p3@demo"]
    assert result.platform_tenant_id == existing
    assert cloud.tenants[existing]["folder"] == "/sandbox"
    p1 = by_key(report)["ws1/p1@demo"]
    assert p1.status == "failed" and "meshcore did not create it" in p1.message
    assert cloud.tenants[namesake]["access"] == {} and cloud.tenants[namesake]["folder"] == ""


def test_renaming_a_platform_is_refused(setup, base_config, tmp_path, state_store, write_config):
    from meshcore.errors import RefusedError

    base_config["platforms"][0]["config"] = {"state_file": str(tmp_path / "cloud.db")}
    rec, cloud = setup(base_config)
    rec.apply()
    text = write_config(base_config).read_text().replace("demo", "demo2")
    loaded = load_config(write_config(text), rec.registry)
    renamed = Reconciler(loaded, state_store, rec.registry, sleep=lambda _s: None)
    with pytest.raises(RefusedError, match="recorded as platform 'demo'"):
        renamed.plan()
    with pytest.raises(RefusedError, match="recorded as platform 'demo'"):
        renamed.apply()
    assert len(cloud.tenants) == 3 and all(
        t["access"] or t["name"] == "ws2-p3" for t in cloud.tenants.values()
    )


def test_one_cloud_under_two_platform_ids_is_refused_before_anything_is_created(
    setup, base_config, tmp_path, state_store, write_config
):
    from meshcore.errors import RefusedError

    cloud_file = str(tmp_path / "cloud.db")
    base_config["platforms"][0]["config"] = {"state_file": cloud_file}
    base_config["platforms"].append({"id": "copy", "type": "fake", "config": {"state_file": cloud_file}})
    base_config["workspaces"][1]["projects"][0]["tenants"].append(
        {"platform": "copy", "landing_zone": "twin"}
    )
    base_config["landing_zones"].append(
        {"id": "twin", "platform": "copy", "config": {"folder": "/sandbox", "guardrails": ["g1"]}}
    )
    rec, cloud = setup(base_config)
    with pytest.raises(RefusedError, match="both point at"):
        rec.plan()
    with pytest.raises(RefusedError, match="both point at"):
        rec.apply()
    assert cloud.tenants == {} and state_store.tenants() == []


def test_a_second_runner_is_refused_while_the_lease_is_held(setup, state_store):
    rec, _ = setup()
    with rec.lease(), pytest.raises(LockHeldError, match="another runner"):
        rec.apply()
    assert rec.apply().tenants  # released afterwards


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
    assert rec.apply().tenants
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


#: State-store transactions an unchanged tenant costs on a no-op apply (marginal): none. Its resources come
#: from the run's one read of the platform's (meshcore.snapshot), it records no step and its row is not
#: rewritten. A change that adds a transaction per tenant fails here.
NOOP_TRANSACTIONS_PER_TENANT = 0


def test_state_store_transactions_per_unchanged_tenant(setup, state_store, base_config, monkeypatch):
    """Marginal transactions of 10 more unchanged tenants (counted, not timed: the store's cost per tenant)."""
    import copy

    count = {"n": 0}

    def begun(_conn):
        count["n"] += 1

    def grown(n):
        cfg = copy.deepcopy(base_config)
        cfg["workspaces"].append(
            {
                "id": "more",
                "projects": [
                    {
                        "id": f"m{i}",
                        "bindings": [{"user": "alice", "role": "admin"}],
                        "tenants": [{"platform": "demo", "landing_zone": "sandbox"}],
                    }
                    for i in range(n)
                ],
            }
        )
        return cfg

    per_run = {}
    for n in (0, 10):
        rec, _cloud = setup(grown(n))
        assert not rec.apply().failed
        count["n"] = 0
        event.listen(state_store.engine, "begin", begun)  # every transaction, whichever way it is opened
        try:
            report = rec.apply()
        finally:
            event.remove(state_store.engine, "begin", begun)
        assert {i.status for i in report.tenants} == {"ok"}
        per_run[n] = count["n"]
    marginal = (per_run[10] - per_run[0]) / 10
    assert marginal <= NOOP_TRANSACTIONS_PER_TENANT, per_run


def test_a_lease_left_behind_by_a_failed_release_is_taken_back_by_its_own_process(
    setup, state_store, monkeypatch
):
    """The database was unreachable as the run ended, so the release failed: the next run of this process
    takes its own leftover lease back at once instead of waiting for it to expire."""
    from meshcore.errors import StateStoreError

    rec, _cloud = setup()
    release = type(state_store).release_lease

    def unreachable(self, name, holder):
        raise StateStoreError("cannot use state store: connection refused")

    monkeypatch.setattr(type(state_store), "release_lease", unreachable)
    assert not rec.apply().failed
    left = state_store.lease_holder("apply")
    assert left is not None, "the lease stays behind when its release fails"
    monkeypatch.setattr(type(state_store), "release_lease", release)
    second = rec.apply()
    assert {i.status for i in second.tenants} == {"ok"}
    assert state_store.lease_holder("apply") is None
    assert any(a.action == "lease.taken_over" for a in state_store.audit_trail())


def test_a_runner_whose_lease_was_taken_over_starts_no_further_tenant(setup, state_store, monkeypatch):
    """Another runner holds the apply lease now (this one's expired unseen): this one finishes the tenant it
    is on and starts no other, so two runners never work on one state and a copy read under the lease
    (meshcore.snapshot) is never trusted past it."""
    import meshcore.reconciler as reconciler_module

    rec, _cloud = setup()
    rec.concurrency = 1
    monkeypatch.setattr(reconciler_module, "LEASE_TTL", 0.15)  # renewed every 0.05 s
    monkeypatch.setattr(type(state_store), "renew_lease", lambda self, name, holder, ttl: False)
    # the first tenant ends once the failed renewal was seen (waiting on it, not a time, on a busy machine)
    rec.on_progress = lambda item: rec._lease_lost.wait(30)
    report = rec.apply()
    assert [i.status for i in report.tenants] == ["changed", "not_run", "not_run"], report.tenants
    assert len(state_store.tenants()) == 1


def test_tenants_to_create_start_after_every_other_tenant(setup, base_config):
    """A creation waits on the cloud and holds a worker: a new tenant listed first must not delay a
    removed tenant's revocation (listed last, started first) or an existing tenant's run."""
    rec, cloud = setup()
    tid = by_key(rec.apply())["ws1/p2@demo"].platform_tenant_id
    del base_config["workspaces"][0]["projects"][1]  # p2 removed: its access is revoked
    new = {"id": "p0", "tenants": [{"platform": "demo", "landing_zone": "sandbox"}]}
    base_config["workspaces"][0]["projects"].insert(0, new)
    base_config.setdefault("settings", {})["concurrency"] = 1
    rec2, _ = setup(base_config)
    ended: list[str] = []  # one tenant at a time: the order they end in is the order they start in
    rec2.on_progress = lambda item: ended.append(item.key)
    report = rec2.apply()
    assert ended == ["ws1/p2@demo", "ws1/p1@demo", "ws2/p3@demo", "ws1/p0@demo"]
    assert [i.key for i in report.tenants] == ["ws1/p0@demo", "ws1/p1@demo", "ws2/p3@demo", "ws1/p2@demo"]
    assert by_key(report)["ws1/p0@demo"].status == "changed"
    assert cloud.tenants[tid]["access"] == {}
