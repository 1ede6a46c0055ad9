"""The safety promises on AWS, one regression test per way they were once broken.

Each test reproduces a failure seen when the plugin planned and applied separately and
decided its own order: access granted where guardrails were not in place, an account
created in the root from a typo, revocations never retried, closures over quota, plan
not showing what apply does, foreign resources taken over, and a landing-zone change that
collided with itself.
"""

from __future__ import annotations

import json

import boto3
import pytest

from aws_testlib import BOUNDARY, DENY_LEAVE, by_key
from meshcore.errors import RefusedError


def scp_names(client, target):
    return {
        p["Name"]
        for p in client.list_policies_for_target(TargetId=target, Filter="SERVICE_CONTROL_POLICY")["Policies"]
    }


def privileged(access_config):
    lz = access_config["landing_zones"][0]["config"]
    lz.update({"role_mappings": {"admin": ["Admin"]}, "allow_privileged_roles": True, "scps": [BOUNDARY]})
    return access_config


def test_no_admin_access_when_the_boundary_scp_cannot_be_put_in_place(world, sso, access_config):
    """A foreign SCP named like meshcore's boundary: the OU is never guarded, so nothing is granted."""
    config = privileged(access_config)
    world.org.client.create_policy(
        Name="meshcore-boundary",
        Description="",
        Type="SERVICE_CONTROL_POLICY",
        Content=json.dumps(DENY_LEAVE),
    )
    report = world.reconciler(config).apply()
    p1 = by_key(report)["ws1/p1@aws"]
    assert p1.status == "failed" and "is not meshcore's" in p1.message
    assert p1.platform_tenant_id is None, "an account was created although its guardrails cannot go on"
    assert world.calls["CreateAccountAssignment"] == 0
    assert sso.group("meshcore-ws1-p1-admin") is None
    assert by_key(report)["ws1/p2@aws"].status == "changed", "other landing zones go on"


def test_the_ou_is_guarded_before_any_account_moves_into_it(world, sso, access_config, state_store):
    config = privileged(access_config)
    report = world.reconciler(config).apply()
    assert not report.failed, [i.message for i in report.failed]
    steps = [(s.tenant_key, s.name) for s in state_store.steps(run_id=report.run_id)]
    attach = steps.index(("", "target scp-attachment meshcore-boundary @ /Workloads/Dev"))
    create = steps.index(("ws1/p1@aws", "tenant account ws1-p1"))
    move = steps.index(("ws1/p1@aws", "placement ou ws1-p1"))
    grant = steps.index(("ws1/p1@aws", "access assignment Admin → meshcore-ws1-p1-admin"))
    assert attach < create < move < grant
    aid = by_key(report)["ws1/p1@aws"].platform_tenant_id
    assert "meshcore-boundary" in scp_names(world.org.client, world.org.ous["/Workloads/Dev"])
    assert sso.assigned("meshcore-ws1-p1-admin", aid) == ["Admin"]


def test_an_ou_that_does_not_exist_creates_nothing(world, config):
    config["landing_zones"][0]["config"] = {"ou": "/Workloads/Development"}  # a typo, create_ou off
    rec = world.reconciler(config)
    plan = rec.plan()
    item = by_key(plan)["ws1/p1@aws"]
    assert (
        item.actions[0].status == "blocked"
        and "OU /Workloads/Development does not exist" in item.actions[0].message
    )
    report = rec.apply()
    for key in ("ws1/p1@aws", "ws2/p3@aws"):
        result = by_key(report)[key]
        assert result.status == "failed" and "does not exist" in result.message
        assert result.platform_tenant_id is None
    assert world.calls["CreateAccount"] == 1, "an account was created for a landing zone whose OU is missing"
    assert len(world.org.client.list_accounts()["Accounts"]) == 2


