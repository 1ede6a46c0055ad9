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
