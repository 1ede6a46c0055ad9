"""Safety promises under faults and hostile state: each test once reproduced a broken promise.

Guardrails must be meshcore's own, with the configured content, attached, before any grant;
revocation must run whatever else fails; deletion must remove what a crashed run deployed;
a landing-zone change must never deploy next to what it replaces; nothing foreign is deleted.
"""

from __future__ import annotations

import json

import boto3
import pytest

from aws_testlib import BOUNDARY, DENY_LEAVE, by_key, refuse
from meshcore.testing.fake_cloud import SimulatedCrash
from meshcore_aws import sessions as aws_sessions
from meshcore_aws.run import reset_sessions

ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def scps_on(client, target: str) -> list[str]:
    listed = client.list_policies_for_target(TargetId=target, Filter="SERVICE_CONTROL_POLICY")["Policies"]
    return sorted(p["Name"] for p in listed)


def assigned(sso, group: str, aid: str | None) -> list[str]:
    """Permission sets the group has on the account ([] when either is gone)."""
    return sso.assigned(group, aid) if aid and sso.group(group) else []


def privileged(config):
    lz = config["landing_zones"][0]["config"]
    lz.update({"role_mappings": {"admin": ["Admin"]}, "allow_privileged_roles": True, "scps": [BOUNDARY]})
    return config


def test_a_foreign_policy_with_meshcores_name_on_the_ou_is_no_guardrail(world, sso, access_config):
    config = privileged(access_config)
    client = world.org.client
    pid = client.create_policy(
        Name="meshcore-boundary",
        Description="someone else's",
        Type="SERVICE_CONTROL_POLICY",
        Content=json.dumps(ALLOW_ALL),
    )["Policy"]["PolicySummary"]["Id"]
    client.attach_policy(PolicyId=pid, TargetId=world.org.ous["/Workloads/Dev"])
    p1 = by_key(world.reconciler(config).apply())["ws1/p1@aws"]
    assert p1.status == "failed" and "not meshcore's" in p1.message, p1.message
    assert assigned(sso, "meshcore-ws1-p1-admin", p1.platform_tenant_id) == []


def test_no_grant_while_the_boundary_content_cannot_be_repaired(world, sso, access_config, monkeypatch):
    config = privileged(access_config)
    p1 = config["workspaces"][0]["projects"][0]
    bindings = p1.pop("bindings")
    aid = by_key(world.reconciler(config).apply())["ws1/p1@aws"].platform_tenant_id
    client = world.org.client
    pid = next(
        p["Id"]
        for p in client.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]
        if p["Name"] == "meshcore-boundary"
    )
    weakened = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "none:None", "Resource": "*"}],
    }
    client.update_policy(PolicyId=pid, Content=json.dumps(weakened))  # edited by hand
    refuse(monkeypatch, world, {"UpdatePolicy"})
    p1["bindings"] = bindings
    world.reconciler(config).apply()
    assert assigned(sso, "meshcore-ws1-p1-admin", aid) == []


def test_no_grant_while_the_ou_guardrail_is_detached_and_cannot_be_reattached(
    world, sso, access_config, lz_config, monkeypatch
):
    config = access_config
    p1 = config["workspaces"][0]["projects"][0]
    p1["bindings"] = [{"user": "alice", "role": "admin"}]
    aid = by_key(world.reconciler(config).apply())["ws1/p1@aws"].platform_tenant_id
    client, ou = world.org.client, world.org.ous["/Workloads/Dev"]
    listed = client.list_policies_for_target(TargetId=ou, Filter="SERVICE_CONTROL_POLICY")["Policies"]
    pid = next(p["Id"] for p in listed if p["Name"] == "meshcore-deny-leave-and-non-eu")
    client.detach_policy(PolicyId=pid, TargetId=ou)  # drift
    refuse(monkeypatch, world, {"AttachPolicy"}, when=lambda op, req: json.loads(req.body)["TargetId"] == ou)
    p1["bindings"].append({"user": "bob", "role": "reader"})  # a new, unprivileged grant
    item = by_key(world.reconciler(config).apply())["ws1/p1@aws"]
    assert item.status == "failed"
    assert assigned(sso, "meshcore-ws1-p1-reader", aid) == []


def test_old_account_guardrails_stay_until_the_new_ones_are_attached(
    world, sso, access_config, lz_config, monkeypatch
):
    config = access_config
    aid = by_key(world.reconciler(config).apply())["ws1/p1@aws"].platform_tenant_id
    before = scps_on(world.org.client, aid)
    assert "meshcore-deny-billing" in before
    config["workspaces"][0]["projects"][0]["tenants"][0]["landing_zone"] = "prod"
    refuse(
        monkeypatch, world, {"AttachPolicy"}, when=lambda op, req: json.loads(req.body).get("TargetId") == aid
    )
    world.reconciler(config).apply()
    after = scps_on(world.org.client, aid)
    assert "meshcore-deny-billing" in after, "detached although its successor never went on"
    assert world.org.client.list_parents(ChildId=aid)["Parents"][0]["Id"] == world.org.ous["/Workloads/Dev"]


def test_a_missing_quarantine_ou_never_holds_up_revocation(world, sso, access_config):
    access_config["platforms"][0]["config"]["deletion"] = {
        "mode": "quarantine",
        "quarantine_ou": "/Quarantaine",
    }
    aid = by_key(world.reconciler(access_config).apply())["ws1/p1@aws"].platform_tenant_id
    assert sso.assigned("meshcore-ws1-p1-admin", aid)
    del access_config["workspaces"][0]["projects"][0]
    item = by_key(world.reconciler(access_config).apply())["ws1/p1@aws"]
    assert item.status == "failed" and "Quarantaine" in item.message
    assert assigned(sso, "meshcore-ws1-p1-admin", aid) == []
    row = next(t for t in world.store.tenants() if t.key == "ws1/p1@aws")
    assert row.revoked_at is not None and row.status == "MARKED_FOR_DELETION"
    plan = by_key(world.reconciler(access_config).plan())["ws1/p1@aws"]
    assert plan.status == "error" and "Quarantaine" in plan.message


