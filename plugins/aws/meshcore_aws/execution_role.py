"""The StackSet execution role in a member account, created before the account's first baseline instance.

With the self-managed permission model, CloudFormation deploys an instance by
assuming ``stackset_execution_role_name`` in the target account from the
administration role's account. An account that AWS Organizations just created
has no such role, so its first operation would fail. meshcore creates it through
the account access role, trusting the administration account as AWS's own
template does (``AdministratorAccess``, like ``templates/stackset-execution-role.yaml``),
and records it in the resources table so it is checked once per account, not
every run. With ``baselines.create_execution_role: false`` something else (an
account factory, a service-managed StackSet) must deploy it.
"""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from meshcore import Action, ActionResult, ChangeAction, HookContext, Observation, Phase, TenantSpec
from meshcore_aws import retries
from meshcore_aws.run import AwsRun
from meshcore_aws.vending import bound_id, member_access_denied, member_iam

KIND = "stackset-execution-role"


def key(tenant: TenantSpec) -> str:
    """What a baseline instance of this tenant requires."""
    return f"{KIND}@{tenant.key}"


def execution_role_actions(run: AwsRun, tenant: TenantSpec, ctx: HookContext) -> Observation:
    """Nothing when not needed or recorded; else one action that makes sure the role exists."""
    if not tenant.landing_zone.config.baselines or not run.cfg.baselines.create_execution_role:
        return Observation(in_place=frozenset({key(tenant)}))
    aid = tenant.platform_tenant_id
    if aid is not None and ctx.resources.get(KIND, aid) is not None:
        return Observation(in_place=frozenset({key(tenant)}))
    denied = member_access_denied(ctx, aid) if aid else None
    if denied:
        return Observation(
            problems={
                key(
                    tenant
                ): f"cannot create {run.cfg.stackset_execution_role_name} in {aid}: {denied}; deploy it "
                "there (templates/stackset-execution-role.yaml) or turn baselines.create_execution_role off"
            }
        )
    name = run.cfg.stackset_execution_role_name
    return Observation(
        actions=(
            Action(
                phase=Phase.BASELINE,
                change=ChangeAction.CREATE,
                resource="stackset-execution-role",
                target=f"{name} @ {aid or 'the new account'}",
                key=key(tenant),
                detail=f"trusting {admin_account(run)}, unless the account already has it",
                run=lambda: _ensure(run, ctx),
            ),
        )
    )


def admin_account(run: AwsRun) -> str:
    """The account of the StackSet administration role (the automation account)."""
    return str(run.baselines.admin_role().split(":")[4])


def _ensure(run: AwsRun, ctx: HookContext) -> ActionResult:
    aid = bound_id(ctx)
    name = run.cfg.stackset_execution_role_name
    partition = run.sessions.partition
    try:
        member_iam(run, ctx, aid, "get_role", RoleName=name)
        message = f"{name} already exists in {aid}"
    except ClientError as exc:
        if retries.code(exc) != "NoSuchEntity":
            raise
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{admin_account(run)}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        try:
            member_iam(
                run,
                ctx,
                aid,
                "create_role",
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description="StackSet execution role for meshcore baselines",
                Tags=[{"Key": f"{run.cfg.tags.prefix}managed-by", "Value": "meshcore"}],
            )
        except ClientError as again:
            if retries.code(again) != "EntityAlreadyExists":  # a crashed run created it already
                raise
        member_iam(
            run,
            ctx,
            aid,
            "attach_role_policy",
            RoleName=name,
            PolicyArn=f"arn:{partition}:iam::aws:policy/AdministratorAccess",
        )
        message = f"created {name} in {aid}"
    ctx.resources.put(KIND, aid, cloud_id=f"arn:{partition}:iam::{aid}:role/{name}")
    return ActionResult(message=message)
