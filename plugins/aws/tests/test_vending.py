"""Account vending against moto: placement, tags, aliases, idempotency, drift, failures, crashes."""

from __future__ import annotations

import pytest

from aws_testlib import EXTERNAL_ID, MGMT, account_view, by_key, create_account
from meshcore.context import JournalEntry
from meshcore.testing.fake_platform import SimulatedCrash


def test_apply_vends_accounts_in_the_right_ou_with_tags_and_alias(world):
    report = world.reconciler().apply()
    assert {r.status for r in report.tenants} == {"changed"}, [r.message for r in report.tenants]
    results = by_key(report)
    p1 = account_view(world.org.client, results["ws1/p1@aws"].platform_tenant_id)
    assert p1["name"] == "ws1-p1" and p1["email"] == "aws+ws1-p1@example.com" and p1["state"] == "ACTIVE"
    assert p1["parent"] == world.org.ous["/Workloads/Dev"]
    assert p1["tags"] == {
        "meshcore:workspace": "ws1",
        "meshcore:project": "p1",
        "meshcore:platform": "aws",
        "meshcore:env": "dev",
        "meshcore:CostCenter": "cc-1",
    }
    assert p1["alias"] == "ws1-p1"
    p2 = account_view(world.org.client, results["ws1/p2@aws"].platform_tenant_id)
    assert p2["parent"] == world.org.ous["/Workloads/Prod"] and p2["tags"]["meshcore:env"] == "prod"
    accounts = world.org.client.list_accounts()["Accounts"]
    assert len(accounts) == 4  # management + one per tenant
    row = next(t for t in world.store.tenants() if t.key == "ws1/p1@aws")
    assert row.attributes["ou"] == "/Workloads/Dev" and row.attributes["alias"] == "ws1-p1"
    assert row.attributes["state"] == "ACTIVE" and row.attributes["created_by"] == "meshcore"


def test_second_apply_makes_zero_write_calls_and_plan_is_empty(world):
    rec = world.reconciler()
    rec.apply()
    world.calls.clear()
    report = rec.apply()
    assert {r.status for r in report.tenants} == {"ok"}
    assert world.calls.writes == {}, world.calls
    # bulk reads: one ListAccountsForParent per landing-zone OU (placement, e-mail and state of the accounts
    # in it), one tag read per account; the whole organization's ListAccounts is not needed
    assert world.calls["ListTagsForResource"] == 3
    assert world.calls["ListParents"] == 0
    assert world.calls["ListAccountsForParent"] == 2
    assert world.calls["ListAccounts"] == 0
    assert all(item.actions == [] for item in rec.plan().tenants)


def test_drift_is_shown_by_plan_and_repaired_with_foreign_tags_untouched(world):
    rec = world.reconciler()
    aid = by_key(rec.apply())["ws1/p1@aws"].platform_tenant_id
    client = world.org.client
    client.move_account(
        AccountId=aid,
        SourceParentId=world.org.ous["/Workloads/Dev"],
        DestinationParentId=world.org.ous["/Workloads/Prod"],
    )
    client.tag_resource(
        ResourceId=aid,
        Tags=[
            {"Key": "meshcore:env", "Value": "hacked"},
            {"Key": "meshcore:stale", "Value": "x"},
            {"Key": "team-owned", "Value": "keep-me"},
        ],
    )
    item = next(i for i in rec.plan().tenants if i.key == "ws1/p1@aws")
    assert [(a.phase, a.resource) for a in item.actions] == [("placement", "ou"), ("configure", "tags")]
    tags = item.actions[1]
    assert tags.after == "meshcore:env=dev" and tags.detail == "remove meshcore:stale"
    rec.apply()
    view = account_view(client, aid)
    assert view["parent"] == world.org.ous["/Workloads/Dev"]
    assert view["tags"]["meshcore:env"] == "dev" and "meshcore:stale" not in view["tags"]
    assert view["tags"]["team-owned"] == "keep-me", "a foreign tag was touched"
    steps = {s.name for s in world.store.steps() if s.tenant_key == "ws1/p1@aws" and s.status == "changed"}
    assert "placement ou ws1-p1" in steps and f"configure tags {aid}" in steps


def test_tag_changes_in_config_converge(world, config):
    rec = world.reconciler()
    aid = by_key(rec.apply())["ws1/p1@aws"].platform_tenant_id
    config["workspaces"][0]["projects"][0]["tags"] = {}
    config["workspaces"][0]["tags"] = {"cost-center": "cc-9"}
    world.calls.clear()
    result = by_key(world.reconciler(config).apply())["ws1/p1@aws"]
    assert result.status == "changed"
    tags = account_view(world.org.client, aid)["tags"]
    assert "meshcore:env" not in tags and tags["meshcore:CostCenter"] == "cc-9"
    assert world.calls.writes == {"TagResource": 2, "UntagResource": 1}  # p1 (set+remove), p2 (set)


