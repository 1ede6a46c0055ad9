"""The real ``meshcore`` command, in its own process, against a local emulator server (AWS_ENDPOINT_URL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
import yaml

from aws_testlib import EXTERNAL_ID, ROLE, trust


@pytest.fixture
def moto_server():
    """moto's server with the emulator's fidelity layer and strict profile, as ``meshcore aws sandbox`` runs it."""
    import meshcore_aws_emulator
    from moto.server import ThreadedMotoServer

    meshcore_aws_emulator.patch()
    meshcore_aws_emulator.reset()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # it binds a free port
    server.start()
    yield "http://{}:{}".format(*server.get_host_and_port())
    server.stop()


def test_cli_apply_against_a_local_moto_server(moto_server, tmp_path):
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MC_EXTERNAL_ID": EXTERNAL_ID,
        "MESHCORE_STATE": f"sqlite:///{tmp_path / 'state.db'}",
    }
    env.pop("AWS_PROFILE", None)
    org = boto3.client(
        "organizations",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    org.create_organization(FeatureSet="ALL")
    iam = boto3.client(
        "iam",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    iam.create_role(RoleName="MeshfedServiceRole", AssumeRolePolicyDocument=json.dumps(trust(EXTERNAL_ID)))
    root = org.list_roots()["Roots"][0]["Id"]
    dev = org.create_organizational_unit(ParentId=root, Name="Dev")["OrganizationalUnit"]["Id"]
    config = {
        "platforms": [
            {
                "id": "aws",
                "type": "aws",
                "config": {
                    "management": {"role_arn": ROLE, "external_id": "${MC_EXTERNAL_ID}"},
                    "account_email_pattern": "aws+{workspace}-{project}@example.com",
                    "poll_interval_seconds": 0.2,
                },
            }
        ],
        "landing_zones": [{"id": "dev", "platform": "aws", "config": {"ou": "/Dev"}}],
        "workspaces": [
            {
                "id": "ws",
                "projects": [
                    {"id": f"p{i}", "tenants": [{"platform": "aws", "landing_zone": "dev"}]} for i in range(3)
                ],
            }
        ],
    }
    (tmp_path / "meshcore.yaml").write_text(yaml.safe_dump(config))

    def meshcore(*args):
        return subprocess.run(
            [sys.executable, "-m", "meshcore.cli.app", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = meshcore("apply", "-o", "json")
    assert first.returncode == 0, first.stderr + first.stdout
    assert json.loads(first.stdout)["counts"] == {"changed": 3}
    in_dev = org.list_accounts_for_parent(ParentId=dev)["Accounts"]
    assert sorted(a["Name"] for a in in_dev) == ["ws-p0", "ws-p1", "ws-p2"]
    second = meshcore("apply", "-o", "json")
    assert json.loads(second.stdout)["counts"] == {"ok": 3}
    status = meshcore("status")
    assert status.returncode == 0 and "ws/p1@aws" in status.stdout
    for out in (first.stdout, second.stdout, status.stdout, first.stderr):
        assert EXTERNAL_ID not in out
