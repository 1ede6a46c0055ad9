"""The privilege-escalation guard: can a permission set's holder raise their own privileges?

Judged on maintained IAM data, not a hand-kept list:

- every policy is expanded to the actions it allows (wildcards and ``NotAction``
  included, ``Deny`` statements subtracted) with ``policy_sentry``'s database of
  IAM actions, the same that ``cloudsplaining`` uses;
- an action is *sensitive* when it lets its holder change who may do what:
  every IAM action of access level "Permissions management" (``iam:AttachRolePolicy``,
  ``iam:PutRolePermissionsBoundary``, ...), every IAM action on a published
  privilege-escalation path (``cloudsplaining``'s list: ``iam:PassRole``,
  ``iam:CreateAccessKey``, ``iam:UpdateLoginProfile``, ...) and every
  Organizations write (``organizations:LeaveOrganization``, ...); creating and
  deleting service-linked roles is not (only the AWS service can assume one);
- AWS managed policies are judged by their documents (:mod:`meshcore_aws.managed_policies`);
  one the snapshot does not know, and every customer managed policy (its
  document lives in each account), is privileged until proven otherwise.

A permission set that allows a sensitive action is *privileged*. A landing zone
may map a role to it only with ``allow_privileged_roles: true`` and SCPs whose
``Deny`` statements cover every sensitive action it allows: an SCP that denies
something else bounds nothing. Resource and condition constraints in the
permission set do not count (a role path is no bound when its holder can create
roles there). Action names match case-insensitively, with ``*`` and ``?``
anywhere, as IAM matches them. An SCP's ``Deny`` counts only on ``Resource: "*"``,
and with a condition only when that condition exempts principals by ARN
(``ArnNotLike``/``ArnNotEquals``/``StringNotLike``/``StringNotEquals`` on
``aws:PrincipalArn``) and none of the exempted patterns matches the roles
Identity Center creates for permission sets.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from meshcore_aws import managed_policies

#: Organizations actions of these access levels are sensitive (it has no "Permissions management" ones).
_ORG_LEVELS = ("Write", "Permissions management")
#: "Permissions management" by IAM's own classification, yet no escalation: a service-linked
#: role can only be assumed by its AWS service, with a policy the service defines.
_NOT_ESCALATION = frozenset({"iam:createservicelinkedrole", "iam:deleteservicelinkedrole"})
#: Shown in messages; the full lists can be long.
_SHOWN = 6


@dataclass(frozen=True)
class Verdict:
    """Why a permission set is privileged, and the sensitive actions an SCP must deny to bound it."""

    reasons: tuple[str, ...] = ()
    actions: frozenset[str] = field(default_factory=frozenset)
    unknown: bool = False  # some policy's document is unknown: only denying every sensitive action bounds it

    def __bool__(self) -> bool:
        return bool(self.reasons)


@lru_cache(maxsize=1)
def sensitive_actions() -> frozenset[str]:
    """Every sensitive action (lowercase ``service:action``), from policy_sentry's IAM database."""
    from cloudsplaining.shared.constants import PRIVILEGE_ESCALATION_METHODS
    from policy_sentry.querying.actions import get_actions_with_access_level

    found = {a.lower() for a in get_actions_with_access_level("iam", "Permissions management")}
    for level in _ORG_LEVELS:
        found |= {a.lower() for a in get_actions_with_access_level("organizations", level)}
    for actions in PRIVILEGE_ESCALATION_METHODS.values():
        found |= {a for a in actions if a.startswith("iam:")}
    return frozenset(found - _NOT_ESCALATION)


def _canonical(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, default=str)


@lru_cache(maxsize=1)
def _all_actions() -> frozenset[str]:
    from policy_sentry.querying.all import get_all_actions

    return frozenset(a.lower() for a in get_all_actions())


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements or []
    return [st for st in statements if isinstance(st, dict)]


@lru_cache(maxsize=4096)
def _matching(pattern: str) -> frozenset[str]:
    """Every known action an action pattern matches: case-insensitive, ``*`` and ``?`` anywhere, as IAM does."""
    pattern = pattern.strip().lower()
    if not any(c in pattern for c in "*?"):
        return frozenset({pattern})  # an action not (yet) in the database still counts as itself
    regex = re.compile(fnmatch.translate(pattern))
    return frozenset(a for a in _all_actions() if regex.match(a))


def _expanded(patterns: list[str]) -> frozenset[str]:
    out: set[str] = set()
    for pattern in patterns:
        out |= _matching(pattern)
    return frozenset(out)


def _actions_of(statement: dict[str, Any]) -> frozenset[str]:
    """The actions a statement names (lowercase): ``Action`` expanded, or everything but ``NotAction``."""
    if "Action" in statement:
        return _expanded(_listed(statement["Action"]))
    if "NotAction" in statement:
        return _all_actions() - _expanded(_listed(statement["NotAction"]))
    return frozenset()