def test_create_account_in_progress_then_succeeded_resumes_next_run(world):
    world.slow.in_progress_polls = 4  # longer than one run waits (3 polls)
    rec = world.reconciler()
    first = rec.apply()
    assert {r.status for r in first.tenants} == {"in_progress"}
    assert all("still in progress" in r.message for r in first.tenants)
    # one look per interval (1 s): the sleep is the interval less the time the look took (a look due
    # within a quarter interval is skipped for the next: a slow look on a busy machine waits up to 1.25 s)
    assert world.sleeps and all(0.25 <= s <= 1.25 for s in world.sleeps), world.sleeps
    assert world.calls["CreateAccount"] == 3
    second = rec.apply()
    assert {r.status for r in second.tenants} == {"changed"}, [r.message for r in second.tenants]
    assert world.calls["CreateAccount"] == 3, "the resumed run sent CreateAccount again"
    assert len(world.org.client.list_accounts()["Accounts"]) == 4
    assert world.store.journal_entries(status="open") == []


@pytest.mark.parametrize(
    ("reason", "hint"),
    [
        ("ACCOUNT_LIMIT_EXCEEDED", "account limit"),
        ("INVALID_EMAIL", "account_email_pattern"),
        ("MISSING_PAYMENT_INSTRUMENT", "payment method"),
        ("CONCURRENT_ACCOUNT_MODIFICATION", "the next run retries"),
        ("INTERNAL_FAILURE", "the next run retries"),
    ],
)
def test_create_account_failures_fail_the_tenant_with_a_clear_reason(world, reason, hint):
    world.slow.fail_reason = reason
    rec = world.reconciler()
    report = rec.apply()
    for r in report.tenants:
        assert r.status == "failed" and reason in r.message and hint in r.message
    assert [e.message for e in world.store.journal_entries(status="failed")] == [reason] * 3
    world.slow.fail_reason = None
    report = rec.apply()  # the cause is fixed: the next run creates them, once
    assert {r.status for r in report.tenants} == {"changed"}
    assert len(world.org.client.list_accounts()["Accounts"]) == 4


def test_an_account_with_the_tenants_email_is_adopted_only_if_it_is_meshcores(world, config):
    aid = create_account(world.org.client, "legacy", "aws+ws2-p3@example.com")
    report = world.reconciler().apply()
    result = by_key(report)["ws2/p3@aws"]
    assert result.status == "failed" and "meshcore did not create it" in result.message
    assert f"import_id: {aid}" in result.message
    assert world.calls["CreateAccount"] == 2  # only the other two tenants; nothing done to the foreign one
    assert account_view(world.org.client, aid)["parent"] == world.org.root
    # carrying this tenant's identity tags (e.g. made by meshcore before its state was lost), it is meshcore's
    world.org.client.tag_resource(
        ResourceId=aid,
        Tags=[
            {"Key": "meshcore:workspace", "Value": "ws2"},
            {"Key": "meshcore:project", "Value": "p3"},
            {"Key": "meshcore:platform", "Value": "aws"},
        ],
    )
    result = by_key(world.reconciler().apply())["ws2/p3@aws"]
    assert result.status == "changed" and result.platform_tenant_id == aid, result.message
    view = account_view(world.org.client, aid)
    assert view["parent"] == world.org.ous["/Workloads/Dev"] and view["tags"]["meshcore:project"] == "p3"


def test_importing_adopts_an_account_on_purpose(world, config):
    aid = create_account(world.org.client, "legacy", "legacy@example.com")
    config["workspaces"][1]["projects"][0]["tenants"][0]["import_id"] = aid
    result = by_key(world.reconciler(config).apply())["ws2/p3@aws"]
    assert result.status == "changed" and result.platform_tenant_id == aid
    assert "adopt existing account" in next(
        s.message
        for s in world.store.steps()
        if s.tenant_key == "ws2/p3@aws" and s.name.startswith("tenant account")
    ) or result.actions[0].detail.startswith("adopt existing account")


def test_email_already_exists_outside_the_org_is_a_conflict(world):
    world.slow.fail_reason = "EMAIL_ALREADY_EXISTS"
    report = world.reconciler().apply()
    for r in report.tenants:
        assert r.status == "failed" and "outside this organization" in r.message


