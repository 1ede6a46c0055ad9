"""The landing-zone hook: a tenant's own guardrails (account SCPs), its baseline and the post-replication hook.

The shared part of a landing zone (its OU, the OU's SCPs, the StackSets) is
observed once per run by the platform hook; here each tenant gets the
``guardrails`` and ``baseline`` actions for its account, and ``teardown``
actions when its deletion is approved.
"""

from __future__ import annotations

from meshcore import HookContext, Observation, TenantSpec, TenantStatus, merge
from meshcore_aws import baselines, execution_role, guardrails, post_hook
from meshcore_aws.run import AwsRun
from meshcore_aws.vending import desired_state, unused_email


def landing_zone_actions(run: AwsRun, tenant: TenantSpec, ctx: HookContext) -> Observation:
    if tenant.status != TenantStatus.ACTIVE:
        if not tenant.deletion_approved or tenant.platform_tenant_id is None:
            return Observation()
        return Observation(actions=tuple(baselines.teardown_actions(run, tenant, ctx)))
    want = desired_state(run.cfg, tenant)
    aid = tenant.platform_tenant_id
    existing = run.org.account(aid, expected=run.org.find_ou(want.ou_ref)) if aid else None
    email = (
        str(existing["Email"]) if existing else unused_email(run, ctx, tenant, want.email)
    )  # as AWS has it
    account = {"id": aid or "", "name": want.name, "email": email}
    hook = Observation(actions=tuple(post_hook.hook_actions(run, tenant, ctx, account)))
    return merge(
        [
            guardrails.account_actions(run, tenant, ctx),
            execution_role.execution_role_actions(run, tenant, ctx),
            baselines.instance_actions(run, tenant, ctx, account),
            hook,
        ]
    )
