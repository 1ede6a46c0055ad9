"""Constants and helpers shared by the AWS plugin tests (imported by tests and by conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3

MGMT = "123456789012"
ROLE = f"arn:aws:iam::{MGMT}:role/MeshfedServiceRole"
EXTERNAL_ID = "xid-7c1d9a3e55f04b2a"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "aws"
DENY_LEAVE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"}],
}
DENY_BILLING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Deny", "Action": "aws-portal:*", "Resource": "*"}],
}


def by_key(report) -> dict[str, Any]:
    return {i.key: i for i in report.tenants}


def account_view(org_client, account_id: str) -> dict[str, Any]:
    """What AWS says about an account: name, e-mail, status, parent, tags, alias."""
    acct = org_client.describe_account(AccountId=account_id)["Account"]
    parent = org_client.list_parents(ChildId=account_id)["Parents"][0]["Id"]
    tags = {t["Key"]: t["Value"] for t in org_client.list_tags_for_resource(ResourceId=account_id)["Tags"]}
    sts = boto3.client("sts", region_name="us-east-1")
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole", RoleSessionName="check"
    )["Credentials"]
    iam = boto3.client(
        "iam",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )
    aliases = iam.list_account_aliases()["AccountAliases"]
    return {
        "name": acct["Name"],
        "email": acct["Email"],
        "state": acct["State"],
        "parent": parent,
        "tags": tags,
        "alias": aliases[0] if aliases else None,
    }


def server_error(status: int, code: str, message: str = "simulated") -> object:
    """An HTTP error answer botocore receives instead of sending a request (return it from ``before-send``)."""
    import json

    from botocore.awsrequest import AWSResponse

    class Raw:
        def __init__(self, body: bytes):
            self._body = body

        def stream(self, **_kw: object):
            yield self._body

        def read(self, *_a: object) -> bytes:
            return self._body

    body = json.dumps({"__type": code, "message": message}).encode()
    return AWSResponse("https://emulated.invalid", status, {"x-amzn-errortype": code}, Raw(body))
