"""The account itself: create or adopt it (crash-safe), place it in its OU, name, tag and alias it.

Observing a tenant that has no account yet finds it, in this order, before ever
planning a ``CreateAccount``:

1. an open ``create-account`` intent with a request id: await that request;
2. an open intent without one (the process died during the call): the account
   by its e-mail (unique across AWS), else an in-progress request for its name
   in ``ListCreateAccountStatus`` (no peer recovers this);
3. no intent: an account with the e-mail that is meshcore's (recorded in the
   resources table, or carrying this tenant's identity tags) is adopted; one that
   is not is a conflict, never adopted; ``import_id`` adopts on purpose.

``CreateAccount`` has no client token, so it is never retried after an
ambiguous failure (timeout, 5xx): the intent stays open and the next run
recovers through step 2. Placement, name, tags and alias are observed on the
account (or, for an account still to be created, on what ``CreateAccount``
will make) and each difference is one action.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from meshcore import (
    Action,
    ActionResult,
    ActionStatus,
    ChangeAction,
    ConflictError,
    HookContext,
    JournalEntry,
    Observation,
    Phase,
    PlatformError,
    TenantSpec,
)
from meshcore_aws import accounts, naming, retries
from meshcore_aws.config import AwsConfig, AwsLandingZone
from meshcore_aws.guardrails import target_keys
from meshcore_aws.run import AwsRun, poll_count
from meshcore_aws.watch import RequestWatch

#: Errors a freshly created account answers for a while before its access role works.
NEW_ACCOUNT_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "OptInRequired",
    }
)
#: How long after creation an account counts as new (its access role may not work yet).
NEW_ACCOUNT_WINDOW = dt.timedelta(hours=1)
CREATE_FAILURE_HINTS = {
    "ACCOUNT_LIMIT_EXCEEDED": "the organization has reached its account limit; ask AWS support to raise it",
    "EMAIL_ALREADY_EXISTS": "the e-mail is used by another AWS account",
    "INVALID_EMAIL": "AWS rejected the e-mail address; check account_email_pattern",
    "INVALID_ADDRESS": "AWS rejected the account's contact address",
    "GOVCLOUD_ACCOUNT_ALREADY_EXISTS": "a GovCloud account with this e-mail already exists",
    "CONCURRENT_ACCOUNT_MODIFICATION": "a concurrent change to the organization; the next run retries",
    "INTERNAL_FAILURE": "an internal AWS failure; the next run retries",
    "MISSING_BUSINESS_VALIDATION": "the management account has not completed business validation",
    "MISSING_PAYMENT_INSTRUMENT": "the management account has no valid payment method",
    "PENDING_BUSINESS_VALIDATION": "the management account's business validation is pending",
    "UPDATE_EXISTING_RESOURCE_POLICY_WITH_TAGS_NOT_SUPPORTED": "tags could not be applied at creation",
}
#: ConstraintViolation reason of CreateAccount: too many creations in progress (sent again when one ends).
TOO_MANY_IN_PROGRESS = "ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED"
#: ConstraintViolation reasons of CreateAccount that mean "next run", not "never".
CREATE_LATER = frozenset({"ACCOUNT_CREATION_NOT_COMPLETE"})


@dataclass(frozen=True)
class Desired:
    """What one tenant's account should look like."""

    name: str
    email: str
    alias: str | None
    tags: dict[str, str]
    ou_ref: str


def identity_tags(cfg: AwsConfig, tenant: TenantSpec) -> dict[str, str]:
    p = cfg.tags.prefix
    return {
        f"{p}workspace": tenant.workspace.id,
        f"{p}project": tenant.project.id,
        f"{p}platform": tenant.platform_id,
    }