@lru_cache(maxsize=512)
def _allowed(document_json: str) -> frozenset[str]:
    """Actions a policy allows (lowercase), whatever its resource and condition constraints."""
    statements = _statements(json.loads(document_json))
    allowed: set[str] = set()
    for st in statements:
        if st.get("Effect") == "Allow":
            allowed |= _actions_of(st)
    for st in statements:  # a Deny without condition on every resource takes the action away
        if st.get("Effect") == "Deny" and "Condition" not in st and st.get("Resource") in ("*", ["*"]):
            allowed -= _actions_of(st)
    return frozenset(allowed)


#: What Identity Center names the role of a permission set in each account: an SCP condition that
#: exempts a principal matching it exempts the very people the boundary is for.
_SSO_ROLE_ARNS = (
    "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123456789abcdef",
    "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef",
)
#: Condition operators that exempt principals from a Deny by their ARN (the Deny applies to all others).
_EXEMPTING = {"arnnotlike", "arnnotequals", "stringnotlike", "stringnotequals"}


def _bounds_everyone_else(condition: Any) -> bool:
    """A Deny's condition only exempts named principals, never the roles Identity Center creates.

    Anything else (a region, a tag, an exemption that matches every role) may
    leave the people the boundary is for unbounded, so the statement is not counted.
    """
    if not isinstance(condition, dict) or not condition:
        return False
    for operator, tests in condition.items():
        if str(operator).lower().removesuffix("ifexists") not in _EXEMPTING or not isinstance(tests, dict):
            return False
        for key, values in tests.items():
            if str(key).lower() != "aws:principalarn":
                return False
            for value in _listed(values):
                if any(fnmatch.fnmatchcase(arn.lower(), value.lower()) for arn in _SSO_ROLE_ARNS):
                    return False
    return True


def _denied(document: dict[str, Any]) -> frozenset[str]:
    """Actions an SCP's ``Deny`` statements cover on every resource (lowercase), for everyone it bounds."""
    denied: set[str] = set()
    for st in _statements(document):
        if st.get("Effect") != "Deny" or st.get("Resource") not in ("*", ["*"]):
            continue
        if "Condition" in st and not _bounds_everyone_else(st["Condition"]):
            continue
        denied |= _actions_of(st)
    return frozenset(denied)


def _sample(actions: frozenset[str] | set[str]) -> str:
    shown = sorted(actions)[:_SHOWN]
    more = len(actions) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def judge(
    managed_policy_arns: tuple[str, ...] | list[str],
    inline_policy: dict[str, Any] | None,
    customer_managed: tuple[str, ...] | list[str] = (),
    snapshot_file: str | None = None,
) -> Verdict:
    """Is a permission set with these policies privileged, and which sensitive actions does it allow?"""
    sensitive = sensitive_actions()
    snapshot = managed_policies.load(snapshot_file)
    reasons: list[str] = []
    actions: set[str] = set()
    unknown = False
    sources: list[tuple[str, dict[str, Any]]] = []
    for arn in managed_policy_arns:
        name = arn.rsplit("/", 1)[-1]
        document = snapshot.document(arn)
        if document is None:
            unknown = True
            reasons.append(
                f"managed policy {name} is not in the managed-policy snapshot of {snapshot.taken} "
                "(privileged until its document is known: meshcore aws managed-policies refresh)"
            )
        else:
            sources.append((f"managed policy {name}", document))
    for name in customer_managed:
        unknown = True
        reasons.append(f"customer managed policy {name} (its document lives in each account: privileged)")
    if inline_policy:
        sources.append(("the inline policy", inline_policy))
    for label, document in sources:
        hit = _allowed(_canonical(document)) & sensitive
        if hit:
            actions |= hit
            reasons.append(f"{label} allows {_sample(hit)}")
    return Verdict(tuple(reasons), frozenset(sensitive if unknown else actions), unknown)


def judge_config(ps: Any, snapshot_file: str | None) -> Verdict:
    """:func:`judge` for a permission set from the config (:class:`~meshcore_aws.config.PermissionSetConfig`)."""
    return judge(
        ps.managed_policies,
        ps.inline_policy,
        [f"{c.path}{c.name}" for c in ps.customer_managed_policies],
        snapshot_file,
    )


def unbounded(landing_zone: Any, verdict: Verdict) -> list[str]:
    """What keeps ``landing_zone`` from bounding a privileged permission set (empty: it is bounded)."""
    if not verdict:
        return []
    if not getattr(landing_zone, "allow_privileged_roles", False):
        return ["the landing zone does not set allow_privileged_roles: true"]
    denied: set[str] = set()
    for scp in landing_zone.scps:
        denied |= _denied(scp.document or {})
    missing = set(verdict.actions) - denied
    if not missing:
        return []
    return [f"its SCPs do not deny {_sample(missing)}"]
