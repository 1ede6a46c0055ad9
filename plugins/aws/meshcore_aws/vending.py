"""Account vending: create or adopt an account, crash-safe, then converge OU, name, tags and alias.

Crash safety (no peer does the recovery part):

1. the intent (tenant, name, e-mail, OU) is journaled before ``CreateAccount``,
   the request id right after;
2. a later run with an open entry and a request id resumes polling
   ``DescribeCreateAccountStatus``;
3. an open entry without a request id (the process died during the call) is
   recovered by the account's e-mail in the organization, then by an
   in-progress request of the same account name in ``ListCreateAccountStatus``;
   only if neither exists is ``CreateAccount`` sent again;
4. with no journal entry at all, the e-mail (unique across AWS) is looked up
   before creating, so an account created by a run whose answer was never
   recorded is adopted, not duplicated.

Plan and apply share one comparison (:meth:`Vendor.diff`), so what ``plan``
shows is exactly what ``apply`` does, and a converged account costs no writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshcore.errors import ConflictError, PlatformError
from meshcore.results import Change, ChangeAction, ProvisionResult, ProvisionStatus
from meshcore.retry import Backoff
from meshcore_aws import naming
from meshcore_aws.calls import aws_call, error_code, is_retryable, paged
from meshcore_aws.config import AwsConfig
from meshcore_aws.organization import OrgView
from meshcore_aws.sessions import Sessions

INACTIVE = frozenset({"SUSPENDED", "PENDING_CLOSURE"})
#: Errors a freshly created account answers for a while before it accepts calls.
NEW_ACCOUNT_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "OptInRequired",
        "SubscriptionRequiredException",
    }
)
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


@dataclass(frozen=True)
class Desired:
    """What one tenant's account should look like."""

    name: str
    email: str
    alias: str | None
    tags: dict[str, str]
    ou_ref: str
    create_ou: bool


@dataclass
class Action:
    """One planned change and, for apply, how to make it."""

    change: Change
    step: str
    run: Callable[[], None] | None = None


@dataclass
class Observed:
    account: dict[str, Any]
    ou_id: str | None
    parent: str | None
    managed_tags: dict[str, str]
    alias: str | None
    alias_read: bool
    notes: list[str] = field(default_factory=list)


def desired_state(platform: Any, tenant: Any) -> Desired:
    """Render every pattern; bad patterns raise :class:`PlatformError` before any cloud call."""
    cfg: AwsConfig = platform.config
    values = {
        "workspace": tenant.workspace.id,
        "project": tenant.project.id,
        "platform": platform.id,
        "workspace_name": tenant.workspace.name,
        "project_name": tenant.project.name,
    }
    tags_in = dict(tenant.tags)
    prefix = cfg.tags.prefix
    tags: dict[str, str] = {}
    if cfg.tags.identity_tags:
        tags.update(
            {
                f"{prefix}workspace": tenant.workspace.id,
                f"{prefix}project": tenant.project.id,
                f"{prefix}platform": platform.id,
            }
        )
    for key, value in tenant.replicated_tags.items():
        tags[naming.tag_key(prefix + key)] = naming.tag_value(value)
    for key, pattern in cfg.tags.static.items():
        tags[naming.tag_key(prefix + key)] = naming.tag_value(naming.render(pattern, values, tags_in))
    lz = tenant.landing_zone.config
    return Desired(
        name=naming.account_name(cfg.account_name_pattern, values, tags_in),
        email=naming.account_email(cfg.account_email_pattern, values, tags_in),
        alias=naming.account_alias(cfg.account_alias_pattern, values, tags_in)
        if cfg.account_alias_pattern
        else None,
        tags=tags,
        ou_ref=lz.ou,
        create_ou=lz.create_ou,
    )


def _client_error(exc: BaseException) -> str:
    response = getattr(exc, "response", {}) or {}
    err = response.get("Error", {})
    return f"{err.get('Code', type(exc).__name__)}: {err.get('Message', str(exc))}"


