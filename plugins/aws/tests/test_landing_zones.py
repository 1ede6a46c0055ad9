"""Landing zones on moto: OU placement, SCPs (owned vs foreign), StackSet baselines, Lambda, LZ change, drift."""

from __future__ import annotations

import json

import boto3
import pytest

from aws_testlib import DENY_LEAVE, by_key
from meshcore.config import load_config
from meshcore.errors import ConfigError


def scps_on(client, target: str) -> set[str]:
    return {
        p["Name"]
        for p in client.list_policies_for_target(TargetId=target, Filter="SERVICE_CONTROL_POLICY")["Policies"]
    }


def instances(account_id: str, stack_set: str) -> dict[str, dict]:
    cf = boto3.client("cloudformation", region_name="us-east-1")
    return {
        i["Region"]: i
        for i in cf.list_stack_instances(StackSetName=stack_set)["Summaries"]
        if i["Account"] == account_id
    }


def test_scps_and_baselines_are_applied_and_foreign_policies_untouched(world, lz_config):
    client = world.org.client
    foreign = client.create_policy(
        Name="team-guardrail",
        Description="not ours",
        Type="SERVICE_CONTROL_POLICY",
        Content=json.dumps(DENY_LEAVE),
    )["Policy"]["PolicySummary"]["Id"]
    client.enable_policy_type(RootId=world.org.root, PolicyType="SERVICE_CONTROL_POLICY")
    client.attach_policy(PolicyId=foreign, TargetId=world.org.ous["/Workloads/Dev"])
    report = world.reconciler(lz_config).apply()
    assert not report.failed, [r.message for r in report.tenants]
    p1 = by_key(report)["ws1/p1@aws"].platform_tenant_id
    dev = world.org.ous["/Workloads/Dev"]
    assert scps_on(client, dev) >= {"meshcore-deny-leave-and-non-eu", "team-guardrail"}
    assert "meshcore-deny-billing" in scps_on(client, p1)
    policy = next(
        p
        for p in client.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]
        if p["Name"] == "meshcore-deny-leave-and-non-eu"
    )
    tags = {t["Key"]: t["Value"] for t in client.list_tags_for_resource(ResourceId=policy["Id"])["Tags"]}
    assert tags == {"meshcore:managed-by": "meshcore"}
    content = json.loads(client.describe_policy(PolicyId=policy["Id"])["Policy"]["Content"])
    assert content["Statement"][0]["Action"] == "organizations:LeaveOrganization"
    got = instances(p1, "meshcore-dev-base")
    assert set(got) == {"us-east-1", "eu-west-1"}
    cf = boto3.client("cloudformation", region_name="us-east-1")
    detail = cf.describe_stack_instance(
        StackSetName="meshcore-dev-base", StackInstanceAccount=p1, StackInstanceRegion="us-east-1"
    )["StackInstance"]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in detail["ParameterOverrides"]}
    assert params == {
        "AccountId": p1,
        "AccountName": "ws1-p1",
        "Workspace": "ws1",
        "Project": "p1",
        "Tags": "CostCenter=cc-1,env=dev",
        "SecurityContact": "sec+ws1@example.com",
    }
    ssm = boto3.client("ssm", region_name="us-east-1")
    sts = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{p1}:role/OrganizationAccountAccessRole", RoleSessionName="check"
    )["Credentials"]
    ssm = boto3.client(
        "ssm",
        region_name="us-east-1",
        aws_access_key_id=sts["AccessKeyId"],
        aws_secret_access_key=sts["SecretAccessKey"],
        aws_session_token=sts["SessionToken"],
    )
    assert ssm.get_parameter(Name="/meshcore/identity")["Parameter"]["Value"] == f"ws1/p1 (ws1-p1, {p1})"
    # prod tenants: account-level SCP, no baseline
    p2 = by_key(report)["ws1/p2@aws"].platform_tenant_id
    assert "meshcore-deny-leave" in scps_on(client, p2) and instances(p2, "meshcore-dev-base") == {}


def test_second_run_makes_zero_writes_and_plan_is_empty(world, lz_config):
    rec = world.reconciler(lz_config)
    rec.apply()
    world.calls.clear()
    report = rec.apply()
    assert {r.status for r in report.tenants} == {"ok"}, [(r.key, r.message) for r in report.tenants]
    assert world.calls.writes == {}, world.calls
    assert world.calls["ListStackInstances"] == 1  # one listing of the StackSet for all tenants
    assert all(i.actions == [] for i in rec.plan().tenants)


