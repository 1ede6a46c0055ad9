"""Import, discovery, closure (quota, guard, async), quarantine, skipped suspended accounts, preflight."""

from __future__ import annotations

import datetime as dt

from aws_testlib import account_view, by_key, create_account
from meshcore.reconciler import approve_deletion


def unmanaged(world, name="legacy", email="legacy@example.com") -> str:
    return create_account(world.org.client, name, email)


def test_discovery_lists_unmanaged_accounts_and_import_adopts_one(world, config, registry):
    legacy = unmanaged(world)
    rec = world.reconciler()
    rec.apply()
    from meshcore.context import HookContext

    platform = rec.config.platforms["aws"]
    ctx = HookContext(backend=world.store, platform_id="aws", run_id=1)
    found = {d.platform_tenant_id for d in registry.call("meshplatform_discover_tenants", platform, ctx=ctx)}
    managed = {t.platform_tenant_id for t in world.store.tenants()}
    assert legacy in found and managed <= found and "123456789012" not in found

    config["workspaces"].append(
        {
            "id": "ws9",
            "projects": [
                {"id": "old", "tenants": [{"platform": "aws", "landing_zone": "prod", "import_id": legacy}]}
            ],
        }
    )
    rec = world.reconciler(config)
    item = next(i for i in rec.plan().tenants if i.key == "ws9/old@aws")
    assert item.actions[0].detail == f"adopt existing account {legacy} (import)"
    assert any(c.resource == "ou" for c in item.actions)
    result = by_key(rec.apply())["ws9/old@aws"]
    assert result.status == "changed" and result.platform_tenant_id == legacy
    view = account_view(world.org.client, legacy)
    assert view["parent"] == world.org.ous["/Workloads/Prod"] and view["tags"]["meshcore:project"] == "old"
    assert view["name"] == "ws9-old"  # renamed through the Account Management API
    assert len(world.org.client.list_accounts()["Accounts"]) == 5


def test_an_account_id_is_never_bound_to_two_tenants(world, config):
    rec = world.reconciler()
    taken = by_key(rec.apply())["ws1/p1@aws"].platform_tenant_id
    config["workspaces"].append(
        {
            "id": "ws9",
            "projects": [
                {"id": "thief", "tenants": [{"platform": "aws", "landing_zone": "dev", "import_id": taken}]}
            ],
        }
    )
    result = by_key(world.reconciler(config).apply())["ws9/thief@aws"]
    assert result.status == "failed" and "belongs to tenant ws1/p1@aws" in result.message


def test_closure_flow_with_approval_and_quota_in_plan(world, config):
    rec = world.reconciler()
    aid = by_key(rec.apply())["ws1/p2@aws"].platform_tenant_id  # prod: approval required
    del config["workspaces"][0]["projects"][1]
    rec = world.reconciler(config)
    item = next(i for i in rec.plan().tenants if i.key == "ws1/p2@aws")
    assert item.events == ["mark for deletion"] and not any(a.phase == "deprovision" for a in item.actions)
    assert by_key(rec.apply())["ws1/p2@aws"].status == "waiting"
    assert account_view(world.org.client, aid)["state"] == "ACTIVE"
    approve_deletion(world.store, "ws1/p2@aws")
    item = next(i for i in rec.plan().tenants if i.key == "ws1/p2@aws")
    (close,) = [a for a in item.actions if a.phase == "deprovision"]
    assert close.resource == "account" and "closure quota: 250 of 250 left" in close.detail
    result = by_key(rec.apply())["ws1/p2@aws"]
    assert result.status == "changed" and "deleted" in result.events
    assert account_view(world.org.client, aid)["state"] == "SUSPENDED"
    steps = [
        s.message
        for s in world.store.steps()
        if s.tenant_key == "ws1/p2@aws" and s.name.startswith("deprovision")
    ]
    assert any(f"CloseAccount {aid} requested" in m for m in steps)
    row = next(t for t in world.store.tenants(include_deleted=True) if t.key == "ws1/p2@aws")
    assert row.status == "DELETED"
    # suspended accounts are skipped everywhere else: nothing more happens to them
    world.calls.clear()
    rec.apply()
    assert world.calls["CloseAccount"] == 0


