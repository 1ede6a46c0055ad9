"""StackSet operations shared by the tenants of a run (meshcore_aws.batches): one operation for many
accounts when their overrides are equal, one per account when they are not, each account's own outcome,
and a crash between the call and its journal record never sends the operation twice."""

from __future__ import annotations

import threading
import time

import boto3
import pytest

from meshcore.context import JournalEntry

N = 12
PLAIN = """AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Marker:
    Type: AWS::SSM::Parameter
    Properties:
      Name: /platform/baseline
      Type: String
      Value: "on"
"""


def stack_instances(stack_set: str) -> dict[str, set[str]]:
    cf = boto3.client("cloudformation", region_name="us-east-1")
    out: dict[str, set[str]] = {}
    for i in cf.list_stack_instances(StackSetName=stack_set)["Summaries"]:
        out.setdefault(i["Account"], set()).add(i["Region"])
    return out


@pytest.fixture
def many(lz_config, tmp_path):
    """N new projects in the dev landing zone, whose baseline declares no per-account parameter."""
    template = tmp_path / "plain.yaml"
    template.write_text(PLAIN)
    lz_config["landing_zones"][0]["config"]["baselines"] = [
        {"name": "base", "template": str(template), "regions": ["us-east-1", "eu-west-1"]}
    ]
    lz_config["settings"] = {"concurrency": N}
    lz_config["workspaces"] = [
        {
            "id": "big",
            "projects": [
                {"id": f"p{i}", "tenants": [{"platform": "aws", "landing_zone": "dev"}]} for i in range(N)
            ],
        }
    ]
    return lz_config


@pytest.fixture
def first_operation_waits_for_all(world, monkeypatch):
    """The first operation runs until every tenant is waiting to deploy (recorded just before it joins),
    so that the others must share the next one: what happens when AWS takes minutes per operation."""
    from moto.cloudformation.models import CloudFormationBackend

    original = CloudFormationBackend.describe_stack_set_operation
    first: list[str] = []

    def slow(self, stackset_name, operation_id):
        if not first:
            first.append(operation_id)
        if operation_id == first[0]:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if len(world.store.resource_list("aws", "stack-instance", None)) >= N:
                    break
                time.sleep(0.05)
        return original(self, stackset_name, operation_id)

    monkeypatch.setattr(CloudFormationBackend, "describe_stack_set_operation", slow)


@pytest.mark.usefixtures("first_operation_waits_for_all")
def test_new_accounts_share_operations(world, many):
    report = world.reconciler(many).apply()
    assert not report.failed, [t.message for t in report.failed]
    assert all(t.status == "changed" for t in report.tenants), [(t.status, t.message) for t in report.tenants]
    assert world.calls["CreateStackInstances"] == 2, dict(world.calls)  # the first alone, then the other 11
    deployed = stack_instances("meshcore-dev-base")
    accounts = {t.platform_tenant_id for t in world.store.tenants()}
    assert set(deployed) == accounts and len(accounts) == N
    assert all(regions == {"us-east-1", "eu-west-1"} for regions in deployed.values())
    assert all(t.status == "changed" for t in report.tenants)
    assert [e.key for e in world.store.journal_entries(status="open")] == []
    shared = [s for s in world.store.steps() if s.name.startswith("baseline stack-instance")]
    assert sum("(11 accounts in one operation)" in s.message for s in shared) == N - 1

    world.calls.clear()
    again = world.reconciler(many).apply()
    assert {t.status for t in again.tenants} == {"ok"} and world.calls.writes == {}, world.calls.writes


def test_per_account_parameters_cost_an_operation_each(world, lz_config):
    """The example baseline declares AccountName, Workspace, Project: AWS takes one set of overrides per
    operation, so each account gets its own, with its own values."""
    lz_config["settings"] = {"concurrency": 4}
    report = world.reconciler(lz_config).apply()
    assert not report.failed, [t.message for t in report.failed]
    dev = [t for t in world.store.tenants() if t.landing_zone == "dev"]
    assert len(dev) >= 2 and world.calls["CreateStackInstances"] == len(dev)
    cf = boto3.client("cloudformation", region_name="us-east-1")
    for t in dev:
        got = cf.describe_stack_instance(
            StackSetName="meshcore-dev-base",
            StackInstanceAccount=t.platform_tenant_id,
            StackInstanceRegion="us-east-1",
        )["StackInstance"]
        values = {p["ParameterKey"]: p["ParameterValue"] for p in got.get("ParameterOverrides", [])}
        assert values["AccountId"] == t.platform_tenant_id and values["Project"] == t.project


@pytest.mark.usefixtures("first_operation_waits_for_all")
def test_one_failed_account_fails_only_its_tenant(world, many, monkeypatch):
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.responses import ActionResult

    listed = CloudFormationResponse.list_stack_set_operation_results
    victim: list[str] = []

    def results(self):  # the second (shared) operation fails in one account
        summaries = listed(self).result["Summaries"]
        if len({r["Account"] for r in summaries}) > 1:
            victim.append(victim[0] if victim else summaries[0]["Account"])
            summaries = [
                {**r, "Status": "FAILED", "StatusReason": "Resource handler returned message: denied"}
                if r["Account"] == victim[0]
                else r
                for r in summaries
            ]
        return ActionResult({"Summaries": summaries})

    monkeypatch.setattr(CloudFormationResponse, "list_stack_set_operation_results", results)
    report = world.reconciler(many).apply()
    failed = [t for t in report.tenants if t.status == "failed"]
    owner = world.store.owner_of("aws", victim[0])
    assert [t.key for t in failed] == [owner], [(t.key, t.message) for t in report.tenants]
    assert "denied" in failed[0].message
    assert sum(t.status == "changed" for t in report.tenants) == N - 1
    assert len(world.store.journal_entries(status="failed")) == 1