def test_template_lint_errors_are_rejected_before_any_write(
    world, lz_config, write_config, registry, tmp_path
):
    bad = tmp_path / "bad.yaml"
    bad.write_text("Resources:\n  Topic:\n    Type: AWS::SNS::Topicz\n")
    lz_config["landing_zones"][0]["config"]["baselines"][0]["template"] = str(bad)
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(lz_config), registry)
    msg = str(exc.value.problems[0])
    assert "landing_zones[0].config.baselines[0].template: cfn-lint: E3006" in msg
    assert world.calls.total() == 0


@pytest.mark.parametrize(
    ("scp", "message"),
    [
        (
            {
                "name": "x",
                "document": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Deny", "Action": "s3:*", "Principal": "*"}],
                },
            },
            "not allowed in an SCP: Principal",
        ),
        (
            {
                "name": "x",
                "document": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Deny",
                            "Action": [f"s3:Action{i:04d}" for i in range(400)],
                            "Resource": "*",
                        }
                    ],
                },
            },
            "AWS allows at most 5120",
        ),
        ({"name": "x", "file": "/nonexistent/policy.json"}, "cannot read policy document"),
        ({"name": "x", "document": {"Version": "2008-10-17", "Statement": []}}, "'Version' must be"),
    ],
)
def test_bad_scps_are_config_errors(world, lz_config, write_config, registry, scp, message):
    lz_config["landing_zones"][1]["config"]["scps"] = [scp]
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(lz_config), registry)
    assert any(
        message in str(p) and "landing_zones[1].config.scps[0]" in str(p) for p in exc.value.problems
    ), exc.value.problems


def test_five_policies_per_target_limit(world, lz_config, write_config, registry):
    lz_config["landing_zones"][1]["config"]["scps"] = [
        {"name": f"p{i}", "document": DENY_LEAVE, "attach_to": "account"} for i in range(5)
    ]
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(lz_config), registry)
    assert "5 SCPs attach to the account; AWS allows 5 per target, one of which is FullAWSAccess" in str(
        exc.value.problems[0]
    )
    # at apply time, foreign attachments count too: refused before any attach
    lz_config["landing_zones"][1]["config"]["scps"] = [
        {"name": "p0", "document": DENY_LEAVE, "attach_to": "account"}
    ]
    rec = world.reconciler(lz_config)
    p2 = by_key(rec.apply())["ws1/p2@aws"].platform_tenant_id
    client = world.org.client
    for i in range(4):
        pid = client.create_policy(
            Name=f"foreign-{i}", Description="", Type="SERVICE_CONTROL_POLICY", Content=json.dumps(DENY_LEAVE)
        )["Policy"]["PolicySummary"]["Id"]
        client.attach_policy(PolicyId=pid, TargetId=p2)
    lz_config["landing_zones"][1]["config"]["scps"].append(
        {"name": "p1", "document": DENY_LEAVE, "attach_to": "account"}
    )
    result = by_key(world.reconciler(lz_config).apply())["ws1/p2@aws"]
    assert result.status == "failed" and "AWS allows 5 per target" in result.message
    assert "meshcore-p1" not in scps_on(client, p2)


def test_scp_update_and_detach_only_touch_owned_policies(world, lz_config):
    rec = world.reconciler(lz_config)
    p1 = by_key(rec.apply())["ws1/p1@aws"].platform_tenant_id
    client = world.org.client
    foreign = client.create_policy(
        Name="meshcore-lookalike",
        Description="",
        Type="SERVICE_CONTROL_POLICY",
        Content=json.dumps(DENY_LEAVE),
    )["Policy"]["PolicySummary"]["Id"]
    client.attach_policy(PolicyId=foreign, TargetId=p1)  # named like ours, but not tagged as ours
    scps = lz_config["landing_zones"][0]["config"]["scps"]
    scps[1] = {
        "name": "deny-billing",
        "document": DENY_LEAVE,
        "attach_to": "account",
        "description": "changed",
    }
    plan = world.reconciler(lz_config).plan()
    assert [(a.resource, a.target) for a in plan.platforms[0].actions] == [("scp", "meshcore-deny-billing")]
    assert all(not i.actions for i in plan.tenants), "a document change is shared, not per tenant"
    world.reconciler(lz_config).apply()
    pid = next(
        p["Id"]
        for p in client.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]
        if p["Name"] == "meshcore-deny-billing"
    )
    assert json.loads(client.describe_policy(PolicyId=pid)["Policy"]["Content"]) == DENY_LEAVE
    del scps[1]  # no longer wanted: detached from the account, the look-alike stays
    world.reconciler(lz_config).apply()
    assert scps_on(client, p1) == {"FullAWSAccess", "meshcore-lookalike"}


