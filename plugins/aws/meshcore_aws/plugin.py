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
            description="AWS Organizations vending, SCPs, StackSet baselines, Identity Center access, Cost Explorer",
            config_model=AwsConfig,
            landing_zone_model=AwsLandingZone,
            capabilities=frozenset(
                {
                    Capability.TENANTS,
                    Capability.LANDING_ZONES,
                    Capability.ACCESS,
                    Capability.COSTS,
                    Capability.DISCOVERY,
                    Capability.PREFLIGHT,
                }
            ),
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
    problems += _landing_zone_problems(cfg, landing_zones)
    from meshcore_aws.access import static_problems

    problems += [
        ValidationProblem(path=path, landing_zone=lz, message=msg)
        for path, lz, msg in static_problems(cfg, landing_zones)
    ]
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
    changes = vendor.plan(tenant)
    if tenant.platform_tenant_id is not None:
        from meshcore_aws.access import Access
        from meshcore_aws.landing_zone import LandingZones

        changes += LandingZones(vendor).plan(tenant)
        changes += Access(vendor).plan(tenant)
    return changes


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
def meshplatform_apply_landing_zone(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    from meshcore_aws.landing_zone import LandingZones

    return LandingZones(_vendor(platform, ctx)).apply(tenant)


@hookimpl
def meshplatform_replicate_access(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    from meshcore_aws.access import Access

    return Access(_vendor(platform, ctx)).apply(tenant)


@hookimpl
def meshplatform_deprovision_tenant(platform, tenant, ctx):
    if platform.type != TYPE:
        return None
    from meshcore_aws.closure import deprovision

    return deprovision(_vendor(platform, ctx), tenant)


@hookimpl
def meshplatform_collect_costs(platform, period, tenants, ctx):
    if platform.type != TYPE:
        return None
    from meshcore_aws.costs import collect

    return collect(sessions_for(platform), platform.config, period, ctx.sleep)


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


def _landing_zone_problems(cfg: AwsConfig, landing_zones: list[Any]) -> list[ValidationProblem]:
    """Templates lint clean; landing zones sharing an OU agree on its SCPs."""
    problems = []
    by_ou: dict[str, tuple[str, list[str]]] = {}
    scp_defs: dict[str, tuple[str, str, str]] = {}  # name -> (landing zone, content, description)
    for lz in landing_zones:
        zone: AwsLandingZone = lz.config
        if zone.deletion_mode == "quarantine" and not cfg.deletion.quarantine_ou:
            problems.append(
                ValidationProblem(
                    path="deletion_mode",
                    landing_zone=lz.id,
                    message="quarantine needs deletion.quarantine_ou in the platform config",
                )
            )
        for i, scp in enumerate(zone.scps):
            first = scp_defs.setdefault(scp.name, (lz.id, scp.content, scp.description))
            if first[1:] != (scp.content, scp.description):
                problems.append(
                    ValidationProblem(
                        path=f"scps.{i}",
                        landing_zone=lz.id,
                        message=f"SCP {scp.name!r} is also defined by landing zone {first[0]!r} with another document "
                        "or description; one name is one policy: give it the same definition or another name",
                    )
                )
        ou_scps = sorted(p.name for p in zone.scps if p.attach_to == "ou")
        if zone.ou in by_ou and by_ou[zone.ou][1] != ou_scps:
            problems.append(
                ValidationProblem(
                    path="scps",
                    landing_zone=lz.id,
                    message=f"landing zone {by_ou[zone.ou][0]!r} uses the same OU {zone.ou} with other OU-level SCPs "
                    f"({', '.join(by_ou[zone.ou][1]) or 'none'}); attach differing SCPs to the account instead",
                )
            )
        by_ou.setdefault(zone.ou, (lz.id, ou_scps))
        for i, baseline in enumerate(zone.baselines):
            from meshcore_aws.baselines import lint

            try:
                errors = lint(baseline.template_body, list(baseline.regions or (cfg.region,)))
            except Exception as exc:  # an unparsable template
                errors = [f"cannot lint the template: {exc}"]
            for error in errors[:10]:
                problems.append(
                    ValidationProblem(
                        path=f"baselines.{i}.template", landing_zone=lz.id, message=f"cfn-lint: {error}"
                    )
                )
    return problems


@hookimpl
def meshplatform_cli_commands():
    from meshcore_aws.cli import app

    return app