def test_closure_quota_blocks_and_is_reported(world, config):
    config["platforms"][0]["config"]["deletion"] = {"max_closures_per_30_days": 10}
    rec = world.reconciler(config)
    rec.apply()
    for i in range(10):  # ten closures made in the last 30 days
        world.store.quota_reserve("aws", "close-account", f"99999999999{i}", 10, dt.timedelta(days=30))
    config["workspaces"].pop()  # ws2/p3 in 'dev': auto-approved
    rec = world.reconciler(config)
    close = next(
        c for i in rec.plan().tenants if i.key == "ws2/p3@aws" for c in i.actions if c.resource == "account"
    )
    assert "0 of 10 left" in close.detail
    result = by_key(rec.apply())["ws2/p3@aws"]
    assert (
        result.status == "in_progress"
        and "closure quota used up (10 in the rolling 30 days)" in result.message
    )
    assert world.calls["CloseAccount"] == 0
    # closures older than 30 days no longer count
    from sqlalchemy import update

    from meshcore.state.tables import QuotaRow

    with world.store.session() as s:
        s.execute(update(QuotaRow).values(at=dt.datetime.now(dt.UTC) - dt.timedelta(days=31)))
    assert by_key(rec.apply())["ws2/p3@aws"].status == "changed"
    assert world.calls["CloseAccount"] == 1


def test_guard_tag_protects_imported_accounts_from_closure(world, config):
    config["platforms"][0]["config"]["deletion"] = {"guard": {"key": "closable-by", "value": "meshcore"}}
    legacy = unmanaged(world)
    config["workspaces"][1]["projects"].append(
        {"id": "old", "tenants": [{"platform": "aws", "landing_zone": "dev", "import_id": legacy}]}
    )
    rec = world.reconciler(config)
    created = by_key(rec.apply())["ws2/p3@aws"].platform_tenant_id
    assert account_view(world.org.client, created)["tags"]["closable-by"] == "meshcore"
    assert "closable-by" not in account_view(world.org.client, legacy)["tags"]
    config["workspaces"].pop()
    results = by_key(world.reconciler(config).apply())
    assert results["ws2/p3@aws"].status == "changed"
    assert account_view(world.org.client, created)["state"] == "SUSPENDED"
    assert results["ws2/old@aws"].status == "failed"
    assert "does not carry the tag closable-by=meshcore" in results["ws2/old@aws"].message
    assert account_view(world.org.client, legacy)["state"] == "ACTIVE"


def test_guard_key_under_the_owned_prefix_is_rejected(world, config, write_config, registry):
    import pytest

    from meshcore.config import load_config
    from meshcore.errors import ConfigError

    config["platforms"][0]["config"]["deletion"] = {"guard": {"key": "meshcore:closable"}}
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(config), registry)
    assert "platforms[0].config.deletion.guard.key: the guard tag must not be under the owned prefix" in str(
        exc.value.problems[0]
    )


def test_quarantine_mode_moves_the_account_and_never_closes(world, config):
    config["platforms"][0]["config"]["deletion"] = {"mode": "quarantine", "quarantine_ou": "/Quarantine"}
    aid = by_key(world.reconciler(config).apply())["ws2/p3@aws"].platform_tenant_id
    config["workspaces"].pop()
    assert by_key(world.reconciler(config).apply())["ws2/p3@aws"].status == "changed"
    view = account_view(world.org.client, aid)
    assert view["parent"] == world.org.ous["/Quarantine"] and view["state"] == "ACTIVE"
    assert world.calls["CloseAccount"] == 0


def test_account_closed_by_hand_is_reported_and_never_written_to(world, lz_config, sso, access_config):
    rec = world.reconciler(lz_config)  # with SCPs, a baseline and Identity Center access
    aid = by_key(rec.apply())["ws1/p1@aws"].platform_tenant_id
    world.org.client.close_account(AccountId=aid)
    access_config["workspaces"][0]["projects"][0]["bindings"].append({"user": "bob", "role": "reader"})
    access_config["workspaces"][0]["projects"][0]["tags"] = {"environment": "prod"}
    rec = world.reconciler(access_config)
    world.calls.clear()
    result = by_key(rec.apply())["ws1/p1@aws"]
    assert result.status == "failed" and "is PENDING_CLOSURE (closed outside meshcore)" in result.message
    assert world.calls.writes == {}, "a SUSPENDED account was written to"
    item = next(i for i in rec.plan().tenants if i.key == "ws1/p1@aws")
    assert item.status == "error" and "SUSPENDED" in item.message and not item.actions


