"""Setup templates: written by the CLI, lint clean, deploy into the emulator, and cover every call the plugin makes."""

from __future__ import annotations

import datetime as dt
import json
from fnmatch import fnmatchcase

import boto3
import iam_lint
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
from meshcore_aws.setup_templates import NOT_IN_OUR_ROLES, allowed_actions, templates

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


def test_every_generated_statement_is_valid_iam(tmp_path):
    """Actions exist, resource ARNs are of types the actions accept, condition keys apply (AWS's IAM data)."""
    found = {key: iam_lint.problems(st) for key, st in iam_lint.deployed_statements(templates()).items()}
    assert len(found) >= 12
    assert {k: v for k, v in found.items() if v} == {}


@pytest.mark.parametrize(
    "statement, problem",
    [
        ({"Effect": "Allow", "Action": "organizations:CloseAcount", "Resource": "*"}, "no such action"),
        (
            {"Effect": "Allow", "Action": "organizations:CloseAccount", "Resource": "arn:aws:iam::1:role/x"},
            "not of a type",
        ),
        (
            {
                "Effect": "Allow",
                "Action": "organizations:CloseAccount",
                "Resource": "*",
                "Condition": {"StringEquals": {"sts:ExternalId": "x"}},
            },
            "does not apply",
        ),
        ({"Effect": "Allow", "Action": "iam:*", "Resource": "*"}, "wildcard"),
        (  # the shape that once made CloseAccount impossible: ${...} in a JSON key is never substituted
            {
                "Effect": "Allow",
                "Action": "organizations:CloseAccount",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:ResourceTag/${ClosureGuardTagKey}": {"Ref": "ClosureGuardTagValue"}}
                },
            },
            "never substituted",
        ),
    ],
)
def test_the_iam_check_catches_what_aws_would_reject(statement, problem):
    assert any(problem in p for p in iam_lint.problems(statement))


def test_least_privilege_close_and_move_are_scoped(tmp_path):
    CliRunner().invoke(app, ["setup-templates", str(tmp_path)])
    body = yaml.safe_load((tmp_path / "management-account.yaml").read_text())
    policies = body["Resources"]["MeshfedServiceRole"]["Properties"]["Policies"]
    plain = {s["Sid"]: s for s in policies[0]["PolicyDocument"]["Statement"]}
    conditional = json.loads(policies[1]["PolicyDocument"]["Fn::Sub"])
    by_sid = {s["Sid"]: s for s in conditional["Statement"]}
    # the guard tag key is substituted by CloudFormation (a Fn::Sub string), so IAM sees the real key
    close = iam_lint.substitute({"Fn::Sub": policies[1]["PolicyDocument"]["Fn::Sub"]})
    assert '"aws:ResourceTag/closable": "true"' in close
    assert by_sid["CloseOnlyOptedInAccounts"]["Resource"].endswith(":account/o-*/*")
    assert by_sid["MoveIntoOusMeshcoreCreated"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/${ManagedByTagKey}": "meshcore"}
    }
    assert plain["MoveBetweenLandingZoneOus"]["Resource"] == {"Ref": "WorkloadOuArns"}
    assert plain["NoRoleOfTheManagementAccount"]["Effect"] == "Deny"
    assert plain["IdentityCenterRolesInAccounts"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::*:role/aws-reserved/sso.amazonaws.com/*"
    }
    for st in [*plain.values(), *by_sid.values()]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        assert all("*" not in a for a in actions)
        if st["Resource"] == "*":
            assert not any(a.startswith("iam:") for a in actions), f"IAM calls on every resource: {st['Sid']}"


def test_the_replicator_trusts_any_oidc_issuer(tmp_path):
    CliRunner().invoke(app, ["setup-templates", str(tmp_path)])
    body = yaml.safe_load((tmp_path / "meshcloud-account.yaml").read_text())
    trust = body["Resources"]["ReplicatorRole"]["Properties"]["AssumeRolePolicyDocument"]["Fn::Sub"]
    iam_lint.EXAMPLES["OidcIssuer"] = "gitlab.com"
    try:
        resolved = json.loads(iam_lint.substitute(trust))
    finally:
        del iam_lint.EXAMPLES["OidcIssuer"]
    assert set(resolved["Statement"][0]["Condition"]["StringEquals"]) == {"gitlab.com:aud", "gitlab.com:sub"}
