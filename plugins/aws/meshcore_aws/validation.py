"""``meshcore validate`` for AWS platforms: what the config models cannot check on their own. No cloud calls."""

from __future__ import annotations

from meshcore import LandingZoneSpec, PlatformError, TenantSpec, ValidationProblem
from meshcore_aws.config import OU_ID, AwsConfig, AwsLandingZone, RoleRef


def problems(
    cfg: AwsConfig, landing_zones: list[LandingZoneSpec], tenants: list[TenantSpec]
) -> list[ValidationProblem]:
    from meshcore_aws.access import static_problems

    found: list[ValidationProblem] = []
    guard = cfg.deletion.guard
    if guard is not None and guard.key.startswith(cfg.tags.prefix):
        found.append(
            ValidationProblem(
                path="deletion.guard.key",
                message=f"the guard tag must not be under the owned prefix {cfg.tags.prefix!r} "
                "(meshcore would remove it as an unknown managed tag)",
            )
        )
    for name in ("management", "automation", "cost_explorer"):
        ref = getattr(cfg, name)
        if isinstance(ref, RoleRef) and ref.external_id is None:
            found.append(
                ValidationProblem(
                    path=f"{name}.external_id",
                    message="set an ExternalId for every assumed role (confused-deputy protection), e.g. ${AWS_"
                    + name.upper()
                    + "_EXTERNAL_ID}",
                )
            )
    if cfg.automation is None:
        for lz in landing_zones:
            zone: AwsLandingZone = lz.config
            if zone.baselines or zone.lambda_hook is not None:
                found.append(
                    ValidationProblem(
                        path="baselines" if zone.baselines else "lambda_hook",
                        landing_zone=lz.id,
                        message="baselines and Lambda hooks run in the automation account: set the platform's "
                        "automation role (or 'automation: base' to use the replicator's own credentials)",
                    )
                )
    found += _landing_zone_problems(cfg, landing_zones)
    found += _tenant_problems(cfg, tenants)
    found += [
        ValidationProblem(path=p, landing_zone=lz, message=m)
        for p, lz, m in static_problems(cfg, landing_zones)
    ]
    return found


def _landing_zone_problems(cfg: AwsConfig, landing_zones: list[LandingZoneSpec]) -> list[ValidationProblem]:
    """Templates lint clean; landing zones sharing an OU agree on its SCPs; one SCP name is one policy."""
    from meshcore_aws.baselines import lint

    found = []
    found += _mixed_ou_forms(landing_zones)
    by_ou: dict[str, tuple[str, list[str]]] = {}
    scp_defs: dict[str, tuple[str, str, str]] = {}  # name -> (landing zone, content, description)
    for lz in landing_zones:
        zone: AwsLandingZone = lz.config
        if zone.deletion_mode == "quarantine" and not cfg.deletion.quarantine_ou:
            found.append(
                ValidationProblem(
                    path="deletion_mode",
                    landing_zone=lz.id,
                    message="quarantine needs deletion.quarantine_ou in the platform config",
                )
            )
        for i, scp in enumerate(zone.scps):
            first = scp_defs.setdefault(scp.name, (lz.id, scp.content, scp.description))
            if first[1:] != (scp.content, scp.description):
                found.append(
                    ValidationProblem(
                        path=f"scps.{i}",
                        landing_zone=lz.id,
                        message=f"SCP {scp.name!r} is also defined by landing zone {first[0]!r} with another "
                        "document or description; one name is one policy: give it the same definition or another name",
                    )
                )
        ou_scps = sorted(p.name for p in zone.scps if p.attach_to == "ou")
        if zone.ou in by_ou and by_ou[zone.ou][1] != ou_scps:
            found.append(
                ValidationProblem(
                    path="scps",
                    landing_zone=lz.id,
                    message=f"landing zone {by_ou[zone.ou][0]!r} uses the same OU {zone.ou} with other OU-level SCPs "
                    f"({', '.join(by_ou[zone.ou][1]) or 'none'}); attach differing SCPs to the account instead",
                )
            )
        by_ou.setdefault(zone.ou, (lz.id, ou_scps))
        for i, baseline in enumerate(zone.baselines):
            try:
                errors = lint(baseline.template_body, list(baseline.regions or (cfg.region,)))
            except Exception as exc:  # cfn-lint raises many kinds of errors on an unparsable template
                errors = [f"cannot lint the template: {exc}"]
            for error in errors[:10]:
                found.append(
                    ValidationProblem(
                        path=f"baselines.{i}.template", landing_zone=lz.id, message=f"cfn-lint: {error}"
                    )
                )
    return found


def _mixed_ou_forms(landing_zones: list[LandingZoneSpec]) -> list[ValidationProblem]:
    """One platform names its OUs either all by id or all by path.

    Landing zones sharing an OU must agree on its SCPs; that is checked without
    cloud calls by comparing references, which only works if one OU has one
    spelling. Naming it by path in one landing zone and by id in another would
    attach and detach both SCP sets on every run.
    """
    if not landing_zones:
        return []
    head = landing_zones[0]
    head_by_id = bool(OU_ID.fullmatch(head.config.ou))
    return [
        ValidationProblem(
            path="ou",
            landing_zone=lz.id,
            message=f"names its OU by {'path' if head_by_id else 'id'} while landing zone {head.id!r} names its "
            f"OU by {'id' if head_by_id else 'path'}; use one form on a platform (paths, like /Workloads/Dev, "
            "read best) so that landing zones sharing an OU are recognised as sharing it",
        )
        for lz in landing_zones[1:]
        if bool(OU_ID.fullmatch(lz.config.ou)) != head_by_id
    ]


def _tenant_problems(cfg: AwsConfig, tenants: list[TenantSpec]) -> list[ValidationProblem]:
    """Every tenant's account name, e-mail and alias render within AWS's rules, and no two collide.

    Two projects whose names render alike (``team-a/web`` and ``team/a-web``
    under ``{workspace}-{project}``) would share one e-mail address (AWS refuses
    the second account), one alias (globally unique) or one name (two accounts
    nobody can tell apart): each is refused here, naming both projects.
    """
    from meshcore_aws.vending import desired_state

    found: list[ValidationProblem] = []
    seen: dict[tuple[str, str], str] = {}
    for tenant in tenants:
        try:
            want = desired_state(cfg, tenant)
        except PlatformError as exc:
            found.append(ValidationProblem(path="", tenant=tenant.key, message=str(exc)))
            continue
        rendered = [("e-mail", want.email.lower()), ("account name", want.name.lower())]
        if want.alias:
            rendered.append(("account alias", want.alias))
        for what, value in rendered:
            first = seen.setdefault((what, value), tenant.key)
            if first != tenant.key:
                found.append(
                    ValidationProblem(
                        path="",
                        tenant=tenant.key,
                        message=f"the {what} {value!r} is also rendered for {first} ({_WHY[what]}): rename a "
                        f"project or put another placeholder into the platform's {_PATTERN[what]}",
                    )
                )
    return found


_WHY = {
    "e-mail": "AWS refuses a second account with one e-mail address",
    "account name": "two accounts nobody could tell apart",
    "account alias": "an alias is unique across all of AWS",
}
_PATTERN = {
    "e-mail": "account_email_pattern",
    "account name": "account_name_pattern",
    "account alias": "account_alias_pattern",
}
