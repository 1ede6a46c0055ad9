"""The emulator answers as AWS does (the botocore service models' errors and reasons), where moto does not:
what meshcore's recovery paths depend on is checked through boto3, as meshcore calls it."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

PARAMETER = """Resources:
  Marker:
    Type: AWS::SSM::Parameter
    Properties: {Name: /platform/baseline, Type: String, Value: "on"}
"""


def _code(call, **kwargs) -> tuple[str, str | None]:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    error = refused.value.response["Error"]
    return error["Code"], refused.value.response.get("Reason") or error.get("Reason")


def test_identity_center_outside_its_home_region_is_refused_not_answered(org):
    """Every Identity Center and identity-store call meshcore makes, sent to another region, is refused with
    ``ResourceNotFoundException`` (what preflight looks for); only ``ListInstances`` answers, empty."""
    home = boto3.client("sso-admin", region_name="us-east-1")
    instance = home.list_instances()["Instances"][0]
    ps = home.create_permission_set(InstanceArn=instance["InstanceArn"], Name="p")["PermissionSet"][
        "PermissionSetArn"
    ]
    request = home.provision_permission_set(
        InstanceArn=instance["InstanceArn"], PermissionSetArn=ps, TargetType="ALL_PROVISIONED_ACCOUNTS"
    )["PermissionSetProvisioningStatus"]["RequestId"]
    away = boto3.client("sso-admin", region_name="eu-west-1")
    store = boto3.client("identitystore", region_name="eu-west-1")
    assert away.list_instances()["Instances"] == []
    calls = [
        (away.describe_permission_set_provisioning_status, {"ProvisionPermissionSetRequestId": request}),
        (away.list_accounts_for_provisioned_permission_set, {"PermissionSetArn": ps}),
        (away.list_permission_sets, {}),
        (away.list_account_assignment_creation_status, {}),
    ]
    refused = [_code(call, InstanceArn=instance["InstanceArn"], **kw)[0] for call, kw in calls]
    refused += [
        _code(store.list_groups, IdentityStoreId=instance["IdentityStoreId"])[0],
        _code(store.create_group, IdentityStoreId=instance["IdentityStoreId"], DisplayName="g")[0],
    ]
    assert refused == ["ResourceNotFoundException"] * 6


def test_the_management_account_cannot_be_closed(org):
    master = org.client.describe_organization()["Organization"]["MasterAccountId"]
    assert _code(org.client.close_account, AccountId=master) == (
        "ConstraintViolationException",
        "CANNOT_CLOSE_MANAGEMENT_ACCOUNT",
    )


def test_stack_set_names_and_operation_ids_as_aws_has_them(org):
    """A second StackSet of one name is ``NameAlreadyExistsException``; an operation AWS never got is
    ``OperationNotFoundException`` (how meshcore tells a journaled operation that never went out)."""
    cf = boto3.client("cloudformation", region_name="us-east-1")
    body = '{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}'
    cf.create_stack_set(StackSetName="s", TemplateBody=body)
    assert _code(cf.create_stack_set, StackSetName="s", TemplateBody=body)[0] == "NameAlreadyExistsException"
    assert [s["StackSetName"] for s in cf.list_stack_sets()["Summaries"]] == ["s"]
    for call in (cf.describe_stack_set_operation, cf.list_stack_set_operation_results):
        assert _code(call, StackSetName="s", OperationId="never-sent")[0] == "OperationNotFoundException"


def test_a_failed_operation_lists_a_result_for_every_instance(org):
    """One account without the execution role fails its instances; the others of the same operation are
    listed too, succeeded (AWS lists every targeted instance)."""
    from moto.iam.models import iam_backends

    cf = boto3.client("cloudformation", region_name="us-east-1")
    accounts = []
    for name in ("ok", "bad"):
        status = org.client.create_account(AccountName=name, Email=f"{name}@example.com")[
            "CreateAccountStatus"
        ]
        while status["State"] == "IN_PROGRESS":
            status = org.client.describe_create_account_status(CreateAccountRequestId=status["Id"])[
                "CreateAccountStatus"
            ]
        accounts.append(status["AccountId"])
    ok, bad = accounts
    iam_backends[ok]["global"].create_role(
        "AWSCloudFormationStackSetExecutionRole", "{}", "/", None, "", [], None
    )
    cf.create_stack_set(StackSetName="s", TemplateBody=PARAMETER)
    op = cf.create_stack_instances(StackSetName="s", Accounts=[ok, bad], Regions=["us-east-1", "eu-west-1"])[
        "OperationId"
    ]
    while cf.describe_stack_set_operation(StackSetName="s", OperationId=op)["StackSetOperation"][
        "Status"
    ] in (
        "RUNNING",
        "QUEUED",
    ):
        pass
    summaries = cf.list_stack_set_operation_results(StackSetName="s", OperationId=op)["Summaries"]
    outcome = {(r["Account"], r["Region"]): r["Status"] for r in summaries}
    assert outcome == {
        (ok, "us-east-1"): "SUCCEEDED",
        (ok, "eu-west-1"): "SUCCEEDED",
        (bad, "us-east-1"): "FAILED",
        (bad, "eu-west-1"): "FAILED",
    }
    assert all("should have" in r["StatusReason"] for r in summaries if r["Account"] == bad)


def test_a_failing_creation_holds_its_place_among_the_creations_in_progress(org, monkeypatch):
    """AWS counts every creation in progress toward its limit, one that will fail included."""
    import meshcore_aws_emulator

    monkeypatch.setattr(meshcore_aws_emulator.PROFILE, "creations_in_progress", 1)
    monkeypatch.setattr(
        meshcore_aws_emulator.PROFILE, "create_failures", {"bad@example.com": "INVALID_EMAIL"}
    )
    first = org.client.create_account(AccountName="bad", Email="bad@example.com")["CreateAccountStatus"]
    assert first["State"] == "IN_PROGRESS"
    assert _code(org.client.create_account, AccountName="good", Email="good@example.com") == (
        "ConstraintViolationException",
        "ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED",
    )
    reads = [
        org.client.describe_create_account_status(CreateAccountRequestId=first["Id"])["CreateAccountStatus"]
        for _ in range(2)
    ]
    assert [(r["State"], r.get("FailureReason")) for r in reads] == [
        ("IN_PROGRESS", None),
        ("FAILED", "INVALID_EMAIL"),
    ]
    accepted = org.client.create_account(AccountName="good", Email="good@example.com")["CreateAccountStatus"]
    assert accepted["State"] == "IN_PROGRESS"


def test_a_store_not_found_is_an_error_and_a_group_not_found_is_absent(org):
    """meshcore reads a missing group, user or membership as absent (a deletion done), but a missing store
    (Identity Center's home region elsewhere, a wrong id) as an error: never "deleted"."""
    from meshcore_aws import retries

    store_id = boto3.client("sso-admin", region_name="us-east-1").list_instances()["Instances"][0][
        "IdentityStoreId"
    ]
    home, away = (boto3.client("identitystore", region_name=r) for r in ("us-east-1", "eu-west-1"))
    gid = home.create_group(IdentityStoreId=store_id, DisplayName="g")["GroupId"]
    with pytest.raises(ClientError) as wrong_region:
        away.delete_group(IdentityStoreId=store_id, GroupId=gid)
    assert not retries.identity_absent(wrong_region.value)
    home.delete_group(IdentityStoreId=store_id, GroupId=gid)
    with pytest.raises(ClientError) as gone:
        home.get_group_id(
            IdentityStoreId=store_id,
            AlternateIdentifier={"UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": "g"}},
        )
    assert retries.identity_absent(gone.value)
