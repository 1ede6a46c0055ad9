"""The ``aws`` platform plugin: hook implementations (the entry point's target).

Nothing here imports boto3 at import time; sessions are built on first use and
cached per platform config.
"""

from __future__ import annotations

import threading
from typing import Any

from meshcore import hookimpl
from meshcore.models import TenantStatus
from meshcore.results import (
    Capability,
    DiscoveredTenant,
    PlatformType,
    ProvisionResult,
    ValidationProblem,
)
from meshcore_aws.config import AwsConfig, AwsLandingZone

TYPE = "aws"
_lock = threading.Lock()
_sessions: dict[tuple[str, str], Any] = {}


def sessions_for(platform: Any) -> Any:
    """The cached :class:`~meshcore_aws.sessions.Sessions` of a platform config."""
    from meshcore_aws.sessions import Sessions

    key = (platform.id, platform.config.model_dump_json())
    with _lock:
        if key not in _sessions:
            _sessions[key] = Sessions(platform.config)
        return _sessions[key]


def reset_sessions() -> None:
    """Forget every cached session (tests, or after credentials changed)."""
    with _lock:
        _sessions.clear()


def _vendor(platform: Any, ctx: Any) -> Any:
    from meshcore_aws.vending import Vendor

    return Vendor(platform, ctx, sessions_for(platform))


@hookimpl
def meshplatform_platform_types() -> list[PlatformType]:
    return [
        PlatformType(
            name=TYPE,
            description="AWS Organizations: account vending, OUs, tags, aliases, safe closure",
            config_model=AwsConfig,
            landing_zone_model=AwsLandingZone,
            capabilities=frozenset({Capability.TENANTS, Capability.DISCOVERY, Capability.PREFLIGHT}),
        )
    ]


@hookimpl
def meshplatform_validate(platform, landing_zones):
    if platform.type != TYPE:
        return None
    problems = []
    cfg: AwsConfig = platform.config
    guard = cfg.deletion.guard
    if guard is not None and guard.key.startswith(cfg.tags.prefix):
        problems.append(
            ValidationProblem(
                path="deletion.guard.key",
                message=f"the guard tag must not be under the owned prefix {cfg.tags.prefix!r} "
                "(meshcore would remove it as an unknown managed tag)",
            )
        )
    for name in ("management", "automation", "cost_explorer"):
        ref = getattr(cfg, name)
        if ref is not None and ref.external_id is None:
            problems.append(
                ValidationProblem(
                    path=f"{name}.external_id",
                    message="set an ExternalId for every assumed role (confused-deputy protection), e.g. ${AWS_"
                    + name.upper()
                    + "_EXTERNAL_ID}",
                )
            )
    return problems


@hookimpl
def meshplatform_preflight(platform, ctx):
    if platform.type != TYPE:
        return None
    from meshcore_aws.preflight import run_preflight

    return run_preflight(sessions_for(platform))


@hookimpl
def meshplatform_plan_tenant(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    vendor = _vendor(platform, ctx)
    if tenant.status == TenantStatus.MARKED_FOR_DELETION:
        from meshcore_aws.closure import plan_deletion

        return plan_deletion(vendor, tenant)
    return vendor.plan(tenant)


@hookimpl
def meshplatform_provision_tenant(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    return _vendor(platform, ctx).provision(tenant)


@hookimpl
def meshplatform_update_tenant(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    changed, attributes = _vendor(platform, ctx).converge(tenant)
    return ProvisionResult(
        platform_tenant_id=tenant.platform_tenant_id, changed=changed, attributes=attributes
    )


@hookimpl
def meshplatform_deprovision_tenant(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    from meshcore_aws.closure import deprovision

    return deprovision(_vendor(platform, ctx), tenant)


@hookimpl
def meshplatform_discover_tenants(platform, ctx):
    if platform.type != TYPE:
        return None
    vendor = _vendor(platform, ctx)
    management = vendor.org.management_account_id
    return [
        DiscoveredTenant(
            platform_tenant_id=a["Id"],
            name=a.get("Name", ""),
            status=a.get("Status", ""),
            attributes={"email": a.get("Email", "")},
        )
        for a in sorted(vendor.org.accounts(refresh=True).values(), key=lambda a: a["Id"])
        if a["Id"] != management
    ]
