"""Access through IAM Identity Center: project role bindings -> groups, memberships, account assignments.

For each tenant and each mapped project role that has bindings, meshcore keeps
one group (named by ``group_name_pattern``, which starts with ``group_prefix``:
only such groups are ever touched), syncs its members from the bindings in
force, and keeps exactly the mapped permission sets assigned to it on the
tenant's account. Roles no longer bound or mapped lose their assignments and
members. Groups are created under a journal entry (the name is looked up
before creating, so a crash never duplicates one) and remembered per tenant
in the journal, so removal finds them without listing the identity store.

Assignment operations are asynchronous: each is polled until it ends, and a
``FAILED`` status fails the step with AWS's reason. Identity Center throttles
early: at most ``max_in_flight`` operations run at once across tenants, and
``ConflictException``/throttling are retried.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from meshcore.errors import PlatformError
from meshcore.models import TenantStatus
from meshcore.results import Change, ChangeAction, StepOutcome
from meshcore_aws import privilege
from meshcore_aws.calls import aws_call, error_code, is_retryable, paged
from meshcore_aws.config import AwsConfig, IdentityCenterConfig, PermissionSetConfig
from meshcore_aws.vending import Vendor


@dataclass
class RoleAccess:
    """What one project role of one tenant should have."""

    role: str
    group: str
    permission_sets: list[str]
    users: dict[str, Any] = field(default_factory=dict)  # identity-store user id -> config user


class IdentityCenter:
    """Identity Center state for one platform in one run (shared through the run cache)."""

    def __init__(self, sessions: Any, cfg: AwsConfig, sleep: Any, limiter: Any):
        assert cfg.identity_center is not None
        self.ic: IdentityCenterConfig = cfg.identity_center
        self.cfg = cfg
        self.sessions = sessions
        self.sleep = sleep
        self.limiter = limiter
        self._lock = threading.RLock()
        self._instance: tuple[str, str] | None = None
        self._users: dict[str, str | None] = {}
        self._ps_by_name: dict[str, str] | None = None
        self._ps_details: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, str | None] = {}
        self._members: dict[str, dict[str, str]] = {}
        self._assigned: dict[tuple[str, str], set[str]] = {}
        self._managed_done: dict[str, str] = {}

    @property
    def sso(self) -> Any:
        return self.sessions.client("management", "sso-admin")

    @property
    def ids(self) -> Any:
        return self.sessions.client("management", "identitystore")

    def call(self, client: Any, op: str, **kwargs: Any) -> Any:
        return aws_call(getattr(client, op), self.sleep, **kwargs)

    def write(self, client: Any, op: str, **kwargs: Any) -> Any:
        with self.limiter:
            return self.call(client, op, **kwargs)

    # -- instance and users --------------------------------------------------------------

    def instance(self) -> tuple[str, str]:
        with self._lock:
            if self._instance is None:
                if self.ic.instance_arn and self.ic.identity_store_id:
                    self._instance = (self.ic.instance_arn, self.ic.identity_store_id)
                else:
                    found = paged(self.sso.list_instances, "Instances", self.sleep)
                    if self.ic.instance_arn:
                        found = [i for i in found if i["InstanceArn"] == self.ic.instance_arn]
                    if len(found) != 1:
                        raise PlatformError(
                            f"found {len(found)} IAM Identity Center instances; set identity_center.instance_arn "
                            "and identity_store_id"
                        )
                    self._instance = (found[0]["InstanceArn"], found[0]["IdentityStoreId"])
            return self._instance

    def user_id(self, user: Any) -> str | None:
        key = user.id if self.ic.match_users_by == "user_name" else user.email
        with self._lock:
            if key in self._users:
                return self._users[key]
        if not key:
            return None
        path = {"user_name": "userName", "email": "emails.value"}[self.ic.match_users_by]
        try:
            uid = self.call(
                self.ids,
                "get_user_id",
                IdentityStoreId=self.instance()[1],
                AlternateIdentifier={"UniqueAttribute": {"AttributePath": path, "AttributeValue": key}},
            )["UserId"]
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            uid = None
        with self._lock:
            self._users[key] = uid
        return uid

    # -- permission sets ----------------------------------------------------------------

    def permission_sets(self) -> dict[str, str]:
        """Permission set name -> ARN for the whole instance (read once per run)."""
        with self._lock:
            if self._ps_by_name is None:
                arns = paged(
                    self.sso.list_permission_sets,
                    "PermissionSets",
                    self.sleep,
                    InstanceArn=self.instance()[0],
                )
                names = {}
                for arn in arns:
                    desc = self.call(
                        self.sso,
                        "describe_permission_set",
                        InstanceArn=self.instance()[0],
                        PermissionSetArn=arn,
                    )["PermissionSet"]
                    names[desc["Name"]] = arn
                    self._ps_details.setdefault(arn, {})["describe"] = desc
                self._ps_by_name = names
            return dict(self._ps_by_name)

    def name_of(self, arn: str) -> str:
        return next((n for n, a in self.permission_sets().items() if a == arn), arn.rsplit("/", 1)[-1])

    def details(self, arn: str) -> dict[str, Any]:
        """Managed policies and inline policy of a permission set (for the privilege guard)."""
        with self._lock:
            cached = self._ps_details.get(arn, {})
            if "managed" in cached:
                return cached
        inst = self.instance()[0]
        managed = paged(
            self.sso.list_managed_policies_in_permission_set,
            "AttachedManagedPolicies",
            self.sleep,
            InstanceArn=inst,
            PermissionSetArn=arn,
        )
        inline = (
            self.call(
                self.sso, "get_inline_policy_for_permission_set", InstanceArn=inst, PermissionSetArn=arn
            ).get("InlinePolicy")
            or ""
        )
        tags = paged(self.sso.list_tags_for_resource, "Tags", self.sleep, InstanceArn=inst, ResourceArn=arn)
        with self._lock:
            entry = self._ps_details.setdefault(arn, {})
            entry.update(
                {
                    "managed": [m["Arn"] for m in managed],
                    "inline": json.loads(inline) if inline else None,
                    "tags": {t["Key"]: t["Value"] for t in tags},
                }
            )
            return entry

    @property
    def marker(self) -> tuple[str, str]:
        return f"{self.cfg.tags.prefix}managed-by", "meshcore"

    def ensure_managed(self, ps: PermissionSetConfig) -> tuple[str, list[str]]:
        """Create or converge a permission set meshcore manages; returns (arn, what changed)."""
        with self._lock:
            if ps.name in self._managed_done:
                return self._managed_done[ps.name], []
            inst = self.instance()[0]
            arn = self.permission_sets().get(ps.name)
            done: list[str] = []
            if arn is None:
                key, value = self.marker
                arn = self.write(
                    self.sso,
                    "create_permission_set",
                    InstanceArn=inst,
                    Name=ps.name,
                    Description=ps.description or f"managed by meshcore: {ps.name}",
                    SessionDuration=ps.session_duration,
                    Tags=[{"Key": key, "Value": value}],
                )["PermissionSet"]["PermissionSetArn"]
                self._ps_by_name[ps.name] = arn  # type: ignore[index]
                self._ps_details[arn] = {
                    "managed": [],
                    "inline": None,
                    "tags": {key: value},
                    "describe": {
                        "SessionDuration": ps.session_duration,
                        "Description": ps.description or f"managed by meshcore: {ps.name}",
                    },
                }
                done.append(f"created permission set {ps.name}")
            current = self.details(arn)
            key, value = self.marker
            if current["tags"].get(key) != value:
                raise PlatformError(
                    f"a permission set named {ps.name!r} exists but is not managed by meshcore"
                )
            desc = current.get("describe") or {}
            want_desc = ps.description or f"managed by meshcore: {ps.name}"
            if desc.get("SessionDuration") != ps.session_duration or desc.get("Description") != want_desc:
                self.write(
                    self.sso,
                    "update_permission_set",
                    InstanceArn=inst,
                    PermissionSetArn=arn,
                    Description=want_desc,
                    SessionDuration=ps.session_duration,
                )
                current["describe"] = {
                    **desc,
                    "SessionDuration": ps.session_duration,
                    "Description": want_desc,
                }
                done.append(f"updated {ps.name}")
            for policy in sorted(set(ps.managed_policies) - set(current["managed"])):
                self.write(
                    self.sso,
                    "attach_managed_policy_to_permission_set",
                    InstanceArn=inst,
                    PermissionSetArn=arn,
                    ManagedPolicyArn=policy,
                )
                done.append(f"attached {policy.rsplit('/', 1)[-1]} to {ps.name}")
            for policy in sorted(set(current["managed"]) - set(ps.managed_policies)):
                self.write(
                    self.sso,
                    "detach_managed_policy_from_permission_set",
                    InstanceArn=inst,
                    PermissionSetArn=arn,
                    ManagedPolicyArn=policy,
                )
                done.append(f"detached {policy.rsplit('/', 1)[-1]} from {ps.name}")
            current["managed"] = list(ps.managed_policies)
            if (current["inline"] or None) != (ps.inline_policy or None):
                if ps.inline_policy:
                    self.write(
                        self.sso,
                        "put_inline_policy_to_permission_set",
                        InstanceArn=inst,
                        PermissionSetArn=arn,
                        InlinePolicy=json.dumps(ps.inline_policy, separators=(",", ":")),
                    )
                else:
                    self.write(
                        self.sso,
                        "delete_inline_policy_from_permission_set",
                        InstanceArn=inst,
                        PermissionSetArn=arn,
                    )
                current["inline"] = ps.inline_policy
                done.append(f"set the inline policy of {ps.name}")
            if done and not done[0].startswith("created"):
                self._provision_everywhere(arn)
                done.append(f"re-provisioned {ps.name} to its accounts")
            self._managed_done[ps.name] = arn
            return arn, done

    def _provision_everywhere(self, arn: str) -> None:
        inst = self.instance()[0]
        st = self.write(
            self.sso,
            "provision_permission_set",
            InstanceArn=inst,
            PermissionSetArn=arn,
            TargetType="ALL_PROVISIONED_ACCOUNTS",
        )["PermissionSetProvisioningStatus"]
        self._poll(
            st,
            lambda rid: self.call(
                self.sso,
                "describe_permission_set_provisioning_status",
                InstanceArn=inst,
                ProvisionPermissionSetRequestId=rid,
            )["PermissionSetProvisioningStatus"],
            f"provisioning permission set {self.name_of(arn)}",
        )

    # -- groups, members, assignments -----------------------------------------------------

    def group_id(self, name: str) -> str | None:
        with self._lock:
            if name in self._groups:
                return self._groups[name]
        try:
            gid = self.call(
                self.ids,
                "get_group_id",
                IdentityStoreId=self.instance()[1],
                AlternateIdentifier={
                    "UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": name}
                },
            )["GroupId"]
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            gid = None
        with self._lock:
            self._groups[name] = gid
        return gid

    def create_group(self, name: str, description: str) -> str:
        """Create a group; if it exists already (a retried create whose answer was lost), adopt it."""
        from meshcore.retry import call_with_retries

        def once() -> str:
            with self.limiter:
                return self.ids.create_group(
                    IdentityStoreId=self.instance()[1], DisplayName=name, Description=description
                )["GroupId"]

        try:
            gid = call_with_retries(
                once,
                retry_on=lambda e: is_retryable(e) and error_code(e) != "ConflictException",
                sleep=self.sleep,
            )
        except Exception as exc:
            if error_code(exc) != "ConflictException":
                raise
            with self._lock:
                self._groups.pop(name, None)
            found = self.group_id(name)
            if found is None:
                raise
            gid = found
        with self._lock:
            self._groups[name] = gid
            self._members.setdefault(gid, {})
        return gid

    def delete_group(self, gid: str, name: str) -> None:
        try:
            self.write(self.ids, "delete_group", IdentityStoreId=self.instance()[1], GroupId=gid)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
        with self._lock:
            self._groups[name] = None

    def members(self, gid: str) -> dict[str, str]:
        """User id -> membership id."""
        with self._lock:
            if gid in self._members:
                return dict(self._members[gid])
        listed = paged(
            self.ids.list_group_memberships,
            "GroupMemberships",
            self.sleep,
            IdentityStoreId=self.instance()[1],
            GroupId=gid,
        )
        found = {
            m["MemberId"]["UserId"]: m["MembershipId"] for m in listed if "UserId" in m.get("MemberId", {})
        }
        with self._lock:
            self._members[gid] = found
        return dict(found)

    def add_member(self, gid: str, uid: str) -> None:
        try:
            mid = self.write(
                self.ids,
                "create_group_membership",
                IdentityStoreId=self.instance()[1],
                GroupId=gid,
                MemberId={"UserId": uid},
            )["MembershipId"]
        except Exception as exc:
            if error_code(exc) != "ConflictException":
                raise
            mid = "existing"
        with self._lock:
            self._members.setdefault(gid, {})[uid] = mid

    def remove_member(self, gid: str, uid: str, membership_id: str) -> None:
        try:
            self.write(
                self.ids,
                "delete_group_membership",
                IdentityStoreId=self.instance()[1],
                MembershipId=membership_id,
            )
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
        with self._lock:
            self._members.get(gid, {}).pop(uid, None)

    def assigned(self, gid: str, account: str) -> set[str]:
        """Permission set ARNs assigned to a group on an account."""
        key = (gid, account)
        with self._lock:
            if key in self._assigned:
                return set(self._assigned[key])
        listed = paged(
            self.sso.list_account_assignments_for_principal,
            "AccountAssignments",
            self.sleep,
            InstanceArn=self.instance()[0],
            PrincipalId=gid,
            PrincipalType="GROUP",
            Filter={"AccountId": account},
        )
        found = {a["PermissionSetArn"] for a in listed if a.get("AccountId") == account}
        with self._lock:
            self._assigned[key] = found
        return set(found)

    def assign(self, gid: str, account: str, arn: str, create: bool) -> None:
        inst = self.instance()[0]
        kwargs = {
            "InstanceArn": inst,
            "TargetId": account,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": arn,
            "PrincipalType": "GROUP",
            "PrincipalId": gid,
        }
        if create:
            st = self.write(self.sso, "create_account_assignment", **kwargs)[
                "AccountAssignmentCreationStatus"
            ]
            self._poll(
                st,
                lambda rid: self.call(
                    self.sso,
                    "describe_account_assignment_creation_status",
                    InstanceArn=inst,
                    AccountAssignmentCreationRequestId=rid,
                )["AccountAssignmentCreationStatus"],
                f"assigning {self.name_of(arn)} on {account}",
            )
        else:
            st = self.write(self.sso, "delete_account_assignment", **kwargs)[
                "AccountAssignmentDeletionStatus"
            ]
            self._poll(
                st,
                lambda rid: self.call(
                    self.sso,
                    "describe_account_assignment_deletion_status",
                    InstanceArn=inst,
                    AccountAssignmentDeletionRequestId=rid,
                )["AccountAssignmentDeletionStatus"],
                f"removing {self.name_of(arn)} from {account}",
            )
        with self._lock:
            current = self._assigned.setdefault((gid, account), set())
            (current.add if create else current.discard)(arn)

    def _poll(self, status: dict[str, Any], describe: Any, what: str) -> None:
        interval = self.cfg.poll_interval_seconds
        for _ in range(120):
            state = status.get("Status")
            if state == "SUCCEEDED":
                return
            if state == "FAILED":
                raise PlatformError(f"{what} FAILED: {status.get('FailureReason') or 'no reason given'}")
            self.sleep(interval)
            status = describe(status["RequestId"])
        raise PlatformError(f"{what} did not finish; the next run checks again")


class Access:
    """Access replication for one platform in one run."""

    def __init__(self, vendor: Vendor):
        self.vendor = vendor
        self.cfg = vendor.cfg
        self.ctx = vendor.ctx
        ic = self.cfg.identity_center
        self.enabled = ic is not None
        if ic is not None:
            self.ic = ic
            self.center: IdentityCenter = self.ctx.cache.get(
                "aws:identity-center",
                lambda: IdentityCenter(
                    vendor.sessions,
                    self.cfg,
                    self.ctx.sleep,
                    self.ctx.limiter("identity-center", ic.max_in_flight),
                ),
            )

    # -- desired ---------------------------------------------------------------------------

    def mapping(self, tenant: Any) -> dict[str, tuple[str, ...]]:
        return {**self.ic.role_mappings, **tenant.landing_zone.config.role_mappings}

    def group_name(self, tenant: Any, role: str) -> str:
        return (
            self.ic.group_name_pattern.replace("{workspace}", tenant.workspace.id)
            .replace("{project}", tenant.project.id)
            .replace("{platform}", tenant.platform_id)
            .replace("{role}", role)
        )

    def resolve(self, tenant: Any, write: bool) -> tuple[dict[str, list[str]], list[str]]:
        """Role -> permission set ARNs, checked (exists, privilege guard) before any write."""
        managed = {p.name: p for p in self.ic.permission_sets}
        existing = self.center.permission_sets()
        lz = tenant.landing_zone.config
        out: dict[str, list[str]] = {}
        done: list[str] = []
        for role, targets in self.mapping(tenant).items():
            arns = []
            for target in targets:
                if target.startswith("arn:"):
                    if target not in existing.values():
                        raise PlatformError(
                            f"role mapping {role!r} names permission set {target}, "
                            "which does not exist in the Identity Center instance"
                        )
                    details = self.center.details(target)
                    why = privilege.reasons(details["managed"], details["inline"])
                    arn = target
                else:
                    ps = managed[target]
                    why = privilege.reasons(ps.managed_policies, ps.inline_policy)
                    arn = existing.get(target, f"(to be created: {target})")
                if why and not privilege.bounded(lz):
                    raise PlatformError(
                        f"role {role!r} maps to privileged permission set {target} ({', '.join(why)}); landing zone "
                        f"{tenant.landing_zone.id!r} must set allow_privileged_roles and attach an SCP that bounds it"
                    )
                if write and not target.startswith("arn:"):
                    arn, changes = self.center.ensure_managed(managed[target])
                    done += changes
                arns.append(arn)
            out[role] = arns
        return out, done

    def desired(
        self, tenant: Any, resolved: dict[str, list[str]]
    ) -> tuple[dict[str, RoleAccess], list[tuple[str, str]]]:
        """Roles with bindings in force, their members, and (binding, problem) pairs for unknown users."""
        roles: dict[str, RoleAccess] = {}
        unknown: list[tuple[str, str]] = []
        if tenant.status != TenantStatus.ACTIVE:
            return roles, unknown
        for b in tenant.bindings:
            if b.role not in resolved:
                continue
            ra = roles.setdefault(
                b.role, RoleAccess(b.role, self.group_name(tenant, b.role), resolved[b.role])
            )
            for user in b.users:
                uid = self.center.user_id(user)
                if uid is None:
                    subject = f"user {user.id}" if b.user else f"user {user.id} (via group {b.group})"
                    unknown.append(
                        (
                            f"{subject} -> {b.role}",
                            f"{user.id} is not in the Identity Center identity store "
                            f"(matched by {self.ic.match_users_by})",
                        )
                    )
                else:
                    ra.users[uid] = user
        return roles, unknown

    def recorded(self, tenant: Any) -> dict[str, dict[str, Any]]:
        """Role -> {group_id, name} of the groups meshcore created for this tenant."""
        latest: dict[str, dict[str, Any]] = {}
        for entry in self.ctx.journal.history("ic-group", key_prefix=f"{tenant.key}:"):
            if entry.status == "done":
                latest[entry.key.rsplit(":", 1)[1]] = entry.result
        return {role: r for role, r in latest.items() if not r.get("deleted")}

    # -- plan -------------------------------------------------------------------------

    def plan(self, tenant: Any) -> list[Change]:
        if not self.enabled or tenant.platform_tenant_id is None or self.vendor.inactive(tenant):
            return []
        aid = tenant.platform_tenant_id
        resolved, _ = self.resolve(tenant, write=False)
        roles, unknown = self.desired(tenant, resolved)
        changes = [
            Change(action=ChangeAction.UPDATE, resource=f"binding {b}", detail=f"SKIPPED: {why}")
            for b, why in unknown
        ]
        recorded = self.recorded(tenant)
        for role, ra in roles.items():
            gid = (recorded.get(role) or {}).get("group_id") or self.center.group_id(ra.group)
            if gid is None:
                changes.append(Change(action=ChangeAction.CREATE, resource=f"group {ra.group}"))
                have_members: dict[str, str] = {}
                have_ps: set[str] = set()
            else:
                have_members, have_ps = self.center.members(gid), self.center.assigned(gid, aid)
            for uid, user in sorted(ra.users.items(), key=lambda x: x[1].id):
                if uid not in have_members:
                    changes.append(
                        Change(
                            action=ChangeAction.CREATE,
                            resource=f"member {role}",
                            after=user.id,
                            detail=f"{user.id} gains {role}",
                        )
                    )
            for uid in sorted(set(have_members) - set(ra.users)):
                changes.append(
                    Change(
                        action=ChangeAction.DELETE,
                        resource=f"member {role}",
                        before=uid,
                        detail=f"user {uid} loses {role}",
                    )
                )
            for arn in ra.permission_sets:
                if arn not in have_ps:
                    changes.append(
                        Change(
                            action=ChangeAction.CREATE,
                            resource=f"assignment {role}",
                            after=self.center.name_of(arn) if arn.startswith("arn:") else arn,
                        )
                    )
            for arn in sorted(have_ps - set(ra.permission_sets)):
                changes.append(
                    Change(
                        action=ChangeAction.DELETE,
                        resource=f"assignment {role}",
                        before=self.center.name_of(arn),
                    )
                )
        for role, rec in recorded.items():
            if role in roles:
                continue
            for arn in sorted(self.center.assigned(rec["group_id"], aid)):
                changes.append(
                    Change(
                        action=ChangeAction.DELETE,
                        resource=f"assignment {role}",
                        before=self.center.name_of(arn),
                        detail=f"{role} no longer bound or mapped",
                    )
                )
        return changes

    # -- apply ------------------------------------------------------------------------

    def apply(self, tenant: Any) -> StepOutcome:
        if not self.enabled:
            return StepOutcome(changed=False, message="identity_center is not configured")
        aid = tenant.platform_tenant_id
        if aid is None:
            return StepOutcome(changed=False, message="no account yet")
        if tenant.status == TenantStatus.DELETED:
            return self._delete_groups(tenant)
        why = self.vendor.inactive(tenant)
        if why and tenant.status == TenantStatus.ACTIVE:
            return StepOutcome(changed=False, message=why)
        if aid == self.vendor.org.management_account_id:
            raise PlatformError("refusing to assign anything in the management account")
        active = tenant.status == TenantStatus.ACTIVE
        resolved, ps_changes = self.resolve(tenant, write=True) if active else ({}, [])
        roles, unknown = self.desired(tenant, resolved)
        summary: list[str] = list(ps_changes)
        for binding, problem in unknown:
            with self.ctx.step(f"binding {binding}") as step:
                step.fail(problem)
        recorded = self.recorded(tenant)
        for role, ra in roles.items():
            with self.ctx.step(f"access {role}") as step:
                gid = self._ensure_group(tenant, role, ra.group, recorded)
                done = self._sync(role, gid, aid, ra)
                if done:
                    step.changed("; ".join(done))
                    summary += done
        for role, rec in recorded.items():
            if role in roles:
                continue
            with self.ctx.step(f"revoke {role}") as step:
                done = self._revoke(
                    role, rec["group_id"], aid, clear_members=tenant.status == TenantStatus.ACTIVE
                )
                if done:
                    step.changed("; ".join(done))
                    summary += done
        return StepOutcome(changed=bool(summary), message="; ".join(summary)[:2000])

    def _ensure_group(self, tenant: Any, role: str, name: str, recorded: dict[str, dict[str, Any]]) -> str:
        if role in recorded and recorded[role].get("name") == name:
            return recorded[role]["group_id"]
        key = f"{tenant.key}:{role}"
        entry = self.ctx.journal.find("ic-group", key) or self.ctx.journal.begin(
            "ic-group", key, {"name": name}
        )
        gid = self.center.group_id(name)  # created by a run that died before recording it?
        if gid is None:
            gid = self.center.create_group(
                name, f"meshcore: {role} of {tenant.workspace.id}/{tenant.project.id}"
            )
        entry.record_operation(gid)
        entry.complete({"group_id": gid, "name": name})
        return gid

    def _sync(self, role: str, gid: str, aid: str, ra: RoleAccess) -> list[str]:
        done = []
        have = self.center.members(gid)
        for uid, user in sorted(ra.users.items(), key=lambda x: x[1].id):
            if uid not in have:
                self.center.add_member(gid, uid)
                done.append(f"+{role}: {user.id}")
        for uid in sorted(set(have) - set(ra.users)):
            self.center.remove_member(gid, uid, have[uid])
            done.append(f"-{role}: user {uid}")
        assigned = self.center.assigned(gid, aid)
        for arn in ra.permission_sets:
            if arn not in assigned:
                self.center.assign(gid, aid, arn, create=True)
                done.append(f"assigned {self.center.name_of(arn)} to {ra.group}")
        for arn in sorted(assigned - set(ra.permission_sets)):
            self.center.assign(gid, aid, arn, create=False)
            done.append(f"unassigned {self.center.name_of(arn)} from {ra.group}")
        return done

    def _revoke(self, role: str, gid: str, aid: str, clear_members: bool) -> list[str]:
        done = []
        for arn in sorted(self.center.assigned(gid, aid)):
            self.center.assign(gid, aid, arn, create=False)
            done.append(f"unassigned {self.center.name_of(arn)} ({role})")
        if clear_members:
            for uid, mid in sorted(self.center.members(gid).items()):
                self.center.remove_member(gid, uid, mid)
                done.append(f"-{role}: user {uid}")
        return done

    def _delete_groups(self, tenant: Any) -> StepOutcome:
        done = []
        for role, rec in self.recorded(tenant).items():
            with self.ctx.step(f"delete group {rec['name']}") as step:
                if tenant.platform_tenant_id:
                    done += self._revoke(role, rec["group_id"], tenant.platform_tenant_id, clear_members=True)
                if not self.ic.keep_groups:
                    self.center.delete_group(rec["group_id"], rec["name"])
                    entry = self.ctx.journal.begin("ic-group", f"{tenant.key}:{role}", {"name": rec["name"]})
                    entry.complete({"deleted": True, "name": rec["name"]})
                    done.append(f"deleted group {rec['name']}")
                    step.changed(done[-1])
        return StepOutcome(changed=bool(done), message="; ".join(done))


def static_problems(cfg: AwsConfig, landing_zones: list[Any]) -> list[tuple[str, str | None, str]]:
    """(path, landing zone, message) for mappings naming unknown permission sets or privileged ones unbounded."""
    ic = cfg.identity_center
    out: list[tuple[str, str | None, str]] = []
    if ic is None:
        for lz in landing_zones:
            if lz.config.role_mappings:
                out.append(
                    ("role_mappings", lz.id, "role mappings need identity_center in the platform config")
                )
        return out
    managed = {p.name: p for p in ic.permission_sets}
    for role, targets in ic.role_mappings.items():
        for t in targets:
            if not t.startswith("arn:") and t not in managed:
                out.append(
                    (
                        f"identity_center.role_mappings.{role}",
                        None,
                        f"permission set {t!r} is neither an ARN nor defined in identity_center.permission_sets",
                    )
                )
    for lz in landing_zones:
        zone = lz.config
        for role, targets in zone.role_mappings.items():
            for t in targets:
                if not t.startswith("arn:") and t not in managed:
                    out.append(
                        (
                            f"role_mappings.{role}",
                            lz.id,
                            f"permission set {t!r} is neither an ARN nor defined in identity_center.permission_sets",
                        )
                    )
        effective = {**ic.role_mappings, **zone.role_mappings}
        for role, targets in effective.items():
            for t in targets:
                if t in managed:
                    why = privilege.reasons(managed[t].managed_policies, managed[t].inline_policy)
                    if why and not privilege.bounded(zone):
                        out.append(
                            (
                                f"role_mappings.{role}",
                                lz.id,
                                f"maps to privileged permission set {t!r} ({', '.join(why)}); set "
                                "allow_privileged_roles: true and attach an SCP with a Deny statement that bounds it",
                            )
                        )
    return out