def test_a_failed_revocation_is_retried_until_confirmed(world, sso, access_config, monkeypatch):
    from moto.ssoadmin.models import SSOAdminBackend

    rec = world.reconciler(access_config)
    aid = by_key(rec.apply())["ws1/p1@aws"].platform_tenant_id
    groups = [sso.group("meshcore-ws1-p1-admin"), sso.group("meshcore-ws1-p1-user")]
    del access_config["workspaces"][0]["projects"][0]  # p1 (dev: auto-approved) is removed
    rec = world.reconciler(access_config)
    original = SSOAdminBackend.delete_account_assignment
    fail = {"n": 1}

    def flaky(self, **kwargs):
        if fail["n"]:
            fail["n"] -= 1
            from moto.ssoadmin.exceptions import ResourceNotFoundException

            raise ResourceNotFoundException("simulated: the deletion could not be started")
        return original(self, **kwargs)

    monkeypatch.setattr(SSOAdminBackend, "delete_account_assignment", flaky)
    first = by_key(rec.apply())["ws1/p1@aws"]
    assert first.status == "failed"
    assert world.calls["CloseAccount"] == 0, "the account was closed before access was revoked"
    row = next(t for t in world.store.tenants() if t.key == "ws1/p1@aws")
    assert row.status == "MARKED_FOR_DELETION" and row.revoked_at is None
    plan = by_key(rec.plan())["ws1/p1@aws"]
    assert any(a.phase == "revoke" and a.resource == "assignment" for a in plan.actions), (
        "plan hides the pending revoke"
    )
    rec.apply()
    for gid in groups:
        listed = sso.admin.list_account_assignments_for_principal(
            InstanceArn=sso.instance["InstanceArn"],
            PrincipalId=gid,
            PrincipalType="GROUP",
            Filter={"AccountId": aid},
        )["AccountAssignments"]
        assert listed == []
    assert sso.group("meshcore-ws1-p1-admin") is None, "the groups were not cleaned up after the deletion"
    row = next(t for t in world.store.tenants(include_deleted=True) if t.key == "ws1/p1@aws")
    assert row.revoked_at is not None


def test_closures_never_exceed_the_quota_when_tenants_run_in_parallel(world, config):
    config["settings"] = {"concurrency": 16, "max_deletions_per_run": 20}
    config["platforms"][0]["config"]["deletion"] = {"max_closures_per_30_days": 10}
    config["workspaces"][1]["projects"] = [
        {"id": f"q{i}", "tenants": [{"platform": "aws", "landing_zone": "dev"}]} for i in range(16)
    ]
    rec = world.reconciler(config)
    assert not rec.apply().failed
    config["workspaces"].pop()  # all 16 (dev: auto-approved) removed at once
    report = world.reconciler(config).apply(allow_deletions=16)
    assert world.calls["CloseAccount"] == 10, "more accounts were closed than the quota allows"
    waiting = [i for i in report.tenants if i.key.startswith("ws2/") and i.status == "in_progress"]
    assert len(waiting) == 6 and all("closure quota used up" in i.message for i in waiting)


def test_plan_for_a_new_project_lists_everything_apply_creates(world, sso, access_config, lz_config):
    rec = world.reconciler(lz_config)
    plan = by_key(rec.plan())["ws1/p1@aws"]
    kinds = [(a.phase, a.resource) for a in plan.actions]
    for expected in (
        ("tenant", "account"),
        ("guardrails", "scp-attachment"),
        ("placement", "ou"),
        ("configure", "alias"),
        ("baseline", "stack-instance"),
        ("access", "group"),
        ("access", "group-member"),
        ("access", "assignment"),
    ):
        assert expected in kinds, f"plan does not show {expected}"
    shared = rec.plan().platforms[0]
    assert {("target", "scp-attachment"), ("baseline", "stackset"), ("access", "permission-set")} <= {
        (a.phase, a.resource) for a in shared.actions
    }
    report = rec.apply()
    assert [a.key for a in by_key(report)["ws1/p1@aws"].actions] == [a.key for a in plan.actions]


def test_a_permission_set_change_is_in_the_plan(world, sso, access_config):
    rec = world.reconciler(access_config)
    rec.apply()
    access_config["platforms"][0]["config"]["identity_center"]["permission_sets"][0]["session_duration"] = (
        "PT4H"
    )
    plan = world.reconciler(access_config).plan()
    (change,) = plan.platforms[0].actions
    assert (change.resource, change.target) == ("permission-set", "Developer")
    assert "PT8H → PT4H" in change.detail and "provision" in change.detail


