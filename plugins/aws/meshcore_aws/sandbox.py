"""A local AWS organization for trying meshcore without an AWS account (moto's server on loopback).

``Sandbox.start()`` runs moto's server; ``bootstrap()`` sets it up like a real
three-account organization: the management account with the organization,
a *meshcloud* and an *automation* account, OUs, ``MeshfedServiceRole`` and
``MeshCostExplorerServiceRole`` (each trusting the meshcloud account with its
own ExternalId), ``MeshfedAutomationRole`` and the StackSet administration role
in the automation account, and an Identity Center instance with users.
``inject_costs`` queues synthetic Cost Explorer data for a month.

The ExternalIds here are sandbox values, printed on purpose; real ones come
from the environment and are never printed.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

REGION = "us-east-1"
MANAGEMENT = "123456789012"
EXTERNAL_IDS = {
    "management": "sandbox-management-external-id",
    "automation": "sandbox-automation-external-id",
    "cost_explorer": "sandbox-cost-explorer-external-id",
}
USERS = (("alice", "Alice", "Admin"), ("bob", "Bob", "Builder"), ("carol", "Carol", "Reader"))
SERVICES = (
    ("Amazon Elastic Compute Cloud - Compute", 40),
    ("Amazon Simple Storage Service", 7),
    ("AWS Lambda", 3),
    ("Tax", 5),
)


@dataclass
class Sandbox:
    host: str = "127.0.0.1"
    port: int = 0
    accounts: dict[str, str] = field(default_factory=dict)
    ous: dict[str, str] = field(default_factory=dict)
    _server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        import logging
        import warnings

        import meshcore_aws_emulator
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        meshcore_aws_emulator.patch()
        meshcore_aws_emulator.reset()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # The emulator's notes on resource types it does not model are not the user's problem.
        logging.getLogger("moto").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"moto\.")
        # meshcore binds the socket and hands it to the server: an address it cannot listen on is a clear
        # error at once (moto's threaded server binds in its own thread and then waits for ever; werkzeug
        # exits the process), and port 0 is a free port no one can take in between.
        with socket.socket() as listening:
            # as servers do: a restart may bind a port whose closed connections linger (TIME_WAIT); a port
            # another process listens on is still refused
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listening.bind((self.host, self.port))
                listening.listen(128)
            except (OSError, OverflowError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                raise OSError(f"cannot listen on {self.host}:{self.port}: {reason}") from None
            server = make_server(
                self.host,
                0,
                DomainDispatcherApplication(create_backend_app),
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=listening.fileno(),  # the server listens on a duplicate of it
            )
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, name="meshcore-aws-sandbox", daemon=True).start()
        self._post("/moto-api/reset", b"")  # a fresh organization, even if this process ran one before
        self._post("/moto-api/config", json.dumps(meshcore_aws_emulator.MOTO_CONFIG).encode())
        return self.endpoint

    def _post(self, path: str, body: bytes) -> None:
        req = urllib.request.Request(
            f"{self.endpoint}{path}", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def env(self) -> dict[str, str]:
        """Environment for meshcore (and the aws CLI) to use the sandbox; the roles' only once it is
        bootstrapped."""
        plain = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "AWS_DEFAULT_REGION": REGION,
        }
        if "automation" not in self.accounts:
            return plain
        return {
            **plain,
            "MESHCORE_MANAGEMENT_EXTERNAL_ID": EXTERNAL_IDS["management"],
            "MESHCORE_MANAGEMENT_ROLE_ARN": f"arn:aws:iam::{MANAGEMENT}:role/MeshfedServiceRole",
            "MESHCORE_AUTOMATION_EXTERNAL_ID": EXTERNAL_IDS["automation"],
            "MESHCORE_AUTOMATION_ROLE_ARN": f"arn:aws:iam::{self.accounts['automation']}:role/MeshfedAutomationRole",
            "MESHCORE_COST_EXPLORER_EXTERNAL_ID": EXTERNAL_IDS["cost_explorer"],
            "MESHCORE_COST_EXPLORER_ROLE_ARN": f"arn:aws:iam::{MANAGEMENT}:role/MeshCostExplorerServiceRole",
            "MESHCORE_IDENTITY_CENTER_REGION": REGION,
            "MESHCORE_POLL_INTERVAL": "0",
        }

    def client(self, service: str, creds: dict[str, str] | None = None) -> Any:
        import boto3

        kwargs: dict[str, Any] = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
        if creds:
            kwargs = {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            }
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **kwargs)

    def bootstrap(self) -> None:
        org = self.client("organizations")
        org.create_organization(FeatureSet="ALL")
        org.enable_aws_service_access(ServicePrincipal="account.amazonaws.com")  # renaming member accounts
        root = org.list_roots()["Roots"][0]["Id"]
        for path in ("/Infrastructure", "/Quarantine"):
            self.ous[path] = org.create_organizational_unit(ParentId=root, Name=path[1:])[
                "OrganizationalUnit"
            ]["Id"]
        self.accounts["management"] = MANAGEMENT
        for name in ("meshcloud", "automation"):
            request = org.create_account(AccountName=name, Email=f"aws+{name}@sandbox.example.com")[
                "CreateAccountStatus"
            ]["Id"]
            while (
                st := org.describe_create_account_status(CreateAccountRequestId=request)[
                    "CreateAccountStatus"
                ]
            )["State"] == "IN_PROGRESS":
                time.sleep(0.01)
            self.accounts[name] = st["AccountId"]
            org.move_account(
                AccountId=st["AccountId"],
                SourceParentId=root,
                DestinationParentId=self.ous["/Infrastructure"],
            )
        replicator = f"arn:aws:iam::{self.accounts['meshcloud']}:root"
        iam = self.client("iam")
        for role, key in (
            ("MeshfedServiceRole", "management"),
            ("MeshCostExplorerServiceRole", "cost_explorer"),
        ):
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=_trust(replicator, EXTERNAL_IDS[key]))
        creds = self.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{self.accounts['automation']}:role/OrganizationAccountAccessRole",
            RoleSessionName="sandbox",
        )["Credentials"]
        auto_iam = self.client("iam", creds)
        auto_iam.create_role(
            RoleName="MeshfedAutomationRole",
            AssumeRolePolicyDocument=_trust(replicator, EXTERNAL_IDS["automation"]),
        )
        auto_iam.create_role(
            RoleName="AWSCloudFormationStackSetAdministrationRole",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudformation.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        sso = self.client("sso-admin").list_instances()["Instances"][0]
        store = self.client("identitystore")
        for user, given, family in USERS:
            store.create_user(
                IdentityStoreId=sso["IdentityStoreId"],
                UserName=user,
                DisplayName=f"{given} {family}",
                Name={"GivenName": given, "FamilyName": family},
                Emails=[{"Value": f"{user}@example.com", "Primary": True}],
            )

    def inject_costs(self, month_start: str, month_end: str, account_ids: list[str]) -> None:
        """Queue one Cost Explorer answer (grouped by account and service) for the month."""
        groups = []
        for account in sorted(account_ids):
            scale = 1 + int(hashlib.sha256(account.encode()).hexdigest()[:2], 16) / 64
            for service, base in SERVICES:
                amount = (Decimal(base) * Decimal(str(round(scale, 2)))).quantize(Decimal("0.01"))
                groups.append(
                    {
                        "Keys": [account, service],
                        "Metrics": {"AmortizedCost": {"Amount": str(amount), "Unit": "USD"}},
                    }
                )
        groups.append(
            {
                "Keys": [self.accounts.get("meshcloud", "000000000000"), "Credits"],
                "Metrics": {"AmortizedCost": {"Amount": "-5.00", "Unit": "USD"}},
            }
        )
        body = json.dumps(
            {
                "results": [
                    {
                        "ResultsByTime": [
                            {
                                "TimePeriod": {"Start": month_start, "End": month_end},
                                "Groups": groups,
                                "Estimated": False,
                            }
                        ],
                        "DimensionValueAttributes": [],
                    }
                ]
            }
        ).encode()
        self._post("/moto-api/static/ce/cost-and-usage-results", body)


def _trust(principal: str, external_id: str) -> str:
    return json.dumps(
        {
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
    )
