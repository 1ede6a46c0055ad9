"""The landing zone's post-replication Lambda: invoked asynchronously, once per change, with an idempotency key.

The function runs in the automation account with ``InvocationType=Event``: AWS
queues the event and retries delivery itself, and meshcore never waits on (or
re-sends after) a long-running function. The payload carries an
``idempotency_key`` (a digest of the tenant's metadata): the same key means the
same replication, so a function that records the keys it handled never acts twice.
With ``invoke: on_change`` the key is recorded in the resources table and a
tenant whose metadata did not change is not invoked again.
"""

from __future__ import annotations

import hashlib
import json

from botocore.exceptions import ClientError

from meshcore import Action, ActionResult, ChangeAction, HookContext, Phase, PlatformError, TenantSpec
from meshcore_aws import retries
from meshcore_aws.config import AwsLandingZone
from meshcore_aws.run import AwsRun


def payload(tenant: TenantSpec, account: dict[str, str]) -> dict[str, object]:
    return {
        "workspace": tenant.workspace.id,
        "project": tenant.project.id,
        "platform": tenant.platform_id,
        "landing_zone": tenant.landing_zone.id,
        "account_id": account["id"],
        "account_name": account["name"],
        "account_email": account["email"],
        "tags": dict(sorted(tenant.replicated_tags.items())),
    }


def hook_actions(run: AwsRun, tenant: TenantSpec, ctx: HookContext, account: dict[str, str]) -> list[Action]:
    lz: AwsLandingZone = tenant.landing_zone.config
    hook = lz.lambda_hook
    if hook is None:
        return []
    aid = tenant.platform_tenant_id
    if aid is not None and hook.invoke == "on_change":
        key = _key(payload(tenant, {**account, "id": aid}))
        recorded = ctx.resources.get("lambda-invoke", f"{aid}:{hook.function}")
        if recorded is not None and recorded.data.get("key") == key:
            return []

    def go() -> ActionResult:
        bound = ctx.platform_tenant_id
        if bound is None:
            raise PlatformError("the tenant has no account yet")
        body = payload(tenant, {**account, "id": bound})
        key = _key(body)
        client = run.sessions.client("automation", "lambda")
        try:
            client.invoke(
                FunctionName=hook.function,
                InvocationType="Event",
                Payload=json.dumps({**body, "idempotency_key": key}, sort_keys=True).encode(),
            )
        except ClientError as exc:
            raise PlatformError(f"invoking {hook.function} failed: {retries.describe(exc)}") from None
        ctx.resources.put("lambda-invoke", f"{bound}:{hook.function}", data={"key": key})
        return ActionResult(message=f"queued {hook.function} (idempotency key {key})")

    return [
        Action(
            phase=Phase.BASELINE,
            change=ChangeAction.UPDATE,
            resource="lambda",
            target=hook.function,
            detail="post-replication hook" + (" (metadata changed)" if hook.invoke == "on_change" else ""),
            run=go,
        )
    ]


def _key(body: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
