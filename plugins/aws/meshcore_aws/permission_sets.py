"""Permission sets: the ones meshcore manages (created, converged, provisioned) and the ones it only references.

A managed permission set carries the tag ``<tags.prefix>managed-by=meshcore``;
one of the same name without it is a conflict. Changing a permission set that
accounts already use does not change their IAM roles until it is provisioned
again, so meshcore journals a ``provision-permission-set`` intent *before* the
first change, provisions it to every account that has it and waits for
``DescribePermissionSetProvisioningStatus``; an interrupted or failed
provisioning is redone by the next run (the open intent, or AWS listing
accounts with ``LATEST_PERMISSION_SET_NOT_PROVISIONED``), so no account keeps
an old, possibly broader, policy while meshcore reports it converged.
"""

from __future__ import annotations

import json
import threading
from functools import partial
from typing import Any

from meshcore import (
    Action,
    ActionResult,
    ChangeAction,
    HookContext,
    JournalEntry,
    LandingZoneSpec,
    Observation,
    Phase,
)
from meshcore_aws import retries
from meshcore_aws.config import PermissionSetConfig
from meshcore_aws.identity_center import IdentityCenter


def key_of(target: str) -> str:
    """The key an assignment requires for a role-mapping target (a managed name or an ARN)."""
    return f"permission-set:{target}"


class PermissionSets:
    """Permission sets of the instance, read once per run."""

    def __init__(self, center: IdentityCenter):
        self.center = center
        self._lock = threading.RLock()
        self._by_name: dict[str, str] | None = None
        self._details: dict[str, dict[str, Any]] = {}

    @property
    def marker(self) -> tuple[str, str]:
        return f"{self.center.cfg.tags.prefix}managed-by", "meshcore"

    def by_name(self) -> dict[str, str]:
        """Name -> ARN of every permission set of the instance."""
        with self._lock:
            if self._by_name is None:
                sso, inst = self.center.sso, self.center.instance_arn
                names = {}
                for arn in retries.pages(sso, "list_permission_sets", "PermissionSets", InstanceArn=inst):
                    desc = sso.describe_permission_set(InstanceArn=inst, PermissionSetArn=arn)[
                        "PermissionSet"
                    ]
                    names[desc["Name"]] = arn
                    self._details.setdefault(arn, {})["describe"] = desc
                self._by_name = names
            return dict(self._by_name)

    def name_of(self, arn: str) -> str:
        return next((n for n, a in self.by_name().items() if a == arn), arn.rsplit("/", 1)[-1])

    def details(self, arn: str) -> dict[str, Any]:
        """Managed and customer managed policies, inline policy and tags of a permission set."""
        with self._lock:
            cached = self._details.get(arn, {})
            if "managed" in cached:
                return cached
        sso, inst = self.center.sso, self.center.instance_arn
        managed = retries.listed(
            sso,
            "list_managed_policies_in_permission_set",
            "AttachedManagedPolicies",
            InstanceArn=inst,
            PermissionSetArn=arn,
        )
        customer = retries.listed(
            sso,
            "list_customer_managed_policy_references_in_permission_set",
            "CustomerManagedPolicyReferences",
            InstanceArn=inst,
            PermissionSetArn=arn,
        )
        inline = (
            sso.get_inline_policy_for_permission_set(InstanceArn=inst, PermissionSetArn=arn).get(
                "InlinePolicy"
            )
            or ""
        )
        tags = retries.listed(sso, "list_tags_for_resource", "Tags", InstanceArn=inst, ResourceArn=arn)
        with self._lock:
            entry = self._details.setdefault(arn, {})
            if "describe" not in entry:
                entry["describe"] = sso.describe_permission_set(InstanceArn=inst, PermissionSetArn=arn)[
                    "PermissionSet"
                ]
            entry.update(
                {
                    "managed": sorted(m["Arn"] for m in managed),
                    "customer": sorted((c["Name"], c.get("Path", "/")) for c in customer),
                    "inline": json.loads(inline) if inline else None,
                    "tags": {t["Key"]: t["Value"] for t in tags},
                }
            )
            return entry

    def differences(self, arn: str, ps: PermissionSetConfig) -> list[str]:
        have = self.details(arn)
        desc = have.get("describe") or {}
        out = []
        if desc.get("SessionDuration") != ps.session_duration:
            out.append(f"session {desc.get('SessionDuration')} → {ps.session_duration}")
        if (desc.get("Description") or "") != _description(ps):
            out.append("description")
        if have["managed"] != sorted(ps.managed_policies):
            out.append("managed policies")
        if have["customer"] != sorted((c.name, c.path) for c in ps.customer_managed_policies):
            out.append("customer managed policies")
        if (have["inline"] or None) != (ps.inline_policy or None):
            out.append("inline policy")
        return out

    def forget(self) -> None:
        with self._lock:
            self._by_name = None
            self._details.clear()