def desired_state(cfg: AwsConfig, tenant: TenantSpec) -> Desired:
    """Render every pattern; bad patterns raise :class:`PlatformError` before any cloud call."""
    values = {
        "workspace": tenant.workspace.id,
        "project": tenant.project.id,
        "platform": tenant.platform_id,
        "workspace_name": tenant.workspace.name,
        "project_name": tenant.project.name,
    }
    tags: dict[str, str] = identity_tags(cfg, tenant) if cfg.tags.identity_tags else {}
    prefix = cfg.tags.prefix
    for key, value in tenant.replicated_tags.items():
        tags[naming.tag_key(prefix + key)] = naming.tag_value(value)
    for key, pattern in cfg.tags.static.items():
        tags[naming.tag_key(prefix + key)] = naming.tag_value(naming.render(pattern, values, tenant.tags))
    lz: AwsLandingZone = tenant.landing_zone.config
    return Desired(
        name=naming.account_name(cfg.account_name_pattern, values, tenant.tags),
        email=naming.account_email(cfg.account_email_pattern, values, tenant.tags),
        alias=naming.account_alias(cfg.account_alias_pattern, values, tenant.tags)
        if cfg.account_alias_pattern
        else None,
        tags=tags,
        ou_ref=lz.ou,
    )


def account_key(tenant: TenantSpec) -> str:
    return f"account:{tenant.key}"


def placement_key(tenant: TenantSpec) -> str:
    return f"placement:{tenant.key}"


def bound_id(ctx: HookContext) -> str:
    """The tenant's account id inside an action (set by the action that created it, if this run did)."""
    if ctx.platform_tenant_id is None:
        raise PlatformError("the tenant has no account yet")
    return ctx.platform_tenant_id


# -- observe -----------------------------------------------------------------------------------


def tenant_actions(run: AwsRun, tenant: TenantSpec, ctx: HookContext) -> Observation:
    """Observation of a live tenant's account (the deletion phases live in :mod:`meshcore_aws.closure`)."""
    want = desired_state(run.cfg, tenant)
    lz: AwsLandingZone = tenant.landing_zone.config
    needs = target_keys(run.cfg, lz)
    actions: list[Action] = []
    found: str | None = None
    ou_id = run.org.find_ou(want.ou_ref)
    if tenant.platform_tenant_id is None:
        if not tenant.import_id:
            want = replace(want, email=unused_email(run, ctx, tenant, want.email))
        found, acquire = _acquire(run, tenant, want, ctx, needs)
        actions.append(acquire)
        account = run.org.account(found) if found else None
    else:
        account = run.org.account(tenant.platform_tenant_id, expected=ou_id)
        if account is None:
            raise PlatformError(f"account {tenant.platform_tenant_id} is no longer in this organization")
        state = accounts.state(account)
        if state in accounts.INACTIVE:
            raise PlatformError(
                f"account {tenant.platform_tenant_id} is {state} (closed outside meshcore): nothing is done to it; "
                "remove the project from the config, or import another account"
            )
        if state == accounts.PENDING_ACTIVATION:
            actions.append(_await_activation(run, tenant.platform_tenant_id))
    aid = found or tenant.platform_tenant_id
    in_place: set[str] = set()
    parent = run.org.parent_of(aid, ou_id) if aid else run.org.root_id()
    if ou_id is None or parent != ou_id:
        actions.append(
            Action(
                phase=Phase.PLACEMENT,
                change=ChangeAction.UPDATE,
                resource="ou",
                target=want.name,
                key=placement_key(tenant),
                before=parent,
                after=f"{ou_id or 'new OU'} ({want.ou_ref})",
                requires=needs,
                run=lambda: _move(run, ctx, want.ou_ref),
            )
        )
    else:
        in_place.add(placement_key(tenant))
    if aid and account is not None:
        actions += _configure(run, tenant, want, ctx, aid, account)
    elif want.alias:
        actions.append(_alias_action(run, ctx, want.alias, None))
    attributes = {
        "account_name": want.name,
        "account_email": want.email,
        "ou": want.ou_ref,
        "state": accounts.state(account) if account else "to be created",
    }
    if run.cfg.identity_center is not None and run.cfg.identity_center.sign_in_url:
        attributes["sign_in_url"] = run.cfg.identity_center.sign_in_url
    denied = member_access_denied(ctx, aid) if aid else None
    if denied:
        attributes["member_access"] = denied
    return Observation(
        actions=tuple(actions), in_place=frozenset(in_place), platform_tenant_id=found, attributes=attributes
    )


