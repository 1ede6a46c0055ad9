"""The emulator answers as AWS does (the botocore service models' errors and reasons), where moto does not:
what meshcore's recovery paths depend on is checked through boto3, as meshcore calls it."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError


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
