"""Access through IAM Identity Center on moto: groups, members, assignments, revocation, guard, async failures."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

from aws_testlib import BOUNDARY, by_key
from meshcore.config import load_config
from meshcore.errors import ConfigError
from meshcore.reconciler import Reconciler, approve_deletion


def test_groups_members_and_assignments_are_replicated(world, sso, access_config):
    report = world.reconciler(access_config).apply()
    assert not report.failed, [r.message for r in report.tenants]
    aid = by_key(report)["ws1/p1@aws"].platform_tenant_id
    assert sso.members("meshcore-ws1-p1-admin") == ["alice"]
    assert sso.members("meshcore-ws1-p1-user") == ["bob", "carol"]
    assert sso.assigned("meshcore-ws1-p1-admin", aid) == ["Developer"]
    assert sso.assigned("meshcore-ws1-p1-user", aid) == ["Developer"]
    # p2 and p3 have no bindings: no groups
    assert sso.group("meshcore-ws1-p2-admin") is None
    ps = sso.admin.list_permission_sets(InstanceArn=sso.instance["InstanceArn"])["PermissionSets"]
    assert len(ps) == 2  # only the mapped ones are created (Admin is unused)
    row = next(t for t in world.store.tenants() if t.key == "ws1/p1@aws")
    assert row.attributes["sign_in_url"] == "https://example.awsapps.com/start"  # shown by meshcore status


def test_second_run_makes_zero_writes_and_plan_is_empty(world, sso, access_config):
    rec = world.reconciler(access_config)
    rec.apply()
    world.calls.clear()
    report = rec.apply()
    assert {r.status for r in report.tenants} == {"ok"}, [(r.key, r.message) for r in report.tenants]
    assert world.calls.writes == {}, world.calls
    assert all(i.actions == [] for i in rec.plan().tenants)


def test_plan_shows_who_gains_and_loses(world, sso, access_config):
    rec = world.reconciler(access_config)
    rec.apply()
    bindings = access_config["workspaces"][0]["projects"][0]["bindings"]
    bindings[0] = {"user": "bob", "role": "admin"}  # alice loses admin, bob gains it
    item = next(i for i in world.reconciler(access_config).plan().tenants if i.key == "ws1/p1@aws")
    details = [(a.phase, a.detail) for a in item.actions if a.resource == "group-member"]
    assert details == [("revoke", f"user {sso.users['alice']} loses admin"), ("access", "bob gains admin")]


def test_binding_removal_and_expiry_revoke(world, sso, access_config, state_store, write_config, registry):
    def rec_on(day):
        return Reconciler(
            load_config(write_config(access_config), registry),
            state_store,
            registry,
            sleep=lambda s: None,
            today=day,
        )

    aid = by_key(rec_on(dt.date(2026, 6, 30)).apply())["ws1/p1@aws"].platform_tenant_id
    assert sso.members("meshcore-ws1-p1-reader") == ["carol"]
    assert sso.assigned("meshcore-ws1-p1-reader", aid) == ["ReadOnly"]
    gid = sso.group("meshcore-ws1-p1-reader")
    rec_on(dt.date(2026, 7, 1)).apply()  # carol's reader binding expired yesterday: no reader any more
    assert sso.group("meshcore-ws1-p1-reader") is None, "the unused group was left behind"
    listed = sso.admin.list_account_assignments_for_principal(
        InstanceArn=sso.instance["InstanceArn"], PrincipalId=gid, PrincipalType="GROUP"
    )["AccountAssignments"]
    assert listed == [], "the group's assignment outlived it"
    access_config["groups"][0]["members"] = ["bob"]  # carol leaves the group
    rec_on(dt.date(2026, 7, 1)).apply()
    assert sso.members("meshcore-ws1-p1-user") == ["bob"]
    access_config["platforms"][0]["config"]["identity_center"]["role_mappings"]["user"] = ["ReadOnly"]
    rec_on(dt.date(2026, 7, 1)).apply()  # the mapping changed: Developer replaced by ReadOnly
    assert sso.assigned("meshcore-ws1-p1-user", aid) == ["ReadOnly"]


def test_unknown_user_is_reported_per_binding_and_the_rest_replicates(world, sso, access_config):
    access_config["workspaces"][0]["projects"][0]["bindings"].append({"user": "dave", "role": "admin"})
    report = world.reconciler(access_config).apply()
    result = by_key(report)["ws1/p1@aws"]
    assert result.status == "failed"
    step = next(s for s in world.store.steps() if "group-member dave" in s.name)
    assert step.status == "blocked" and "dave is not in the Identity Center identity store" in step.message
    assert sso.members("meshcore-ws1-p1-admin") == ["alice"] and sso.members("meshcore-ws1-p1-user") == [
        "bob",
        "carol",
    ]


def test_guard_rejects_privileged_mapping_without_an_scp_boundary(
    world, sso, access_config, write_config, registry
):
    access_config["landing_zones"][0]["config"]["role_mappings"] = {"admin": ["Admin"]}
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(access_config), registry)
    msg = str(exc.value.problems[0])
    assert (
        "landing_zones[0].config.role_mappings.admin: maps to privileged permission set 'Admin' (managed policy AdministratorAccess allows iam:"
        in msg
    )
    assert "does not set allow_privileged_roles: true" in msg
    access_config["landing_zones"][0]["config"]["allow_privileged_roles"] = True
    with pytest.raises(ConfigError) as exc:  # allowed, but nothing bounds it
        load_config(write_config(access_config), registry)
    assert "its SCPs do not deny iam:" in str(exc.value.problems[0])
    access_config["landing_zones"][0]["config"]["scps"] = [
        {  # denies something, but not what AdministratorAccess allows: no boundary
            "name": "bound",
            "document": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Deny", "Action": ["iam:CreateUser", "organizations:*"], "Resource": "*"}
                ],
            },
        }
    ]
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(access_config), registry)
    assert "its SCPs do not deny iam:addclientidtoopenidconnectprovider" in str(exc.value.problems[0])
    access_config["landing_zones"][0]["config"]["scps"] = [BOUNDARY]
    loaded = load_config(write_config(access_config), registry)
    report = Reconciler(loaded, world.store, registry, sleep=lambda s: None).apply()
    aid = by_key(report)["ws1/p1@aws"].platform_tenant_id
    assert sso.assigned("meshcore-ws1-p1-admin", aid) == ["Admin"]


def test_inline_escalation_actions_are_privileged(world, sso, access_config, write_config, registry):
    access_config["platforms"][0]["config"]["identity_center"]["permission_sets"].append(
        {
            "name": "Sneaky",
            "inline_policy": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:Put*"], "Resource": "*"}],
            },
        }
    )
    access_config["platforms"][0]["config"]["identity_center"]["role_mappings"]["user"] = ["Sneaky"]
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(access_config), registry)
    assert "the inline policy allows iam:putgrouppolicy" in str(exc.value.problems[0])


def test_missing_permission_set_arn_grants_nothing(world, sso, access_config):
    rec = world.reconciler(access_config)
    rec.apply()
    missing = "arn:aws:sso:::permissionSet/ssoins-0123456789abcdef/ps-0123456789abcdef"
    access_config["platforms"][0]["config"]["identity_center"]["role_mappings"]["admin"] = [missing]
    world.calls.clear()
    result = by_key(world.reconciler(access_config).apply())["ws1/p1@aws"]
    assert result.status == "failed" and "does not exist in the Identity Center instance" in result.message
    grants = {k: v for k, v in world.calls.writes.items() if k.startswith(("Create", "Attach", "Provision"))}
    assert grants == {}, "something was granted for a mapping that cannot be resolved"
    # what is no longer mapped is still revoked (revocation never waits for grants)
    assert world.calls.writes == {"DeleteAccountAssignment": 1}


def test_failed_assignment_is_a_failed_step_with_awss_reason(world, sso, access_config, monkeypatch):
    import json

    from moto.ssoadmin.responses import SSOAdminResponse

    original = SSOAdminResponse.create_account_assignment

    def in_progress(self):
        body = json.loads(original(self))
        body["AccountAssignmentCreationStatus"]["Status"] = "IN_PROGRESS"
        return json.dumps(body)

    def failed(self):
        request_id = json.loads(self.body)["AccountAssignmentCreationRequestId"]
        return json.dumps(
            {
                "AccountAssignmentCreationStatus": {
                    "Status": "FAILED",
                    "RequestId": request_id,
                    "FailureReason": "Received a 404 status error: No permission set found",
                }
            }
        )

    monkeypatch.setattr(SSOAdminResponse, "create_account_assignment", in_progress)
    monkeypatch.setattr(SSOAdminResponse, "describe_account_assignment_creation_status", failed)
    report = world.reconciler(access_config).apply()
    assert by_key(report)["ws1/p1@aws"].status == "failed"
    step = next(
        s
        for s in world.store.steps()
        if s.name.startswith("access assignment Developer → meshcore-ws1-p1-admin")
    )
    assert (
        step.status == "failed"
        and "FAILED: Received a 404 status error: No permission set found" in step.message
    )
    assert world.calls["DescribeAccountAssignmentCreationStatus"] >= 1


def test_conflicts_and_throttling_are_retried(world, sso, access_config, monkeypatch):
    from moto.identitystore.exceptions import ConflictException
    from moto.identitystore.models import IdentityStoreBackend

    original = IdentityStoreBackend.create_group_membership
    conflicts = {"n": 2}

    def busy(self, *args, **kwargs):
        if conflicts["n"]:
            conflicts["n"] -= 1
            raise ConflictException(message="Concurrent modification", reason="CONCURRENT_MODIFICATION")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(IdentityStoreBackend, "create_group_membership", busy)
    report = world.reconciler(access_config).apply()
    assert not report.failed, [r.message for r in report.tenants]
    assert sso.members("meshcore-ws1-p1-user") == ["bob", "carol"]


def test_deletion_revokes_at_once_and_deletes_groups_when_deleted(world, sso, access_config):
    rec = world.reconciler(access_config)
    aid = by_key(rec.apply())["ws1/p1@aws"].platform_tenant_id
    access_config["workspaces"][0]["projects"][0]["tenants"][0]["landing_zone"] = "prod"
    world.reconciler(access_config).apply()
    del access_config["workspaces"][0]["projects"][0]
    rec = world.reconciler(access_config)
    assert by_key(rec.apply())["ws1/p1@aws"].status == "waiting"  # prod: approval needed
    assert (
        sso.assigned("meshcore-ws1-p1-admin", aid) == [] and sso.assigned("meshcore-ws1-p1-user", aid) == []
    )
    assert sso.group("meshcore-ws1-p1-admin") is not None  # groups stay until the tenant is deleted
    approve_deletion(world.store, "ws1/p1@aws")
    assert by_key(rec.apply())["ws1/p1@aws"].status == "changed"
    assert sso.group("meshcore-ws1-p1-admin") is None and sso.group("meshcore-ws1-p1-user") is None


def test_managed_permission_set_change_is_reprovisioned(world, sso, access_config):
    rec = world.reconciler(access_config)
    rec.apply()
    access_config["platforms"][0]["config"]["identity_center"]["permission_sets"][0]["session_duration"] = (
        "PT4H"
    )
    world.calls.clear()
    world.reconciler(access_config).apply()
    assert world.calls["UpdatePermissionSet"] == 1
    assert world.calls["ProvisionPermissionSet"] == 1
    arn = next(
        a
        for a in sso.admin.list_permission_sets(InstanceArn=sso.instance["InstanceArn"])["PermissionSets"]
        if sso.admin.describe_permission_set(InstanceArn=sso.instance["InstanceArn"], PermissionSetArn=a)[
            "PermissionSet"
        ]["Name"]
        == "Developer"
    )
    desc = sso.admin.describe_permission_set(InstanceArn=sso.instance["InstanceArn"], PermissionSetArn=arn)
    assert desc["PermissionSet"]["SessionDuration"] == "PT4H"


def test_a_foreign_group_with_the_name_is_never_taken_over(world, sso, access_config):
    gid = sso.store.create_group(
        IdentityStoreId=sso.instance["IdentityStoreId"], DisplayName="meshcore-ws1-p1-admin"
    )["GroupId"]
    sso.store.create_group_membership(
        IdentityStoreId=sso.instance["IdentityStoreId"], GroupId=gid, MemberId={"UserId": sso.users["carol"]}
    )
    report = world.reconciler(access_config).apply()
    result = by_key(report)["ws1/p1@aws"]
    assert result.status == "failed" and "meshcore did not create it" in result.message
    assert sso.members("meshcore-ws1-p1-admin") == ["carol"], "a foreign group's members were changed"
    assert sso.assigned("meshcore-ws1-p1-admin", result.platform_tenant_id) == []
    assert sso.members("meshcore-ws1-p1-user") == ["bob", "carol"], "the other roles go on"


def test_a_group_created_by_a_run_that_died_is_adopted_not_duplicated(world, sso, access_config, monkeypatch):
    from meshcore.testing.fake_cloud import SimulatedCrash
    from meshcore_aws import sessions as aws_sessions

    crashed = {"n": 0}

    def die_after_create(event_name="", **_kw):
        if event_name.endswith("CreateGroup") and crashed["n"] == 0:
            crashed["n"] += 1
            raise SimulatedCrash("killed after CreateGroup returned, before the group was recorded")

    monkeypatch.setattr(aws_sessions, "EVENT_HOOKS", [*world.calls.hooks(), ("after-call", die_after_create)])
    rec = world.reconciler(access_config)
    rec.concurrency = 1
    with pytest.raises(SimulatedCrash):
        rec.apply()
    report = rec.apply()
    assert not report.failed, [r.message for r in report.tenants]
    groups = sso.store.list_groups(IdentityStoreId=sso.instance["IdentityStoreId"])["Groups"]
    names = [g["DisplayName"] for g in groups]
    assert len(names) == len(set(names)), "a group was created twice"
    assert sso.members("meshcore-ws1-p1-admin") == ["alice"]
    assert world.store.journal_entries(status="open") == []


def test_the_emulator_refuses_a_second_membership_like_aws(world, sso, access_config):
    """AWS answers ConflictException (UNIQUENESS_CONSTRAINT_VIOLATION); moto alone would add a duplicate."""
    import boto3

    world.reconciler(access_config).apply()
    ids = boto3.client("identitystore", region_name="us-east-1")
    store = boto3.client("sso-admin", region_name="us-east-1").list_instances()["Instances"][0][
        "IdentityStoreId"
    ]
    gid = ids.get_group_id(
        IdentityStoreId=store,
        AlternateIdentifier={
            "UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": "meshcore-ws1-p1-admin"}
        },
    )["GroupId"]
    alice = ids.get_user_id(
        IdentityStoreId=store,
        AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": "alice"}},
    )["UserId"]
    with pytest.raises(ClientError) as info:
        ids.create_group_membership(IdentityStoreId=store, GroupId=gid, MemberId={"UserId": alice})
    assert info.value.response["Error"]["Code"] == "ConflictException"
    assert sso.members("meshcore-ws1-p1-admin") == ["alice"]
