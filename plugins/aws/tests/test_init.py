"""``meshcore aws init`` writes a config of the organization it reads, read-only, that validates and changes nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import meshcore_aws_emulator
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from typer.testing import CliRunner

from aws_testlib import create_account
from meshcore_aws import inventory
from meshcore_aws.cli import app

CLI_DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


def emulator_ous(org: Any) -> dict[str, str]:
    """Path -> id of every OU, as the organization lists them."""
    found: dict[str, str] = {}

    def walk(parent: str, prefix: str) -> None:
        for ou in org.list_organizational_units_for_parent(ParentId=parent)["OrganizationalUnits"]:
            found[f"{prefix}/{ou['Name']}"] = ou["Id"]
            walk(ou["Id"], f"{prefix}/{ou['Name']}")

    walk(org.list_roots()["Roots"][0]["Id"], "")
    return found


def uncommented_imports(text: str) -> str:
    """The config with its commented-out import block taken in, as a user would uncomment it."""
    head, block = text.split("# workspaces:", 1)
    return head + "\n".join(line[2:] for line in ("# workspaces:" + block).splitlines()) + "\n"


def test_init_against_the_sandbox_writes_a_config_that_validates_and_changes_nothing(sandbox, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "AWS_PROFILE"} | sandbox.env()
    env["MESHCORE_STATE"] = f"sqlite:///{tmp_path / 'state.db'}"

    def meshcore(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "meshcore", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    done = meshcore("aws", "init", "--out", "meshcore.yaml")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "meshcore.yaml").read_text()
    config = yaml.safe_load(text)
    org = sandbox.client("organizations")
    ous = emulator_ous(org)
    zones = config["landing_zones"]
    assert {z["config"]["ou"] for z in zones} == set(ous) == {"/Infrastructure", "/Quarantine"}
    assert {z["config"]["ou"]: z["description"].split(",")[0] for z in zones} == {
        path: f"OU {ou_id}" for path, ou_id in ous.items()
    }
    instance = sandbox.client("sso-admin").list_instances()["Instances"][0]
    platform = config["platforms"][0]
    assert platform["id"] == "aws" and platform["config"]["management"] == "base"
    assert platform["config"]["identity_center"] == {
        "region": "us-east-1",
        "instance_arn": instance["InstanceArn"],
        "identity_store_id": instance["IdentityStoreId"],
    }
    assert platform["config"]["account_email_pattern"] == "master+{workspace}-{project}@example.com"
    assert platform["config"]["deletion"] == {"mode": "close", "guard": {"key": "closable", "value": "true"}}
    assert "workspaces" not in config  # the import candidates are commented out

    assert meshcore("validate", "-c", "meshcore.yaml").returncode == 0
    plan = meshcore("plan", "-c", "meshcore.yaml", "-o", "json", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stderr + plan.stdout  # 0: nothing to change
    assert json.loads(plan.stdout)["items"] == []

    # The candidates: every account but the management account, each in the landing zone of its OU.
    (tmp_path / "imports.yaml").write_text(uncommented_imports(text))
    imports = yaml.safe_load((tmp_path / "imports.yaml").read_text())
    tenants = {t["import_id"]: t for p in imports["workspaces"][0]["projects"] for t in p["tenants"]}
    assert set(tenants) == {sandbox.accounts["meshcloud"], sandbox.accounts["automation"]}
    assert {t["landing_zone"] for t in tenants.values()} == {"infrastructure"}
    done = meshcore("validate", "-c", "imports.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    plan = meshcore("plan", "-c", "imports.yaml", "-o", "json")
    assert plan.returncode == 0, plan.stderr
    items = json.loads(plan.stdout)["items"]
    assert len(items) == 2
    for item in items:
        changes = {(a["phase"], a["change"]) for a in item["actions"]}
        assert not {c for c in changes if c[1] == "delete"}, item
        assert not {c for c in changes if c[0] in ("placement", "revoke", "deprovision")}, item
        adopt = [a for a in item["actions"] if a["phase"] == "tenant"]
        assert len(adopt) == 1 and adopt[0]["after"] in tenants and "import" in adopt[0]["detail"], adopt


@pytest.fixture
def run_init(org, tmp_path, monkeypatch) -> Callable[..., tuple[int, str]]:
    """``meshcore aws init ARGS`` in-process against the moto organization; (exit code, output)."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["init", *args])
        assert "Traceback" not in result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output

    return run


