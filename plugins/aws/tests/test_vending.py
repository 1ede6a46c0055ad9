"""Account vending against moto: placement, tags, aliases, idempotency, drift, failures, crashes."""

from __future__ import annotations

import pytest

from aws_testlib import EXTERNAL_ID, MGMT, account_view, by_key
from meshcore.context import JournalEntry
from meshcore.testing.fake_platform import SimulatedCrash


def test_apply_vends_accounts_in_the_right_ou_with_tags_and_alias(world):
    report = world.reconciler().apply()
    assert {r.status for r in report.results} == {"changed"}, [r.message for r in report.results]
    results = by_key(report)
    p1 = account_view(world.org.client, results["ws1/p1@aws"].platform_tenant_id)
    assert p1["name"] == "ws1-p1" and p1["email"] == "aws+ws1-p1@example.com" and p1["status"] == "ACTIVE"
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
    assert row.attributes["ou"] == world.org.ous["/Workloads/Dev"] and row.attributes["alias"] == "ws1-p1"


def test_second_apply_makes_zero_write_calls_and_plan_is_empty(world):
    rec = world.reconciler()
    rec.apply()
    world.calls.clear()
    report = rec.apply()
    assert {r.status for r in report.results} == {"ok"}
    assert world.calls.writes == {}, world.calls
    # bulk reads: list accounts once, one ListAccountsForParent per landing-zone OU, one tag read per account
    assert world.calls["ListTagsForResource"] == 3
    assert world.calls["ListParents"] == 0
    assert world.calls["ListAccounts"] == 1
    assert all(item.changes == [] for item in rec.plan().plan)


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
    item = next(i for i in rec.plan().plan if i.key == "ws1/p1@aws")
    resources = {c.resource for c in item.changes}
    assert resources == {"ou", "tag meshcore:env", "tag meshcore:stale"}
    rec.apply()
    view = account_view(client, aid)
    assert view["parent"] == world.org.ous["/Workloads/Dev"]
    assert view["tags"]["meshcore:env"] == "dev" and "meshcore:stale" not in view["tags"]
    assert view["tags"]["team-owned"] == "keep-me", "a foreign tag was touched"
    steps = {s.name: s for s in world.store.steps() if s.tenant_key == "ws1/p1@aws" and s.status == "changed"}
    assert "move-account" in steps and "tags" in steps


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
    world.slow.in_progress_polls = 5  # longer than one run waits (3 polls)
    rec = world.reconciler()
    first = rec.apply()
    assert {r.status for r in first.results} == {"in_progress"}
    assert all("still in progress" in r.message for r in first.results)
    assert world.sleeps and all(s == 1 for s in world.sleeps)
    assert world.calls["CreateAccount"] == 3
    second = rec.apply()
    assert {r.status for r in second.results} == {"changed"}, [r.message for r in second.results]
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
    for r in report.results:
        assert r.status == "failed" and reason in r.message and hint in r.message
    assert [e.message for e in world.store.journal_entries(status="failed")] == [reason] * 3
    world.slow.fail_reason = None
    report = rec.apply()  # the cause is fixed: the next run creates them, once
    assert {r.status for r in report.results} == {"changed"}
    assert len(world.org.client.list_accounts()["Accounts"]) == 4


def test_email_already_exists_adopts_an_unowned_account_in_the_org(world, config):
    existing = world.org.client.create_account(AccountName="legacy", Email="aws+ws2-p3@example.com")
    aid = existing["CreateAccountStatus"]["AccountId"]
    report = world.reconciler().apply()
    result = by_key(report)["ws2/p3@aws"]
    assert result.status == "changed" and result.platform_tenant_id == aid, result.message
    assert "adopted" in next(
        s.message for s in world.store.steps() if s.tenant_key == "ws2/p3@aws" and s.name == "provision"
    )
    assert world.calls["CreateAccount"] == 2  # only the other two tenants
    view = account_view(world.org.client, aid)
    assert view["parent"] == world.org.ous["/Workloads/Dev"] and view["tags"]["meshcore:project"] == "p3"


def test_email_already_exists_outside_the_org_is_a_conflict(world):
    world.slow.fail_reason = "EMAIL_ALREADY_EXISTS"
    report = world.reconciler().apply()
    for r in report.results:
        assert r.status == "failed" and "outside this organization" in r.message


