"""The sandbox bootstraps a three-account organization; the demo replicates the example twice."""

from __future__ import annotations

import boto3
from typer.testing import CliRunner

from meshcore_aws.cli import example_config
from meshcore_aws.sandbox import EXTERNAL_IDS, MANAGEMENT, Sandbox


def test_sandbox_bootstraps_a_three_account_organization():
    box = Sandbox()
    box.start()
    try:
        box.bootstrap()
        org = boto3.client(
            "organizations",
            endpoint_url=box.endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        names = {a["Name"] for a in org.list_accounts()["Accounts"]}
        assert {"meshcloud", "automation"} <= names
        iam = box.client("iam")
        trust = iam.get_role(RoleName="MeshfedServiceRole")["Role"]["AssumeRolePolicyDocument"]
        statement = trust["Statement"][0]
        assert statement["Principal"]["AWS"] == f"arn:aws:iam::{box.accounts['meshcloud']}:root"
        assert statement["Condition"]["StringEquals"]["sts:ExternalId"] == EXTERNAL_IDS["management"]
        assert box.env()["MESHCORE_MANAGEMENT_ROLE_ARN"].startswith(f"arn:aws:iam::{MANAGEMENT}:")
        store = box.client("identitystore")
        instance = box.client("sso-admin").list_instances()["Instances"][0]
        users = {
            u["UserName"] for u in store.list_users(IdentityStoreId=instance["IdentityStoreId"])["Users"]
        }
        assert users == {"alice", "bob", "carol"}
    finally:
        box.stop()


def test_demo_replicates_the_example_and_the_second_run_changes_nothing(monkeypatch, tmp_path):
    from meshcore_aws.cli import app

    for var in ("AWS_ENDPOINT_URL", "MESHCORE_MANAGEMENT_EXTERNAL_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("os.environ", dict(__import__("os").environ))  # the demo sets sandbox variables
    decoy = tmp_path / "examples" / "aws" / "meshcore.yaml"  # a repository-relative example is never read
    decoy.parent.mkdir(parents=True)
    decoy.write_text("version: 1\nplatforms: []\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo", "--state", f"sqlite:///{tmp_path / 'demo.db'}"])
    out = result.output
    assert result.exit_code == 0, out
    assert "Config " + str(example_config()) in out.replace("\n", "")
    assert "first apply: 3 changed" in out
    assert "second apply: 3 ok" in out and "no changes" in out
    assert "payments/checkout-dev@aws" in out and "/Workloads/Dev" in out
    assert "meshcore-payments-checkout-prod-reader" in out and "ReadOnly @" in out
    assert ("Chargeback" in out and "FINAL" in out) or "PREVIEW" in out


def test_sandbox_on_a_port_in_use_or_out_of_range_is_exit_2_at_once():
    import socket

    from typer.testing import CliRunner

    from meshcore_aws.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["sandbox", "--port", str(port), "--no-bootstrap"])
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.output, result.output
    for bad in ("70000", "0", "-5"):
        result = CliRunner().invoke(app, ["sandbox", "--port", bad])
        assert result.exit_code == 2 and "Traceback" not in result.output, (bad, result.output)


def test_an_emulator_that_never_listens_is_an_error_not_a_hang(monkeypatch):
    """moto's server start waits without a timeout, forever if its server cannot listen (a port taken
    between the check and the bind): the sandbox gives up after START_SECONDS with the address."""
    import threading

    import pytest
    from moto.server import ThreadedMotoServer

    from meshcore_aws import sandbox

    never = threading.Event()
    monkeypatch.setattr(ThreadedMotoServer, "start", lambda self: never.wait())
    monkeypatch.setattr(sandbox, "START_SECONDS", 0.2)
    box = sandbox.Sandbox()
    with pytest.raises(
        OSError, match=r"cannot listen on a free port of 127\.0\.0\.1: the emulator did not start in 0\.2 s"
    ):
        box.start()
    never.set()
    assert box._server is None
