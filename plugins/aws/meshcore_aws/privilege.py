"""The privilege-escalation guard: does a permission set grant IAM, Organizations or admin powers?

A permission set is *privileged* when it attaches a managed policy known to grant
such powers, or its inline policy allows an action that lets its holder raise
their own privileges (``*``, ``iam:*``, ``organizations:*``, ``iam:PassRole``,
``iam:PutRolePolicy``, ...), including through wildcards (``iam:Put*``) and
``NotAction`` allows. A landing zone may only map a project role to a
privileged permission set when it sets ``allow_privileged_roles`` *and*
attaches at least one SCP with a ``Deny`` statement to bound it.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

PRIVILEGED_MANAGED = frozenset(
    {
        "AdministratorAccess",
        "IAMFullAccess",
        "AWSOrganizationsFullAccess",
        "AWSSSOMasterAccountAdministrator",
        "AWSSSODirectoryAdministrator",
        "AWSCloudFormationFullAccess",
        "AdministratorAccess-AWSElasticBeanstalk",
        "AdministratorAccess-Amplify",
    }
)
ESCALATION_ACTIONS = (
    "iam:createpolicyversion",
    "iam:setdefaultpolicyversion",
    "iam:attachrolepolicy",
    "iam:attachuserpolicy",
    "iam:attachgrouppolicy",
    "iam:putrolepolicy",
    "iam:putuserpolicy",
    "iam:putgrouppolicy",
    "iam:passrole",
    "iam:createrole",
    "iam:createuser",
    "iam:createaccesskey",
    "iam:updateassumerolepolicy",
    "iam:createloginprofile",
    "iam:updateloginprofile",
    "iam:addusertogroup",
    "iam:deleterolepermissionsboundary",
    "organizations:leaveorganization",
    "organizations:createaccount",
    "organizations:moveaccount",
    "organizations:detachpolicy",
    "sso:createaccountassignment",
    "sts:assumerole",
)


def _actions(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def reasons(
    managed_policy_arns: list[str] | tuple[str, ...], inline_policy: dict[str, Any] | None
) -> list[str]:
    """Why a permission set is privileged (empty: it is not)."""
    out = []
    for arn in managed_policy_arns:
        name = arn.rsplit("/", 1)[-1]
        if name in PRIVILEGED_MANAGED:
            out.append(f"managed policy {name}")
    for st in _statements(inline_policy):
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        if "NotAction" in st:
            out.append("inline Allow with NotAction (allows everything not listed)")
            continue
        for pattern in _actions(st.get("Action", [])):
            p = pattern.lower()
            if p in ("*", "iam:*", "organizations:*") or any(fnmatchcase(a, p) for a in ESCALATION_ACTIONS):
                out.append(f"inline action {pattern}")
    return sorted(set(out))


def _statements(document: dict[str, Any] | None) -> list[Any]:
    statements = (document or {}).get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements or [])


def bounded(landing_zone: Any) -> bool:
    """The landing zone allows privileged roles and attaches an SCP that can bound them."""
    if not getattr(landing_zone, "allow_privileged_roles", False):
        return False
    return any(
        isinstance(st, dict) and st.get("Effect") == "Deny"
        for scp in landing_zone.scps
        for st in _statements(scp.document)
    )
