"""The core's conformance suite, run against the AWS plugin on moto."""

from __future__ import annotations

import pytest

from meshcore.testing.conformance import PlatformPluginConformance
from meshcore_aws import plugin as aws_plugin


class TestAwsConformance(PlatformPluginConformance):
    @pytest.fixture
    def plugin(self, org):
        return aws_plugin

    @pytest.fixture
    def platform_type_name(self):
        return "aws"

    @pytest.fixture
    def platform_config(self):
        return {"account_email_pattern": "conf+{workspace}-{project}@example.com", "poll_interval_seconds": 0}

    @pytest.fixture
    def landing_zone_config(self):
        return {"ou": "/Workloads/Dev"}

    @pytest.fixture
    def count_writes(self, calls):
        return lambda: sum(calls.writes.values())