def _acquire(
    run: AwsRun, tenant: TenantSpec, want: Desired, ctx: HookContext, needs: tuple[str, ...]
) -> tuple[str | None, Action]:
    """For a tenant with no bound account: the action that creates, resumes or adopts it, and what it found."""
    if tenant.import_id:
        account = run.org.account(tenant.import_id)
        if account is None:
            raise PlatformError(f"cannot import account {tenant.import_id}: it is not in this organization")
        _claim(run, ctx, tenant, account, "import")
        return account["Id"], _adopt(run, ctx, want, account["Id"], "import", None)
    entry = ctx.journal.find("create-account", want.email)
    if entry is not None and entry.operation_id:
        return None, _wait_action(run, tenant, want, ctx, entry, needs, f"request {entry.operation_id}")
    existing = run.org.by_email(want.email, refresh=entry is not None)
    if existing is not None:
        _claim(run, ctx, tenant, existing, "adopt")
        if entry is None and not _ours(run, ctx, tenant, want, existing):
            raise ConflictError(
                f"account {existing['Id']} has the e-mail {want.email} but meshcore did not create it for "
                f"{tenant.key}; adopt it on purpose with 'import_id: {existing['Id']}', or change account_email_pattern"
            )
        return existing["Id"], _adopt(run, ctx, want, existing["Id"], "resume", entry)
    if entry is not None:
        request = _pending_request(run, want, entry)
        if request is not None:
            return None, _wait_action(
                run, tenant, want, ctx, entry, needs, f"request {request} (recovered)", request
            )
    return None, Action(
        phase=Phase.TENANT,
        change=ChangeAction.CREATE,
        resource="account",
        target=want.name,
        key=account_key(tenant),
        after=f"{want.name} <{want.email}>",
        detail=f"in {want.ou_ref}" + (f", alias {want.alias}" if want.alias else ""),
        requires=needs,
        run=lambda: _create(run, tenant, want, ctx, entry),
    )


def unused_email(run: AwsRun, ctx: HookContext, tenant: TenantSpec, email: str) -> str:
    """The e-mail for a new account: the rendered one, unless its account belonged to this same
    project before it was deleted (AWS keeps a closed account's e-mail for 90 days, and an account
    is never reused). Then ``local-2@domain``, ``local-3@domain``... the first one free. An account
    of *another* tenant with the e-mail is left for :func:`_claim` to refuse (a pattern collision)."""
    local, domain = email.split("@", 1)
    n = 1
    while True:
        candidate = email if n == 1 else f"{local}-{n}@{domain}"
        existing = run.org.by_email(candidate)
        if existing is None or ctx.owner_of(existing["Id"]) != tenant.key:
            if len(candidate) > naming.EMAIL_MAX:
                raise PlatformError(
                    f"account e-mail {email} belongs to a deleted tenant and {candidate} is too long; "
                    "change account_email_pattern"
                )
            return candidate
        n += 1


def _claim(run: AwsRun, ctx: HookContext, tenant: TenantSpec, account: dict[str, Any], how: str) -> None:
    aid = account["Id"]
    if aid == run.org.management_account_id:
        raise ConflictError(f"refusing to {how} the management account {aid}")
    owner = ctx.owner_of(aid)
    if owner and owner != tenant.key:
        raise ConflictError(
            f"account {aid} ({account.get('Email')}) belongs to tenant {owner}; an account is never reused, "
            "not even after its tenant was deleted (change account_email_pattern to vend a new one)"
        )
    state = accounts.state(account)
    if state != accounts.ACTIVE and state != accounts.PENDING_ACTIVATION:
        raise PlatformError(
            f"account {aid} ({account.get('Email')}) is {state}; it cannot be used for a tenant"
        )


def _ours(run: AwsRun, ctx: HookContext, tenant: TenantSpec, want: Desired, account: dict[str, Any]) -> bool:
    """An account is meshcore's for this tenant if recorded as created for it, or tagged with its identity."""
    recorded = ctx.resources.get("account", want.email)
    if recorded is not None and recorded.cloud_id == account["Id"]:
        return True
    tags = run.org.tags_of(account["Id"])
    return all(tags.get(k) == v for k, v in identity_tags(run.cfg, tenant).items())


def _pending_request(run: AwsRun, want: Desired, entry: JournalEntry) -> str | None:
    """The id of an in-progress (or just finished) request for this account started around the intent."""
    since = entry.created_at - dt.timedelta(minutes=5)
    statuses = retries.listed(
        run.org.client,
        "list_create_account_status",
        "CreateAccountStatuses",
        run.cfg.page_size,
        States=["IN_PROGRESS", "SUCCEEDED"],
    )
    for st in sorted(statuses, key=lambda s: s.get("RequestedTimestamp") or since, reverse=True):
        requested = st.get("RequestedTimestamp")
        if st.get("AccountName") == want.name and (requested is None or requested >= since):
            return str(st["Id"])
    return None