def test_adopting_an_account_owned_by_another_tenant_is_refused(world, config, monkeypatch):
    rec = world.reconciler()
    rec.apply()
    # validation refuses two tenants with one e-mail; this checks the second line of defence, at run time
    monkeypatch.setattr("meshcore_aws.validation._tenant_problems", lambda cfg, tenants: [])
    config["platforms"][0]["config"]["account_email_pattern"] = (
        "aws+ws1-p1@example.com"  # everyone wants p1's
    )
    config["workspaces"].append(
        {"id": "ws3", "projects": [{"id": "p9", "tenants": [{"platform": "aws", "landing_zone": "dev"}]}]}
    )
    result = by_key(world.reconciler(config).apply())["ws3/p9@aws"]
    assert result.status == "failed" and "belongs to tenant ws1/p1@aws" in result.message


def test_throttling_is_retried_with_backoff_and_converges(world):
    world.slow.throttle = {
        "create_account": ["TooManyRequestsException", "ConcurrentModificationException"],
        "move_account": ["ConcurrentModificationException"] * 2,
        "list_accounts": ["TooManyRequestsException"],
        "tag_resource": ["TooManyRequestsException"],
    }
    report = world.reconciler().apply()
    assert {r.status for r in report.tenants} == {"changed"}, [r.message for r in report.tenants]
    assert len(world.org.client.list_accounts()["Accounts"]) == 4
    assert world.calls["CreateAccount"] == 3 + 2
    assert world.slow.throttle["tag_resource"] == ["TooManyRequestsException"]  # tags went with CreateAccount
    assert (
        world.calls["MoveAccount"] == 3 + 2 and world.calls["ListAccounts"] >= 2
    )  # each throttle retried once


def test_persistent_throttling_fails_the_tenant_after_bounded_retries(world):
    world.slow.throttle = {"list_accounts": ["TooManyRequestsException"] * 50}
    report = world.reconciler().apply()
    assert all(r.status == "failed" and "TooManyRequestsException" in r.message for r in report.tenants)
    # 8 attempts in all: the failed listing fails every later caller of the run without asking again
    assert world.calls["ListAccounts"] == 8
    assert world.calls["CreateAccount"] == 0


def test_crash_right_after_create_account_returns_is_recovered_by_email(world, monkeypatch):
    original = JournalEntry.record_operation
    crashed = {"n": 0}

    def die_once(self, op):
        if self.kind == "create-account" and crashed["n"] == 0:
            crashed["n"] += 1
            raise SimulatedCrash("killed after CreateAccount returned, before its id was saved")
        return original(self, op)

    monkeypatch.setattr(JournalEntry, "record_operation", die_once)
    rec = world.reconciler()
    rec.concurrency = 1
    with pytest.raises(SimulatedCrash):
        rec.apply()
    open_entries = world.store.journal_entries(status="open")
    assert len(open_entries) == 1 and open_entries[0].operation_id is None
    report = rec.apply()
    assert not report.failed
    assert world.calls["CreateAccount"] == 3, "a duplicate CreateAccount was sent"
    assert len(world.org.client.list_accounts()["Accounts"]) == 4
    assert world.store.journal_entries(status="open") == []


def test_lost_request_id_while_in_progress_is_recovered_from_list_create_account_status(world, monkeypatch):
    world.slow.in_progress_polls = 2
    original = JournalEntry.record_operation
    crashed = {"n": 0}

    def die_once(self, op):
        if self.kind == "create-account" and crashed["n"] == 0:
            crashed["n"] += 1
            raise SimulatedCrash("killed before the request id was saved")
        return original(self, op)

    monkeypatch.setattr(JournalEntry, "record_operation", die_once)
    rec = world.reconciler()
    rec.concurrency = 1
    with pytest.raises(SimulatedCrash):
        rec.apply()
    report = (
        rec.apply()
    )  # the account is still IN_PROGRESS and invisible: only ListCreateAccountStatus knows it
    assert world.calls["ListCreateAccountStatus"] >= 1
    assert {r.status for r in report.tenants} <= {"changed", "in_progress", "ok"}
    rec.apply()
    assert world.calls["CreateAccount"] == 3
    assert len(world.org.client.list_accounts()["Accounts"]) == 4


