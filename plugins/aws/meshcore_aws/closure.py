"""Deleting a tenant's account by its deletion mode: close it (within AWS's quota), quarantine it, or leave it.

Closing is asynchronous (``ACTIVE`` → ``PENDING_CLOSURE`` → ``SUSPENDED``, later
``CLOSED``). AWS lets an organization close the greater of 250 or 20 % of its
member accounts, at most 1,000, in any rolling 30 days, and a refused or failed
attempt counts too. meshcore reserves a slot of that quota atomically in the
state store *before* ``CloseAccount`` (so parallel tenants and concurrent runners
never overshoot it), keeps the slot whatever happens, and treats AWS's own
refusals (``Reason`` ``CLOSE_ACCOUNT_QUOTA_EXCEEDED`` or
``CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED``) as "wait and retry next run". An
optional guard refuses to close any account that does not carry an opt-in tag.
"""

from __future__ import annotations

import datetime as dt

from botocore.exceptions import ClientError

from meshcore import (
    Action,
    ActionResult,
    ActionStatus,
    ChangeAction,
    ConflictError,
    HookContext,
    Observation,
    Phase,
    PlatformError,
    TenantSpec,
)
from meshcore_aws import accounts, retries
from meshcore_aws.run import AwsRun

WINDOW = dt.timedelta(days=30)
QUOTA = "close-account"
#: ConstraintViolation reasons of CloseAccount that mean "not now".
LATER = frozenset({"CLOSE_ACCOUNT_QUOTA_EXCEEDED", "CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED"})


def closure_limit(run: AwsRun) -> int:
    """How many accounts may be closed in any rolling 30 days (AWS's quota, or the configured lower cap)."""
    members = max(0, len(run.org.accounts()) - 1)
    aws = min(1000, max(250, members * 20 // 100))
    configured = run.cfg.deletion.max_closures_per_30_days
    return aws if configured is None else min(aws, configured)


def deletion_mode(run: AwsRun, tenant: TenantSpec) -> str:
    """The landing zone's override, else the platform's deletion mode."""
    return getattr(tenant.landing_zone.config, "deletion_mode", None) or run.cfg.deletion.mode


def deletion_actions(run: AwsRun, tenant: TenantSpec, ctx: HookContext) -> Observation:
    """What is left to do to delete a tenant whose deletion is approved (nothing: it is deleted)."""
    if not tenant.deletion_approved or tenant.platform_tenant_id is None:
        return Observation()
    aid = tenant.platform_tenant_id
    if aid == run.org.management_account_id:
        raise ConflictError(f"refusing to deprovision the management account {aid}")
    account = run.org.account(aid, refresh=True)
    if account is None:
        return Observation(attributes={"state": "gone"})
    state = accounts.state(account)
    if state in accounts.CLOSED_STATES:
        return Observation(attributes={"state": state})
    if state == accounts.PENDING_CLOSURE:
        return Observation(actions=(_await_closure(run, aid),), attributes={"state": state})
    mode = deletion_mode(run, tenant)
    if mode == "leave":
        return Observation(attributes={"state": state, "deletion": "left untouched by policy"})
    if mode == "quarantine":
        return _quarantine(run, aid)
    problems: dict[str, str] = {}
    guard = run.cfg.deletion.guard
    if guard is not None and run.org.tags_of(aid).get(guard.key) != guard.value:
        problems[f"closure-guard:{aid}"] = (
            f"account {aid} does not carry the tag {guard.key}={guard.value} (deletion.guard); tag it to allow "
            "closing, or use deletion mode 'quarantine'"
        )
    limit = closure_limit(run)
    used = ctx.quota(QUOTA).used(WINDOW)
    return Observation(
        actions=(
            Action(
                phase=Phase.DEPROVISION,
                change=ChangeAction.DELETE,
                resource="account",
                target=aid,
                before=state,
                after=accounts.PENDING_CLOSURE,
                detail=f"close; closure quota: {max(0, limit - used)} of {limit} left in the rolling 30 days",
                requires=(f"closure-guard:{aid}",) if problems else (),
                run=lambda: _close(run, ctx, aid, limit),
            ),
        ),
        problems=problems,
        attributes={"state": state},
    )


def _close(run: AwsRun, ctx: HookContext, aid: str, limit: int) -> ActionResult:
    if not ctx.quota(QUOTA).reserve(aid, limit, WINDOW):
        return ActionResult(
            status=ActionStatus.IN_PROGRESS,
            message=f"closure quota used up ({limit} in the rolling 30 days); retried next run",
        )
    entry = ctx.journal.find("close-account", aid) or ctx.journal.begin(
        "close-account", aid, {"account_id": aid}
    )
    try:
        run.org.write("close_account", AccountId=aid)
    except ClientError as exc:
        code, why = retries.code(exc), retries.reason(exc)
        if code == "AccountAlreadyClosedException":
            pass
        elif code == "ConstraintViolationException" and why in LATER:
            entry.fail(retries.describe(exc))
            return ActionResult(
                status=ActionStatus.IN_PROGRESS, message=f"AWS refused for now ({why}); retried next run"
            )
        elif code == "ConflictException":  # already closing: read the state again
            pass
        else:
            entry.fail(retries.describe(exc))
            raise PlatformError(f"CloseAccount {aid} was refused: {retries.describe(exc)}") from None
    entry.record_operation(aid)
    entry.complete({})
    account = run.org.account(aid, refresh=True)
    return ActionResult(
        message=f"CloseAccount {aid} requested ({accounts.state(account) if account else 'gone'})"
    )


def _await_closure(run: AwsRun, aid: str) -> Action:
    def go() -> ActionResult:
        account = run.org.account(aid, refresh=True)
        state = accounts.state(account) if account else "gone"
        if state == accounts.PENDING_CLOSURE:
            return ActionResult(status=ActionStatus.IN_PROGRESS, message=f"account {aid} is PENDING_CLOSURE")
        return ActionResult(changed=False, message=f"account {aid} is {state}")

    return Action(
        phase=Phase.DEPROVISION,
        change=ChangeAction.WAIT,
        resource="account",
        target=aid,
        before=accounts.PENDING_CLOSURE,
        after="SUSPENDED",
        run=go,
    )


def _quarantine(run: AwsRun, aid: str) -> Observation:
    ref = run.cfg.deletion.quarantine_ou or ""
    target = run.org.find_ou(ref)
    if target is None:
        raise PlatformError(f"the quarantine OU {ref} does not exist")
    parent = run.org.parent_of(aid, target)
    if parent == target:
        return Observation(attributes={"deletion": f"in quarantine OU {ref}"})

    def go() -> ActionResult:
        run.org.move(aid, parent, target)
        return ActionResult(message=f"moved {aid} from {parent} to quarantine OU {ref}")

    return Observation(
        actions=(
            Action(
                phase=Phase.DEPROVISION,
                change=ChangeAction.UPDATE,
                resource="ou",
                target=aid,
                before=parent,
                after=f"{target} ({ref})",
                detail="quarantine",
                run=go,
            ),
        )
    )


__all__ = ["closure_limit", "deletion_actions", "deletion_mode"]
