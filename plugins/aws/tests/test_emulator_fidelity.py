"""The emulator answers as AWS does (the botocore service models' errors and reasons), where moto does not:
what meshcore's recovery paths depend on is checked through boto3, as meshcore calls it."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from aws_testlib import member_account

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
    ok, bad = member_account(org, "ok"), member_account(org, "bad")
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


def test_the_emulator_runs_and_fails_an_operation_under_the_caller_s_operation_id(org):
    """boto3 always sends an ``OperationId`` (its idempotency token): the operation is RUNNING for a read,
    as on AWS, and an account without the execution role fails with AWS's reason, under that id."""
    cf = boto3.client("cloudformation", region_name="us-east-1")
    account = member_account(org, "lacks-role")
    cf.create_stack_set(StackSetName="s", TemplateBody=PARAMETER)
    op = cf.create_stack_instances(
        StackSetName="s", Accounts=[account], Regions=["us-east-1"], OperationId="meshcore-op-1"
    )["OperationId"]
    assert op == "meshcore-op-1"
    read = [
        cf.describe_stack_set_operation(StackSetName="s", OperationId=op)["StackSetOperation"]["Status"]
        for _ in range(2)
    ]
    assert read == ["RUNNING", "FAILED"]
    (result,) = cf.list_stack_set_operation_results(StackSetName="s", OperationId=op)["Summaries"]
    assert result["Account"] == account and result["Status"] == "FAILED"
    assert "should have 'AWSCloudFormationStackSetExecutionRole' role" in result["StatusReason"]


def test_the_emulator_keeps_concurrent_operations_apart(org, monkeypatch):
    """Concurrent requests on one StackSet (AWS queues them under managed execution): each operation keeps
    its own id and its own accounts' outcome."""
    from moto.cloudformation.models import StackInstances
    from moto.iam.models import iam_backends

    deploy = StackInstances.create_instances

    def slow_deploy(self, *args, **kwargs):  # widens the gap between a deployment and its operation
        out = deploy(self, *args, **kwargs)
        time.sleep(0.02)
        return out

    monkeypatch.setattr(StackInstances, "create_instances", slow_deploy)

    cf = boto3.client("cloudformation", region_name="us-east-1")
    cf.create_stack_set(StackSetName="s", TemplateBody=PARAMETER, ManagedExecution={"Active": True})
    accounts = [member_account(org, f"m{i}") for i in range(8)]
    for account in accounts[::2]:  # every other account has the execution role
        iam_backends[account]["global"].create_role(
            "AWSCloudFormationStackSetExecutionRole", "{}", "/", None, "", [], None
        )
    errors: list[BaseException] = []

    def send(i: int, account: str) -> None:
        try:
            client = boto3.client("cloudformation", region_name="us-east-1")
            client.create_stack_instances(
                StackSetName="s", Accounts=[account], Regions=["us-east-1"], OperationId=f"op-{i}"
            )
        except BaseException as exc:  # reported below
            errors.append(exc)

    def update(i: int) -> None:  # an update of the StackSet itself, between the deployments
        try:
            client = boto3.client("cloudformation", region_name="us-east-1")
            client.update_stack_set(StackSetName="s", TemplateBody=PARAMETER, OperationId=f"update-{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i, a)) for i, a in enumerate(accounts)]
    threads += [threading.Thread(target=update, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    for i in range(4):
        op = cf.describe_stack_set_operation(StackSetName="s", OperationId=f"update-{i}")["StackSetOperation"]
        assert op["Action"] == "UPDATE" and op["Status"] == "RUNNING", op
        assert (
            cf.describe_stack_set_operation(StackSetName="s", OperationId=f"update-{i}")["StackSetOperation"][
                "Status"
            ]
            == "SUCCEEDED"
        ), "an update took a deployment's failures"
    for i, account in enumerate(accounts):
        read = [
            cf.describe_stack_set_operation(StackSetName="s", OperationId=f"op-{i}")["StackSetOperation"][
                "Status"
            ]
            for _ in range(2)
        ]
        assert read == ["RUNNING", "SUCCEEDED" if i % 2 == 0 else "FAILED"], (i, read)
        (result,) = cf.list_stack_set_operation_results(StackSetName="s", OperationId=f"op-{i}")["Summaries"]
        assert result["Account"] == account
        assert (result["Status"] == "SUCCEEDED") == (i % 2 == 0), (i, result)


def test_the_emulator_refuses_an_operation_id_used_before(org):
    """An ``OperationId`` used before is refused on every kind of request, as AWS does."""

    cf = boto3.client("cloudformation", region_name="us-east-1")
    account = member_account(org, "m")
    cf.create_stack_set(StackSetName="s", TemplateBody=PARAMETER)
    cf.update_stack_set(StackSetName="s", TemplateBody=PARAMETER, OperationId="op-1")
    cf.describe_stack_set_operation(StackSetName="s", OperationId="op-1")  # RUNNING for one read
    for call in (
        lambda: cf.update_stack_set(StackSetName="s", TemplateBody=PARAMETER, OperationId="op-1"),
        lambda: cf.create_stack_instances(
            StackSetName="s", Accounts=[account], Regions=["us-east-1"], OperationId="op-1"
        ),
    ):
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == "OperationIdAlreadyExistsException"


def test_the_emulator_runs_one_operation_at_a_time_without_managed_execution(org, monkeypatch):
    """Without managed execution AWS refuses a second operation while one runs, however close together
    the two requests come."""
    from moto.cloudformation.models import StackSet

    change = StackSet.update

    def slow_update(self, *args, **kwargs):  # widens the gap between the check and the operation
        time.sleep(0.02)
        return change(self, *args, **kwargs)

    monkeypatch.setattr(StackSet, "update", slow_update)
    cf = boto3.client("cloudformation", region_name="us-east-1")
    cf.create_stack_set(StackSetName="s", TemplateBody=PARAMETER)
    outcomes: list[str] = []

    def update(i: int) -> None:
        client = boto3.client("cloudformation", region_name="us-east-1")
        try:
            client.update_stack_set(StackSetName="s", TemplateBody=PARAMETER, OperationId=f"race-{i}")
            outcomes.append("accepted")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=update, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["OperationInProgressException"] * 5 + ["accepted"], outcomes
