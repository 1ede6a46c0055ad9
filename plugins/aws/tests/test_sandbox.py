"""The sandbox bootstraps a three-account organization; the demo replicates the example twice."""

from __future__ import annotations

import socket

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


def test_sandbox_without_bootstrap_serves_an_empty_aws_and_says_so(monkeypatch):
    """``--no-bootstrap``: the endpoint and credentials only (no roles exist to point at), a server that
    answers, and Ctrl-C stops it."""
    import time

    import pytest
    from botocore.exceptions import ClientError

    from meshcore_aws import sandbox
    from meshcore_aws.cli import app

    box = sandbox.Sandbox()
    endpoint = box.start()
    try:
        assert box.port > 0 and endpoint == f"http://127.0.0.1:{box.port}"
        assert set(box.env()) == {
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
        }
        org = boto3.client("organizations", endpoint_url=endpoint, region_name="us-east-1")
        with pytest.raises(ClientError, match="AWSOrganizationsNotInUseException"):
            org.describe_organization()
        org.close()  # its kept-alive connection would hold the port past the stop
    finally:
        box.stop()
    again = sandbox.Sandbox(port=box.port)  # the stop released the port: a restart on it is not refused
    again.start()
    again.stop()

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", interrupted)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = CliRunner().invoke(app, ["sandbox", "--port", str(port), "--no-bootstrap"])
    assert result.exit_code == 0, result.output
    assert f"AWS sandbox running at http://127.0.0.1:{port}" in result.output
    assert "nothing set up" in result.output and "ROLE_ARN" not in result.output
