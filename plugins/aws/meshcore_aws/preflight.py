"""Preflight: can each role be assumed, and may it do what a run needs? Reads only.

Checks, each reported on its own line: the base credentials; each configured
role (assumed with its ExternalId); Organizations reads; the organization's
feature set (``ALL``, needed for SCPs); trusted access for AWS Account
Management (renaming member accounts); the Identity Center instance in its home
region and its identity source; CloudFormation StackSets in the automation account.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from meshcore import PreflightCheck, PreflightReport
from meshcore_aws import retries
from meshcore_aws.run import AwsRun


def _check(name: str, scope: str, probe: Callable[[], str]) -> PreflightCheck:
    try:
        return PreflightCheck(name=name, ok=True, scope=scope, message=probe() or "")
    except (ClientError, BotoCoreError) as exc:
        code = retries.code(exc)
        hint = ""
        if "AccessDenied" in code or "Unauthorized" in code:
            hint = " — permission missing (see the setup templates: meshcore aws setup-templates)"
        return PreflightCheck(name=name, ok=False, scope=scope, message=f"{retries.describe(exc)}{hint}")
    except (
        Exception
    ) as exc:  # a PlatformError (e.g. no instance in the region) is a failed check, not a crash
        return PreflightCheck(name=name, ok=False, scope=scope, message=str(exc))


def run_preflight(run: AwsRun) -> PreflightReport:
    cfg, sessions = run.cfg, run.sessions
    checks = [
        _check(
            "base credentials",
            "replicator",
            lambda: f"authenticated as {sessions.base.client('sts').get_caller_identity()['Arn']}",
        )
    ]
    if not checks[0].ok:
        return PreflightReport(checks=tuple(checks))
    for scope in ("management", "automation", "cost_explorer"):
        ref = getattr(cfg, scope)
        if ref is None:
            checks.append(
                PreflightCheck(name=f"{scope} role", ok=True, scope=scope, message="not configured")
            )
            continue
        label = "base credentials" if ref == "base" else ref.role_arn
        checks.append(_check(f"assume {scope} role", scope, partial(_whoami, sessions, scope, label)))
    org = sessions.org()
    checks.append(
        _check(
            "organizations:DescribeOrganization (FeatureSet ALL)",
            "management",
            lambda: _feature_set(org.describe_organization()["Organization"]),
        )
    )
    for name, call in (
        ("organizations:ListRoots", partial(org.list_roots)),
        ("organizations:ListAccounts", partial(org.list_accounts, MaxResults=1)),
        ("organizations:ListCreateAccountStatus", partial(org.list_create_account_status, MaxResults=1)),
    ):
        checks.append(_check(name, "management", partial(_quiet, call)))
    checks.append(
        _check(
            "trusted access for AWS Account Management (renaming accounts)",
            "management",
            lambda: _trusted(org, "account.amazonaws.com"),
        )
    )
    if cfg.identity_center is not None:
        checks.append(
            _check(
                f"Identity Center instance in {cfg.identity_center.region}",
                "management",
                lambda: _instance(run),
            )
        )
    if cfg.automation is not None:
        checks.append(
            _check(
                "cloudformation:ListStackSets",
                "automation",
                lambda: (sessions.client("automation", "cloudformation").list_stack_sets(MaxResults=1), "")[
                    1
                ],
            )
        )
    return PreflightReport(checks=tuple(checks))


def _whoami(sessions: Any, scope: str, label: str) -> str:
    return f"{label}: {sessions.client(scope, 'sts').get_caller_identity()['Arn']}"


def _quiet(call: Callable[[], Any]) -> str:
    call()
    return ""


def _feature_set(org: dict[str, Any]) -> str:
    if org.get("FeatureSet") != "ALL":
        raise RuntimeError(f"the organization's feature set is {org.get('FeatureSet')}; SCPs need ALL")
    return f"organization {org['Id']}, feature set ALL"


def _trusted(org: Any, principal: str) -> str:
    enabled = {
        p["ServicePrincipal"]
        for p in retries.pages(org, "list_aws_service_access_for_organization", "EnabledServicePrincipals")
    }
    if principal not in enabled:
        raise RuntimeError(
            f"{principal} is not enabled; run: aws organizations enable-aws-service-access --service-principal {principal}"
        )
    return f"{principal} enabled"


def _instance(run: AwsRun) -> str:
    """The instance in its home region, and its identity store answering a user lookup."""
    arn, store = run.identity_center.instance()
    run.identity_center.ids.list_users(IdentityStoreId=store, MaxResults=1)
    return f"{arn} (identity store {store} answers)"
