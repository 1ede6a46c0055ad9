"""Check IAM policy statements against AWS's IAM reference data (policy_sentry's copy of the
Service Authorization Reference): actions exist, resource ARNs are of a type the action
accepts, condition keys apply to the action (for the resource types the statement names).

CloudFormation ``${...}`` references are replaced by example values first.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from policy_sentry.querying.actions import get_action_data

GLOBAL_CONDITION_KEYS = re.compile(
    r"^aws:(SourceIp|SourceVpc|SourceVpce|SecureTransport|CurrentTime|EpochTime|MultiFactorAuthPresent|"
    r"PrincipalArn|PrincipalAccount|PrincipalOrgID|PrincipalTag/.+|RequestedRegion|SourceAccount|SourceArn|"
    r"CalledVia|ViaAWSService|userid|username)$",
    re.IGNORECASE,
)
EXAMPLES = {
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "ClosureGuardTagKey": "closable",
    "ClosureGuardTagValue": "true",
    "ManagedByTagKey": "meshcore:managed-by",
    "AccountAccessRoleName": "OrganizationAccountAccessRole",
    "ManagementAccountId": "123456789012",
    "AutomationAccountId": "210987654321",
    "ExecutionRoleName": "AWSCloudFormationStackSetExecutionRole",
}


def substitute(value: Any) -> Any:
    """Resolve ``Fn::Sub`` strings and ``Ref``s of the example parameters; other intrinsics become ``*``."""
    if isinstance(value, str):
        return re.sub(r"\$\{([^}]+)\}", lambda m: EXAMPLES.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"}:
            return substitute(value["Fn::Sub"])
        if set(value) == {"Ref"}:
            return (
                EXAMPLES.get(value["Ref"], "*")
                if value["Ref"] != "WorkloadOuArns"
                else ["arn:aws:organizations::123456789012:ou/o-abc/ou-abc-11111111"]
            )
        if set(value) == {"Fn::GetAtt"}:
            return "arn:aws:iam::210987654321:role/AWSCloudFormationStackSetAdministrationRole"
        return {k: substitute(v) for k, v in value.items()}
    return value


@cache
def _rows(action: str) -> tuple[tuple[str, frozenset[str]], ...]:
    service, name = action.split(":", 1)
    data = get_action_data(service, name) or {}
    return tuple(
        (row["resource_arn_format"], frozenset(k.lower() for k in row["condition_keys"]))
        for row in data.get(service, [])
    )


def _format_regex(arn_format: str) -> re.Pattern[str]:
    parts = re.split(r"(\$\{[^}]+\})", arn_format)
    return re.compile("^" + "".join(".+" if p.startswith("${") else re.escape(p) for p in parts) + "$")


def _matches(resource: str, arn_format: str) -> bool:
    if resource == "*" or arn_format == "*":
        return resource == "*" or arn_format == "*"
    return bool(_format_regex(arn_format).match(resource.replace("*", "x")))


def _key_applies(key: str, allowed: frozenset[str]) -> bool:
    key = key.lower()
    if GLOBAL_CONDITION_KEYS.match(key):
        return True
    for pattern in allowed:
        if "${" in pattern:
            prefix = pattern.split("${", 1)[0]
            if key.startswith(prefix) and len(key) > len(prefix):
                return True
        elif key == pattern:
            return True
    return False


def problems(statement: dict[str, Any]) -> list[str]:
    """What is wrong with one (substituted) statement; empty when AWS would accept it as written."""
    out = []
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    resources = statement.get("Resource", "*")
    resources = resources if isinstance(resources, list) else [resources]
    conditions = statement.get("Condition", {})
    keys = [k for per_operator in conditions.values() for k in per_operator]
    out += [
        f"condition key {k} names a parameter that is never substituted (CloudFormation substitutes "
        "only inside Fn::Sub strings, never in JSON keys)"
        for k in keys
        if "${" in k
    ]
    for action in actions:
        if "*" in action:
            out.append(f"{action}: wildcard action")
            continue
        rows = _rows(action)
        if not rows:
            out.append(f"{action}: no such action in the IAM reference")
            continue
        for resource in resources:
            fitting = [r for r in rows if _matches(resource, r[0])]
            if not fitting:
                out.append(f"{action}: resource {resource} is not of a type it accepts")
                continue
            for key in keys:
                if not any(_key_applies(key, r[1]) for r in fitting):
                    out.append(f"{action}: condition key {key} does not apply to {resource}")
    return out


def deployed_statements(templates: dict[str, dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every permission statement of every role, as IAM would see it after CloudFormation
    substituted the example parameters: a ``Fn::Sub`` document as a whole (keys included),
    a plain document value by value (its keys are taken literally, as CloudFormation does)."""
    import json

    found = {}
    for name, body in templates.items():
        for logical, res in body.get("Resources", {}).items():
            if res.get("Type") != "AWS::IAM::Role":
                continue
            for policy in res["Properties"].get("Policies", []):
                doc = policy["PolicyDocument"]
                if isinstance(doc, dict) and set(doc) == {"Fn::Sub"}:
                    doc = json.loads(substitute(doc["Fn::Sub"]))
                else:
                    doc = substitute(doc)
                for i, st in enumerate(doc["Statement"]):
                    found[(name, logical, st.get("Sid", str(i)))] = st
    return found