def permission_sets_of(center: IdentityCenter) -> PermissionSets:
    return center.view("permission_sets", lambda: PermissionSets(center))


def _description(ps: PermissionSetConfig) -> str:
    return ps.description or f"managed by meshcore: {ps.name}"


# -- shared actions ------------------------------------------------------------------------------


def platform_actions(
    center: IdentityCenter, landing_zones: list[LandingZoneSpec], ctx: HookContext
) -> Observation:
    """Create, converge and provision the managed permission sets; check the referenced ones exist."""
    sets = permission_sets_of(center)
    ic = center.ic
    actions: list[Action] = []
    in_place: set[str] = set()
    problems: dict[str, str] = {}
    existing = sets.by_name()
    used = {t for m in _mappings(ic, landing_zones) for t in m}
    for ps in ic.permission_sets:
        if ps.name not in used:
            continue  # defined but mapped by no role: not created (nothing would use it)
        key = key_of(ps.name)
        arn = existing.get(ps.name)
        pending = ctx.journal.find("provision-permission-set", ps.name)
        if arn is None:
            actions.append(
                Action(
                    phase=Phase.ACCESS,
                    change=ChangeAction.CREATE,
                    resource="permission-set",
                    target=ps.name,
                    key=key,
                    run=partial(_create, center, sets, ps),
                )
            )
            continue
        marker = sets.marker
        if sets.details(arn)["tags"].get(marker[0]) != marker[1]:
            problems[key] = (
                f"a permission set named {ps.name!r} exists and is not meshcore's (no {marker[0]} tag)"
            )
            continue
        changes = sets.differences(arn, ps)
        stale = retries.listed(
            center.sso,
            "list_accounts_for_provisioned_permission_set",
            "AccountIds",
            InstanceArn=center.instance_arn,
            PermissionSetArn=arn,
            ProvisioningStatus="LATEST_PERMISSION_SET_NOT_PROVISIONED",
        )
        if not changes and not stale and pending is None:
            in_place.add(key)
            continue
        detail = "; ".join(changes) if changes else ""
        if stale:
            detail += f"{'; ' if detail else ''}{len(stale)} account(s) not on the latest version"
        if pending is not None and not changes:
            detail += f"{'; ' if detail else ''}finish the provisioning an earlier run started"
        actions.append(
            Action(
                phase=Phase.ACCESS,
                change=ChangeAction.UPDATE,
                resource="permission-set",
                target=ps.name,
                key=key,
                detail=detail + "; then provision it to every account that has it",
                run=partial(_converge, center, sets, ctx, ps, arn, pending),
            )
        )
    for target in sorted({t for m in _mappings(ic, landing_zones) for t in m if t.startswith("arn:")}):
        if target in existing.values():
            in_place.add(key_of(target))
        else:
            problems[key_of(target)] = (
                f"permission set {target} does not exist in the Identity Center instance"
            )
    return Observation(actions=tuple(actions), in_place=frozenset(in_place), problems=problems)


def _mappings(ic: Any, landing_zones: list[LandingZoneSpec]) -> list[tuple[str, ...]]:
    out = list(ic.role_mappings.values())
    for lz in landing_zones:
        out += list(lz.config.role_mappings.values())
    return out