def refuse(monkeypatch, operation: str, code: str) -> None:
    """Every boto3 session the command creates has ``operation`` refused with ``code`` before it is sent."""
    real = boto3.Session

    def session(*args: Any, **kwargs: Any) -> Any:
        made = real(*args, **kwargs)

        def hook(model: Any, **_kw: Any) -> None:
            if model.name == operation:
                raise ClientError({"Error": {"Code": code, "Message": "refused by the test"}}, operation)

        made.events.register("before-call", hook)
        return made

    monkeypatch.setattr(boto3, "Session", session)


def test_init_reads_the_ou_tree_and_the_accounts_with_read_calls_only(org):
    dev = create_account(org.client, "Team A: web (dev)", "team-a@example.com")
    org.client.move_account(
        AccountId=dev, SourceParentId=org.root, DestinationParentId=org.ous["/Workloads/Dev"]
    )
    loose = create_account(org.client, "loose", "loose@example.com")  # stays at the root
    closed = create_account(org.client, "closed", "closed@example.com")
    org.client.close_account(AccountId=closed)
    calls: list[str] = []
    session = boto3.Session()
    session.events.register("before-call", lambda model, **_kw: calls.append(model.name))

    found = inventory.read(session)

    assert calls and all(re.match(r"^(List|Describe)[A-Z]", c) for c in calls), calls
    assert {"/" + "/".join(ou.path): ou.id for ou in found.ous if ou.path} == org.ous
    assert found.ous[0].id == org.root and found.management_account_id == "123456789012"
    placed = {a.id: "/" + "/".join(ou.path) for ou in found.ous for a in ou.accounts}
    assert placed[dev] == "/Workloads/Dev" and placed[loose] == "/" and placed[closed] == "/"

    from meshcore_aws.starter_config import render

    text = render(found, "aws-prod", __import__("datetime").date(2026, 1, 1))
    config = yaml.safe_load(text)
    zones = {z["config"]["ou"]: z["id"] for z in config["landing_zones"]}
    assert zones == {
        "/": "root",  # a member account sits at the root
        "/Workloads": "workloads",
        "/Workloads/Dev": "workloads-dev",
        "/Workloads/Prod": "workloads-prod",
        "/Quarantine": "quarantine",
    }
    projects = yaml.safe_load(uncommented_imports(text))["workspaces"][0]["projects"]
    imported = {p["id"]: p["tenants"][0] for p in projects}
    assert imported == {
        "team-a-web-dev": {"platform": "aws-prod", "landing_zone": "workloads-dev", "import_id": dev},
        "loose": {"platform": "aws-prod", "landing_zone": "root", "import_id": loose},
    }
    assert f"{closed} (PENDING_CLOSURE)" in text  # left out, and said so


def test_init_finds_identity_center_in_its_home_region(run_init, monkeypatch, tmp_path):
    monkeypatch.setattr(meshcore_aws_emulator.PROFILE, "ic_region", "eu-west-1")
    code, out = run_init()
    assert code == 0, out
    ic = yaml.safe_load((tmp_path / "meshcore.yaml").read_text())["platforms"][0]["config"]["identity_center"]
    home = boto3.client("sso-admin", region_name="eu-west-1").list_instances()["Instances"][0]
    assert ic == {
        "region": "eu-west-1",
        "instance_arn": home["InstanceArn"],
        "identity_store_id": home["IdentityStoreId"],
    }
    assert "Identity Center in eu-west-1" in out


def test_without_identity_center_the_config_says_so_and_still_validates(
    run_init, tmp_path, write_config, registry
):
    code, _ = run_init("--identity-center-region", "ap-south-1", "--out", "none.yaml")
    assert code == 0
    text = (tmp_path / "none.yaml").read_text()
    assert "identity_center" not in yaml.safe_load(text)["platforms"][0]["config"]
    assert "No IAM Identity Center instance answered in 1 region(s)" in text
    from meshcore.config import load_config

    loaded = load_config(tmp_path / "none.yaml", registry)
    assert loaded.platforms["aws"].config.identity_center is None