def test_preflight_reports_each_role_and_permission(world, config, registry):
    from meshcore.context import HookContext

    rec = world.reconciler()
    ctx = HookContext(backend=world.store, platform_id="aws", run_id=1)
    report = registry.call("meshplatform_preflight", rec.config.platforms["aws"], ctx=ctx)
    names = {c.name: c.ok for c in report.checks}
    assert names["base credentials"] and names["assume management role"]
    assert (
        names["organizations:DescribeOrganization (FeatureSet ALL)"] and names["organizations:ListAccounts"]
    )
    trusted = "trusted access for AWS Account Management (renaming accounts)"
    assert names[trusted]
    world.org.client.disable_aws_service_access(ServicePrincipal="account.amazonaws.com")
    report = registry.call("meshplatform_preflight", rec.config.platforms["aws"], ctx=ctx)
    check = next(c for c in report.checks if c.name == trusted)
    assert (
        not check.ok
        and "enable-aws-service-access --service-principal account.amazonaws.com" in check.message
    )


def test_missing_external_id_is_a_validation_problem(world, config, write_config, registry):
    import pytest

    from meshcore.config import load_config
    from meshcore.errors import ConfigError

    del config["platforms"][0]["config"]["management"]["external_id"]
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(config), registry)
    assert "platforms[0].config.management.external_id: set an ExternalId" in str(exc.value.problems[0])


def test_landing_zone_overrides_the_deletion_mode(world, config, write_config, registry):
    config["landing_zones"][1]["config"]["deletion_mode"] = "leave"  # prod accounts are never closed
    rec = world.reconciler(config)
    aid = by_key(rec.apply())["ws1/p2@aws"].platform_tenant_id
    del config["workspaces"][0]["projects"][1]
    rec = world.reconciler(config)
    approve_deletion(world.store, "ws1/p2@aws") if rec.apply() else None
    result = by_key(rec.apply())["ws1/p2@aws"]
    assert result.status == "changed" and "deleted" in result.events
    row = next(t for t in world.store.tenants(include_deleted=True) if t.key == "ws1/p2@aws")
    assert row.status == "DELETED" and row.attributes["deletion"] == "left untouched by policy"
    assert account_view(world.org.client, aid)["state"] == "ACTIVE" and world.calls["CloseAccount"] == 0
    config["landing_zones"][1]["config"]["deletion_mode"] = "quarantine"
    import pytest

    from meshcore.config import load_config
    from meshcore.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_config(write_config(config), registry)
    assert "deletion_mode: quarantine needs deletion.quarantine_ou" in str(exc.value.problems[0])


def test_an_imported_account_without_the_access_role_is_noted_once_not_retried_every_run(
    world, lz_config, monkeypatch
):
    """Invited accounts often lack OrganizationAccountAccessRole: say so, and stop knocking for a day."""
    from moto.iam.models import iam_backends

    legacy = unmanaged(world)
    iam_backends[legacy]["global"].delete_role("OrganizationAccountAccessRole")
    lz_config["workspaces"][1]["projects"][0]["tenants"][0]["import_id"] = legacy  # ws2/p3, dev (baseline)
    first = by_key(world.reconciler(lz_config).apply())["ws2/p3@aws"]
    row = next(t for t in world.store.tenants() if t.key == "ws2/p3@aws")
    assert "OrganizationAccountAccessRole" in row.attributes["member_access"]
    assert first.status == "failed" and "AWSCloudFormationStackSetExecutionRole" in first.message
    world.calls.clear()
    again = by_key(world.reconciler(lz_config).apply())["ws2/p3@aws"]
    assert again.status == "failed" and "deploy it there" in again.message
    assert world.calls["AssumeRole"] == 0 and world.calls["ListAccountAliases"] == 0, dict(world.calls)
    assert (
        world.org.client.list_parents(ChildId=legacy)["Parents"][0]["Id"] == world.org.ous["/Workloads/Dev"]
    )