def _adopt(
    run: AwsRun, ctx: HookContext, want: Desired, aid: str, how: str, entry: JournalEntry | None
) -> Action:
    def go() -> ActionResult:
        ctx.resources.put(
            "account",
            want.email,
            cloud_id=aid,
            data={"adopted": how},
            completes=entry,
            result={"account_id": aid, "recovered": "by e-mail"},
        )
        account = run.org.account(aid)
        state = accounts.state(account) if account else "gone"
        return ActionResult(
            platform_tenant_id=aid, message=f"adopted account {aid} ({how})", attributes={"state": state}
        )

    return Action(
        phase=Phase.TENANT,
        change=ChangeAction.CREATE,
        resource="account",
        target=want.name,
        after=aid,
        detail=f"adopt existing account {aid} ({how})",
        run=go,
    )


def _wait_action(
    run: AwsRun,
    tenant: TenantSpec,
    want: Desired,
    ctx: HookContext,
    entry: JournalEntry,
    needs: tuple[str, ...],
    what: str,
    recovered: str | None = None,
) -> Action:
    def go() -> ActionResult:
        if recovered is not None:
            entry.record_operation(recovered)
        run.creation_slots.occupy()  # it holds one of AWS's creations in progress while it lasts
        try:
            return _await_creation(run, tenant, want, ctx, entry)
        finally:
            run.creation_slots.release()

    return Action(
        phase=Phase.TENANT,
        change=ChangeAction.WAIT,
        resource="account",
        target=want.name,
        key=account_key(tenant),
        detail=f"CreateAccount {what} started by an earlier run",
        requires=needs,
        run=go,
    )


def _await_activation(run: AwsRun, aid: str) -> Action:
    def go() -> ActionResult:
        account = run.org.account(aid, refresh=True)
        if account is not None and accounts.state(account) == accounts.PENDING_ACTIVATION:
            return ActionResult(
                status=ActionStatus.IN_PROGRESS, message=f"account {aid} is PENDING_ACTIVATION"
            )
        return ActionResult(changed=False, message=f"account {aid} is active")

    return Action(
        phase=Phase.TENANT,
        change=ChangeAction.WAIT,
        resource="account",
        target=aid,
        before=accounts.PENDING_ACTIVATION,
        after=accounts.ACTIVE,
        run=go,
    )


# -- create ------------------------------------------------------------------------------------


def _create(
    run: AwsRun, tenant: TenantSpec, want: Desired, ctx: HookContext, entry: JournalEntry | None
) -> ActionResult:
    """Send ``CreateAccount`` when the run has a creation slot (see :mod:`meshcore_aws.creation_slots`)
    and wait for it. Refused because too many creations are in progress, it waits for one of them to
    end and sends again, within ``create_wait_seconds``. ``entry``: the open intent the observation
    found (one without a request id, whose request AWS does not know), or ``None``: the tenant holds
    its lease from observation to action, so no other intent can have appeared meanwhile."""
    slots = run.creation_slots
    budget = run.cfg.create_wait_seconds
    deadline = time.monotonic() + budget
    while slots.acquire(timeout=max(0.0, deadline - time.monotonic()), stopping=run.stopping):
        ended = slots.ended
        try:
            given, entry = entry, None  # a refused intent is closed: a next attempt is a new one
            sent = _send_create(run, tenant, want, ctx, given)
        except _TooManyInProgress:
            if slots.refused(ended):
                continue  # wait for one of the run's creations to end, then send again
            break
        except BaseException:
            slots.unsent()
            raise
        if isinstance(sent, ActionResult):  # no clear answer, or AWS asks to wait: the next run goes on
            slots.unsent()
            return sent
        slots.sent()
        entry, status = sent
        try:
            return _await_creation(run, tenant, want, ctx, entry, status, sent_here=True)
        finally:
            slots.release()
    if slots.closed:
        message = (
            f"AWS refused to create more accounts ({TOO_MANY_IN_PROGRESS}) while none of this run's creations "
            "were in progress: the organization's limit of creations in progress at a time is held by "
            "others, or its creations for the day are used up; retried next run"
        )
    elif run.stopping():
        message = "CreateAccount not sent: meshcore is stopping; the next run goes on"
    else:
        configured = slots.limit == run.cfg.max_account_creations_in_flight
        source = "max_account_creations_in_flight" if configured else f"learnt from {TOO_MANY_IN_PROGRESS}"
        message = (
            f"no account creation could start within {budget:g} s: this run keeps at most {slots.limit} "
            f"in progress at a time ({source}); retried next run"
        )
    return ActionResult(status=ActionStatus.IN_PROGRESS, message=message)


