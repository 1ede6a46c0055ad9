"""Incremental drift checks on AWS: CloudTrail's event history says which accounts to read again.

The emulator keeps the event history of the management account (``LookupEvents``: write events of
Organizations, Account Management, Identity Center and the identity store, with their request
parameters), so the tests change things as someone outside meshcore would and see what is read.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from aws_testlib import account_view, by_key
from meshcore.state.tables import PlatformRow

#: ListTagsForResource calls of a run that are not an account's: the permission sets' tags (sso), read
#: with the platform's shared resources in every run.
PLATFORM_TAG_READS = 2


@pytest.fixture
def incremental(access_config, sso):  # sso: the users exist in the identity store
    access_config["settings"] = {"drift_check": {"mode": "incremental"}}
    access_config["platforms"][0]["config"]["change_feed_delay_minutes"] = 0  # the emulator delivers at once
    return access_config


def settle(world, cfg):
    """Provision; then a run that reads everything (the feed names what the first run wrote) and verifies."""
    first = world.reconciler(cfg).apply()
    assert not first.failed, [t.message for t in first.failed]
    time.sleep(1.1)  # events carry whole seconds and the feed reads one second back: keep runs apart
    second = world.reconciler(cfg).apply()
    assert {t.status for t in second.tenants} == {"ok"}, [
        (t.key, t.status, t.message) for t in second.tenants
    ]
    time.sleep(1.1)
    return {t.key: t.platform_tenant_id for t in first.tenants}


def test_a_quiet_organization_costs_one_event_lookup_and_no_tenant_reads(world, incremental):
    settle(world, incremental)
    world.calls.clear()
    report = world.reconciler(incremental).apply()
    assert {t.status for t in report.tenants} == {"ok"}
    assert all("not read (incremental drift check" in t.message for t in report.tenants), report.tenants
    assert world.calls["ListAccountAssignmentsForPrincipal"] == 0, dict(world.calls)
    assert world.calls["ListTagsForResource"] == PLATFORM_TAG_READS, dict(world.calls)
    assert world.calls["LookupEvents"] == 1, dict(world.calls)
    assert world.calls.writes == {}


def test_a_tag_changed_outside_meshcore_is_read_and_repaired_and_only_that_account(world, incremental):
    ids = settle(world, incremental)
    aid = ids["ws1/p1@aws"]
    world.org.client.tag_resource(ResourceId=aid, Tags=[{"Key": "meshcore:env", "Value": "hacked"}])
    world.calls.clear()
    report = by_key(world.reconciler(incremental).apply())
    assert report["ws1/p1@aws"].status == "changed"
    assert account_view(world.org.client, aid)["tags"]["meshcore:env"] == "dev"
    assert world.calls["ListTagsForResource"] == PLATFORM_TAG_READS + 1, dict(world.calls)
    assert all(r.status == "ok" for k, r in report.items() if k != "ws1/p1@aws")


def test_a_membership_changed_in_the_identity_store_means_every_tenant_is_read(world, sso, incremental):
    settle(world, incremental)
    gid = sso.group("meshcore-ws1-p1-admin")
    sso.store.create_group_membership(
        IdentityStoreId=sso.instance["IdentityStoreId"], GroupId=gid, MemberId={"UserId": sso.users["bob"]}
    )
    world.calls.clear()
    report = by_key(world.reconciler(incremental).apply())
    assert report["ws1/p1@aws"].status == "changed"
    assert sso.members("meshcore-ws1-p1-admin") == ["alice"]
    assert world.calls["ListTagsForResource"] == PLATFORM_TAG_READS + len(report), "all read"


def test_an_event_delivered_late_is_found_by_the_next_full_check(world, incremental, state_store):
    """CloudTrail delivers an event after the delay allowed for: the incremental run does not see it (the
    documented limit); the next full check reads every tenant and repairs the drift."""
    from meshcore_aws_emulator import strict

    ids = settle(world, incremental)
    aid = ids["ws1/p1@aws"]
    strict.PROFILE.cloudtrail_delay_seconds = 3600
    world.org.client.tag_resource(ResourceId=aid, Tags=[{"Key": "meshcore:env", "Value": "hacked"}])
    assert by_key(world.reconciler(incremental).apply())["ws1/p1@aws"].status == "ok"
    assert account_view(world.org.client, aid)["tags"]["meshcore:env"] == "hacked"
    with state_store.session() as s:  # the last full check was 25 hours ago
        row = s.get(PlatformRow, "aws")
        row.full_check_at = row.full_check_at - dt.timedelta(hours=25)
    report = by_key(world.reconciler(incremental).apply())
    assert report["ws1/p1@aws"].status == "changed"
    assert account_view(world.org.client, aid)["tags"]["meshcore:env"] == "dev"


@pytest.mark.parametrize(
    ("source", "name", "parameters", "named"),
    [
        ("organizations.amazonaws.com", "TagResource", {"resourceId": "111122223333"}, {"111122223333"}),
        ("organizations.amazonaws.com", "TagResource", {"resourceId": "ou-ab12-cdef3456"}, set()),
        (
            "organizations.amazonaws.com",
            "DetachPolicy",
            {"policyId": "p-1", "targetId": "111122223333"},
            {"111122223333"},
        ),
        ("organizations.amazonaws.com", "UpdatePolicy", {"policyId": "p-1"}, set()),  # checked every run
        ("organizations.amazonaws.com", "MoveAccount", {}, None),  # the account not said: any
        ("sso.amazonaws.com", "DeleteAccountAssignment", {"targetId": "111122223333"}, {"111122223333"}),
        (
            "identitystore.amazonaws.com",
            "UpdateUser",
            {"userId": "u-1"},
            None,
        ),  # users are looked up per tenant
        ("sso-directory.amazonaws.com", "AddMemberToGroup", {}, None),  # the Identity Center console
        ("identitystore-scim.amazonaws.com", "PatchGroup", {}, None),  # provisioned from an external IdP
        ("ec2.amazonaws.com", "RunInstances", {}, set()),  # not what meshcore manages
    ],
)
def test_which_accounts_an_event_names(source, name, parameters, named):
    import json

    from meshcore_aws.changes import _account_of

    event = {
        "EventSource": source,
        "EventName": name,
        "CloudTrailEvent": json.dumps({"requestParameters": parameters}),
    }
    assert _account_of(event) == named
