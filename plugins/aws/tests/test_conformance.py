"""The core's conformance kit, run against the AWS plugin on the emulator."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest

from aws_testlib import MGMT
from meshcore.testing.conformance import PlatformPluginConformance
from meshcore_aws import plugin as aws_plugin

PREFIX = "meshcore:"
OWN = {"workspace", "project", "platform", "managed-by"}
EMAIL = "conf+{workspace}-{project}@example.com"


class AwsWindow:
    """The kit's window onto the emulated organization (accounts, tags, Identity Center access)."""

    def __init__(self, calls):
        self.calls = calls
        self.org = boto3.client("organizations", region_name="us-east-1")
        self.sso = boto3.client("sso-admin", region_name="us-east-1")
        self.ids = boto3.client("identitystore", region_name="us-east-1")
        instance = self.sso.list_instances()["Instances"][0]
        self.instance, self.store = instance["InstanceArn"], instance["IdentityStoreId"]
        self.user_ids = {}
        for name in ("alice", "bob", "mallory"):
            self.user_ids[name] = self.ids.create_user(
                IdentityStoreId=self.store,
                UserName=name,
                DisplayName=name,
                Name={"GivenName": name, "FamilyName": "X"},
                Emails=[{"Value": f"{name}@example.com", "Primary": True}],
            )["UserId"]

    def writes(self) -> int:
        return sum(self.calls.writes.values())

    def live_tenants(self) -> set[str]:
        accounts = self.org.list_accounts()["Accounts"]
        return {a["Id"] for a in accounts if a["State"] == "ACTIVE" and a["Id"] != MGMT}

    def natural_name(self, workspace: str, project: str) -> str:
        return EMAIL.format(workspace=workspace, project=project)  # accounts are found by e-mail

    def make_foreign(self, name: str) -> str:
        email = name if "@" in name else f"{name}@foreign.example.com"
        request = self.org.create_account(AccountName=email.split("@")[0][:50], Email=email)
        rid = request["CreateAccountStatus"]["Id"]
        while True:
            status = self.org.describe_create_account_status(CreateAccountRequestId=rid)[
                "CreateAccountStatus"
            ]
            if status["State"] == "SUCCEEDED":
                self.org.tag_resource(
                    ResourceId=status["AccountId"], Tags=[{"Key": "team", "Value": "theirs"}]
                )
                return status["AccountId"]

    def tags_of(self, tenant_id: str) -> dict[str, str]:
        tags = self.org.list_tags_for_resource(ResourceId=tenant_id)["Tags"]
        return {
            t["Key"][len(PREFIX) :]: t["Value"]
            for t in tags
            if t["Key"].startswith(PREFIX) and t["Key"][len(PREFIX) :] not in OWN
        }

    def set_tags(self, tenant_id: str, tags: dict[str, str]) -> None:
        self.org.tag_resource(
            ResourceId=tenant_id, Tags=[{"Key": PREFIX + k, "Value": v} for k, v in tags.items()]
        )

    def _groups_on(self, tenant_id: str) -> set[str]:
        groups = set()
        for ps in self.sso.list_permission_sets(InstanceArn=self.instance)["PermissionSets"]:
            listed = self.sso.list_account_assignments(
                InstanceArn=self.instance, AccountId=tenant_id, PermissionSetArn=ps
            )["AccountAssignments"]
            groups |= {a["PrincipalId"] for a in listed if a["PrincipalType"] == "GROUP"}
        return groups

    def users_of(self, tenant_id: str) -> set[str]:
        names = {v: k for k, v in self.user_ids.items()}
        users = set()
        for gid in self._groups_on(tenant_id):
            members = self.ids.list_group_memberships(IdentityStoreId=self.store, GroupId=gid)[
                "GroupMemberships"
            ]
            users |= {names.get(m["MemberId"]["UserId"], "?") for m in members}
        return users

    def grant(self, tenant_id: str, user: str) -> None:
        """Add the user by hand to the tenant's meshcore group, and assign that group again if it
        no longer is (someone undoing meshcore's revocation)."""
        tags = {t["Key"]: t["Value"] for t in self.org.list_tags_for_resource(ResourceId=tenant_id)["Tags"]}
        name = f"meshcore-{tags[PREFIX + 'workspace']}-{tags[PREFIX + 'project']}-admin"
        gid = self.ids.get_group_id(
            IdentityStoreId=self.store,
            AlternateIdentifier={"UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": name}},
        )["GroupId"]
        self.ids.create_group_membership(
            IdentityStoreId=self.store, GroupId=gid, MemberId={"UserId": self.user_ids[user]}
        )
        if gid not in self._groups_on(tenant_id):
            ps = self.sso.list_permission_sets(InstanceArn=self.instance)["PermissionSets"][0]
            self.sso.create_account_assignment(
                InstanceArn=self.instance,
                TargetId=tenant_id,
                TargetType="AWS_ACCOUNT",
                PermissionSetArn=ps,
                PrincipalType="GROUP",
                PrincipalId=gid,
            )

    def seed_costs(self, tenant_id: str, start: dt.date, end: dt.date) -> None:
        from moto.ce.models import ce_backends

        group = {
            "Keys": [tenant_id, "Amazon EC2"],
            "Metrics": {"AmortizedCost": {"Amount": "4.20", "Unit": "USD"}},
        }
        ce_backends[MGMT]["global"].cost_usage_results_queue.append(
            {
                "ResultsByTime": [
                    {"TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()}, "Groups": [group]}
                ],
                "DimensionValueAttributes": [],
            }
        )


class TestAwsConformance(PlatformPluginConformance):
    @pytest.fixture
    def plugin(self, org):
        return aws_plugin

    @pytest.fixture
    def cloud(self, plugin, calls):
        return AwsWindow(calls)

    @pytest.fixture
    def platform_type_name(self):
        return "aws"

    @pytest.fixture
    def platform_config(self):
        return {
            "management": "base",
            "cost_explorer": "base",
            "account_email_pattern": EMAIL,
            "poll_interval_seconds": 0,
            "identity_center": {
                "region": "us-east-1",
                "permission_sets": [
                    {"name": "Reader", "managed_policies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"]}
                ],
                "role_mappings": {"admin": ["Reader"]},
            },
        }

    @pytest.fixture
    def landing_zone_config(self):
        return {"ou": "/Workloads/Dev"}
