"""The ``aws`` platform plugin: hook implementations (the entry point's target).

Each hook is a thin entry into one module: :mod:`~meshcore_aws.vending` and
:mod:`~meshcore_aws.closure` (the account), :mod:`~meshcore_aws.landing_zone`
(guardrails, baselines, post-replication hook), :mod:`~meshcore_aws.access`
(Identity Center), and for the shared resources :mod:`~meshcore_aws.guardrails`,
:mod:`~meshcore_aws.baselines` and :mod:`~meshcore_aws.permission_sets`. They
share one :class:`~meshcore_aws.run.AwsRun` per platform and run. Nothing here
imports boto3 at import time.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from meshcore import (
    Capability,
    ChangedTenants,
    CostCollection,
    DiscoveredTenant,
    HookContext,
    LandingZoneSpec,
    Observation,
    Period,
    PlatformSpec,
    PlatformType,
    PreflightReport,
    TenantRef,
    TenantSpec,
    TenantStatus,
    ValidationProblem,
    hookimpl,
    merge,
)
from meshcore_aws.config import AwsConfig, AwsLandingZone

TYPE = "aws"


@hookimpl
def meshplatform_platform_types() -> list[PlatformType]:
    return [
        PlatformType(
            name=TYPE,
            description="AWS Organizations vending, SCPs, StackSet baselines, Identity Center access, Cost Explorer",
            config_model=AwsConfig,
            landing_zone_model=AwsLandingZone,
            capabilities=frozenset(Capability),
        )
    ]


@hookimpl
def meshplatform_validate(
    platform: PlatformSpec, landing_zones: list[LandingZoneSpec], tenants: list[TenantSpec]
) -> list[ValidationProblem]:
    from meshcore_aws.validation import problems

    return problems(platform.config, landing_zones, tenants)


@hookimpl
def meshplatform_preflight(platform: PlatformSpec, ctx: HookContext) -> PreflightReport:
    from meshcore_aws.preflight import run_preflight
    from meshcore_aws.run import aws_run

    return run_preflight(aws_run(platform, ctx))


@hookimpl
def meshplatform_identity(platform: PlatformSpec, ctx: HookContext) -> str:
    from meshcore_aws.run import aws_run

    return f"aws-organization:{aws_run(platform, ctx).org.organization()['Id']}"


@hookimpl
def meshplatform_changed_tenants(
    platform: PlatformSpec, ctx: HookContext, since: dt.datetime
) -> ChangedTenants:
    from meshcore_aws.changes import changed_accounts
    from meshcore_aws.run import aws_run

    return changed_accounts(aws_run(platform, ctx), since)


@hookimpl
def meshplatform_platform_actions(
    platform: PlatformSpec, landing_zones: list[LandingZoneSpec], ctx: HookContext
) -> Observation:
    from meshcore_aws import baselines, guardrails, permission_sets
    from meshcore_aws.run import aws_run

    run = aws_run(platform, ctx)
    found = [
        guardrails.platform_actions(run, landing_zones, ctx),
        baselines.platform_actions(run, landing_zones, ctx),
    ]
    if run.cfg.identity_center is not None:
        found.append(permission_sets.platform_actions(run.identity_center, landing_zones, ctx))
    return merge(found)


@hookimpl
def meshplatform_tenant_actions(platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext) -> Observation:
    from meshcore_aws.run import aws_run

    run = aws_run(platform, ctx)
    if tenant.status != TenantStatus.ACTIVE:
        from meshcore_aws.closure import deletion_actions

        return deletion_actions(run, tenant, ctx)
    from meshcore_aws.vending import tenant_actions

    return tenant_actions(run, tenant, ctx)


@hookimpl
def meshplatform_landing_zone_actions(
    platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
) -> Observation:
    from meshcore_aws.landing_zone import landing_zone_actions
    from meshcore_aws.run import aws_run

    return landing_zone_actions(aws_run(platform, ctx), tenant, ctx)


@hookimpl
def meshplatform_access_actions(platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext) -> Observation:
    from meshcore_aws.access import access_actions
    from meshcore_aws.run import aws_run

    return access_actions(aws_run(platform, ctx), tenant, ctx)


@hookimpl
def meshplatform_collect_costs(
    platform: PlatformSpec, period: Period, tenants: list[TenantRef], ctx: HookContext
) -> CostCollection:
    from meshcore_aws.costs import collect
    from meshcore_aws.run import sessions_for

    return collect(sessions_for(platform), platform.config, period)


@hookimpl
def meshplatform_discover_tenants(platform: PlatformSpec, ctx: HookContext) -> list[DiscoveredTenant]:
    from meshcore_aws.accounts import state
    from meshcore_aws.run import aws_run

    run = aws_run(platform, ctx)
    infrastructure = {run.org.management_account_id, *run_infrastructure(run)}
    return [
        DiscoveredTenant(
            platform_tenant_id=a["Id"],
            name=a.get("Name", ""),
            status=state(a),
            attributes={"email": a.get("Email", "")},
        )
        for a in sorted(run.org.accounts(refresh=True).values(), key=lambda a: a["Id"])
        if a["Id"] not in infrastructure and state(a) == "ACTIVE"  # closed or closing: nothing to import
    ]


def run_infrastructure(run: object) -> set[str]:
    """The meshcloud and automation accounts: never import candidates."""
    from meshcore_aws.run import AwsRun

    assert isinstance(run, AwsRun)
    out = set()
    for scope in ("automation", "cost_explorer"):
        ref = getattr(run.cfg, scope)
        if ref is not None and ref != "base":
            out.add(ref.account_id)
    from botocore.exceptions import BotoCoreError, ClientError

    with contextlib.suppress(
        ClientError, BotoCoreError
    ):  # no usable base identity: nothing more to leave out
        out.add(run.sessions.base.client("sts").get_caller_identity()["Account"])
    return out


@hookimpl
def meshplatform_cli_commands() -> object:
    from meshcore_aws.cli import app

    return app
