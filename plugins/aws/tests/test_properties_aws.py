"""Stateful property test against the AWS emulator: random config edits, crashes and AWS faults.

Edits add, remove, rename and move projects between a landing zone with an OU-level SCP
and one with an account-level SCP, change tags and role bindings; runs crash after the
k-th AWS request and are rerun; AWS answers a random request with an error. After every
step the invariants hold: one account per tenant, no Identity Center assignment on an
account whose guardrails are not in place, no access left for a removed project (and none
where the state says access was revoked), the
foreign account and policy untouched, no more deletions than allowed in one run, plan
empty after a clean apply and equal to what apply then ran. ``MESHCORE_PROPERTY_EXAMPLES``
raises the number of sequences (default: a short run for CI).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import boto3
import meshcore_aws_emulator
import pytest
import yaml
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from moto import mock_aws

from aws_testlib import DENY_BILLING, DENY_LEAVE, create_account
from meshcore.config import load_config
from meshcore.errors import RefusedError
from meshcore.plugins import PluginRegistry
from meshcore.reconciler import Reconciler, approve_deletion
from meshcore.state import StateStore
from meshcore.testing.fake_cloud import SimulatedCrash
from meshcore_aws import plugin as aws_plugin
from meshcore_aws import retries
from meshcore_aws import sessions as aws_sessions
from meshcore_aws.run import reset_sessions

EXAMPLES = int(os.environ.get("MESHCORE_PROPERTY_EXAMPLES", "10"))
STEPS = int(os.environ.get("MESHCORE_PROPERTY_STEPS", "6"))
MAX_DELETIONS = 2
USERS = ("alice", "bob")
PROJECTS = ("p1", "p2", "p3")
WRITES = ("Create", "Move", "Attach", "Tag", "Close", "Delete", "Update", "Enable", "Provision", "Put")
FAULTY = (
    "EnablePolicyType",
    "CreateAccount",
    "MoveAccount",
    "AttachPolicy",
    "TagResource",
    "CreateAccountAssignment",
    "CreateGroupMembership",
    "DeleteAccountAssignment",
    "CloseAccount",
    "CreatePolicy",
    # reads: an observation that fails must never keep revocations from running
    "ListPoliciesForTarget",
    "DescribePolicy",
    "ListGroupMemberships",
)


class AwsWorld(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mock = mock_aws(config=meshcore_aws_emulator.MOTO_CONFIG)
        meshcore_aws_emulator.patch()
        meshcore_aws_emulator.reset()
        self.mock.start()
        reset_sessions()
        retries.instant_backoff()
        self.tmp = Path(tempfile.mkdtemp(prefix="meshcore-aws-prop-"))
        self.org = boto3.client("organizations", region_name="us-east-1")
        self.org.create_organization(FeatureSet="ALL")
        root = self.org.list_roots()["Roots"][0]["Id"]
        self.ous = {
            "/Dev": self.org.create_organizational_unit(ParentId=root, Name="Dev")["OrganizationalUnit"]["Id"]
        }
        self.ous["/Prod"] = self.org.create_organizational_unit(ParentId=root, Name="Prod")[
            "OrganizationalUnit"
        ]["Id"]
        self.sso = boto3.client("sso-admin", region_name="us-east-1")
        self.instance = self.sso.list_instances()["Instances"][0]
        ids = boto3.client("identitystore", region_name="us-east-1")
        for user in USERS:
            ids.create_user(
                IdentityStoreId=self.instance["IdentityStoreId"],
                UserName=user,
                DisplayName=user,
                Name={"GivenName": user, "FamilyName": "X"},
                Emails=[{"Value": f"{user}@example.com", "Primary": True}],
            )
        self.foreign = create_account(self.org, "foreign", "foreign@example.com")
        self.org.tag_resource(ResourceId=self.foreign, Tags=[{"Key": "team", "Value": "keep"}])
        self.foreign_policy = self.org.create_policy(
            Name="team-policy", Description="", Type="SERVICE_CONTROL_POLICY", Content=json.dumps(DENY_LEAVE)
        )["Policy"]["PolicySummary"]["Id"]
        self.registry = PluginRegistry()
        assert self.registry.register("aws", aws_plugin).ok
        self.store = StateStore.open(f"sqlite:///{self.tmp / 'state.db'}")
        self.projects: dict[str, dict[str, Any]] = {}
        self.n = 0
        self.crash_at: int | None = None
        self.fail_op: str | None = None
        self.requests = 0
        self.violations: list[str] = []
        self.flaky: random.Random | None = None
        aws_sessions.EVENT_HOOKS[:] = [("before-send", self._hook)]

    def teardown(self) -> None:
        aws_sessions.EVENT_HOOKS[:] = []
        retries.instant_backoff(False)
        reset_sessions()
        self.store.close()
        self.mock.stop()

    def _hook(self, event_name: str = "", request: Any = None, **_kw: Any) -> Any:
        self.requests += 1
        op = event_name.rsplit(".", 1)[-1]
        if op == "CreateAccountAssignment" and request is not None:
            target = json.loads(request.body)["TargetId"]
            if not self._guarded(target):  # checked the moment access is granted, not only after the run
                self.violations.append(f"{op} on {target} before its guardrails were in place")
        if self.crash_at is not None:
            self.crash_at -= 1
            if self.crash_at <= 0:
                self.crash_at = None
                raise SimulatedCrash(f"killed before {op}")
        flaky = self.flaky is not None and op.startswith(WRITES) and self.flaky.random() < 0.25
        if (
            self.fail_op == op or flaky
        ):  # refused before AWS acts on it (raising stops the emulator's handler too)
            self.fail_op = None
            raise ClientError(
                {
                    "Error": {"Code": "ValidationException", "Message": f"injected failure of {op}"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                op,
            )
        return None

    # -- config -----------------------------------------------------------------------------

    def _doc(self) -> dict[str, Any]:
        return {
            "settings": {"max_deletions_per_run": MAX_DELETIONS, "concurrency": 1},  # replayable
            "platforms": [
                {
                    "id": "aws",
                    "type": "aws",
                    "config": {
                        "management": "base",
                        "account_email_pattern": "aws+{workspace}-{project}@example.com",
                        "poll_interval_seconds": 0,
                        "identity_center": {
                            "region": "us-east-1",
                            "permission_sets": [
                                {
                                    "name": "Dev",
                                    "managed_policies": ["arn:aws:iam::aws:policy/PowerUserAccess"],
                                }
                            ],
                            "role_mappings": {"admin": ["Dev"]},
                        },
                    },
                }
            ],
            "landing_zones": [
                {
                    "id": "dev",
                    "platform": "aws",
                    "deletion": {"auto_approve": True},
                    "config": {"ou": "/Dev", "scps": [{"name": "deny-leave", "document": DENY_LEAVE}]},
                },
                {
                    "id": "prod",
                    "platform": "aws",
                    "config": {
                        "ou": "/Prod",
                        "scps": [{"name": "deny-billing", "document": DENY_BILLING, "attach_to": "account"}],
                    },
                },
            ],
            "tag_definitions": [{"key": "environment", "replication_key": "env"}],
            "users": [{"id": u, "email": f"{u}@example.com"} for u in USERS],
            "workspaces": [
                {
                    "id": "ws",
                    "projects": [
                        {
                            "id": pid,
                            "tags": {"environment": p["env"]},
                            "bindings": [{"user": u, "role": "admin"} for u in sorted(p["admins"])],
                            "tenants": [{"platform": "aws", "landing_zone": p["lz"]}],
                        }
                        for pid, p in sorted(self.projects.items())
                    ],
                }
            ]
            if self.projects
            else [],
        }

    def _reconciler(self) -> Reconciler:
        self.n += 1
        path = self.tmp / f"c{self.n}.yaml"
        path.write_text(yaml.safe_dump(self._doc(), sort_keys=False))
        return Reconciler(load_config(path, self.registry), self.store, self.registry, sleep=lambda _s: None)

    # -- edits -----------------------------------------------------------------------------

    @initialize()
    def two_projects(self) -> None:
        """Start with one project per landing zone, so that the first run already has work to break."""
        self.projects = {
            "p1": {"lz": "dev", "env": "dev", "admins": {"alice"}},
            "p2": {"lz": "prod", "env": "prod", "admins": {"bob"}},
        }

    @rule(
        pid=st.sampled_from(PROJECTS),
        lz=st.sampled_from(("dev", "prod")),
        admins=st.sets(st.sampled_from(USERS)),
    )
    def add_project(self, pid: str, lz: str, admins: set[str]) -> None:
        self.projects[pid] = {"lz": lz, "env": "dev", "admins": admins}

    @precondition(lambda self: self.projects)
    @rule(data=st.data())
    def remove_project(self, data: st.DataObject) -> None:
        del self.projects[data.draw(st.sampled_from(sorted(self.projects)))]

    @precondition(lambda self: self.projects)
    @rule(
        data=st.data(),
        lz=st.sampled_from(("dev", "prod")),
        env=st.sampled_from(("dev", "prod")),
        admins=st.sets(st.sampled_from(USERS)),
    )
    def change_project(self, data: st.DataObject, lz: str, env: str, admins: set[str]) -> None:
        self.projects[data.draw(st.sampled_from(sorted(self.projects)))] = {
            "lz": lz,
            "env": env,
            "admins": admins,
        }

    @rule(data=st.data())
    def approve_one(self, data: st.DataObject) -> None:
        pending = sorted(
            t.key for t in self.store.tenants() if t.status == "MARKED_FOR_DELETION" and not t.approved_at
        )
        if pending:
            approve_deletion(self.store, data.draw(st.sampled_from(pending)))

    # -- runs ------------------------------------------------------------------------------

    def _apply(self, allow: int = 0) -> Any:
        active = {t.key for t in self.store.tenants() if t.status == "ACTIVE"}
        try:
            report = self._reconciler().apply(allow_deletions=allow)
        except RefusedError:
            assert {t.key for t in self.store.tenants() if t.status == "ACTIVE"} == active
            return None
        marked = active - {t.key for t in self.store.tenants() if t.status == "ACTIVE"}
        assert len(marked) <= max(MAX_DELETIONS, allow)
        return report

    @rule(allow=st.sampled_from((0, 0, 5)))
    def plan_then_apply(self, allow: int) -> None:
        try:
            plan = self._reconciler().plan(allow_deletions=allow)
        except RefusedError:
            plan = None
        report = self._apply(allow)
        if plan is not None and report is not None:
            assert {i.key: [a.key for a in i.actions] for i in plan.items} == {
                i.key: [a.key for a in i.actions] for i in report.items
            }, "apply did not run what plan printed"
            self._after(report)

    @rule(
        fault=st.one_of(
            st.tuples(st.just("crash"), st.integers(min_value=1, max_value=60)),
            st.tuples(st.just("flaky"), st.integers(min_value=0, max_value=2**16)),
            st.tuples(st.just("fail"), st.sampled_from(FAULTY)),
        )
    )
    def faulty_run_then_rerun(self, fault: tuple[str, Any]) -> None:
        """One run meets a fault, the next is clean: killed after the k-th request, a quarter
        of all writes refused wherever they fall, or one named operation refused."""
        kind, arg = fault
        if kind == "crash":
            self.crash_at = arg
        elif kind == "flaky":
            self.flaky = random.Random(arg)
        else:
            self.fail_op = arg
        try:
            with contextlib.suppress(SimulatedCrash):
                self._apply(5)
        finally:
            self.crash_at, self.flaky, self.fail_op = None, None, None
        report = self._apply(5)
        if report is not None:
            self._after(report)

    def _after(self, report: Any) -> None:
        failed = {i.key for i in report.failed}
        for row in self.store.tenants(include_deleted=True):
            if row.status != "ACTIVE" and row.platform_tenant_id and row.key not in failed:
                assert self._assignments(row.platform_tenant_id) == [], (
                    f"{row.key} is {row.status} but has access"
                )
        if not report.failed and all(i.status != "in_progress" for i in report.items):
            pending = [
                (i.key, a.describe())
                for i in self._reconciler().plan(allow_deletions=5).items
                for a in i.actions
            ]
            assert not pending, f"plan after a clean apply is not empty: {pending}"

    # -- invariants ------------------------------------------------------------------------

    def _assignments(self, account: str) -> list[str]:
        out = []
        for ps in self.sso.list_permission_sets(InstanceArn=self.instance["InstanceArn"])["PermissionSets"]:
            listed = self.sso.list_account_assignments(
                InstanceArn=self.instance["InstanceArn"], AccountId=account, PermissionSetArn=ps
            )["AccountAssignments"]
            out += [a["PrincipalId"] for a in listed]
        return out

    @invariant()
    def one_account_per_tenant(self) -> None:
        live = [a for a in self.org.list_accounts()["Accounts"] if a["State"] == "ACTIVE"]
        emails = [a["Email"] for a in live]
        assert len(emails) == len(set(emails)), f"duplicate accounts: {sorted(emails)}"
        bound = [
            t.platform_tenant_id for t in self.store.tenants(include_deleted=True) if t.platform_tenant_id
        ]
        assert len(bound) == len(set(bound))

    def _guarded(self, account: str) -> bool:
        """In one of the landing zones' OUs, with that landing zone's SCP in place."""
        parent = self.org.list_parents(ChildId=account)["Parents"][0]["Id"]

        def on(target: str) -> set[str]:
            listed = self.org.list_policies_for_target(TargetId=target, Filter="SERVICE_CONTROL_POLICY")[
                "Policies"
            ]
            return {p["Name"] for p in listed}

        return (parent == self.ous["/Dev"] and "meshcore-deny-leave" in on(parent)) or (
            parent == self.ous["/Prod"] and "meshcore-deny-billing" in on(account)
        )

    @invariant()
    def no_access_where_guardrails_are_missing(self) -> None:
        assert not self.violations, self.violations
        for row in self.store.tenants():
            aid = row.platform_tenant_id
            if aid and self._assignments(aid):
                assert self._guarded(aid), f"{row.key}: access on {aid} without its guardrails"

    @invariant()
    def revoked_means_no_access(self) -> None:
        """What the state records as revoked has no assignment left, whatever failed since."""
        for row in self.store.tenants(include_deleted=True):
            if row.revoked_at is not None and row.platform_tenant_id and row.status != "ACTIVE":
                assert self._assignments(row.platform_tenant_id) == [], f"{row.key} revoked but has access"

    @invariant()
    def nothing_foreign_changed(self) -> None:
        tags = self.org.list_tags_for_resource(ResourceId=self.foreign)["Tags"]
        assert tags == [{"Key": "team", "Value": "keep"}]
        assert self.org.describe_account(AccountId=self.foreign)["Account"]["State"] == "ACTIVE"
        content = self.org.describe_policy(PolicyId=self.foreign_policy)["Policy"]["Content"]
        assert json.loads(content) == DENY_LEAVE


@pytest.mark.slow
def test_aws_plugin_keeps_its_promises_under_random_edits_crashes_and_faults(monkeypatch):
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "MOTO_ACCOUNT_ID", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    run_state_machine_as_test(
        AwsWorld,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
