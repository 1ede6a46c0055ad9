"""The privilege-escalation guard on maintained IAM data: what it flags, what bounds it, its snapshot."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from aws_testlib import BOUNDARY
from meshcore.config import load_config
from meshcore.errors import ConfigError
from meshcore_aws import managed_policies, privilege
from meshcore_aws.config import AwsLandingZone

AWS = "arn:aws:iam::aws:policy/"


def inline(*actions: str, **extra) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*", **extra}],
    }


def zone(*scps: dict, allow: bool = True) -> AwsLandingZone:
    return AwsLandingZone.model_validate(
        {"ou": "/Sandbox", "allow_privileged_roles": allow, "scps": list(scps)}
    )


@pytest.mark.parametrize(
    "name",
    [
        "AdministratorAccess",
        "IAMFullAccess",
        "WellArchitectedConsoleFullAccess",
        "job-function/NetworkAdministrator",
    ],
)
def test_managed_policies_that_grant_escalation_are_privileged(name):
    assert privilege.judge([AWS + name], None), name


@pytest.mark.parametrize(
    "name",
    [
        "ReadOnlyAccess",
        "job-function/ViewOnlyAccess",
        "PowerUserAccess",
        "IAMReadOnlyAccess",
        "AmazonS3FullAccess",
    ],
)
def test_managed_policies_without_escalation_are_not(name):
    assert not privilege.judge([AWS + name], None), privilege.judge([AWS + name], None).reasons


@pytest.mark.parametrize(
    "actions",
    [
        ("iam:PutRolePermissionsBoundary",),
        ("iam:DeleteRolePermissionsBoundary",),
        ("iam:UpdateAssumeRolePolicy",),
        ("iam:CreateRole", "iam:AttachRolePolicy"),
        ("iam:*Policy*",),
        ("organizations:LeaveOrganization",),
        ("iam:PassRole", "lambda:CreateFunction"),
        ("*",),
        ("IAM:*",),
        ("ORGANIZATIONS:LeaveOrganization",),
        ("Iam:AttachRole*",),
        ("*:*",),
        ("ia?:Put*",),
    ],
)
def test_inline_escalation_actions_are_privileged(actions):
    verdict = privilege.judge([], inline(*actions))
    assert verdict and "the inline policy allows" in verdict.reasons[0]


def test_resource_and_condition_constraints_do_not_make_escalation_safe():
    on_a_path = inline("iam:CreateRole", "iam:AttachRolePolicy")
    on_a_path["Statement"][0]["Resource"] = "arn:aws:iam::*:role/service-role/*"
    assert privilege.judge([], on_a_path)
    conditioned = inline(
        "iam:AttachRolePolicy", Condition={"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}
    )
    assert privilege.judge([], conditioned)


def test_not_action_allow_is_expanded():
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "NotAction": ["s3:*"], "Resource": "*"}],
    }
    assert "iam:attachrolepolicy" in privilege.judge([], doc).actions
    power = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}],
    }
    assert not privilege.judge([], power)


def test_every_managed_policy_is_judged_as_its_document_would_be_inline():
    """Attaching an AWS managed policy is no way around the guard: same verdict as its document inline."""
    snapshot = managed_policies.load()
    assert len(snapshot) > 1000
    privileged = 0
    for path_and_name in snapshot._docs:
        as_managed = privilege.judge([AWS + path_and_name], None)
        as_inline = privilege.judge([], snapshot.document(AWS + path_and_name))
        assert as_managed.actions == as_inline.actions, path_and_name
        privileged += bool(as_managed)
    assert privileged > 250  # 295 in the shipped snapshot


def test_unknown_and_customer_managed_policies_are_privileged_until_proven_otherwise():
    unknown = privilege.judge([AWS + "SomethingAwsPublishesTomorrow"], None)
    assert unknown.unknown and "is not in the managed-policy snapshot" in unknown.reasons[0]
    assert unknown.actions == privilege.sensitive_actions()  # only denying everything sensitive bounds it
    customer = privilege.judge([], None, ["/team/DeployPolicy"])
    assert customer and "customer managed policy /team/DeployPolicy" in customer.reasons[0]
    assert privilege.unbounded(zone(BOUNDARY), unknown) == []


def test_an_scp_bounds_only_what_it_denies():
    verdict = privilege.judge([AWS + "AdministratorAccess"], None)
    nonsense = {
        "name": "n",
        "document": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Action": "s3:NoSuchThing", "Resource": "*"}],
        },
    }
    assert privilege.unbounded(zone(nonsense), verdict) == [
        f"its SCPs do not deny {privilege._sample(verdict.actions)}"
    ]
    some = {
        "name": "s",
        "document": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Deny", "Action": ["iam:CreateUser", "organizations:*"], "Resource": "*"}
            ],
        },
    }
    assert "iam:attachrolepolicy" in privilege.unbounded(zone(some), verdict)[0]
    assert privilege.unbounded(zone(BOUNDARY), verdict) == []
    everything_but_s3 = {
        "name": "e",
        "document": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}],
        },
    }
    assert privilege.unbounded(zone(everything_but_s3), verdict) == []
    assert privilege.unbounded(zone(BOUNDARY, allow=False), verdict) == [
        "the landing zone does not set allow_privileged_roles: true"
    ]
    # the escalation actions a narrow permission set allows are all an SCP needs to deny
    narrow = privilege.judge([], inline("iam:PassRole", "ec2:RunInstances"))
    deny_pass_role = {
        "name": "p",
        "document": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Action": "iam:PassRole", "Resource": "*"}],
        },
    }
    assert privilege.unbounded(zone(deny_pass_role), narrow) == []
    one_role = {
        "name": "o",
        "document": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Deny", "Action": "iam:PassRole", "Resource": "arn:aws:iam::*:role/admin"}
            ],
        },
    }
    assert privilege.unbounded(zone(one_role), narrow) == ["its SCPs do not deny iam:passrole"]


def test_a_refreshed_snapshot_is_taken_from_iam_and_used_by_validation(
    world, access_config, write_config, registry, tmp_path
):
    from meshcore_aws.cli import app

    path = tmp_path / "policies.json.gz"
    result = CliRunner().invoke(app, ["managed-policies", "refresh", "--out", str(path)])  # moto's IAM
    assert result.exit_code == 0 and "AWS managed policies" in result.output, result.output
    snapshot = json.loads(gzip.decompress(path.read_bytes()))
    assert snapshot["format"] == 1
    admin = snapshot["policies"][AWS + "AdministratorAccess"]["document"]
    assert privilege.judge([], admin)
    del snapshot["policies"][AWS + "ReadOnlyAccess"]
    managed_policies.write(snapshot, path)
    bad = CliRunner().invoke(app, ["managed-policies", "refresh", "--out", str(tmp_path / "no" / "dir.gz")])
    assert bad.exit_code == 2 and "cannot write" in bad.output
    ic = access_config["platforms"][0]["config"]["identity_center"]
    ic["managed_policies_file"] = str(path)
    with pytest.raises(ConfigError) as info:  # ReadOnly is unknown to this snapshot: privileged
        load_config(write_config(access_config), registry)
    assert "managed policy ReadOnlyAccess is not in the managed-policy snapshot" in str(
        info.value.problems[0]
    )
    ic["managed_policies_file"] = str(tmp_path / "missing.json.gz")
    with pytest.raises(ConfigError) as info:
        load_config(write_config(access_config), registry)
    assert "cannot read the managed-policy snapshot" in str(info.value.problems[0])


def test_check_command_explains_the_verdict():
    from meshcore_aws.cli import app

    result = CliRunner().invoke(
        app, ["managed-policies", "check", "WellArchitectedConsoleFullAccess", "ReadOnlyAccess"]
    )
    assert result.exit_code == 1
    assert (
        "WellArchitectedConsoleFullAccess: privileged" in result.output
        and "iam:attachrolepolicy" in result.output
    )
    assert "ReadOnlyAccess: not privileged" in result.output


def test_a_deny_not_action_in_another_case_leaves_what_it_does_not_name():
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
            {"Effect": "Deny", "NotAction": "IAM:*", "Resource": "*"},
        ],
    }
    assert "iam:attachrolepolicy" in privilege.judge([], doc).actions


@pytest.mark.parametrize(
    ("condition", "bounds"),
    [
        ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/OrganizationAccountAccessRole"}}, True),
        ({"ArnNotLikeIfExists": {"aws:PrincipalARN": ["arn:aws:iam::*:role/platform-*"]}}, True),
        ({"ArnNotLike": {"aws:PrincipalArn": "*"}}, False),  # exempts everyone
        ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}, False),  # every role, SSO's too
        ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/aws-reserved/sso.amazonaws.com/*"}}, False),
        ({"StringEquals": {"aws:RequestedRegion": "mars-1"}}, False),  # denies nothing real
        ({"ArnNotLike": {"aws:SourceArn": "arn:aws:iam::*:role/x"}}, False),
    ],
)
def test_an_scp_condition_counts_only_when_it_exempts_named_principals(condition, bounds):
    verdict = privilege.judge([AWS + "AdministratorAccess"], None)
    scp = {
        "name": "c",
        "document": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Action": ["iam:*", "organizations:*"],
                    "Resource": "*",
                    "Condition": condition,
                }
            ],
        },
    }
    assert (privilege.unbounded(zone(scp), verdict) == []) is bounds


def test_an_account_policy_is_not_judged_by_the_aws_policy_of_the_same_name():
    verdict = privilege.judge(["arn:aws:iam::123456789012:policy/PowerUserAccess"], None)
    assert verdict.unknown and "is not in the managed-policy snapshot" in verdict.reasons[0]
