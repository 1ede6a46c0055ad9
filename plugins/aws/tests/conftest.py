"""Fixtures for the AWS plugin tests: moto organization, call counting, and AWS behaviour moto lacks.

Every test runs against moto with the emulator's fidelity layer and its strict
profile (``meshcore_aws_emulator``): asynchronous operations take their time,
retired fields are absent, ExternalIds, quotas, regions and execution roles are
enforced. :class:`SlowAws` makes one test harsher (slower or failing account
creation, throttled calls).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import boto3
import meshcore_aws_emulator
import pytest
from moto import mock_aws
from moto.organizations import models as org_models
from moto.organizations.exceptions import OrganizationsClientError

from aws_testlib import DENY_BILLING, DENY_LEAVE, EXAMPLES, EXTERNAL_ID, ROLE, trust
from meshcore.config import load_config
from meshcore.plugins import PluginRegistry
from meshcore.reconciler import Reconciler
from meshcore_aws import plugin as aws_plugin
from meshcore_aws import retries
from meshcore_aws import sessions as aws_sessions
from meshcore_aws.counting import CallCounter
from meshcore_aws.run import reset_sessions


class Calls(CallCounter):
    """Counts calls per operation (see :class:`meshcore_aws.counting.CallCounter`)."""


class SlowAws:
    """Harsher AWS for one test: account creation that takes longer or fails, throttled calls.

    A thin handle on the emulator's strict profile (``meshcore_aws_emulator.PROFILE``),
    plus throttling errors for the first calls of named Organizations backend methods.
    """

    def __init__(self) -> None:
        self.throttle: dict[str, list[str]] = {}  # backend method -> error codes to raise, one per call

    @property
    def in_progress_polls(self) -> int:
        """Status reads a new account stays IN_PROGRESS (and invisible) for."""
        return meshcore_aws_emulator.PROFILE.create_polls

    @in_progress_polls.setter
    def in_progress_polls(self, polls: int) -> None:
        meshcore_aws_emulator.PROFILE.create_polls = polls

    @property
    def fail_reason(self) -> str | None:
        """Every CreateAccount ends FAILED with this reason while set."""
        return meshcore_aws_emulator.PROFILE.create_failures.get("*")

    @fail_reason.setter
    def fail_reason(self, reason: str | None) -> None:
        if reason is None:
            meshcore_aws_emulator.PROFILE.create_failures.pop("*", None)
        else:
            meshcore_aws_emulator.PROFILE.create_failures["*"] = reason


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "MOTO_ACCOUNT_ID", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MC_TEST_EXTERNAL_ID", EXTERNAL_ID)
    reset_sessions()
    retries.instant_backoff()
    yield
    retries.instant_backoff(False)
    reset_sessions()


@pytest.fixture
def calls(monkeypatch) -> Calls:
    counter = Calls()
    monkeypatch.setattr(aws_sessions, "EVENT_HOOKS", counter.hooks())
    return counter


@pytest.fixture
def slow(monkeypatch) -> SlowAws:
    ctl = SlowAws()
    backend = org_models.OrganizationsBackend
    for name in (
        "create_account",
        "list_accounts",
        "move_account",
        "tag_resource",
        "list_tags_for_resource",
        "describe_create_account_status",
        "list_parents",
        "list_accounts_for_parent",
        "close_account",
    ):
        current = getattr(backend, name)

        def throttled(self, *args, __name=name, __inner=current, **kwargs):
            queue = ctl.throttle.get(__name)
            if queue:
                code = queue.pop(0)
                raise OrganizationsClientError(code, "Rate exceeded" if "Request" in code else "simulated")
            return __inner(self, *args, **kwargs)

        monkeypatch.setattr(backend, name, throttled)
    return ctl


@pytest.fixture
def org():
    meshcore_aws_emulator.patch()
    meshcore_aws_emulator.reset()
    with mock_aws(config=meshcore_aws_emulator.MOTO_CONFIG):
        client = boto3.client("organizations", region_name="us-east-1")
        client.create_organization(FeatureSet="ALL")
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_role(
            RoleName="MeshfedServiceRole", AssumeRolePolicyDocument=json.dumps(trust(EXTERNAL_ID))
        )
        client.enable_aws_service_access(ServicePrincipal="account.amazonaws.com")  # a setup step
        root = client.list_roots()["Roots"][0]["Id"]
        ous = {}
        for path in ("/Workloads", "/Workloads/Dev", "/Workloads/Prod", "/Quarantine"):
            parent = ous.get(path.rsplit("/", 1)[0] or "/", root) if path.count("/") > 1 else root
            ous[path] = client.create_organizational_unit(ParentId=parent, Name=path.rsplit("/", 1)[1])[
                "OrganizationalUnit"
            ]["Id"]
        yield SimpleNamespace(client=client, root=root, ous=ous)


def base_config() -> dict[str, Any]:
    return {
        "platforms": [
            {
                "id": "aws",
                "type": "aws",
                "config": {
                    "management": {"role_arn": ROLE, "external_id": "${MC_TEST_EXTERNAL_ID}"},
                    "cost_explorer": "base",
                    "account_email_pattern": "aws+{workspace}-{project}@example.com",
                    "poll_interval_seconds": 1,
                    "create_wait_seconds": 3,
                    "new_account_retry_seconds": 60,
                },
            }
        ],
        "landing_zones": [
            {
                "id": "dev",
                "platform": "aws",
                "deletion": {"auto_approve": True},
                "config": {"ou": "/Workloads/Dev"},
            },
            {"id": "prod", "platform": "aws", "config": {"ou": "/Workloads/Prod"}},
        ],
        "tag_definitions": [
            {"key": "environment", "replication_key": "env"},
            {"key": "cost-center", "replication_key": "CostCenter"},
        ],
        "workspaces": [
            {
                "id": "ws1",
                "tags": {"cost-center": "cc-1"},
                "projects": [
                    {
                        "id": "p1",
                        "tags": {"environment": "dev"},
                        "tenants": [{"platform": "aws", "landing_zone": "dev"}],
                    },
                    {
                        "id": "p2",
                        "tags": {"environment": "prod"},
                        "tenants": [{"platform": "aws", "landing_zone": "prod"}],
                    },
                ],
            },
            {
                "id": "ws2",
                "projects": [{"id": "p3", "tenants": [{"platform": "aws", "landing_zone": "dev"}]}],
            },
        ],
    }


@pytest.fixture
def config() -> dict[str, Any]:
    return base_config()


@pytest.fixture
def registry() -> PluginRegistry:
    reg = PluginRegistry()
    info = reg.register("aws", aws_plugin)
    assert info.ok, info.error
    return reg


@pytest.fixture
def world(org, write_config, state_store, calls, registry, config, slow):
    """``world.reconciler(cfg=None)`` builds a reconciler on the moto organization; sleeps are recorded."""
    sleeps: list[float] = []

    def reconciler(cfg: dict[str, Any] | None = None) -> Reconciler:
        loaded = load_config(write_config(cfg or config), registry)
        return Reconciler(loaded, state_store, registry, sleep=sleeps.append)

    return SimpleNamespace(
        org=org,
        store=state_store,
        calls=calls,
        slow=slow,
        sleeps=sleeps,
        reconciler=reconciler,
        config=config,
    )


@pytest.fixture
def lz_config(config):
    """dev: OU SCP (file) + account SCP + baseline; prod: other OU, other account SCP, no baseline."""
    config["platforms"][0]["config"]["automation"] = "base"
    config["landing_zones"][0]["config"].update(
        {
            "scps": [
                {
                    "name": "deny-leave-and-non-eu",
                    "file": str(EXAMPLES / "policies" / "deny-leave-and-non-eu.json"),
                },
                {"name": "deny-billing", "document": DENY_BILLING, "attach_to": "account"},
            ],
            "baselines": [
                {
                    "name": "base",
                    "template": str(EXAMPLES / "baselines" / "account-baseline.yaml"),
                    "parameters": {"SecurityContact": "sec+{workspace}@example.com"},
                    "regions": ["us-east-1", "eu-west-1"],
                }
            ],
        }
    )
    config["landing_zones"][1]["config"].update(
        {
            "scps": [{"name": "deny-leave", "document": DENY_LEAVE, "attach_to": "account"}],
        }
    )
    return config


@pytest.fixture
def sso(world):
    admin = boto3.client("sso-admin", region_name="us-east-1")
    instance = admin.list_instances()["Instances"][0]
    store = boto3.client("identitystore", region_name="us-east-1")
    users = {}
    for name in ("alice", "bob", "carol"):
        users[name] = store.create_user(
            IdentityStoreId=instance["IdentityStoreId"],
            UserName=name,
            DisplayName=name,
            Name={"GivenName": name, "FamilyName": "X"},
            Emails=[{"Value": f"{name}@example.com", "Primary": True}],
        )["UserId"]

    class Sso:
        def __init__(self):
            self.admin, self.store, self.instance, self.users = admin, store, instance, users
            self.names = {v: k for k, v in users.items()}

        def group(self, name):
            try:
                return store.get_group_id(
                    IdentityStoreId=instance["IdentityStoreId"],
                    AlternateIdentifier={
                        "UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": name}
                    },
                )["GroupId"]
            except store.exceptions.ResourceNotFoundException:
                return None

        def members(self, name):
            gid = self.group(name)
            listed = store.list_group_memberships(IdentityStoreId=instance["IdentityStoreId"], GroupId=gid)
            return sorted(self.names[m["MemberId"]["UserId"]] for m in listed["GroupMemberships"])

        def assigned(self, name, account):
            gid = self.group(name)
            listed = admin.list_account_assignments_for_principal(
                InstanceArn=instance["InstanceArn"],
                PrincipalId=gid,
                PrincipalType="GROUP",
                Filter={"AccountId": account},
            )["AccountAssignments"]
            out = []
            for a in listed:
                ps = admin.describe_permission_set(
                    InstanceArn=instance["InstanceArn"], PermissionSetArn=a["PermissionSetArn"]
                )
                out.append(ps["PermissionSet"]["Name"])
            return sorted(out)

    return Sso()


@pytest.fixture
def access_config(config):
    config["platforms"][0]["config"]["identity_center"] = {
        "region": "us-east-1",
        "permission_sets": [
            {"name": "Developer", "managed_policies": ["arn:aws:iam::aws:policy/PowerUserAccess"]},
            {"name": "ReadOnly", "managed_policies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"]},
            {"name": "Admin", "managed_policies": ["arn:aws:iam::aws:policy/AdministratorAccess"]},
        ],
        "role_mappings": {"admin": ["Developer"], "user": ["Developer"], "reader": ["ReadOnly"]},
        "sign_in_url": "https://example.awsapps.com/start",
    }
    config["users"] = [
        {"id": "alice", "email": "alice@example.com"},
        {"id": "bob", "email": "bob@example.com"},
        {"id": "carol", "email": "carol@example.com"},
        {"id": "dave", "email": "dave@example.com"},
    ]
    config["groups"] = [{"id": "devs", "members": ["bob", "carol"]}]
    p1 = config["workspaces"][0]["projects"][0]
    p1["bindings"] = [
        {"user": "alice", "role": "admin"},
        {"group": "devs", "role": "user"},
        {"user": "carol", "role": "reader", "expires": "2026-06-30"},
    ]
    return config


@pytest.fixture
def sandbox():
    """The emulator as a server on loopback (``meshcore aws sandbox``), bootstrapped; for tests that run
    meshcore in processes of their own."""
    from meshcore_aws.sandbox import Sandbox

    box = Sandbox()
    box.start()
    try:
        box.bootstrap()
        yield box
    finally:
        box.stop()