def _create(center: IdentityCenter, sets: PermissionSets, ps: PermissionSetConfig) -> ActionResult:
    key, value = sets.marker
    arn = center.write(
        center.sso,
        "create_permission_set",
        InstanceArn=center.instance_arn,
        Name=ps.name,
        Description=_description(ps),
        SessionDuration=ps.session_duration,
        Tags=[{"Key": key, "Value": value}],
    )["PermissionSet"]["PermissionSetArn"]
    _apply_policies(center, arn, ps, {"managed": [], "customer": [], "inline": None})
    sets.forget()
    return ActionResult(message=f"created permission set {ps.name}")


def _converge(
    center: IdentityCenter,
    sets: PermissionSets,
    ctx: HookContext,
    ps: PermissionSetConfig,
    arn: str,
    pending: JournalEntry | None,
) -> ActionResult:
    entry = pending or ctx.journal.begin("provision-permission-set", ps.name, {"arn": arn})
    have = sets.details(arn)
    sso, inst = center.sso, center.instance_arn
    desc = have.get("describe") or {}
    if desc.get("SessionDuration") != ps.session_duration or (desc.get("Description") or "") != _description(
        ps
    ):
        center.write(
            sso,
            "update_permission_set",
            InstanceArn=inst,
            PermissionSetArn=arn,
            Description=_description(ps),
            SessionDuration=ps.session_duration,
        )
    _apply_policies(center, arn, ps, have)
    sets.forget()
    provisioned = retries.listed(
        sso,
        "list_accounts_for_provisioned_permission_set",
        "AccountIds",
        InstanceArn=inst,
        PermissionSetArn=arn,
    )
    if provisioned:
        status = center.write(
            sso,
            "provision_permission_set",
            InstanceArn=inst,
            PermissionSetArn=arn,
            TargetType="ALL_PROVISIONED_ACCOUNTS",
        )["PermissionSetProvisioningStatus"]
        entry.record_operation(status["RequestId"])
        center.poll(  # raises on FAILED or timeout; the intent stays open and the next run provisions again
            status,
            lambda rid: sso.describe_permission_set_provisioning_status(
                InstanceArn=inst, ProvisionPermissionSetRequestId=rid
            )["PermissionSetProvisioningStatus"],
            f"provisioning permission set {ps.name}",
        )
    entry.complete({"accounts": len(provisioned)})
    return ActionResult(message=f"converged {ps.name}; provisioned to {len(provisioned)} account(s)")


def _apply_policies(center: IdentityCenter, arn: str, ps: PermissionSetConfig, have: dict[str, Any]) -> None:
    sso, inst = center.sso, center.instance_arn
    for policy in sorted(set(ps.managed_policies) - set(have["managed"])):
        center.write(
            sso,
            "attach_managed_policy_to_permission_set",
            InstanceArn=inst,
            PermissionSetArn=arn,
            ManagedPolicyArn=policy,
        )
    for policy in sorted(set(have["managed"]) - set(ps.managed_policies)):
        center.write(
            sso,
            "detach_managed_policy_from_permission_set",
            InstanceArn=inst,
            PermissionSetArn=arn,
            ManagedPolicyArn=policy,
        )
    want_customer = {(c.name, c.path) for c in ps.customer_managed_policies}
    for name, path in sorted(want_customer - set(have["customer"])):
        center.write(
            sso,
            "attach_customer_managed_policy_reference_to_permission_set",
            InstanceArn=inst,
            PermissionSetArn=arn,
            CustomerManagedPolicyReference={"Name": name, "Path": path},
        )
    for name, path in sorted(set(have["customer"]) - want_customer):
        center.write(
            sso,
            "detach_customer_managed_policy_reference_from_permission_set",
            InstanceArn=inst,
            PermissionSetArn=arn,
            CustomerManagedPolicyReference={"Name": name, "Path": path},
        )
    if (have["inline"] or None) != (ps.inline_policy or None):
        if ps.inline_policy:
            center.write(
                sso,
                "put_inline_policy_to_permission_set",
                InstanceArn=inst,
                PermissionSetArn=arn,
                InlinePolicy=json.dumps(ps.inline_policy, separators=(",", ":")),
            )
        else:
            center.write(
                sso, "delete_inline_policy_from_permission_set", InstanceArn=inst, PermissionSetArn=arn
            )