def test_crash_after_the_request_id_was_saved_resumes_polling(world, monkeypatch):
    from meshcore_aws import sessions as aws_sessions

    world.slow.in_progress_polls = 1
    crashed = {"n": 0}

    def die_on_first_poll(event_name="", **_kw):
        if event_name.endswith("DescribeCreateAccountStatus") and crashed["n"] == 0:
            crashed["n"] += 1
            raise SimulatedCrash("killed while polling")

    monkeypatch.setattr(
        aws_sessions, "EVENT_HOOKS", [*world.calls.hooks(), ("before-send", die_on_first_poll)]
    )
    rec = world.reconciler()
    rec.concurrency = 1
    with pytest.raises(SimulatedCrash):
        rec.apply()
    assert world.store.journal_entries(status="open")[0].operation_id
    rec.apply()
    rec.apply()
    assert world.calls["CreateAccount"] == 3
    assert len(world.org.client.list_accounts()["Accounts"]) == 4


def test_new_account_refusing_calls_is_retried_before_the_alias_is_set(world, monkeypatch):
    from moto.iam.models import IAMBackend

    refusals = {"n": 2}
    original = IAMBackend.create_account_alias

    def refuse(self, alias):
        if refusals["n"] > 0:
            refusals["n"] -= 1
            from moto.iam.exceptions import IAMException

            raise IAMException("AccessDenied", "not yet")
        return original(self, alias)

    monkeypatch.setattr(IAMBackend, "create_account_alias", refuse)
    report = world.reconciler().apply()
    assert {r.status for r in report.tenants} == {"changed"}
    assert refusals["n"] == 0 and len(world.sleeps) >= 2, "the new account's refusals were not waited out"
    for r in report.tenants:
        assert account_view(world.org.client, r.platform_tenant_id)["alias"] is not None


def test_alias_mode_once_leaves_a_hand_set_alias_and_enforce_repairs_it(world, config):
    rec = world.reconciler()
    aid = by_key(rec.apply())["ws1/p1@aws"].platform_tenant_id
    # once (default): the recorded alias is trusted; no member-account reads on a no-op run
    world.calls.clear()
    rec.apply()
    assert world.calls["ListAccountAliases"] == 0
    config["platforms"][0]["config"]["alias_mode"] = "enforce"
    import boto3

    creds = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{aid}:role/OrganizationAccountAccessRole", RoleSessionName="xx"
    )["Credentials"]
    boto3.client(
        "iam",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).create_account_alias(AccountAlias="renamed-by-hand")
    enforce = world.reconciler(config)
    item = next(i for i in enforce.plan().tenants if i.key == "ws1/p1@aws")
    assert [(c.resource, c.before, c.after) for c in item.actions] == [("alias", "renamed-by-hand", "ws1-p1")]
    enforce.apply()
    assert account_view(world.org.client, aid)["alias"] == "ws1-p1"


def test_bad_patterns_are_refused_by_validation_before_any_call(world, config, write_config, registry):
    from meshcore.config import load_config
    from meshcore.errors import ConfigError

    config["platforms"][0]["config"]["account_email_pattern"] = (
        "aws+a-very-long-prefix-{workspace}-{project}-and-more-text@example.com"
    )
    config["workspaces"][1]["projects"][0]["id"] = "p3-with-a-rather-long-name"
    with pytest.raises(ConfigError) as info:
        load_config(write_config(config), registry)
    [problem] = [str(p) for p in info.value.problems]
    assert "workspaces[1].projects[0].tenants[0]:" in problem and "AWS allows at most 64" in problem
    config["workspaces"][1]["projects"][0]["id"] = "p3"
    config["platforms"][0]["config"]["account_alias_pattern"] = "{tag:environment}"
    with pytest.raises(ConfigError) as info:
        load_config(write_config(config), registry)
    [problem] = [str(p) for p in info.value.problems]
    assert (
        "workspaces[1].projects[0]" in problem
        and "uses tag 'environment', which this project does not set" in problem
    )
    config["platforms"][0]["config"]["account_alias_pattern"] = "x"
    with pytest.raises(ConfigError) as info:
        load_config(write_config(config), registry)
    assert all("account alias 'x'" in str(p) and "3-63" in str(p) for p in info.value.problems)
    assert world.calls.total() == 0


def test_ou_path_that_does_not_exist(world, config):
    config["landing_zones"][0]["config"] = {"ou": "/Workloads/Nope"}
    results = by_key(world.reconciler(config).apply())
    assert (
        results["ws1/p1@aws"].status == "failed"
        and "OU /Workloads/Nope does not exist" in results["ws1/p1@aws"].message
    )
    config["landing_zones"][0]["config"] = {"ou": "/Workloads/Nope", "create_ou": True}
    results = by_key(world.reconciler(config).apply())
    assert results["ws1/p1@aws"].status == "changed"
    ous = world.org.client.list_organizational_units_for_parent(ParentId=world.org.ous["/Workloads"])[
        "OrganizationalUnits"
    ]
    assert [o["Name"] for o in ous].count("Nope") == 1