def test_crash_between_call_and_record_never_sends_twice(world, many, monkeypatch):
    """The run dies right after CreateStackInstances went out, before its id was recorded: the next run
    finds the operation at AWS and awaits it instead of sending another."""
    many["workspaces"][0]["projects"] = many["workspaces"][0]["projects"][:3]
    many["settings"] = {"concurrency": 1}
    original = JournalEntry.record_operation
    crashed = threading.Event()

    def crash(self, operation_id):
        if self.kind == "stackset-operation" and not crashed.is_set():
            crashed.set()
            raise RuntimeError("killed")
        return original(self, operation_id)

    monkeypatch.setattr(JournalEntry, "record_operation", crash)
    world.reconciler(many).apply()
    assert crashed.is_set()
    sent = world.calls["CreateStackInstances"]
    monkeypatch.setattr(JournalEntry, "record_operation", original)
    report = world.reconciler(many).apply()
    assert not report.failed, [t.message for t in report.failed]
    assert sent == 3  # the other tenants went on
    assert world.calls["CreateStackInstances"] == sent, "the first tenant's operation was sent twice"
    assert world.calls["UpdateStackInstances"] == 0, "the first tenant's instances were deployed again"
    assert [t.status for t in report.tenants].count("changed") == 1  # the first, awaiting its operation
    assert len(stack_instances("meshcore-dev-base")) == 3
    assert [e.key for e in world.store.journal_entries(status="open")] == []


def test_crash_between_record_and_call_sends_the_operation_next_run(world, many, monkeypatch):
    """The run dies after journaling the operation, before CreateStackInstances goes out: the next run asks
    AWS for it (OperationNotFoundException: never sent) and sends it, once."""
    from meshcore_aws import sessions as aws_sessions
    from meshcore_aws.run import reset_sessions

    many["workspaces"][0]["projects"] = many["workspaces"][0]["projects"][:1]
    killed = threading.Event()

    def die_before_sending(event_name="", **_kw):
        if event_name.endswith("CreateStackInstances") and not killed.is_set():
            killed.set()
            raise KeyboardInterrupt  # what a killed process does not get past: nothing after it runs

    monkeypatch.setattr(
        aws_sessions, "EVENT_HOOKS", [*world.calls.hooks(), ("before-send", die_before_sending)]
    )
    reset_sessions()
    with pytest.raises(KeyboardInterrupt):
        world.reconciler(many).apply()
    assert killed.is_set() and stack_instances("meshcore-dev-base") == {}
    (entry,) = [e for e in world.store.journal_entries(status="open") if e.kind == "stackset-operation"]
    world.calls.clear()
    report = world.reconciler(many).apply()
    assert not report.failed, [t.message for t in report.failed]
    assert world.calls["DescribeStackSetOperation"] >= 1  # asked AWS about the journaled operation
    assert world.calls["CreateStackInstances"] == 1, dict(world.calls)
    assert len(stack_instances("meshcore-dev-base")) == 1
    assert [e.key for e in world.store.journal_entries(status="open")] == []
    failed = {e.id: e.message for e in world.store.journal_entries(status="failed")}
    assert "never sent" in failed.get(entry.id, ""), failed


def _member(org, name: str) -> str:
    status = org.client.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]
    for _ in range(5):
        status = org.client.describe_create_account_status(CreateAccountRequestId=status["Id"])[
            "CreateAccountStatus"
        ]
        if status["State"] == "SUCCEEDED":
            return status["AccountId"]
    raise AssertionError(status)


def test_the_emulator_runs_and_fails_an_operation_under_the_caller_s_operation_id(org):
    """boto3 always sends an ``OperationId`` (its idempotency token): the operation is RUNNING for a read,
    as on AWS, and an account without the execution role fails with AWS's reason, under that id."""
    cf = boto3.client("cloudformation", region_name="us-east-1")
    account = _member(org, "lacks-role")
    cf.create_stack_set(StackSetName="s", TemplateBody=PLAIN)
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
    cf.create_stack_set(StackSetName="s", TemplateBody=PLAIN, ManagedExecution={"Active": True})
    accounts = [_member(org, f"m{i}") for i in range(8)]
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
            client.update_stack_set(StackSetName="s", TemplateBody=PLAIN, OperationId=f"update-{i}")
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
    from botocore.exceptions import ClientError

    cf = boto3.client("cloudformation", region_name="us-east-1")
    account = _member(org, "m")
    cf.create_stack_set(StackSetName="s", TemplateBody=PLAIN)
    cf.update_stack_set(StackSetName="s", TemplateBody=PLAIN, OperationId="op-1")
    cf.describe_stack_set_operation(StackSetName="s", OperationId="op-1")  # RUNNING for one read
    for call in (
        lambda: cf.update_stack_set(StackSetName="s", TemplateBody=PLAIN, OperationId="op-1"),
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
    from botocore.exceptions import ClientError
    from moto.cloudformation.models import StackSet

    change = StackSet.update

    def slow_update(self, *args, **kwargs):  # widens the gap between the check and the operation
        time.sleep(0.02)
        return change(self, *args, **kwargs)

    monkeypatch.setattr(StackSet, "update", slow_update)
    cf = boto3.client("cloudformation", region_name="us-east-1")
    cf.create_stack_set(StackSetName="s", TemplateBody=PLAIN)
    outcomes: list[str] = []

    def update(i: int) -> None:
        client = boto3.client("cloudformation", region_name="us-east-1")
        try:
            client.update_stack_set(StackSetName="s", TemplateBody=PLAIN, OperationId=f"race-{i}")
            outcomes.append("accepted")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=update, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["OperationInProgressException"] * 5 + ["accepted"], outcomes