@pytest.mark.parametrize("failing", ["ListStackInstances", "DescribeStackSet"])
def test_a_failing_baseline_read_never_holds_up_revocation(
    world, sso, access_config, lz_config, monkeypatch, failing
):
    config = access_config
    aid = by_key(world.reconciler(config).apply())["ws1/p1@aws"].platform_tenant_id
    del config["workspaces"][0]["projects"][0]
    refuse(monkeypatch, world, {failing}, code="AccessDenied", status=403)
    world.reconciler(config).apply()
    assert assigned(sso, "meshcore-ws1-p1-admin", aid) == []
    row = next(t for t in world.store.tenants() if t.key == "ws1/p1@aws")
    assert row.status == "MARKED_FOR_DELETION" and row.revoked_at is not None


def test_a_mistyped_ou_id_fails_only_its_own_landing_zone(world, sso, access_config):
    config = access_config
    reports = by_key(world.reconciler(config).apply())
    aid = reports["ws1/p1@aws"].platform_tenant_id
    real = world.org.ous["/Workloads/Prod"]
    config["landing_zones"][0]["config"]["ou"] = world.org.ous["/Workloads/Dev"]  # one form per platform: ids
    config["landing_zones"][1]["config"] = {"ou": real[:-1] + ("x" if real[-1] != "x" else "y")}
    del config["workspaces"][0]["projects"][0]
    report = by_key(world.reconciler(config).apply())
    assert assigned(sso, "meshcore-ws1-p1-admin", aid) == []
    assert report["ws2/p3@aws"].status in ("ok", "changed"), report["ws2/p3@aws"].message
    assert report["ws1/p2@aws"].status == "failed"


def test_a_run_killed_after_create_stack_instances_leaves_nothing_behind_on_deletion(
    world, lz_config, monkeypatch
):
    config = lz_config
    config["settings"] = {"concurrency": 1}
    config["workspaces"] = [config["workspaces"][1]]  # ws2/p3: dev, baseline, auto-approved deletion
    armed = {"on": True}

    def die(event_name="", **_kw):
        if armed["on"] and event_name.endswith("CreateStackInstances"):
            armed["on"] = False
            raise SimulatedCrash("killed right after CreateStackInstances returned")

    monkeypatch.setattr(aws_sessions, "EVENT_HOOKS", [*world.calls.hooks(), ("after-call", die)])
    reset_sessions()
    with pytest.raises(SimulatedCrash):
        world.reconciler(config).apply()
    aid = next(t for t in world.store.tenants() if t.key == "ws2/p3@aws").platform_tenant_id
    cf = boto3.client("cloudformation", region_name="us-east-1")

    def instances():
        summaries = cf.list_stack_instances(StackSetName="meshcore-dev-base")["Summaries"]
        return sorted(i["Region"] for i in summaries if i["Account"] == aid)

    assert instances(), "the crash came after AWS accepted the operation"
    config["workspaces"] = [{"id": "other", "projects": []}]
    for _ in range(4):
        world.reconciler(config).apply()
    row = next(t for t in world.store.tenants(include_deleted=True) if t.key == "ws2/p3@aws")
    assert row.status == "DELETED" and instances() == []


def test_a_landing_zone_change_never_deploys_next_to_the_instance_it_replaces(
    world, lz_config, tmp_path, monkeypatch
):
    template = tmp_path / "shared.yaml"
    template.write_text(
        "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName: org-security-alerts\n"
    )
    shared = {"name": "shared", "template": str(template)}
    lz_config["landing_zones"][0]["config"]["baselines"] = [shared]
    lz_config["landing_zones"][1]["config"]["baselines"] = [shared]
    aid = by_key(world.reconciler(lz_config).apply())["ws1/p1@aws"].platform_tenant_id
    refuse(monkeypatch, world, {"DeleteStackInstances"}, code="ValidationError")
    lz_config["workspaces"][0]["projects"][0]["tenants"][0]["landing_zone"] = "prod"
    world.reconciler(lz_config).apply()
    cf = boto3.client("cloudformation", region_name="us-east-1")
    have = {
        name: [i for i in cf.list_stack_instances(StackSetName=name)["Summaries"] if i["Account"] == aid]
        for name in ("meshcore-dev-shared", "meshcore-prod-shared")
    }
    assert have["meshcore-dev-shared"] and not have["meshcore-prod-shared"]


def test_a_tagged_policy_this_installation_did_not_create_is_never_deleted(world, config):
    client = world.org.client
    client.create_policy(
        Name="meshcore-staging-guardrail",
        Description="another installation's",
        Type="SERVICE_CONTROL_POLICY",
        Content=json.dumps(DENY_LEAVE),
        Tags=[{"Key": "meshcore:managed-by", "Value": "meshcore"}],
    )
    config["landing_zones"][0]["config"]["scps"] = [{"name": "deny-leave", "document": DENY_LEAVE}]
    world.reconciler(config).apply()
    world.reconciler(config).apply()
    names = [p["Name"] for p in client.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]]
    assert "meshcore-staging-guardrail" in names and "meshcore-deny-leave" in names