def test_init_refuses_to_overwrite_unless_forced(run_init, tmp_path):
    (tmp_path / "meshcore.yaml").write_text("mine\n")
    code, out = run_init()
    assert code == 2 and "meshcore.yaml exists; pass --force to overwrite it" in out
    assert (tmp_path / "meshcore.yaml").read_text() == "mine\n"
    code, out = run_init("--force")
    assert code == 0, out
    assert yaml.safe_load((tmp_path / "meshcore.yaml").read_text())["version"] == 1


def test_a_failed_write_leaves_the_old_file_whole_and_no_new_one(run_init, tmp_path, monkeypatch):
    """A disk that fills up mid-write: the existing config is untouched, a new one is not created half-made."""
    import pathlib

    real_open = pathlib.Path.open

    class FillsUp:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, text):
            self.handle.write(text[:100])
            raise OSError(28, "No space left on device")

    def opened(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        return FillsUp(handle) if "x" in mode or "w" in mode else handle

    (tmp_path / "meshcore.yaml").write_text("mine\n")
    monkeypatch.setattr(pathlib.Path, "open", opened)
    code, out = run_init("--force")
    assert code == 2 and "No space left on device" in out
    code, out = run_init("--out", "new.yaml")
    monkeypatch.setattr(pathlib.Path, "open", real_open)
    assert code == 2
    assert (tmp_path / "meshcore.yaml").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meshcore.yaml"], "no half-made or temporary file"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--platform-id", "AWS Prod"), "--platform-id 'AWS Prod' is not an id"),
        (("--out", "missing/dir/meshcore.yaml"), "cannot write missing/dir/meshcore.yaml: No such file"),
    ],
)
def test_bad_usage_is_exit_2_with_one_line(run_init, args, message):
    code, out = run_init(*args)
    assert code == 2 and message in out and len(out.strip().splitlines()) == 1, out


@pytest.mark.parametrize(
    ("operation", "code", "message"),
    [
        ("DescribeOrganization", "AccessDeniedException", "AWS denied organizations:DescribeOrganization"),
        (
            "ListOrganizationalUnitsForParent",
            "AccessDeniedException",
            "organizations:ListOrganizationalUnits",
        ),
        ("ListInstances", "AccessDeniedException", "AWS denied sso:ListInstances"),
        ("ListRoots", "ServiceException", "organizations:ListRoots failed: ServiceException"),
    ],
)
def test_refused_reads_are_exit_1_with_one_line(run_init, monkeypatch, tmp_path, operation, code, message):
    refuse(monkeypatch, operation, code)
    exit_code, out = run_init()
    assert exit_code == 1 and message in out and len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "meshcore.yaml").exists()


def test_unreachable_aws_is_exit_1(tmp_path, monkeypatch):
    monkeypatch.setattr(inventory, "CALLS", inventory.PROBE.merge(Config(retries={"max_attempts": 1})))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 1
    assert "cannot read from AWS: Could not connect to the endpoint URL" in result.output
    assert not (tmp_path / "meshcore.yaml").exists()


def test_no_organization_is_exit_1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with mock_aws():
        result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 1
    assert "the account of these credentials is not in an AWS organization" in result.output