def test_adopting_an_account_owned_by_another_tenant_is_refused(world, config):
    rec = world.reconciler()
    rec.apply()
    config["platforms"][0]["config"]["account_email_pattern"] = (
        "aws+ws1-p1@example.com"  # everyone wants p1's
    )
    config["workspaces"].append(
        {"id": "ws3", "projects": [{"id": "p9", "tenants": [{"platform": "aws", "landing_zone": "dev"}]}]}
    )
    result = by_key(world.reconciler(config).apply())["ws3/p9@aws"]
    assert result.status == "failed" and "already belongs to tenant ws1/p1@aws" in result.message


def test_throttling_is_retried_with_backoff_and_converges(world):
    world.slow.throttle = {
        "create_account": ["TooManyRequestsException", "ConcurrentModificationException"],
        "move_account": ["ConcurrentModificationException"] * 2,
        "list_accounts": ["TooManyRequestsException"],
        "tag_resource": ["TooManyRequestsException"],
    }
    report = world.reconciler().apply()
    assert {r.status for r in report.results} == {"changed"}, [r.message for r in report.results]
    assert len(world.org.client.list_accounts()["Accounts"]) == 4
    assert world.calls["CreateAccount"] == 3 + 2
    assert world.slow.throttle["tag_resource"] == ["TooManyRequestsException"]  # tags went with CreateAccount
    assert len([s for s in world.sleeps if s != 1]) == 5  # one backoff wait per throttled call
    assert all(s <= 20 for s in world.sleeps)


def test_persistent_throttling_fails_the_tenant_after_bounded_retries(world):
    world.slow.throttle = {"list_accounts": ["TooManyRequestsException"] * 50}
    report = world.reconciler().apply()
    assert all(r.status == "failed" and "TooManyRequestsException" in r.message for r in report.results)
    assert (
        world.calls["ListAccounts"] == 3 * 8
    )  # 8 attempts per tenant, then it fails; nothing else was tried
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
    assert {r.status for r in report.results} <= {"changed", "in_progress", "ok"}
    rec.apply()
    assert world.calls["CreateAccount"] == 3
    assert len(world.org.client.list_accounts()["Accounts"]) == 4


def test_crash_after_the_request_id_was_saved_resumes_polling(world, monkeypatch):
    world.slow.in_progress_polls = 1
    from meshcore_aws.organization import OrgView

    original = OrgView.call
    crashed = {"n": 0}

    def die_on_first_poll(self, op, **kwargs):
        if op == "describe_create_account_status" and crashed["n"] == 0:
            crashed["n"] += 1
            raise SimulatedCrash("killed while polling")
        return original(self, op, **kwargs)

    monkeypatch.setattr(OrgView, "call", die_on_first_poll)
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
    original = IAMBackend.list_account_aliases

    def refuse(self):
        if refusals["n"] > 0:
            refusals["n"] -= 1
            from moto.iam.exceptions import IAMException

            raise IAMException("AccessDenied", "not yet")
        return original(self)

    monkeypatch.setattr(IAMBackend, "list_account_aliases", refuse)
    report = world.reconciler().apply()
    assert {r.status for r in report.results} == {"changed"}
    for r in report.results:
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
    item = next(i for i in enforce.plan().plan if i.key == "ws1/p1@aws")
    assert [(c.resource, c.before, c.after) for c in item.changes] == [("alias", "renamed-by-hand", "ws1-p1")]
    enforce.apply()
    assert account_view(world.org.client, aid)["alias"] == "ws1-p1"


def test_bad_patterns_fail_the_tenant_before_any_write(world, config):
    config["platforms"][0]["config"]["account_email_pattern"] = (
        "aws+a-very-long-prefix-{workspace}-{project}-and-more-text@example.com"
    )
    config["workspaces"][1]["projects"][0]["id"] = "p3-with-a-rather-long-name"
    report = world.reconciler(config).apply()
    result = by_key(report)["ws2/p3-with-a-rather-long-name@aws"]
    assert result.status == "failed" and "AWS allows at most 64" in result.message
    assert world.calls["CreateAccount"] == 2


def test_invalid_alias_is_a_clear_error(world, config):
    config["platforms"][0]["config"]["account_alias_pattern"] = "{tag:environment}"
    report = world.reconciler(config).apply()
    results = by_key(report)
    assert results["ws2/p3@aws"].status == "failed"
    assert "uses tag 'environment', which this project does not set" in results["ws2/p3@aws"].message
    config["platforms"][0]["config"]["account_alias_pattern"] = "x"
    results = by_key(world.reconciler(config).apply())
    assert "account alias 'x'" in results["ws1/p1@aws"].message and "3-63" in results["ws1/p1@aws"].message


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
    assert {r.status for r in rec.apply().results} == {"ok"}
    assert world.calls.writes == {}