def test_landing_zone_change_swaps_ou_policies_and_baselines(world, lz_config, state_store):
    rec = world.reconciler(lz_config)
    p1 = by_key(rec.apply())["ws1/p1@aws"].platform_tenant_id
    lz_config["workspaces"][0]["projects"][0]["tenants"][0]["landing_zone"] = "prod"
    rec2 = world.reconciler(lz_config)
    item = next(i for i in rec2.plan().tenants if i.key == "ws1/p1@aws")
    assert [(a.phase, a.change, a.resource, a.target) for a in item.actions] == [
        ("guardrails", "create", "scp-attachment", "meshcore-deny-leave @ account"),
        ("guardrails", "delete", "scp-attachment", "meshcore-deny-billing @ account"),
        ("placement", "update", "ou", "ws1-p1"),
        ("baseline", "delete", "stack-instance", "meshcore-dev-base"),
    ]
    result = by_key(rec2.apply())["ws1/p1@aws"]
    assert result.status == "changed", result.message
    client = world.org.client
    assert client.list_parents(ChildId=p1)["Parents"][0]["Id"] == world.org.ous["/Workloads/Prod"]
    assert scps_on(client, p1) == {"FullAWSAccess", "meshcore-deny-leave"}
    assert instances(p1, "meshcore-dev-base") == {}
    order = [
        s.name for s in state_store.steps(run_id=rec2.store.runs(1)[0].id) if s.tenant_key == "ws1/p1@aws"
    ]
    attach = order.index("guardrails scp-attachment meshcore-deny-leave @ account")
    assert attach < order.index("placement ou ws1-p1"), "the account moved before its new guardrails were on"
    assert all(i.actions == [] for i in rec2.plan().items)


def test_drift_detached_scp_and_missing_or_outdated_instance_are_repaired(world, lz_config, monkeypatch):
    rec = world.reconciler(lz_config)
    p1 = by_key(rec.apply())["ws1/p1@aws"].platform_tenant_id
    client = world.org.client
    pid = next(
        p["Id"]
        for p in client.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]
        if p["Name"] == "meshcore-deny-billing"
    )
    client.detach_policy(PolicyId=pid, TargetId=p1)
    cf = boto3.client("cloudformation", region_name="us-east-1")
    cf.delete_stack_instances(
        StackSetName="meshcore-dev-base", Accounts=[p1], Regions=["eu-west-1"], RetainStacks=True
    )
    from moto.cloudformation.models import StackInstance

    original = StackInstance.to_dict

    def drifted(self):
        data = original(self)
        if self.account_id == p1 and self.region_name == "us-east-1":
            data["DriftStatus"] = "DRIFTED"
        return data

    monkeypatch.setattr(StackInstance, "to_dict", drifted)
    item = next(i for i in rec.plan().tenants if i.key == "ws1/p1@aws")
    details = [(a.resource, a.change, a.target, a.after) for a in item.actions]
    assert details == [
        ("scp-attachment", "create", "meshcore-deny-billing @ account", None),
        ("stack-instance", "create", f"meshcore-dev-base @ {p1}", "eu-west-1"),
    ], "a DRIFTED instance must not be 'repaired' by an update that leaves the drift"
    world.calls.clear()
    rec.apply()
    assert "meshcore-deny-billing" in scps_on(client, p1)
    assert set(instances(p1, "meshcore-dev-base")) == {"us-east-1", "eu-west-1"}
    assert world.calls["UpdateStackInstances"] == 0 and world.calls["CreateStackInstances"] == 1
    row = next(t for t in world.store.tenants() if t.key == "ws1/p1@aws")
    assert row.attributes["drift"].startswith("DRIFTED: meshcore-dev-base us-east-1")


def test_failed_stackset_operation_is_a_failed_step_with_the_reason(world, lz_config):
    """Something else was to deploy the execution role (``create_execution_role: false``) and did not:
    AWS fails the account's instances with its reason, which is the step's message."""
    lz_config["platforms"][0]["config"]["baselines"] = {"create_execution_role": False}
    report = world.reconciler(lz_config).apply()
    result = by_key(report)["ws1/p1@aws"]
    assert result.status == "failed"
    step = next(
        s
        for s in world.store.steps()
        if s.tenant_key == "ws1/p1@aws" and s.name.startswith("baseline stack-instance")
    )
    assert (
        step.status == "failed"
        and "should have 'AWSCloudFormationStackSetExecutionRole' role" in step.message
    )
    assert world.store.journal_entries(status="failed")
    # prod tenants (no baseline) are unaffected
    assert by_key(report)["ws1/p2@aws"].status == "changed"