def test_no_credentials_is_exit_1(tmp_path, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing could leave this machine
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 1
    assert "no AWS credentials found" in result.output and len(result.output.strip().splitlines()) == 1


def test_names_aws_allows_are_written_so_that_the_config_still_validates(tmp_path, registry, monkeypatch):
    """OU names with '/' (then OUs go by id), '${', quotes and numbers; e-mails with '+'; clashing ids."""
    from meshcore.config import load_config
    from meshcore_aws.inventory import Account, IdentityCenter, Inventory, Ou
    from meshcore_aws.starter_config import render

    monkeypatch.delenv("HOME_OU", raising=False)

    def acct(n: int, name: str) -> Account:
        return Account(f"1000000000{n:02d}", name, f"a{n}@example.com", "ACTIVE")

    inv = Inventory(
        organization_id="o-abcdefghij",
        partition="aws-us-gov",
        management_account_id="100000000000",
        management_email="aws+root@corp.example.org",
        region="us-gov-west-1",
        endpoint="https://organizations.us-gov-west-1.amazonaws.com",
        ous=(
            Ou("r-ab12", (), (acct(0, "management"),)),
            Ou("ou-ab12-11111111", ("A/B",), (acct(1, "Web: prod"), acct(2, "web prod"))),
            Ou("ou-ab12-22222222", ("${HOME_OU}",), (acct(3, "#!?"),)),
            Ou("ou-ab12-33333333", ("123",), ()),
            Ou("ou-ab12-44444444", ("a-b",), ()),
            Ou("ou-ab12-55555555", ("A B",), ()),
        ),
        identity_center=IdentityCenter(
            "us-gov-west-1", "arn:aws-us-gov:sso:::instance/ssoins-1", "d-1234567890"
        ),
        regions_probed=1,
    )
    text = render(inv, "gov", __import__("datetime").date(2026, 1, 1))
    (tmp_path / "c.yaml").write_text(text)
    (tmp_path / "i.yaml").write_text(uncommented_imports(text))
    config = load_config(tmp_path / "c.yaml", registry)
    aws = config.platforms["gov"].config
    assert aws.account_email_pattern == "aws+root-{workspace}-{project}@corp.example.org"
    assert "arn:aws-us-gov:iam::100000000000:role/MeshfedServiceRole" in text
    zones = {lz.config.ou: lz.id for lz in config.landing_zones.values()}
    assert zones == {  # an OU name with '/' has no path: every OU goes by id
        "ou-ab12-11111111": "a-b",
        "ou-ab12-22222222": "home-ou",
        "ou-ab12-33333333": "123",
        "ou-ab12-44444444": "a-b-2",
        "ou-ab12-55555555": "a-b-3",
    }
    assert config.landing_zones["home-ou"].name == "/${HOME_OU}"  # a name, not a variable
    imported = load_config(tmp_path / "i.yaml", registry)
    tenants = {
        t.import_id: (f"{w.id}/{p.id}@{t.platform}", t.landing_zone)
        for w in imported.document.workspaces
        for p in w.projects
        for t in p.tenants
    }
    assert tenants == {
        "100000000001": ("imported/web-prod@gov", "a-b"),
        "100000000002": ("imported/web-prod-2@gov", "a-b"),
        "100000000003": ("imported/account-00000003@gov", "home-ou"),
    }


def test_a_missing_profile_is_exit_1(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "nope")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 1
    assert "cannot use the AWS credentials: The config profile (nope) could not be found" in result.output


# -- exit codes: every pair the CLI docs list for `aws init` is produced here, and no other -------------

SCENARIOS: dict[tuple[str, int], Callable[[Callable[..., tuple[int, str]], Any], int]] = {
    ("aws init", 0): lambda run, _mp: run()[0],
    ("aws init", 1): lambda run, mp: (refuse(mp, "ListRoots", "AccessDeniedException"), run()[0])[1],
    ("aws init", 2): lambda run, _mp: run("--out", "no/such/dir/x.yaml")[0],
}


def documented() -> set[tuple[str, int]]:
    table = CLI_DOC.read_text().split("<!-- exit-codes:aws -->", 1)[1].split("<!-- /exit-codes:aws -->", 1)[0]
    pairs = set()
    for command, codes in re.findall(r"^\| `([a-z -]+)` \| ([0-9, ]+) \|$", table, re.M):
        pairs |= {(command, int(c)) for c in codes.split(",")}
    return pairs


def test_the_scenarios_cover_exactly_the_documented_pairs():
    assert set(SCENARIOS) == documented()


@pytest.mark.parametrize(
    ("command", "code"), sorted(SCENARIOS), ids=[f"{c}-{n}" for c, n in sorted(SCENARIOS)]
)
def test_exit_code(command, code, run_init, monkeypatch):
    assert SCENARIOS[(command, code)](run_init, monkeypatch) == code
