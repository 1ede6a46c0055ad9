"""Preflight: can each role be assumed, and may it do what the plugin needs?"""

from __future__ import annotations

from typing import Any

from meshcore.results import PreflightCheck, PreflightReport
from meshcore_aws.calls import error_code
from meshcore_aws.sessions import Sessions

# role -> (service, operation, kwargs, IAM action named in the report)
CHECKS: dict[str, list[tuple[str, str, dict[str, Any], str]]] = {
    "management": [
        ("organizations", "describe_organization", {}, "organizations:DescribeOrganization"),
        ("organizations", "list_roots", {}, "organizations:ListRoots"),
        ("organizations", "list_accounts", {"MaxResults": 1}, "organizations:ListAccounts"),
        (
            "organizations",
            "list_create_account_status",
            {"MaxResults": 1},
            "organizations:ListCreateAccountStatus",
        ),
    ],
    "automation": [("cloudformation", "list_stack_sets", {"MaxResults": 1}, "cloudformation:ListStackSets")],
    "cost_explorer": [],
}


def _message(exc: BaseException) -> str:
    response = getattr(exc, "response", {}) or {}
    err = response.get("Error", {})
    return f"{err.get('Code', type(exc).__name__)}: {err.get('Message', str(exc))}"


def run_preflight(sessions: Sessions) -> PreflightReport:
    checks: list[PreflightCheck] = []
    try:
        ident = sessions.base.client("sts").get_caller_identity()
        checks.append(
            PreflightCheck(
                name="base credentials",
                ok=True,
                scope="replicator",
                message=f"authenticated as {ident['Arn']}",
            )
        )
    except Exception as exc:
        checks.append(
            PreflightCheck(
                name="base credentials",
                ok=False,
                scope="replicator",
                message=f"no usable AWS credentials in the standard chain: {_message(exc)}",
            )
        )
        return PreflightReport(checks=tuple(checks))
    for role, calls in CHECKS.items():
        ref = getattr(sessions.config, role)
        if ref is None and role != "management":
            continue
        label = ref.role_arn if ref else "base credentials"
        try:
            sessions.client(role, "sts").get_caller_identity()
            checks.append(PreflightCheck(name=f"assume {role} role", ok=True, scope=role, message=label))
        except Exception as exc:
            hint = " (check the trust policy and the ExternalId)" if error_code(exc) == "AccessDenied" else ""
            checks.append(
                PreflightCheck(
                    name=f"assume {role} role",
                    ok=False,
                    scope=role,
                    message=f"{label}: {_message(exc)}{hint}",
                )
            )
            continue
        for service, op, kwargs, action in calls:
            try:
                getattr(sessions.client(role, service), op)(**kwargs)
                checks.append(PreflightCheck(name=action, ok=True, scope=role))
            except Exception as exc:
                code = error_code(exc)
                missing = " — permission missing" if "AccessDenied" in code or "Unauthorized" in code else ""
                checks.append(
                    PreflightCheck(name=action, ok=False, scope=role, message=f"{_message(exc)}{missing}")
                )
    return PreflightReport(checks=tuple(checks))