def test_secrets_never_reach_state_or_messages(world, tmp_path):
    world.reconciler().apply()
    db = (tmp_path / "state.db").read_bytes()
    assert EXTERNAL_ID.encode() not in db
    assert all(EXTERNAL_ID not in s.message for s in world.store.steps())


def test_management_account_is_never_adopted(world, config):
    config["workspaces"][1]["projects"][0]["tenants"][0]["import_id"] = MGMT
    results = by_key(world.reconciler(config).apply())
    assert results["ws2/p3@aws"].status == "failed" and "management account" in results["ws2/p3@aws"].message


def test_tenants_creating_the_same_missing_ou_in_parallel_create_it_once(world, config):
    config["landing_zones"][0]["config"] = {"ou": "/Fresh/Dev", "create_ou": True}
    config["landing_zones"][1]["config"] = {"ou": "/Fresh/Prod", "create_ou": True}
    for i in range(8):  # many tenants racing for the same new OUs
        config["workspaces"][1]["projects"].append(
            {"id": f"q{i}", "tenants": [{"platform": "aws", "landing_zone": "dev"}]}
        )
    rec = world.reconciler(config)
    assert not rec.apply().failed
    client = world.org.client
    fresh = [
        o
        for o in client.list_organizational_units_for_parent(ParentId=world.org.root)["OrganizationalUnits"]
        if o["Name"] == "Fresh"
    ]
    assert len(fresh) == 1
    children = client.list_organizational_units_for_parent(ParentId=fresh[0]["Id"])["OrganizationalUnits"]
    assert sorted(o["Name"] for o in children) == ["Dev", "Prod"]
    world.calls.clear()
    assert {r.status for r in rec.apply().tenants} == {"ok"}
    assert world.calls.writes == {}


@pytest.mark.parametrize("key", ["account_name_pattern", "account_email_pattern", "account_alias_pattern"])
def test_a_secret_in_a_naming_pattern_is_refused_without_showing_it(key, config, write_config, monkeypatch):
    """AWS lower-cases and rewrites names: a secret in them could no longer be recognised and redacted."""
    from typer.testing import CliRunner

    from meshcore.cli.app import app

    monkeypatch.setenv("MC_NAMING_SECRET", "TopSecret.Val!Xy")
    value = (
        "aws+${MC_NAMING_SECRET}-{project}@example.com"
        if key == "account_email_pattern"
        else "${MC_NAMING_SECRET}-{project}"
    )
    config["platforms"][0]["config"][key] = value
    result = CliRunner().invoke(app, ["validate", "-c", str(write_config(config))])
    assert result.exit_code == 2, result.output
    assert f"{key} holds a value from a secret environment variable" in result.output
    assert "topsecret" not in result.output.lower()


def test_every_aws_write_is_logged_with_its_request_id(world, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="meshcore_aws.sessions")
    world.reconciler().apply()
    messages = [r.getMessage() for r in caplog.records if r.name == "meshcore_aws.sessions"]
    writes = sum(world.calls.writes.values())
    assert writes and len(messages) == writes, (messages, world.calls.writes)
    created = [m for m in messages if m.startswith("AWS CreateAccount: HTTP 200, request id ")]
    assert len(created) == world.calls["CreateAccount"]
    assert not [m for m in messages if m.endswith("request id none")]


def test_emulator_refuses_a_second_account_with_one_e_mail_like_aws(world):
    """AWS creates one account per e-mail address: a second request is accepted IN_PROGRESS, as every
    creation is, and ends FAILED with EMAIL_ALREADY_EXISTS, seen by a status read (listed as well)."""
    client = world.org.client
    first = client.create_account(Email="twice@example.com", AccountName="one")["CreateAccountStatus"]
    second = client.create_account(Email="TWICE@example.com", AccountName="two")["CreateAccountStatus"]
    assert second["State"] == "IN_PROGRESS" and "FailureReason" not in second
    listed = client.list_create_account_status(States=["IN_PROGRESS"])["CreateAccountStatuses"]
    assert second["Id"] in {s["Id"] for s in listed}  # a read: the creation's one IN_PROGRESS read
    status = client.describe_create_account_status(CreateAccountRequestId=second["Id"])["CreateAccountStatus"]
    assert status["State"] == "FAILED" and status["FailureReason"] == "EMAIL_ALREADY_EXISTS"
    emails = [a["Email"].lower() for a in client.list_accounts()["Accounts"]]
    assert emails.count("twice@example.com") <= 1 and first["Id"] != second["Id"]
