"""AWS calls per new tenant and per unchanged tenant: budgets that fail CI when a change adds calls.

Counts are exact (one per HTTP request, retries included), so these are not timed tests.
docs/benchmarks.md has the same figures at N = 10 ... 1,000 (``python bench/run.py vending``).
"""

from __future__ import annotations

import copy

from sqlalchemy import event

from aws_testlib import by_key

#: Status polls, which depend on how long AWS takes, are not part of the budget.
POLLS = (
    "DescribeCreateAccountStatus",
    "ListCreateAccountStatus",
    "DescribeAccountAssignmentCreationStatus",
    "ListAccountAssignmentCreationStatus",
)
#: Calls a new tenant costs, polls excluded: CreateAccount, MoveAccount, AssumeRole, CreateAccountAlias,
#: GetGroupId, CreateGroup, CreateGroupMembership, CreateAccountAssignment (nothing read back).
NEW_TENANT_BUDGET = 8
#: Calls an unchanged tenant costs on a full drift check: its tags, its group's members and assignments.
NOOP_TENANT_BUDGET = 3


def without_polls(calls) -> int:
    return sum(n for op, n in calls.items() if op not in POLLS)


def more_projects(config: dict, n: int) -> dict:
    config = copy.deepcopy(config)
    config["workspaces"].append(
        {
            "id": "ws9",
            "projects": [
                {
                    "id": f"n{i}",
                    "bindings": [{"user": "alice", "role": "admin"}],
                    "tenants": [{"platform": "aws", "landing_zone": "dev"}],
                }
                for i in range(n)
            ],
        }
    )
    return config


def test_calls_per_new_and_per_unchanged_tenant(world, sso, access_config):
    """Marginal costs: what 4 more tenants add to a run, new and then unchanged (per-run reads excluded).

    Tenants run one at a time here: with several in parallel, two may race to fill a run-wide cache
    and both read it, which makes the count depend on thread timing.
    """
    access_config["settings"] = {"concurrency": 1}
    first = world.reconciler(access_config).apply()
    assert not first.failed, [t.message for t in first.failed]

    world.calls.clear()
    world.reconciler(access_config).apply()
    noop_before = without_polls(world.calls)
    noop_accounts_walk = world.calls["ListAccounts"]
    before = dict(world.calls)
    assert world.calls.writes == {}, world.calls.writes

    grown = more_projects(access_config, 4)
    world.calls.clear()
    report = by_key(world.reconciler(grown).apply())
    assert all(report[f"ws9/n{i}@aws"].status == "changed" for i in range(4)), report
    # the organization's ListAccounts walk: once per run that has new tenants (their e-mails are checked
    # against every account), and only then: a run of placed, unchanged tenants reads their OUs' listings
    assert noop_accounts_walk == 0, before
    assert world.calls["ListAccounts"] == 1, dict(world.calls)
    per_new = (without_polls(world.calls) - noop_before - world.calls["ListAccounts"]) / 4

    world.calls.clear()
    world.reconciler(grown).apply()
    assert world.calls.writes == {}, world.calls.writes
    per_unchanged = (without_polls(world.calls) - noop_before) / 4

    print(f"new: {per_new:.2f} calls/tenant; unchanged: {per_unchanged:.2f} calls/tenant")
    assert per_new <= NEW_TENANT_BUDGET, dict(world.calls)
    extra = {op: n - before.get(op, 0) for op, n in world.calls.items() if n != before.get(op, 0)}
    assert per_unchanged <= NOOP_TENANT_BUDGET, extra


def test_creations_in_flight_are_polled_together_across_pages(world, config):
    """25 accounts in creation (more than one page of ListCreateAccountStatus): listed, not described, per poll."""
    from meshcore_aws_emulator import strict

    strict.PROFILE.create_polls = 3
    config["settings"] = {"concurrency": 25}
    config["workspaces"] = [
        {
            "id": "big",
            "projects": [
                {"id": f"p{i}", "tenants": [{"platform": "aws", "landing_zone": "dev"}]} for i in range(25)
            ],
        }
    ]
    report = world.reconciler(config).apply()
    assert not report.failed, [t.message for t in report.failed]
    if any(t.status == "in_progress" for t in report.tenants):  # the emulator counts reads, not time:
        report = world.reconciler(config).apply()  # a shared listing is one read; the next run finishes
    assert {t.status for t in report.tenants} <= {"changed", "ok"}, [t.message for t in report.tenants]
    assert len(world.org.client.list_accounts()["Accounts"]) == 26
    # one description per request when it leaves the in-progress listing (a request created after the
    # listing its first poll shares is described once more)
    assert world.calls["DescribeCreateAccountStatus"] <= 2 * 25, dict(world.calls)
    assert world.calls["ListCreateAccountStatus"] >= 2


