"""``meshcore validate`` for AWS platforms: what the config models cannot check on their own. No cloud calls."""

from __future__ import annotations

from meshcore import LandingZoneSpec, ValidationProblem
from meshcore_aws.config import AwsConfig, AwsLandingZone, RoleRef


def problems(cfg: AwsConfig, landing_zones: list[LandingZoneSpec]) -> list[ValidationProblem]:
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
    found += [
        ValidationProblem(path=p, landing_zone=lz, message=m)
        for p, lz, m in static_problems(cfg, landing_zones)
    ]
    return found


def _landing_zone_problems(cfg: AwsConfig, landing_zones: list[LandingZoneSpec]) -> list[ValidationProblem]:
    """Templates lint clean; landing zones sharing an OU agree on its SCPs; one SCP name is one policy."""
    from meshcore_aws.baselines import lint

    found = []
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
