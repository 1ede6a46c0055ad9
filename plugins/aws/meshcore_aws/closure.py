"""Deprovisioning by deletion policy: close the account (within AWS's quota), quarantine it, or leave it.

Closing is asynchronous (ACTIVE -> PENDING_CLOSURE -> SUSPENDED) and limited by
AWS to a share of the member accounts (10 %, at least 10 and at most 1,000)
per rolling 30 days. meshcore counts its own closures in the journal, refuses
to start one when the quota is used up (the tenant waits, ``blocked``), and
treats AWS's ``CLOSE_ACCOUNT_QUOTA_EXCEEDED`` the same way. An optional guard
refuses to close any account that does not carry an opt-in tag.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from meshcore.errors import ConflictError, PlatformError
from meshcore.results import Change, ChangeAction, DeprovisionResult, DeprovisionStatus
from meshcore_aws.calls import error_code
from meshcore_aws.vending import INACTIVE, Vendor

WINDOW = dt.timedelta(days=30)


def closure_quota(vendor: Vendor) -> tuple[int, int]:
    """(closures meshcore started in the rolling window, closures allowed in it)."""
    members = max(0, len(vendor.org.accounts()) - 1)
    limit = min(1000, max(10, members * vendor.cfg.deletion.quota_percent // 100))
    since = dt.datetime.now(dt.UTC) - WINDOW
    used = len(vendor.ctx.journal.history("close-account", since))
    return used, limit


def _guard_problem(vendor: Vendor, account_id: str) -> str | None:
    guard = vendor.cfg.deletion.guard
    if guard is None:
        return None
    if vendor.org.tags_of(account_id).get(guard.key) != guard.value:
        return (
            f"refusing to close account {account_id}: it does not carry the tag {guard.key}={guard.value} "
            "(deletion.guard); tag it to allow closing, or use deletion mode 'quarantine'"
        )
    return None


def deletion_mode(vendor: Vendor, tenant: Any) -> str:
    """The landing zone's override, else the platform's deletion mode."""
    return getattr(tenant.landing_zone.config, "deletion_mode", None) or vendor.cfg.deletion.mode


def plan_deletion(vendor: Vendor, tenant: Any) -> list[Change]:
    aid = tenant.platform_tenant_id
    mode = deletion_mode(vendor, tenant)
    if aid is None:
        return [
            Change(
                action=ChangeAction.DELETE, resource="account", detail="never provisioned: nothing to close"
            )
        ]
    account = vendor.org.account(aid)
    if account is None or account.get("Status") == "SUSPENDED":
        return [Change(action=ChangeAction.DELETE, resource="account", detail="already closed")]
    if account.get("Status") == "PENDING_CLOSURE":
        return [Change(action=ChangeAction.DELETE, resource="account", detail="closure in progress")]
    if mode == "leave":
        return [
            Change(
                action=ChangeAction.DELETE,
                resource="account",
                detail="left untouched (deletion mode 'leave')",
            )
        ]
    if mode == "quarantine":
        return [
            Change(
                action=ChangeAction.UPDATE,
                resource="ou",
                after=vendor.cfg.deletion.quarantine_ou,
                detail="move to the quarantine OU",
            )
        ]
    used, limit = closure_quota(vendor)
    detail = (
        f"close account {aid}; closure quota: {max(0, limit - used)} of {limit} left in the rolling 30 days"
    )
    problem = _guard_problem(vendor, aid)
    if problem:
        detail += f"; BLOCKED: {problem}"
    return [
        Change(
            action=ChangeAction.DELETE,
            resource="account",
            before=account.get("Status"),
            after="SUSPENDED",
            detail=detail,
        )
    ]


def deprovision(vendor: Vendor, tenant: Any) -> DeprovisionResult:
    aid = tenant.platform_tenant_id
    if aid is None:
        return DeprovisionResult(status=DeprovisionStatus.DELETED, message="never provisioned")
    if aid == vendor.org.management_account_id:
        raise ConflictError(f"refusing to deprovision the management account {aid}")
    account = vendor.org.account(aid, refresh=True)
    if account is None:
        return DeprovisionResult(
            status=DeprovisionStatus.DELETED, message=f"account {aid} is no longer in the organization"
        )
    status = account.get("Status")
    entry = vendor.ctx.journal.find("close-account", aid)
    mode = deletion_mode(vendor, tenant)
    if status == "SUSPENDED":
        if entry is not None:
            entry.complete({"status": status})
        return DeprovisionResult(status=DeprovisionStatus.DELETED, message=f"account {aid} is SUSPENDED")
    if status == "PENDING_CLOSURE":
        return DeprovisionResult(
            status=DeprovisionStatus.IN_PROGRESS, message=f"account {aid} is PENDING_CLOSURE"
        )
    if mode == "leave":
        return DeprovisionResult(
            status=DeprovisionStatus.DELETED, message=f"account {aid} left untouched by policy"
        )
    if mode == "quarantine":
        target = vendor.org.resolve_ou(vendor.cfg.deletion.quarantine_ou or "", create=False)
        parent = vendor.org.parent_of(aid, target)
        with vendor.ctx.step("quarantine") as step:
            if parent != target:
                vendor.org.move(aid, parent, target)
                step.changed(f"moved {aid} from {parent} to quarantine OU {target}")
        return DeprovisionResult(
            status=DeprovisionStatus.DELETED, message=f"account {aid} moved to quarantine"
        )
    return _close(vendor, aid, entry)


def _remove_baselines(vendor: Vendor, tenant: Any) -> None:
    from meshcore_aws.landing_zone import LandingZones

    lzs = LandingZones(vendor)
    if lzs._uses_stacksets(tenant):
        with vendor.ctx.step("remove baselines") as step:
            done = lzs.remove_all(tenant)
            if done:
                step.changed("; ".join(done))


def _close(vendor: Vendor, aid: str, entry: Any) -> DeprovisionResult:
    if entry is None:
        problem = _guard_problem(vendor, aid)
        if problem:
            raise PlatformError(problem)
        used, limit = closure_quota(vendor)
        if used >= limit:
            return DeprovisionResult(
                status=DeprovisionStatus.BLOCKED,
                message=f"closure quota used up ({used} of {limit} in the rolling 30 days); retried next run",
            )
        entry = vendor.ctx.journal.begin("close-account", aid, {"account_id": aid})
    with vendor.ctx.step("close-account") as step:
        try:
            vendor.org.write("close_account", AccountId=aid)
        except Exception as exc:
            code = error_code(exc)
            if code == "AccountAlreadyClosedException":
                pass
            elif code == "ConstraintViolationException" and "QUOTA" in str(exc).upper():
                entry.fail(str(exc))
                step.skip("AWS closure quota exceeded")
                return DeprovisionResult(
                    status=DeprovisionStatus.BLOCKED,
                    message="AWS refused: closure quota exceeded; retried next run",
                )
            elif code:
                entry.fail(str(exc))
                raise PlatformError(f"CloseAccount {aid} was refused: {exc}") from None
            else:
                raise
        entry.record_operation(aid)
        step.changed(f"CloseAccount {aid} requested")
    account = vendor.org.account(aid, refresh=True)
    if account is None or account.get("Status") == "SUSPENDED":
        entry.complete({"status": "SUSPENDED"})
        return DeprovisionResult(status=DeprovisionStatus.DELETED, message=f"account {aid} is SUSPENDED")
    return DeprovisionResult(
        status=DeprovisionStatus.IN_PROGRESS, message=f"account {aid} is {account.get('Status')}"
    )


__all__ = ["INACTIVE", "closure_quota", "deprovision", "plan_deletion"]
