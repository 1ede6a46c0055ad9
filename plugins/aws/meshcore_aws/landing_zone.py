"""Apply a landing zone to an account: guardrails (SCPs), baselines (StackSets), post-replication Lambda.

Order, so an account is never without guardrails: OU-level SCPs of the target
OU are ensured before the account is moved there (see ``Vendor``); new
account-level SCPs are attached before old ones are detached; new baselines
are deployed before baselines of a previous landing zone are removed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from meshcore.results import Change, ChangeAction, StepOutcome
from meshcore_aws.baselines import Baselines, StillRunning
from meshcore_aws.calls import aws_call, error_code
from meshcore_aws.config import AwsLandingZone
from meshcore_aws.guardrails import Guardrails
from meshcore_aws.vending import Vendor


def guardrails_for(vendor: Vendor) -> Guardrails:
    return vendor.ctx.cache.get("aws:guardrails", lambda: Guardrails(vendor.org, vendor.cfg))


def baselines_for(vendor: Vendor) -> Baselines:
    return vendor.ctx.cache.get(
        "aws:baselines", lambda: Baselines(vendor.sessions, vendor.cfg, vendor.ctx.sleep)
    )


def _split(lz: AwsLandingZone) -> tuple[list[Any], list[Any]]:
    return [s for s in lz.scps if s.attach_to == "ou"], [s for s in lz.scps if s.attach_to == "account"]


def _account(vendor: Vendor, tenant: Any) -> dict[str, str]:
    acct = vendor.org.account(tenant.platform_tenant_id) or {}
    return {
        "id": tenant.platform_tenant_id,
        "name": str(acct.get("Name", "")),
        "email": str(acct.get("Email", "")),
    }


class LandingZones:
    def __init__(self, vendor: Vendor):
        self.vendor = vendor
        self.ctx = vendor.ctx
        self.guardrails = guardrails_for(vendor)
        self.baselines = baselines_for(vendor)

    def _stale_sets(self, tenant: Any, wanted: set[str]) -> list[str]:
        """StackSets meshcore deployed to this account that its landing zone no longer wants."""
        return sorted(
            name for name in Baselines.recorded(self.ctx, tenant.platform_tenant_id) if name not in wanted
        )

    # -- plan -------------------------------------------------------------------------

    def plan(self, tenant: Any) -> list[Change]:
        if self.vendor.inactive(tenant):
            return []  # the vending plan already says why
        lz: AwsLandingZone = tenant.landing_zone.config
        ou_scps, account_scps = _split(lz)
        changes: list[Change] = []
        try:
            ou_id = self.vendor.org.resolve_ou(lz.ou, create=False)
        except Exception:
            ou_id = f"pending:{lz.ou}"
        if ou_scps or not ou_id.startswith("pending:"):
            changes += self.guardrails.plan(ou_id, ou_scps, f"OU {lz.ou}")
        if self._account_scps_in_play(tenant, account_scps):
            changes += self.guardrails.plan(
                tenant.platform_tenant_id, account_scps, f"account {tenant.platform_tenant_id}"
            )
        if self._uses_stacksets(tenant):
            account = _account(self.vendor, tenant)
            wanted = {self.baselines.name(tenant.landing_zone.id, b) for b in lz.baselines}
            for b in lz.baselines:
                changes += self.baselines.plan(
                    self.ctx, self.baselines.name(tenant.landing_zone.id, b), b, tenant, account
                )
            for name in self._stale_sets(tenant, wanted):
                changes.append(
                    Change(
                        action=ChangeAction.DELETE,
                        resource=f"stack instance {name}",
                        before=tenant.platform_tenant_id,
                        detail="not part of this landing zone",
                    )
                )
        return changes

    def _account_scps_in_play(self, tenant: Any, account_scps: list[Any]) -> bool:
        """Read an account's SCP attachments only if it should have some, or meshcore attached some before."""
        if account_scps:
            return True
        last = self.ctx.journal.last("scp-account", tenant.platform_tenant_id)
        return bool(last is not None and last.result.get("names"))

    def _record_account_scps(self, tenant: Any, account_scps: list[Any]) -> None:
        names = sorted(self.guardrails.full_name(p) for p in account_scps)
        last = self.ctx.journal.last("scp-account", tenant.platform_tenant_id)
        if last is None or last.result.get("names", []) != names:
            entry = self.ctx.journal.begin("scp-account", tenant.platform_tenant_id, {})
            entry.complete({"names": names})

    def _uses_stacksets(self, tenant: Any) -> bool:
        """Baselines are in play: the landing zone has some, or meshcore deployed some to this account."""
        lz: AwsLandingZone = tenant.landing_zone.config
        return bool(lz.baselines) or bool(Baselines.recorded(self.ctx, tenant.platform_tenant_id))

    # -- apply ------------------------------------------------------------------------

    def apply(self, tenant: Any) -> StepOutcome:
        why = self.vendor.inactive(tenant)
        if why:
            return StepOutcome(changed=False, message=why)
        lz: AwsLandingZone = tenant.landing_zone.config
        ou_scps, account_scps = _split(lz)
        changed = False
        still_running: list[str] = []
        with self.ctx.step("guardrails") as step:
            ou_id = self.vendor.org.resolve_ou(lz.ou, create=lz.create_ou)
            done = self.guardrails.ensure(ou_id, ou_scps) if ou_scps else []
            if self._account_scps_in_play(tenant, account_scps):
                done += self.guardrails.ensure(tenant.platform_tenant_id, account_scps)
                self._record_account_scps(tenant, account_scps)
            if done:
                step.changed("; ".join(done))
                changed = True
        wanted = set()
        account = _account(self.vendor, tenant) if self._uses_stacksets(tenant) else {}
        for b in lz.baselines:
            name = self.baselines.name(tenant.landing_zone.id, b)
            wanted.add(name)
            with self.ctx.step(f"baseline {b.name}") as step:
                try:
                    done = self.baselines.ensure(self.ctx, name, b, tenant, account)
                except StillRunning as exc:
                    step.note(f"{exc}; the next run checks it again")
                    still_running.append(name)
                    continue
                if done:
                    step.changed("; ".join(done))
                    changed = True
        if self._uses_stacksets(tenant):
            for name in self._stale_sets(tenant, wanted):
                with self.ctx.step(f"remove baseline {name}") as step:
                    done = self.baselines.remove(self.ctx, name, tenant.platform_tenant_id, retain=False)
                    if done:
                        step.changed("; ".join(done))
                        changed = True
        if lz.lambda_hook is not None:
            changed |= self._invoke(tenant, lz, account or _account(self.vendor, tenant))
        message = f"waiting for {', '.join(still_running)}" if still_running else ""
        return StepOutcome(changed=changed, message=message)

    def remove_all(self, tenant: Any, retain: bool | None = None) -> list[str]:
        """Remove this account from every StackSet meshcore owns (tenant deletion)."""
        lz: AwsLandingZone = tenant.landing_zone.config
        if tenant.platform_tenant_id is None:
            return []
        keep = {
            self.baselines.name(tenant.landing_zone.id, b): b.retain_stacks_on_delete for b in lz.baselines
        }
        done: list[str] = []
        for name in Baselines.recorded(self.ctx, tenant.platform_tenant_id):
            done += self.baselines.remove(
                self.ctx,
                name,
                tenant.platform_tenant_id,
                retain=keep.get(name, True) if retain is None else retain,
            )
        return done

    # -- lambda -----------------------------------------------------------------------

    def _invoke(self, tenant: Any, lz: AwsLandingZone, account: dict[str, str]) -> bool:
        hook = lz.lambda_hook
        assert hook is not None
        payload = {
            "workspace": tenant.workspace.id,
            "project": tenant.project.id,
            "platform": tenant.platform_id,
            "landing_zone": tenant.landing_zone.id,
            "account_id": account["id"],
            "account_name": account["name"],
            "account_email": account["email"],
            "tags": dict(sorted(tenant.replicated_tags.items())),
        }
        body = json.dumps(payload, sort_keys=True)
        digest = hashlib.sha256(body.encode()).hexdigest()[:16]
        key = f"{account['id']}:{hook.function}"
        if hook.invoke == "on_change":
            last = self.ctx.journal.last("lambda-invoke", key)
            if last is not None and last.status == "done" and last.result.get("digest") == digest:
                return False
        entry = self.ctx.journal.begin("lambda-invoke", key, {"function": hook.function, "digest": digest})
        client = self.vendor.sessions.client("automation", "lambda")
        with self.ctx.step("lambda") as step:
            try:
                answer = aws_call(
                    client.invoke,
                    self.ctx.sleep,
                    FunctionName=hook.function,
                    InvocationType="RequestResponse",
                    Payload=body.encode(),
                )
            except Exception as exc:
                entry.fail(str(exc))
                if error_code(exc):
                    step.fail(f"invoking {hook.function} failed: {exc}")
                    return False
                raise
            returned = answer["Payload"].read().decode("utf-8", "replace")[:500]
            if answer.get("FunctionError"):
                entry.complete({"digest": digest, "function_error": answer["FunctionError"]})
                step.warn(
                    f"{hook.function} returned a function error ({answer['FunctionError']}): {returned}"
                )
                return True
            entry.complete({"digest": digest})
            step.changed(f"invoked {hook.function}: {returned}")
        return True