class _TooManyInProgress(Exception):
    """``CreateAccount`` refused: too many creations in progress."""


def _send_create(
    run: AwsRun, tenant: TenantSpec, want: Desired, ctx: HookContext, entry: JournalEntry | None
) -> tuple[JournalEntry, dict[str, Any]] | ActionResult:
    """One ``CreateAccount``, journaled: the entry and the request's status, or what to report when the
    answer leaves it to the next run. Raises :class:`_TooManyInProgress` when AWS refused it because too
    many creations are in progress."""
    entry = entry or ctx.journal.begin(
        "create-account",
        want.email,
        {"tenant": tenant.key, "name": want.name, "email": want.email, "ou": want.ou_ref},
    )
    tags = dict(want.tags)
    guard = run.cfg.deletion.guard
    if guard is not None and guard.tag_created_accounts:
        tags[guard.key] = guard.value
    try:
        status: dict[str, Any] = run.org.write(
            "create_account",
            Email=want.email,
            AccountName=want.name,
            RoleName=run.cfg.account_access_role,
            IamUserAccessToBilling="ALLOW",
            Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        )["CreateAccountStatus"]
    except Exception as exc:
        if retries.ambiguous(exc):
            return ActionResult(
                status=ActionStatus.IN_PROGRESS,
                message=f"CreateAccount for {want.email} got no clear answer ({retries.describe(exc)}); "
                "the next run finds out what happened instead of sending it again",
            )
        if isinstance(exc, ClientError) and retries.reason(exc) == TOO_MANY_IN_PROGRESS:
            entry.fail(retries.describe(exc))  # refused: nothing was created, sending again is safe
            raise _TooManyInProgress from None
        if isinstance(exc, ClientError) and retries.reason(exc) in CREATE_LATER:
            entry.fail(retries.describe(exc))
            return ActionResult(
                status=ActionStatus.IN_PROGRESS,
                message=f"AWS asks to wait before creating more accounts ({retries.reason(exc)}); retried next run",
            )
        if isinstance(exc, ClientError):
            entry.fail(retries.describe(exc))
            raise PlatformError(
                f"CreateAccount for {want.email} was refused: {retries.describe(exc)}"
            ) from None
        raise
    entry.record_operation(status["Id"])
    return entry, status


class CreationWatch(RequestWatch):
    """Account creations in flight, polled for the whole run at once (see :mod:`meshcore_aws.watch`).

    One ``ListCreateAccountStatus(States=[IN_PROGRESS])`` answers every waiting tenant;
    only a request that no longer shows as in progress is described
    (``DescribeCreateAccountStatus``) to learn how it ended. Every waiter looks at the
    same instants (``until_next_look``) and shares listings no older than a quarter
    interval, so an ending is seen at most an interval (and a quarter, after a slow
    look) late: waiters on schedules of their own could reuse a listing almost an
    interval old and see an ending two intervals late.
    """

    def __init__(self, org: Any):
        def in_progress() -> set[str]:
            listed = retries.listed(
                org.client, "list_create_account_status", "CreateAccountStatuses", States=["IN_PROGRESS"]
            )
            return {str(s["Id"]) for s in listed}

        def describe(request_id: str) -> dict[str, Any]:
            status: dict[str, Any] = org.client.describe_create_account_status(
                CreateAccountRequestId=request_id
            )["CreateAccountStatus"]
            return status

        super().__init__(in_progress, describe, lambda request_id: {"Id": request_id, "State": "IN_PROGRESS"})


