"""Constants and helpers shared by the AWS plugin tests (imported by tests and by conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3

import meshcore_aws

MGMT = "123456789012"
ROLE = f"arn:aws:iam::{MGMT}:role/MeshfedServiceRole"
EXTERNAL_ID = "xid-7c1d9a3e55f04b2a"
EXAMPLES = Path(meshcore_aws.__file__).resolve().parent / "example"  # examples/aws links here
DENY_LEAVE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"}],
}
DENY_BILLING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Deny", "Action": "aws-portal:*", "Resource": "*"}],
}


#: An SCP that bounds a privileged permission set: it denies every IAM permissions-management and
#: escalation action and every Organizations write, except to the roles the platform itself uses.
BOUNDARY = {
    "name": "boundary",
    "document": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "NoPrivilegeEscalation",
                "Effect": "Deny",
                "Action": ["iam:*", "organizations:*"],
                "Resource": "*",
                "Condition": {
                    "ArnNotLike": {
                        "aws:PrincipalArn": [
                            "arn:aws:iam::*:role/OrganizationAccountAccessRole",
                            "arn:aws:iam::*:role/AWSCloudFormationStackSetExecutionRole",
                        ]
                    }
                },
            }
        ],
    },
}


def create_account(org_client, name: str, email: str) -> str:
    """Create an account outside meshcore and wait for it, as a person would; its id."""
    request = org_client.create_account(AccountName=name, Email=email)["CreateAccountStatus"]["Id"]
    for _ in range(50):
        status = org_client.describe_create_account_status(CreateAccountRequestId=request)[
            "CreateAccountStatus"
        ]
        if status["State"] == "SUCCEEDED":
            return status["AccountId"]
        if status["State"] == "FAILED":
            raise AssertionError(f"creating {name} failed: {status.get('FailureReason')}")
    raise AssertionError(f"creating {name} never finished")


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


def refuse(monkeypatch, world, ops, code="AccessDeniedException", status=400, when=None) -> dict[str, int]:
    """Refuse every request for one of ``ops`` (optionally only ``when(op, request)``) before AWS acts on it.

    The refusal is raised from botocore's ``before-send``, so the emulator never performs the write
    (a returned error response would still let it). Returns a counter of refusals.
    """
    from botocore.exceptions import ClientError

    from meshcore_aws import sessions as aws_sessions
    from meshcore_aws.run import reset_sessions

    hits = {"n": 0}

    def hook(event_name: str = "", request: Any = None, **_kw: Any) -> None:
        op = event_name.rsplit(".", 1)[-1]
        if op in ops and (when is None or when(op, request)):
            hits["n"] += 1
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": f"refused by the test: {op}"},
                    "ResponseMetadata": {"HTTPStatusCode": status},
                },
                op,
            )

    monkeypatch.setattr(aws_sessions, "EVENT_HOOKS", [*world.calls.hooks(), ("before-send", hook)])
    reset_sessions()  # clients are cached with their event hooks
    return hits


def trust(external_id: str, principal: str = "arn:aws:iam::111111111111:root") -> dict[str, Any]:
    """A role trust policy as the setup templates write it: this principal, with this ExternalId."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def member_account(org: Any, name: str) -> str:
    """A new member account of the emulated organization (created, awaited), by its id."""
    status = org.client.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]
    for _ in range(5):
        status = org.client.describe_create_account_status(CreateAccountRequestId=status["Id"])[
            "CreateAccountStatus"
        ]
        if status["State"] == "SUCCEEDED":
            return status["AccountId"]
    raise AssertionError(status)