class Vendor:
    """Vending for one platform in one run (shares the run's :class:`OrgView`)."""

    def __init__(self, platform: Any, ctx: Any, sessions: Sessions):
        self.platform = platform
        self.cfg: AwsConfig = platform.config
        self.ctx = ctx
        self.sessions = sessions
        self.org: OrgView = ctx.cache.get(
            "aws:org",
            lambda: OrgView(
                sessions,
                self.cfg,
                ctx.sleep,
                ctx.limiter("organizations-writes", self.cfg.org_write_concurrency),
            ),
        )

    # -- provision --------------------------------------------------------------------

    def provision(self, tenant: Any) -> ProvisionResult:
        want = desired_state(self.platform, tenant)
        if tenant.import_id:
            account = self.org.account(tenant.import_id)
            if account is None:
                raise PlatformError(
                    f"cannot import account {tenant.import_id}: it is not in this organization"
                )
            self._claim(tenant, account, "import")
            created = False
        else:
            outcome = self._create_or_resume(tenant, want)
            if isinstance(outcome, ProvisionResult):
                return outcome
            account, created = outcome
        live = tenant.model_copy(update={"platform_tenant_id": account["Id"]})
        _changed, attributes = self.converge(live, want)
        if created:
            attributes["created_by"] = "meshcore"
        return ProvisionResult(
            platform_tenant_id=account["Id"],
            attributes=attributes,
            changed=True,
            message="created" if created else "adopted existing account",
        )

    def _claim(self, tenant: Any, account: dict[str, Any], how: str) -> None:
        aid = account["Id"]
        if aid == self.org.management_account_id:
            raise ConflictError(f"refusing to {how} the management account {aid}")
        owner = self.ctx.owner_of(aid)
        if owner and owner != tenant.key:
            raise ConflictError(f"account {aid} ({account.get('Email')}) already belongs to tenant {owner}")
        if account.get("Status") in INACTIVE:
            raise PlatformError(f"account {aid} is {account['Status']}; it cannot be used for a tenant")

    def _create_or_resume(self, tenant: Any, want: Desired) -> ProvisionResult | tuple[dict[str, Any], bool]:
        entry = self.ctx.journal.find("create-account", want.email)
        if entry is not None and entry.operation_id:
            return self._await(tenant, want, entry)
        if entry is not None:
            recovered = self._recover(tenant, want, entry)
            if recovered is not None:
                return recovered
        else:
            existing = self.org.by_email(want.email)
            if existing is not None:
                self._claim(tenant, existing, "adopt")
                return existing, False
            entry = self.ctx.journal.begin(
                "create-account",
                want.email,
                {"tenant": tenant.key, "name": want.name, "email": want.email, "ou": want.ou_ref},
            )
        self._send_create(want, entry)
        return self._await(tenant, want, entry)

    def _send_create(self, want: Desired, entry: Any) -> None:
        tags = dict(want.tags)
        guard = self.cfg.deletion.guard
        if guard is not None and guard.tag_created_accounts:
            tags[guard.key] = guard.value
        try:
            status = self.org.write(
                "create_account",
                Email=want.email,
                AccountName=want.name,
                RoleName=self.cfg.account_access_role,
                IamUserAccessToBilling="ALLOW",
                Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
            )["CreateAccountStatus"]
        except Exception as exc:
            if error_code(exc):
                entry.fail(_client_error(exc))
                raise PlatformError(
                    f"CreateAccount for {want.email} was refused: {_client_error(exc)}"
                ) from None
            raise
        entry.record_operation(status["Id"])

    def _recover(
        self, tenant: Any, want: Desired, entry: Any
    ) -> ProvisionResult | tuple[dict[str, Any], bool] | None:
        """An intent without a request id: find what the interrupted call did, if anything."""
        existing = self.org.by_email(want.email, refresh=True)
        if existing is not None:
            self._claim(tenant, existing, "adopt")
            entry.complete({"account_id": existing["Id"], "recovered": "by e-mail"})
            return existing, True
        since = entry.created_at - dt.timedelta(minutes=5)
        statuses = paged(
            self.org.client.list_create_account_status,
            "CreateAccountStatuses",
            self.ctx.sleep,
            States=["IN_PROGRESS", "SUCCEEDED"],
            MaxResults=self.cfg.page_size,
        )
        for st in sorted(statuses, key=lambda s: s.get("RequestedTimestamp") or since, reverse=True):
            requested = st.get("RequestedTimestamp")
            if st.get("AccountName") == want.name and (requested is None or requested >= since):
                entry.record_operation(st["Id"])
                return self._await(tenant, want, entry)
        return None  # the request never reached AWS: send it now under the same entry

    def _await(self, tenant: Any, want: Desired, entry: Any) -> ProvisionResult | tuple[dict[str, Any], bool]:
        interval = self.cfg.poll_interval_seconds
        polls = max(1, int(self.cfg.create_wait_seconds / interval) if interval > 0 else 1)
        for attempt in range(polls):
            st = self.org.call("describe_create_account_status", CreateAccountRequestId=entry.operation_id)[
                "CreateAccountStatus"
            ]
            state = st["State"]
            if state == "SUCCEEDED":
                account = self.org.account(st["AccountId"], refresh=True)
                if account is None:
                    raise PlatformError(
                        f"CreateAccount {entry.operation_id} succeeded but account {st['AccountId']} is not listed"
                    )
                entry.complete({"account_id": st["AccountId"]})
                return account, True
            if state == "FAILED":
                return self._failed(tenant, want, entry, st.get("FailureReason", "UNKNOWN"))
            if attempt + 1 < polls:
                self.ctx.sleep(interval)
        return ProvisionResult(
            status=ProvisionStatus.IN_PROGRESS,
            message=f"CreateAccount request {entry.operation_id} is still in progress",
        )

    def _failed(self, tenant: Any, want: Desired, entry: Any, reason: str) -> tuple[dict[str, Any], bool]:
        if reason == "EMAIL_ALREADY_EXISTS":
            existing = self.org.by_email(want.email, refresh=True)
            if existing is not None:
                self._claim(tenant, existing, "adopt")
                entry.complete({"account_id": existing["Id"], "adopted": "EMAIL_ALREADY_EXISTS"})
                return existing, False
            entry.fail(reason)
            raise ConflictError(
                f"e-mail {want.email} belongs to an AWS account outside this organization; "
                "change account_email_pattern or import that account"
            )
        entry.fail(reason)
        hint = CREATE_FAILURE_HINTS.get(reason, "see the AWS Organizations documentation for this reason")
        raise PlatformError(f"CreateAccount for {want.email} failed: {reason} ({hint})")

    def inactive(self, tenant: Any) -> str | None:
        """Why nothing may be done to this tenant's account (SUSPENDED, PENDING_CLOSURE, gone), or None."""
        if tenant.platform_tenant_id is None:
            return None
        account = self.org.account(tenant.platform_tenant_id)
        if account is None:
            return f"account {tenant.platform_tenant_id} is no longer in this organization"
        if account.get("Status") in INACTIVE:
            return f"account is {account['Status']}: skipped"
        return None

    # -- observe, diff, converge --------------------------------------------------------

    def observe(self, tenant: Any, want: Desired, for_plan: bool) -> Observed:
        aid = tenant.platform_tenant_id
        account = self.org.account(aid)
        if account is None:
            raise PlatformError(f"account {aid} is no longer in this organization")
        if account.get("Status") in INACTIVE:
            return Observed(
                account, None, None, {}, None, False, [f"account is {account['Status']}: skipped"]
            )
        try:
            ou_id: str | None = self.org.resolve_ou(want.ou_ref, create=want.create_ou and not for_plan)
        except PlatformError:
            if not (for_plan and want.create_ou):
                raise
            ou_id = None
        parent = (
            self.org.parent_of(aid, ou_id)
            if ou_id
            else self.org.call("list_parents", ChildId=aid)["Parents"][0]["Id"]
        )
        prefix = self.cfg.tags.prefix
        managed = {k: v for k, v in self.org.tags_of(aid).items() if k.startswith(prefix)}
        alias, read = None, False
        if want.alias and (self.cfg.alias_mode == "enforce" or not tenant.attributes.get("alias")):
            try:
                aliases = self._iam(aid, "list_account_aliases")["AccountAliases"]
            except Exception as exc:
                if not error_code(exc):
                    raise
                return Observed(
                    account,
                    ou_id,
                    parent,
                    managed,
                    None,
                    False,
                    [f"cannot read the account alias yet: {_client_error(exc)}"],
                )
            alias, read = (aliases[0] if aliases else None), True
        elif want.alias:
            alias = tenant.attributes.get("alias")
        return Observed(account, ou_id, parent, managed, alias, read)

    def diff(self, tenant: Any, want: Desired, seen: Observed) -> list[Action]:
        aid = tenant.platform_tenant_id
        actions: list[Action] = []
        if seen.account.get("Status") in INACTIVE:
            return [
                Action(Change(action=ChangeAction.UPDATE, resource="account", detail=seen.notes[0]), "skip")
            ]
        if seen.ou_id is None:
            actions.append(Action(Change(action=ChangeAction.CREATE, resource="ou", after=want.ou_ref), "ou"))
        elif seen.parent != seen.ou_id:
            actions.append(
                Action(
                    Change(
                        action=ChangeAction.UPDATE,
                        resource="ou",
                        before=seen.parent,
                        after=f"{seen.ou_id} ({want.ou_ref})",
                    ),
                    "move-account",
                    lambda: self.org.move(aid, seen.parent, seen.ou_id),
                )
            )
        if seen.account.get("Name") != want.name:
            actions.append(
                Action(
                    Change(
                        action=ChangeAction.UPDATE,
                        resource="name",
                        before=seen.account.get("Name"),
                        after=want.name,
                    ),
                    "rename-account",
                    lambda: self._rename(aid, want.name),
                )
            )
        to_set = {k: v for k, v in want.tags.items() if seen.managed_tags.get(k) != v}
        to_remove = sorted(k for k in seen.managed_tags if k not in want.tags)
        for k, v in sorted(to_set.items()):
            actions.append(
                Action(
                    Change(
                        action=ChangeAction.CREATE if k not in seen.managed_tags else ChangeAction.UPDATE,
                        resource=f"tag {k}",
                        before=seen.managed_tags.get(k),
                        after=v,
                    ),
                    "tags",
                )
            )
        for k in to_remove:
            actions.append(
                Action(
                    Change(action=ChangeAction.DELETE, resource=f"tag {k}", before=seen.managed_tags[k]),
                    "tags",
                )
            )
        if to_set or to_remove:

            def retag() -> None:
                if to_set:
                    self.org.set_tags(aid, to_set)
                if to_remove:
                    self.org.remove_tags(aid, to_remove)

            actions[-1].run = retag
        for note in seen.notes:
            actions.append(Action(Change(action=ChangeAction.UPDATE, resource="alias", detail=note), "alias"))
        alias_differs = want.alias and seen.alias_read and seen.alias != want.alias
        if alias_differs and (seen.alias is None or self.cfg.alias_mode == "enforce"):
            actions.append(
                Action(
                    Change(
                        action=ChangeAction.UPDATE if seen.alias else ChangeAction.CREATE,
                        resource="alias",
                        before=seen.alias,
                        after=want.alias,
                    ),
                    "alias",
                    lambda: self._set_alias(aid, seen.alias, want.alias),
                )
            )
        return actions

    def plan(self, tenant: Any) -> list[Change]:
        want = desired_state(self.platform, tenant)
        if tenant.platform_tenant_id is None:
            if tenant.import_id:
                account = self.org.account(tenant.import_id)
                if account is None:
                    raise PlatformError(
                        f"cannot import account {tenant.import_id}: it is not in this organization"
                    )
                self._claim(tenant, account, "import")
                changes = [
                    Change(
                        action=ChangeAction.CREATE, resource="account", detail=f"import {tenant.import_id}"
                    )
                ]
                live = tenant.model_copy(update={"platform_tenant_id": tenant.import_id})
                return changes + [a.change for a in self.diff(live, want, self.observe(live, want, True))]
            existing = self.org.by_email(want.email)
            if existing is not None:
                self._claim(tenant, existing, "adopt")
                return [
                    Change(
                        action=ChangeAction.CREATE,
                        resource="account",
                        detail=f"adopt existing account {existing['Id']} with e-mail {want.email}",
                    )
                ]
            return [
                Change(
                    action=ChangeAction.CREATE,
                    resource="account",
                    after=f"{want.name} <{want.email}>",
                    detail=f"in {want.ou_ref}" + (f", alias {want.alias}" if want.alias else ""),
                )
            ]
        return [a.change for a in self.diff(tenant, want, self.observe(tenant, want, True))]

    def converge(self, tenant: Any, want: Desired | None = None) -> tuple[bool, dict[str, str]]:
        """Apply every difference, each as its own recorded step; returns (changed, attributes)."""
        want = want or desired_state(self.platform, tenant)
        seen = self.observe(tenant, want, False)
        changed = False
        applied: set[str] = set()
        grouped: dict[str, list[Action]] = {}
        for action in self.diff(tenant, want, seen):
            grouped.setdefault(action.step, []).append(action)
        for step_name, actions in grouped.items():
            runners = [a.run for a in actions if a.run is not None]
            summary = "; ".join(_describe(a.change) for a in actions)
            with self.ctx.step(step_name) as step:
                if not runners:
                    step.skip(summary)
                    continue
                for run in runners:
                    run()
                step.changed(summary)
                changed = True
                applied.add(step_name)
        alias = want.alias if "alias" in applied else seen.alias
        attributes = {
            "account_name": want.name,
            "account_email": str(seen.account.get("Email", want.email)),
            "ou": seen.ou_id or want.ou_ref,
            "status": str(seen.account.get("Status", "")),
        }
        if alias:
            attributes["alias"] = alias
        if tenant.attributes.get("created_by"):
            attributes["created_by"] = tenant.attributes["created_by"]
        if self.cfg.identity_center is not None and self.cfg.identity_center.sign_in_url:
            attributes["sign_in_url"] = self.cfg.identity_center.sign_in_url
        return changed, attributes

    def _move(self, tenant: Any, account_id: str, source: str, destination: str) -> None:
        """Move into the landing zone's OU, with its guardrails in place first."""
        lz = tenant.landing_zone.config
        if lz.scps:
            from meshcore_aws.landing_zone import guardrails_for

            guards = guardrails_for(self)
            guards.ensure(destination, [p for p in lz.scps if p.attach_to == "ou"], detach_others=False)
            guards.ensure(account_id, [p for p in lz.scps if p.attach_to == "account"], detach_others=False)
        self.org.move(account_id, source, destination)

    # -- writes outside Organizations ---------------------------------------------------

    def _rename(self, account_id: str, name: str) -> None:
        client = self.sessions.client("management", "account")
        try:
            aws_call(client.put_account_name, self.ctx.sleep, AccountId=account_id, AccountName=name)
        except Exception as exc:
            if error_code(exc):
                raise PlatformError(f"cannot rename account {account_id}: {_client_error(exc)}") from None
            raise

    def _iam(self, account_id: str, op: str, **kwargs: Any) -> Any:
        """An IAM call inside a member account, retried while a new account still refuses calls."""
        from meshcore.retry import call_with_retries

        budget = self.cfg.new_account_retry_seconds
        backoff = Backoff(attempts=max(1, int(budget / 15)) + 1, base=2.0, cap=30.0)

        def retry_on(exc: BaseException) -> bool:
            if error_code(exc) in NEW_ACCOUNT_CODES:
                self.sessions.forget(f"account:{account_id}")
                return True
            return is_retryable(exc)

        def once() -> Any:
            return getattr(self.sessions.client(f"account:{account_id}", "iam"), op)(**kwargs)

        return call_with_retries(once, retry_on=retry_on, backoff=backoff, sleep=self.ctx.sleep)

    def _set_alias(self, account_id: str, current: str | None, alias: str) -> None:
        try:
            if current:
                self._iam(account_id, "delete_account_alias", AccountAlias=current)
            self._iam(account_id, "create_account_alias", AccountAlias=alias)
        except Exception as exc:
            if error_code(exc) == "EntityAlreadyExists":
                raise PlatformError(
                    f"account alias {alias!r} is taken by another AWS account; change account_alias_pattern"
                ) from None
            if error_code(exc):
                raise PlatformError(
                    f"cannot set alias {alias!r} on {account_id}: {_client_error(exc)}"
                ) from None
            raise


def _describe(change: Change) -> str:
    if change.before is not None or change.after is not None:
        return f"{change.resource}: {change.before or '∅'} → {change.after or '∅'}"
    return f"{change.resource}: {change.detail}" if change.detail else change.resource