def _await_creation(
    run: AwsRun,
    tenant: TenantSpec,
    want: Desired,
    ctx: HookContext,
    entry: JournalEntry,
    status: dict[str, Any] | None = None,
    sent_here: bool = False,
) -> ActionResult:
    """Poll a creation request until it ends. ``sent_here``: this process sent it with ``want``'s e-mail."""
    interval = run.cfg.poll_interval_seconds
    polls = poll_count(run.cfg.create_wait_seconds, interval)
    seen = 0
    for attempt in range(polls):
        if status is None or attempt > 0:
            try:
                status, seen = run.creations.status(str(entry.operation_id), seen, max_age=interval / 4)
            except ClientError as exc:
                if retries.code(exc) != "CreateAccountStatusNotFoundException":
                    raise
                return _request_expired(run, tenant, want, ctx, entry)
        assert status is not None
        state = status["State"]
        if state == "SUCCEEDED":
            return _created(run, want, ctx, entry, status["AccountId"], sent_here)
        if state == "FAILED":
            return _failed(run, tenant, want, ctx, entry, status.get("FailureReason", "UNKNOWN"))
        if run.stopping():  # the request id is journaled: the next run resumes the wait
            break
        if attempt + 1 < polls:  # at the watch's next look, with every other waiting tenant
            run.sleep(run.creations.until_next_look(interval))
    return ActionResult(
        status=ActionStatus.IN_PROGRESS,
        message=f"CreateAccount request {entry.operation_id} is still in progress",
    )


def _created(
    run: AwsRun, want: Desired, ctx: HookContext, entry: JournalEntry, aid: str, sent_here: bool = False
) -> ActionResult:
    """Adopt the account a request created. A request found again after a crash (by name, see
    ``ListCreateAccountStatus``) is checked against the account's e-mail first; one this process sent is known:
    AWS created it with the name and e-mail of the call, so it is not read back."""
    account = (
        {"Id": aid, "Name": want.name, "Email": want.email, "State": "ACTIVE"}
        if sent_here
        else run.org.account(aid, refresh=True)
    )
    if account is None:
        raise PlatformError(f"CreateAccount {entry.operation_id} succeeded but account {aid} is not listed")
    if str(account.get("Email", "")).lower() != want.email.lower():
        entry.fail(f"request {entry.operation_id} created {aid} with another e-mail")
        raise PlatformError(
            f"CreateAccount request {entry.operation_id} created account {aid} <{account.get('Email')}>, "
            f"not <{want.email}>; it is not adopted"
        )
    tags = dict(want.tags)
    guard = run.cfg.deletion.guard
    if guard is not None and guard.tag_created_accounts:
        tags[guard.key] = guard.value
    run.org.remember(account, parent=run.org.root_id(), tags=tags)
    ctx.resources.put(
        "account",
        want.email,
        cloud_id=aid,
        data={"created": dt.datetime.now(dt.UTC).isoformat(), "by": "meshcore"},
        completes=entry,
        result={"account_id": aid},
    )
    return ActionResult(
        platform_tenant_id=aid,
        message=f"created account {aid}",
        attributes={"created_by": "meshcore", "state": accounts.state(account)},
    )


def _failed(
    run: AwsRun, tenant: TenantSpec, want: Desired, ctx: HookContext, entry: JournalEntry, reason: str
) -> ActionResult:
    if reason in ("EMAIL_ALREADY_EXISTS", "CONCURRENT_ACCOUNT_MODIFICATION"):
        existing = run.org.by_email(want.email, refresh=True)
        if existing is not None:  # an earlier request of ours got there first
            _claim(run, ctx, tenant, existing, "adopt")
            ctx.resources.put(
                "account",
                want.email,
                cloud_id=existing["Id"],
                data={"adopted": reason},
                completes=entry,
                result={"account_id": existing["Id"], "adopted": reason},
            )
            return ActionResult(
                platform_tenant_id=existing["Id"], message=f"adopted {existing['Id']} ({reason})"
            )
        if reason == "EMAIL_ALREADY_EXISTS":
            entry.fail(reason)
            raise ConflictError(
                f"e-mail {want.email} belongs to an AWS account outside this organization (or to a closed "
                "account); change account_email_pattern or invite and import that account"
            )
    entry.fail(reason)
    hint = CREATE_FAILURE_HINTS.get(reason, "see the AWS Organizations documentation for this reason")
    raise PlatformError(f"CreateAccount for {want.email} failed: {reason} ({hint})")


