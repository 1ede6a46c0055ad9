"""Setup templates: written by the CLI, lint clean, deploy into the emulator, and cover every call the plugin makes."""

from __future__ import annotations

import datetime as dt
from fnmatch import fnmatchcase

import boto3
import pytest
import yaml
from typer.testing import CliRunner

from aws_testlib import by_key
from meshcore.chargeback import statements
from meshcore.config import load_config
from meshcore.costs import CostService
from meshcore.reconciler import approve_deletion
from meshcore_aws.baselines import lint
from meshcore_aws.cli import app
from meshcore_aws.setup_templates import NOT_IN_OUR_ROLES, allowed_actions

LAMBDA_ACTION = {"lambda:Invoke": "lambda:InvokeFunction"}


def test_cli_writes_templates_that_lint_clean(tmp_path):
    result = CliRunner().invoke(app, ["setup-templates", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "automation-account.yaml",
        "management-account.yaml",
        "member-account-stackset-execution-role.yaml",
        "meshcloud-account.yaml",
    ]
    for path in tmp_path.iterdir():
        assert lint(path.read_text(), ["us-east-1"]) == [], path.name


def test_templates_deploy_into_the_emulator(org, tmp_path):
    CliRunner().invoke(app, ["setup-templates", str(tmp_path)])
    boto3.client("iam").delete_role(RoleName="MeshfedServiceRole")  # the fixture's stand-in
    cf = boto3.client("cloudformation", region_name="us-east-1")
    params = {
        "management-account.yaml": {
            "ReplicatorPrincipalArn": "arn:aws:iam::111111111111:role/MeshcoreReplicator",
            "ServiceRoleExternalId": "x" * 20,
            "CostExplorerExternalId": "y" * 20,
            "WorkloadOuArns": "arn:aws:organizations::123456789012:ou/o-abc/ou-abc-11111111",
        },
        "automation-account.yaml": {
            "ReplicatorPrincipalArn": "arn:aws:iam::111111111111:role/MeshcoreReplicator",
            "AutomationRoleExternalId": "z" * 20,
        },
    }
    for name, values in params.items():
        stack = name.split(".")[0]
        cf.create_stack(
            StackName=stack,
            TemplateBody=(tmp_path / name).read_text(),
            Capabilities=["CAPABILITY_NAMED_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        )
        assert cf.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    role = boto3.client("iam").get_role(RoleName="MeshfedServiceRole")["Role"]
    condition = role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    assert condition == {"StringEquals": {"sts:ExternalId": "x" * 20}}


@pytest.fixture
def recorder(monkeypatch):
    from meshcore_aws import sessions as aws_sessions

    seen: set[str] = set()

    def record(model, **_kw):
        action = f"{model.service_model.signing_name}:{model.name}"
        seen.add(LAMBDA_ACTION.get(action, action))

    monkeypatch.setattr(aws_sessions, "EVENT_HOOKS", [("before-call", record)])
    return seen


def test_every_call_of_a_full_lifecycle_is_allowed_by_the_generated_policies(
    world, sso, lz_config, access_config, recorder, registry, write_config, monkeypatch
):
    from moto.awslambda_simple.models import LambdaSimpleBackend

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", lambda self, *a, **k: b"{}")
    config = lz_config  # lz_config and access_config are the same dict, both extended
    config["landing_zones"][1]["config"]["lambda_hook"] = {"function": "notify"}
    config["platforms"][0]["config"]["deletion"] = {"guard": {"key": "closable"}}
    rec = world.reconciler(config)
    report = rec.apply()
    assert not report.failed, [r.message for r in report.tenants]
    rec.plan()
    config["workspaces"][0]["projects"][0]["tenants"][0]["landing_zone"] = (
        "prod"  # moves, swaps SCPs/baselines
    )
    world.reconciler(config).apply()
    config["platforms"][0]["config"]["identity_center"]["permission_sets"][0]["session_duration"] = "PT2H"
    world.reconciler(config).apply()
    loaded = load_config(write_config(config), registry)
    CostService(loaded, world.store, registry, now=dt.datetime(2026, 11, 28, tzinfo=dt.UTC)).collect(
        ["2026-09"]
    )
    statements(world.store, "2026-09", 6, loaded)
    del config["workspaces"][0]["projects"][0]
    rec = world.reconciler(config)
    rec.apply()
    approve_deletion(world.store, "ws1/p1@aws")
    assert by_key(rec.apply())["ws1/p1@aws"].status == "changed"
    from meshcore.context import HookContext

    registry.call(
        "meshplatform_discover_tenants",
        rec.config.platforms["aws"],
        ctx=HookContext(backend=world.store, platform_id="aws", run_id=1),
    )
    registry.call(
        "meshplatform_preflight",
        rec.config.platforms["aws"],
        ctx=HookContext(backend=world.store, platform_id="aws", run_id=1),
    )

    allowed = allowed_actions()
    uncovered = sorted(
        a
        for a in recorder - NOT_IN_OUR_ROLES - {"sts:AssumeRole"}
        if not any(fnmatchcase(a.lower(), p.lower()) for p in allowed)
    )
    assert uncovered == [], f"calls the generated policies do not allow: {uncovered}"
    for expected in (
        "organizations:CreateAccount",
        "organizations:CloseAccount",
        "organizations:MoveAccount",
        "cloudformation:CreateStackInstances",
        "sso:CreateAccountAssignment",
        "ce:GetCostAndUsage",
        "identitystore:CreateGroup",
        "lambda:InvokeFunction",
        "organizations:AttachPolicy",
    ):
        assert expected in recorder, f"the scenario never called {expected}"


def test_least_privilege_close_and_move_are_scoped(tmp_path):
    CliRunner().invoke(app, ["setup-templates", str(tmp_path)])
    body = yaml.safe_load((tmp_path / "management-account.yaml").read_text())
    statements_ = body["Resources"]["MeshfedServiceRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    by_sid = {s["Sid"]: s for s in statements_}
    assert by_sid["CloseOnlyOptedInAccounts"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/${ClosureGuardTagKey}": {"Ref": "ClosureGuardTagValue"}}
    }
    assert by_sid["MoveBetweenLandingZoneOus"]["Resource"] == {"Ref": "WorkloadOuArns"}
    assert all(s["Action"] != "*" and "*" not in s["Action"] for s in statements_)