def test_members_read_per_user_when_users_are_fewer_than_groups(world, sso, access_config):
    """24 groups of three people: memberships are read per user (3 reads, not 24), and the answer is complete:
    a member added outside meshcore, of a user no binding names, is still seen and removed."""
    access_config["settings"] = {"concurrency": 4}
    grown = more_projects(access_config, 24)
    first = world.reconciler(grown).apply()
    assert not first.failed, [t.message for t in first.failed]

    world.calls.clear()
    world.reconciler(grown).apply()
    assert world.calls.writes == {}, world.calls.writes
    assert world.calls["ListGroupMemberships"] == 0, dict(world.calls)
    assert world.calls["ListUsers"] == 1
    assert world.calls["ListGroupMembershipsForMember"] == len(sso.users)

    # a stranger to every binding joins one of meshcore's groups behind its back
    store_id = sso.instance["IdentityStoreId"]
    stranger = sso.store.create_user(
        IdentityStoreId=store_id,
        UserName="mallory",
        DisplayName="m",
        Name={"GivenName": "m", "FamilyName": "X"},
    )["UserId"]
    sso.names[stranger] = "mallory"
    gid = sso.group("meshcore-ws9-n7-admin")
    sso.store.create_group_membership(IdentityStoreId=store_id, GroupId=gid, MemberId={"UserId": stranger})
    assert sso.members("meshcore-ws9-n7-admin") == ["alice", "mallory"]

    plan = by_key(world.reconciler(grown).plan())
    removals = [
        a for a in plan["ws9/n7@aws"].actions if a.resource == "group-member" and a.change == "delete"
    ]
    assert len(removals) == 1, plan["ws9/n7@aws"].actions
    assert all(not t.actions for k, t in plan.items() if k != "ws9/n7@aws")
    world.reconciler(grown).apply()
    assert sso.members("meshcore-ws9-n7-admin") == ["alice"]


#: State-store transactions an unchanged AWS tenant costs (marginal): none. A single runner reads the platform's
#: resources and open intents once per run (meshcore.snapshot), and an unchanged tenant records no step.
NOOP_TENANT_TRANSACTIONS = 0


def transactions(world, monkeypatch, cfg) -> int:
    """State-store transactions of one apply of ``cfg`` (every tenant must end without failure)."""
    count = {"n": 0}

    def begun(_conn):
        count["n"] += 1

    event.listen(world.store.engine, "begin", begun)  # every transaction, whichever way it is opened
    try:
        report = world.reconciler(cfg).apply()
    finally:
        event.remove(world.store.engine, "begin", begun)
    assert not report.failed, [t.message for t in report.failed]
    return count["n"]


def test_state_store_transactions_per_unchanged_tenant(world, sso, access_config, monkeypatch):
    access_config["settings"] = {"concurrency": 1}
    per_run = {}
    for n in (0, 4):
        cfg = more_projects(access_config, n)
        assert not world.reconciler(cfg).apply().failed
        per_run[n] = transactions(world, monkeypatch, cfg)
    marginal = (per_run[4] - per_run[0]) / 4
    print(f"{marginal} transactions per unchanged tenant {per_run}")
    assert marginal <= NOOP_TENANT_TRANSACTIONS, per_run


#: State-store transactions a new AWS tenant costs (marginal): the journal of its two non-idempotent calls
#: (begin, and the account's request id: 3), its resources (account and group, each with its journal entry
#: closed in the same transaction, and its alias: 3), its row with its audit entry (created, bound: 2) and its
#: attributes (1). Its six steps' records ride along with those writes (StateStore.record_step's deferred);
#: lookups of earlier intents and of its resources are answered from the run's one read (meshcore.snapshot).
#: Each write is recorded as it happens, which crash safety needs; a change that adds one fails.
NEW_TENANT_TRANSACTIONS = 9


def test_state_store_transactions_per_new_tenant(world, sso, access_config, monkeypatch):
    access_config["settings"] = {"concurrency": 1}
    assert not world.reconciler(access_config).apply().failed
    per_run = {
        "no-op": transactions(world, monkeypatch, access_config),
        "4 new": transactions(world, monkeypatch, more_projects(access_config, 4)),
    }
    marginal = (per_run["4 new"] - per_run["no-op"]) / 4
    print(f"{marginal} transactions per new tenant {per_run}")
    assert marginal <= NEW_TENANT_TRANSACTIONS, per_run


def test_assignments_in_flight_are_polled_together(world, sso, access_config):
    """24 assignments in flight at once: each look lists the ones in progress for every waiting tenant, and a
    request is described only when it has left that listing (to learn how it ended), never once per look."""
    from meshcore_aws_emulator import strict

    strict.PROFILE.assignment_polls = 3  # every request stays in progress for three status reads
    access_config["settings"] = {"concurrency": 24}
    grown = more_projects(access_config, 24)
    report = world.reconciler(grown).apply()
    assert not report.failed, [t.message for t in report.failed]
    assert {t.status for t in report.tenants} <= {"changed", "ok"}, [t.message for t in report.tenants]
    assert all(sso.members(f"meshcore-ws9-n{i}-admin") == ["alice"] for i in range(24))
    assigned = world.calls["CreateAccountAssignment"]
    assert assigned >= 24, dict(world.calls)
    assert world.calls["ListAccountAssignmentCreationStatus"] >= 1, dict(world.calls)
    # one description per request when it leaves the listing, and one more for a request sent after the
    # listing its first look shares; one per look per request would be 4 each
    assert world.calls["DescribeAccountAssignmentCreationStatus"] <= 2 * assigned, dict(world.calls)