def _request_expired(
    run: AwsRun, tenant: TenantSpec, want: Desired, ctx: HookContext, entry: JournalEntry
) -> ActionResult:
    """AWS no longer knows the request (statuses are kept for a limited time): find the account by e-mail."""
    existing = run.org.by_email(want.email, refresh=True)
    if existing is not None:
        _claim(run, ctx, tenant, existing, "adopt")
        ctx.resources.put(
            "account",
            want.email,
            cloud_id=existing["Id"],
            data={"adopted": "request expired"},
            completes=entry,
            result={"account_id": existing["Id"], "recovered": "request expired"},
        )
        return ActionResult(platform_tenant_id=existing["Id"], message=f"recovered account {existing['Id']}")
    entry.fail(f"request {entry.operation_id} is unknown to AWS and no account has the e-mail")
    return ActionResult(
        status=ActionStatus.IN_PROGRESS,
        message=f"CreateAccount request {entry.operation_id} expired without an account; the next run creates it",
    )


# -- placement and configuration -----------------------------------------------------------------


def _move(run: AwsRun, ctx: HookContext, ou_ref: str) -> ActionResult:
    aid = bound_id(ctx)
    target = run.org.find_ou(ou_ref)
    if target is None:
        raise PlatformError(f"OU {ou_ref} does not exist")
    source = run.org.parent_of(aid, target)
    if source == target:
        return ActionResult(changed=False, message=f"{aid} is already in {ou_ref}")
    run.org.move(aid, source, target)
    return ActionResult(message=f"moved {aid} from {source} to {target} ({ou_ref})")


def _configure(
    run: AwsRun, tenant: TenantSpec, want: Desired, ctx: HookContext, aid: str, account: dict[str, Any]
) -> list[Action]:
    actions: list[Action] = []
    if account.get("Name") != want.name:
        actions.append(
            Action(
                phase=Phase.CONFIGURE,
                change=ChangeAction.UPDATE,
                resource="account-name",
                target=aid,
                before=account.get("Name"),
                after=want.name,
                run=lambda: _rename(run, aid, want.name),
            )
        )
    prefix = run.cfg.tags.prefix
    have = {k: v for k, v in run.org.tags_of(aid).items() if k.startswith(prefix)}
    to_set = {k: v for k, v in want.tags.items() if have.get(k) != v}
    to_remove = sorted(k for k in have if k not in want.tags)
    if to_set or to_remove:
        before = (
            ", ".join(f"{k}={have[k]}" for k in sorted(set(to_set) | set(to_remove)) if k in have) or None
        )
        after = ", ".join(f"{k}={v}" for k, v in sorted(to_set.items())) or None

        def retag() -> None:
            if to_set:
                run.org.set_tags(aid, to_set)
            if to_remove:
                run.org.remove_tags(aid, to_remove)

        actions.append(
            Action(
                phase=Phase.CONFIGURE,
                change=ChangeAction.UPDATE,
                resource="tags",
                target=aid,
                before=before,
                after=after,
                detail=f"remove {', '.join(to_remove)}" if to_remove else "",
                run=retag,
            )
        )
    if want.alias:
        current = _current_alias(run, ctx, tenant, aid, want)
        if (
            current is not _UNKNOWN
            and current != want.alias
            and (current is None or run.cfg.alias_mode == "enforce")
        ):
            actions.append(_alias_action(run, ctx, want.alias, current))
    return actions


_UNKNOWN = object()


def member_access_denied(ctx: HookContext, aid: str) -> str | None:
    """Why meshcore cannot act inside the account (its access role refused), if noted within the last day.

    Invited or imported accounts often lack the access role; meshcore notes the refusal
    once and does not ask again for a day, instead of retrying for minutes on every run.
    """
    denied = ctx.resources.get("member-access", aid)
    if denied is not None and denied.data.get("until", "") > dt.datetime.now(dt.UTC).isoformat():
        return str(denied.data.get("error", "access refused"))
    return None