def test_stackset_operation_still_running_resumes_next_run(world, lz_config, monkeypatch):
    from moto.cloudformation.models import CloudFormationBackend

    original = CloudFormationBackend.describe_stack_set_operation
    running = {"polls": 5}

    def slow(self, stackset_name, operation_id):
        stackset, op = original(self, stackset_name, operation_id)
        if running["polls"] > 0:
            running["polls"] -= 1
            return stackset, {**op, "Status": "RUNNING"}
        return stackset, op

    monkeypatch.setattr(CloudFormationBackend, "describe_stack_set_operation", slow)
    lz_config["platforms"][0]["config"]["stackset_wait_seconds"] = 2  # two polls per run
    lz_config["workspaces"] = lz_config["workspaces"][:1]
    lz_config["workspaces"][0]["projects"] = lz_config["workspaces"][0]["projects"][:1]
    rec = world.reconciler(lz_config)
    first = by_key(rec.apply())["ws1/p1@aws"]
    assert first.status == "in_progress" and "is still running" in first.message
    creates = world.calls["CreateStackInstances"]
    plan = by_key(rec.plan())["ws1/p1@aws"]
    assert [(a.change, a.resource) for a in plan.actions] == [("wait", "stack-instance")]
    assert by_key(rec.apply())["ws1/p1@aws"].status == "in_progress"  # 1 of 5 polls left
    assert by_key(rec.apply())["ws1/p1@aws"].status == "changed"  # finished: access and the rest follow
    assert by_key(rec.apply())["ws1/p1@aws"].status == "ok"
    assert world.calls["CreateStackInstances"] == creates, "the operation was sent twice"
    assert [(e.kind, e.key) for e in world.store.journal_entries(status="open")] == []


def test_operation_in_progress_is_retried(world, lz_config, monkeypatch):
    from moto.cloudformation.exceptions import CloudFormationError
    from moto.cloudformation.models import CloudFormationBackend

    original = CloudFormationBackend.create_stack_instances
    busy = {"n": 1}

    def busy_once(self, *args, **kwargs):
        if busy["n"]:
            busy["n"] -= 1
            raise CloudFormationError(
                "OperationInProgressException", "Another Operation on StackSet is in progress"
            )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CloudFormationBackend, "create_stack_instances", busy_once)
    rec = world.reconciler(lz_config)
    report = rec.apply()
    assert not report.failed, [r.message for r in report.tenants]
    busy_tenant = [i for i in report.tenants if i.status == "in_progress"]
    assert len(busy_tenant) == 1 and "busy with another operation" in busy_tenant[0].message
    assert not rec.apply().failed
    assert world.calls["CreateStackInstances"] == 2 + 1  # p1, p3, plus the refused attempt
    assert world.store.journal_entries(status="open") == []


def test_lambda_hook_is_queued_once_per_change_with_an_idempotency_key(world, lz_config, monkeypatch):
    from moto.awslambda.exceptions import UnknownFunctionException
    from moto.awslambda_simple.models import LambdaSimpleBackend

    seen = []
    original = LambdaSimpleBackend.invoke

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        if function_name == "does-not-exist":
            raise UnknownFunctionException(function_name)
        seen.append((headers.get("X-Amz-Invocation-Type"), json.loads(body)))
        return original(self, function_name, qualifier, body, headers, response_headers)

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return {'ok': True}\n")
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="lambda-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("lambda", region_name="us-east-1").create_function(
        FunctionName="on-replicated",
        Runtime="python3.12",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": buf.getvalue()},
    )
    lz_config["landing_zones"][1]["config"]["lambda_hook"] = {"function": "on-replicated"}
    rec = world.reconciler(lz_config)
    rec.apply()
    assert world.calls["Invoke"] == 1  # one tenant in 'prod'
    ((kind, event),) = seen
    assert kind == "Event", "the hook must be invoked asynchronously (a long function is never re-sent)"
    assert event["project"] == "p2" and len(event["idempotency_key"]) == 32
    step = next(s for s in world.store.steps() if s.name == "baseline lambda on-replicated")
    assert step.status == "changed" and "queued on-replicated" in step.message
    rec.apply()
    assert world.calls["Invoke"] == 1, "invoked again although nothing changed"
    lz_config["workspaces"][0]["projects"][1]["tags"] = {"environment": "prod-eu"}
    world.reconciler(lz_config).apply()
    assert world.calls["Invoke"] == 2 and seen[1][1]["idempotency_key"] != event["idempotency_key"]
    lz_config["landing_zones"][1]["config"]["lambda_hook"] = {
        "function": "does-not-exist",
        "invoke": "always",
    }
    result = by_key(world.reconciler(lz_config).apply())["ws1/p2@aws"]
    assert result.status == "failed" and "invoking does-not-exist failed" in result.message


def test_one_scp_name_with_two_definitions_is_rejected(world, lz_config, write_config, registry):
    lz_config["landing_zones"][1]["config"]["scps"] = [{"name": "deny-billing", "document": DENY_LEAVE}]
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(lz_config), registry)
    assert "SCP 'deny-billing' is also defined by landing zone 'dev' with another document" in str(
        exc.value.problems[0]
    )
