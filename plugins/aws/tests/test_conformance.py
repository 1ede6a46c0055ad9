"""The core's conformance suite, run against the AWS plugin on the emulator."""

from __future__ import annotations

import boto3
import pytest

from meshcore.testing.conformance import PlatformPluginConformance
from meshcore_aws import plugin as aws_plugin


class TestAwsConformance(PlatformPluginConformance):
    @pytest.fixture
    def plugin(self, org):
        instance = boto3.client("sso-admin", region_name="us-east-1").list_instances()["Instances"][0]
        boto3.client("identitystore", region_name="us-east-1").create_user(
            IdentityStoreId=instance["IdentityStoreId"],
            UserName="alice",
            DisplayName="Alice",
            Name={"GivenName": "Alice", "FamilyName": "A"},
            Emails=[{"Value": "alice@example.com", "Primary": True}],
        )
        return aws_plugin

    @pytest.fixture
    def platform_type_name(self):
        return "aws"

    @pytest.fixture
    def platform_config(self):
        return {
            "management": "base",
            "cost_explorer": "base",
            "account_email_pattern": "conf+{workspace}-{project}@example.com",
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

    @pytest.fixture
    def count_writes(self, calls):
        return lambda: sum(calls.writes.values())