def test_deleting_a_tenant_removes_its_stack_instances(world, lz_config):
    rec = world.reconciler(lz_config)
    aid = by_key(rec.apply())["ws2/p3@aws"].platform_tenant_id
    cf = boto3.client("cloudformation", region_name="us-east-1")

    def instances():
        return [
            i
            for i in cf.list_stack_instances(StackSetName="meshcore-dev-base")["Summaries"]
            if i["Account"] == aid
        ]

    assert len(instances()) == 2
    lz_config["workspaces"].pop()  # ws2/p3 (dev: auto-approved)
    rec = world.reconciler(lz_config)
    plan = by_key(rec.plan())["ws2/p3@aws"]
    assert [(a.phase, a.resource) for a in plan.actions][:1] == [("teardown", "stack-instance")]
    rec.apply()
    assert instances() == []
    row = next(t for t in world.store.tenants(include_deleted=True) if t.key == "ws2/p3@aws")
    assert row.status == "DELETED"


def test_moving_between_landing_zones_sharing_a_baseline_never_collides(
    world, lz_config, tmp_path, monkeypatch
):
    """Both zones deploy a template with the same fixed-name resource: the old instance goes first."""
    from moto.cloudformation.models import CloudFormationBackend

    template = tmp_path / "shared.yaml"
    template.write_text(
        "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName: org-security-alerts\n"
    )
    shared = {"name": "shared", "template": str(template)}
    lz_config["landing_zones"][0]["config"]["baselines"] = [shared]
    lz_config["landing_zones"][1]["config"]["baselines"] = [shared]
    rec = world.reconciler(lz_config)
    aid = by_key(rec.apply())["ws1/p1@aws"].platform_tenant_id
    deployed: dict[str, set[str]] = {}
    original_create, original_delete = (
        CloudFormationBackend.create_stack_instances,
        CloudFormationBackend.delete_stack_instances,
    )

    def create(self, stackset_name, accounts, regions, *args, **kwargs):
        for account in accounts:
            holder = deployed.setdefault(account, set())
            others = holder - {stackset_name}
            if others:  # what CloudFormation does when two stacks create the same topic name
                raise AssertionError(f"collision in {account}: {stackset_name} while {others} is still there")
            holder.add(stackset_name)
        return original_create(self, stackset_name, accounts, regions, *args, **kwargs)

    def delete(self, stackset_name, accounts, regions):
        for account in accounts:
            deployed.get(account, set()).discard(stackset_name)
        return original_delete(self, stackset_name, accounts, regions)

    deployed[aid] = {"meshcore-dev-shared"}
    monkeypatch.setattr(CloudFormationBackend, "create_stack_instances", create)
    monkeypatch.setattr(CloudFormationBackend, "delete_stack_instances", delete)
    lz_config["workspaces"][0]["projects"][0]["tenants"][0]["landing_zone"] = "prod"
    result = by_key(world.reconciler(lz_config).apply())["ws1/p1@aws"]
    assert result.status == "changed", result.message
    assert deployed[aid] == {"meshcore-prod-shared"}
    assert all(not i.actions for i in world.reconciler(lz_config).plan().items)


def test_the_same_organization_under_a_second_platform_id_is_refused(world, config, registry, write_config):
    from meshcore.config import load_config
    from meshcore.reconciler import Reconciler

    world.reconciler(config).apply()
    text = (
        write_config(config)
        .read_text()
        .replace("platform: aws", "platform: aws2")
        .replace("id: aws\n", "id: aws2\n")
    )
    renamed = Reconciler(
        load_config(write_config(text), registry), world.store, registry, sleep=lambda _s: None
    )
    with pytest.raises(RefusedError, match="recorded as platform 'aws'"):
        renamed.apply(allow_deletions=10)
    assert world.calls["CreateAccount"] == 3 and world.calls["MoveAccount"] == 3