def _current_alias(run: AwsRun, ctx: HookContext, tenant: TenantSpec, aid: str, want: Desired) -> Any:
    """The account's alias: from the resources table (alias_mode once), else read in the account.

    An account that refuses meshcore's access role (an invited account without
    it) is noted once and not asked again for a day: no minutes of retries per run.
    """
    recorded = ctx.resources.get("alias", aid)
    if recorded is not None and run.cfg.alias_mode == "once" and recorded.data.get("alias"):
        return recorded.data["alias"]
    if member_access_denied(ctx, aid):
        return _UNKNOWN
    try:
        aliases = run.sessions.client(f"account:{aid}", "iam").list_account_aliases()["AccountAliases"]
    except ClientError as exc:
        if retries.code(exc) not in NEW_ACCOUNT_CODES:
            raise
        run.sessions.forget(f"account:{aid}")
        if _is_new(ctx, want):
            return None  # a new account's role is not ready yet; the alias action waits for it
        until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        ctx.resources.put(
            "member-access",
            aid,
            data={"until": until, "error": f"{retries.describe(exc)}: no {run.cfg.account_access_role}"},
        )
        return _UNKNOWN
    current = aliases[0] if aliases else None
    if current:
        ctx.resources.put("alias", aid, data={"alias": current})
    return current


def _is_new(ctx: HookContext, want: Desired) -> bool:
    recorded = ctx.resources.get("account", want.email)
    created = (recorded.data.get("created") if recorded else None) or ""
    return bool(created) and dt.datetime.fromisoformat(created) > dt.datetime.now(dt.UTC) - NEW_ACCOUNT_WINDOW


def _alias_action(run: AwsRun, ctx: HookContext, alias: str, current: str | None) -> Action:
    return Action(
        phase=Phase.CONFIGURE,
        change=ChangeAction.UPDATE if current else ChangeAction.CREATE,
        resource="alias",
        target=alias,
        before=current,
        after=alias,
        run=lambda: _set_alias(run, ctx, alias, current),
    )


def member_iam(run: AwsRun, ctx: HookContext, aid: str, op: str, **kwargs: Any) -> Any:
    """An IAM call in a member account, waited for while a new account's role does not work yet."""
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=run.cfg.new_account_retry_seconds)
    delay = 2.0
    while True:
        try:
            return getattr(run.sessions.client(f"account:{aid}", "iam"), op)(**kwargs)
        except ClientError as exc:
            if retries.code(exc) not in NEW_ACCOUNT_CODES or dt.datetime.now(dt.UTC) >= deadline:
                raise
            run.sessions.forget(f"account:{aid}")
            ctx.sleep(delay)
            delay = min(30.0, delay * 2)


def _set_alias(run: AwsRun, ctx: HookContext, alias: str, current: str | None) -> ActionResult:
    """Set the alias without a window with none: create first; only if IAM refuses a second alias
    (``LimitExceeded``), delete the old one and create again, putting the old one back if that fails."""
    aid = bound_id(ctx)
    try:
        try:
            member_iam(run, ctx, aid, "create_account_alias", AccountAlias=alias)
        except ClientError as exc:
            if retries.code(exc) != "LimitExceeded" or not current:
                raise
            member_iam(run, ctx, aid, "delete_account_alias", AccountAlias=current)
            try:
                member_iam(run, ctx, aid, "create_account_alias", AccountAlias=alias)
            except ClientError:
                member_iam(run, ctx, aid, "create_account_alias", AccountAlias=current)
                raise
    except ClientError as exc:
        if retries.code(exc) == "EntityAlreadyExists":
            raise PlatformError(
                f"account alias {alias!r} is taken by another AWS account (aliases are unique across AWS); "
                "change account_alias_pattern"
            ) from None
        raise PlatformError(f"cannot set alias {alias!r} on {aid}: {retries.describe(exc)}") from None
    ctx.resources.put("alias", aid, data={"alias": alias})
    return ActionResult(message=f"alias {current or '∅'} → {alias}", attributes={"alias": alias})


def _rename(run: AwsRun, aid: str, name: str) -> ActionResult:
    client = run.sessions.client("management", "account")
    try:
        client.put_account_name(AccountId=aid, AccountName=name)
    except ClientError as exc:
        hint = ""
        if retries.code(exc) in ("AccessDeniedException", "AccessDenied"):
            hint = (
                " (renaming member accounts needs trusted access for AWS Account Management: "
                "aws organizations enable-aws-service-access --service-principal account.amazonaws.com)"
            )
        raise PlatformError(f"cannot rename account {aid}: {retries.describe(exc)}{hint}") from None
    run.org.renamed(aid, name)
    return ActionResult(message=f"renamed {aid} to {name}")
