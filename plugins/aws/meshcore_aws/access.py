"""The access hook: project role bindings become Identity Center groups, memberships and assignments.

For each tenant and each mapped project role with bindings in force, meshcore
keeps one group (``group_name_pattern``), syncs its members from the bindings,
and keeps exactly the mapped permission sets assigned to it on the tenant's
account. Everything that takes access away is a ``revoke`` action (the core
runs those first, every run, for every tenant); everything that gives access is
an ``access`` action, run only once the account's earlier phases are confirmed,
and every grant (membership, assignment) requires every SCP of the landing zone
to be confirmed: meshcore's own policy, with the configured document, attached to
the OU or the account. A privileged permission set additionally needs a landing
zone that bounds it. Unknown users block only their own membership, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from meshcore import (
    Action,
    ActionResult,
    ChangeAction,
    HookContext,
    Observation,
    Phase,
    PlatformError,
    TenantSpec,
    TenantStatus,
)
from meshcore_aws import privilege
from meshcore_aws.assignments import Assignments, assignments_of
from meshcore_aws.config import AwsConfig, IdentityCenterConfig
from meshcore_aws.groups import Groups, description, groups_of
from meshcore_aws.guardrails import guardrail_keys
from meshcore_aws.identity_center import IdentityCenter
from meshcore_aws.permission_sets import PermissionSets, key_of, permission_sets_of
from meshcore_aws.run import AwsRun


@dataclass
class RoleAccess:
    """What one project role of one tenant should have."""

    role: str
    group: str
    targets: list[str]  # permission set names (managed) or ARNs
    users: dict[str, Any] = field(default_factory=dict)  # identity-store user id -> config user
    unknown: list[str] = field(default_factory=list)  # config user ids not in the identity store


def mapping(ic: IdentityCenterConfig, tenant: TenantSpec) -> dict[str, tuple[str, ...]]:
    return {**ic.role_mappings, **tenant.landing_zone.config.role_mappings}


def group_name(ic: IdentityCenterConfig, tenant: TenantSpec, role: str) -> str:
    return (
        ic.group_name_pattern.replace("{workspace}", tenant.workspace.id)
        .replace("{project}", tenant.project.id)
        .replace("{platform}", tenant.platform_id)
        .replace("{role}", role)
    )


class Access:
    """Access of one tenant in one run."""

    def __init__(self, run: AwsRun, tenant: TenantSpec, ctx: HookContext):
        self.run = run
        self.cfg: AwsConfig = run.cfg
        assert self.cfg.identity_center is not None
        self.ic = self.cfg.identity_center
        self.tenant = tenant
        self.ctx = ctx
        self.center: IdentityCenter = run.identity_center
        self.groups: Groups = groups_of(self.center)
        run.once("groups-expected", lambda: self.groups.expect(len(ctx.resources.all("ic-group"))))
        self.assignments: Assignments = assignments_of(self.center)
        self.sets: PermissionSets = permission_sets_of(self.center)

    # -- desired -------------------------------------------------------------------------

    def desired(self) -> dict[str, RoleAccess]:
        roles: dict[str, RoleAccess] = {}
        if self.tenant.status != TenantStatus.ACTIVE:
            return roles
        targets = mapping(self.ic, self.tenant)
        for b in self.tenant.bindings:
            if b.role not in targets:
                continue
            ra = roles.setdefault(
                b.role, RoleAccess(b.role, group_name(self.ic, self.tenant, b.role), list(targets[b.role]))
            )
            for user in b.users:
                uid = self.center.user_id(user)
                if uid is None:
                    ra.unknown.append(user.id)
                else:
                    ra.users[uid] = user
        return roles

    def arn(self, target: str) -> str | None:
        return target if target.startswith("arn:") else self.sets.by_name().get(target)

    def privileged(self, target: str) -> privilege.Verdict:
        snapshot = self.ic.managed_policies_file
        if target.startswith("arn:"):
            if target not in self.sets.by_name().values():
                return (
                    privilege.Verdict()
                )  # does not exist: its assignment is blocked by its permission-set key
            details = self.sets.details(target)
            customer = [f"{path}{name}" for name, path in details["customer"]]
            return privilege.judge(details["managed"], details["inline"], customer, snapshot)
        ps = next(p for p in self.ic.permission_sets if p.name == target)
        return privilege.judge_config(ps, snapshot)

    # -- observe --------------------------------------------------------------------------

    def observe(self) -> Observation:
        tenant, aid = self.tenant, self.tenant.platform_tenant_id
        if aid is not None and aid == self.run.org.management_account_id:
            raise PlatformError("refusing to grant anything in the management account")
        roles = self.desired()
        recorded = {r.key: r for r in self.ctx.resources.owned("ic-group")}
        actions: list[Action] = []
        problems: dict[str, str] = {}
        in_place: set[str] = set()
        for name, rec in sorted(recorded.items()):
            role = rec.data.get("role", "")
            if role in roles and roles[role].group == name:
                continue
            actions += self._revoke_group(rec.cloud_id, name, role, aid, clear_members=True)
            if (
                tenant.status == TenantStatus.ACTIVE and not self.ic.keep_groups
            ):  # a role no longer bound or mapped
                actions.append(self._delete_group(rec.cloud_id, name, Phase.REVOKE))
        for _role, ra in sorted(roles.items()):
            actions += self._role(ra, recorded.get(ra.group), aid, problems, in_place)
        if tenant.status != TenantStatus.ACTIVE and tenant.deletion_approved and not self.ic.keep_groups:
            actions += [
                self._delete_group(rec.cloud_id, name, Phase.CLEANUP)
                for name, rec in sorted(recorded.items())
            ]
        return Observation(actions=tuple(actions), problems=problems, in_place=frozenset(in_place))

    def _role(
        self, ra: RoleAccess, recorded: Any, aid: str | None, problems: dict[str, str], in_place: set[str]
    ) -> list[Action]:
        tenant = self.tenant
        group_key = f"group:{ra.role}@{tenant.key}"
        gid = recorded.cloud_id if recorded is not None else None
        actions: list[Action] = []
        if gid is not None:
            in_place.add(group_key)
        else:
            existing = self.groups.group_id(ra.group)
            free = f"group-name-free:{ra.group}"
            if (
                existing is not None
                and self.ctx.journal.find("create-group", ra.group) is None
                and self.groups.description_of(existing) != description(tenant.key, ra.role)
            ):
                problems[free] = (
                    f"an Identity Center group named {ra.group!r} exists and meshcore did not create it for "
                    f"{tenant.key}; rename or remove it (it is never taken over)"
                )
            actions.append(
                Action(
                    phase=Phase.ACCESS,
                    change=ChangeAction.CREATE,
                    resource="group",
                    target=ra.group,
                    key=group_key,  # nothing of access exists before the account's guardrails
                    requires=(
                        *((free,) if free in problems else ()),
                        *guardrail_keys(self.cfg, tenant.landing_zone.config, tenant),
                    ),
                    run=lambda: self._create_group(ra),
                )
            )
        members = self.groups.members(gid) if gid else {}
        assigned = self.assignments.of(gid, aid) if gid and aid else set()
        wanted_arns = {t: self.arn(t) for t in ra.targets}
        for uid in sorted(set(members) - set(ra.users)):
            actions.append(self._remove_member(gid, uid, members[uid], ra.role))  # type: ignore[arg-type]
        for arn in sorted(assigned - {a for a in wanted_arns.values() if a}):
            actions.append(self._unassign(gid, arn, ra.role))  # type: ignore[arg-type]
        for uid, user in sorted(ra.users.items(), key=lambda x: x[1].id):
            if uid not in members:
                actions.append(
                    Action(
                        phase=Phase.ACCESS,
                        change=ChangeAction.CREATE,
                        resource="group-member",
                        target=f"{user.id} → {ra.group}",
                        detail=f"{user.id} gains {ra.role}",
                        requires=(group_key, *guardrail_keys(self.cfg, tenant.landing_zone.config, tenant)),
                        run=partial(self._add_member, ra, uid),
                    )
                )
        for user_id in sorted(ra.unknown):
            key = f"user:{user_id}"
            problems[key] = (
                f"{user_id} is not in the Identity Center identity store (matched by {self.ic.match_users_by})"
            )
            actions.append(
                Action(
                    phase=Phase.ACCESS,
                    change=ChangeAction.CREATE,
                    resource="group-member",
                    target=f"{user_id} → {ra.group}",
                    requires=(key,),
                    run=lambda: None,
                )
            )
        for target, wanted_arn in wanted_arns.items():
            if wanted_arn is not None and wanted_arn in assigned:
                continue
            why = self.privileged(target)
            needs = (group_key, key_of(target), *guardrail_keys(self.cfg, tenant.landing_zone.config, tenant))
            gaps = privilege.unbounded(tenant.landing_zone.config, why)
            if gaps:
                unbounded = f"privilege-bounded:{target}@{tenant.landing_zone.id}"
                problems[unbounded] = (
                    f"role {ra.role!r} maps to privileged permission set {target} ({'; '.join(why.reasons)}), "
                    f"which landing zone {tenant.landing_zone.id!r} does not bound: {'; '.join(gaps)}"
                )
                needs += (unbounded,)
            actions.append(
                Action(
                    phase=Phase.ACCESS,
                    change=ChangeAction.CREATE,
                    resource="assignment",
                    target=f"{target.rsplit('/', 1)[-1]} → {ra.group}",
                    detail=f"{ra.role} on {aid or 'the new account'}"
                    + (" (privileged: bounded by the SCPs)" if why else ""),
                    requires=needs,
                    run=partial(self._assign, ra, target),
                )
            )
        return actions

    def _revoke_group(
        self, gid: str, name: str, role: str, aid: str | None, clear_members: bool
    ) -> list[Action]:
        actions = (
            [self._unassign(gid, arn, role) for arn in sorted(self.assignments.of(gid, aid))] if aid else []
        )
        if clear_members:
            actions += [
                self._remove_member(gid, uid, mid, role)
                for uid, mid in sorted(self.groups.members(gid).items())
            ]
        return actions

    # -- actions --------------------------------------------------------------------------

    def _unassign(self, gid: str, arn: str, role: str) -> Action:
        label = self.sets.name_of(arn)

        def go() -> ActionResult:
            aid = self._bound()
            self.assignments.delete(gid, aid, arn, label)
            return ActionResult(message=f"unassigned {label} ({role}) from {aid}")

        return Action(
            phase=Phase.REVOKE,
            change=ChangeAction.DELETE,
            resource="assignment",
            target=f"{label} ({role})",
            key=f"unassign:{gid}:{arn}",
            run=go,
        )

    def _remove_member(self, gid: str, uid: str, membership_id: str, role: str) -> Action:
        def go() -> ActionResult:
            self.groups.remove(gid, uid, membership_id)
            return ActionResult(message=f"user {uid} loses {role}")

        return Action(
            phase=Phase.REVOKE,
            change=ChangeAction.DELETE,
            resource="group-member",
            target=f"{uid} ({role})",
            key=f"remove-member:{gid}:{uid}",
            detail=f"user {uid} loses {role}",
            run=go,
        )

    def _create_group(self, ra: RoleAccess) -> ActionResult:
        entry = self.ctx.journal.find("create-group", ra.group) or self.ctx.journal.begin(
            "create-group", ra.group, {"tenant": self.tenant.key, "role": ra.role}
        )
        gid = self.groups.group_id(ra.group)  # created by a run that died before recording it?
        if gid is None:
            gid = self.groups.create(ra.group, description(self.tenant.key, ra.role))
        # recorded and closed at once; a crash before this is recovered by the group's name (GetGroupId)
        self.ctx.resources.put(
            "ic-group",
            ra.group,
            cloud_id=gid,
            data={"role": ra.role},
            completes=entry,
            result={"group_id": gid},
        )
        return ActionResult(message=f"created group {ra.group}")

    def _gid(self, ra: RoleAccess) -> str:
        rec = self.ctx.resources.get("ic-group", ra.group)
        if rec is None:
            raise PlatformError(f"group {ra.group} was not created")
        return rec.cloud_id

    def _add_member(self, ra: RoleAccess, uid: str) -> ActionResult:
        self.groups.add(self._gid(ra), uid)
        return ActionResult(message=f"{ra.users[uid].id} gains {ra.role}")

    def _assign(self, ra: RoleAccess, target: str) -> ActionResult:
        arn = self.arn(target)
        if arn is None:
            raise PlatformError(f"permission set {target} does not exist")
        aid = self._bound()
        self.assignments.create(self._gid(ra), aid, arn, target)
        return ActionResult(message=f"assigned {target} to {ra.group} on {aid}")

    def _delete_group(self, gid: str, name: str, phase: Phase) -> Action:
        def go() -> ActionResult:
            self.groups.delete(gid, name)
            self.ctx.resources.remove("ic-group", name)
            return ActionResult(message=f"deleted group {name}")

        return Action(phase=phase, change=ChangeAction.DELETE, resource="group", target=name, run=go)

    def _bound(self) -> str:
        if self.ctx.platform_tenant_id is None:
            raise PlatformError("the tenant has no account yet")
        return self.ctx.platform_tenant_id


def access_actions(run: AwsRun, tenant: TenantSpec, ctx: HookContext) -> Observation:
    if run.cfg.identity_center is None:
        return Observation()
    return Access(run, tenant, ctx).observe()


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
        for role, targets in {**ic.role_mappings, **zone.role_mappings}.items():
            for t in targets:
                if t in managed:
                    why = privilege.judge_config(managed[t], ic.managed_policies_file)
                    gaps = privilege.unbounded(zone, why)
                    if gaps:
                        out.append(
                            (
                                f"role_mappings.{role}",
                                lz.id,
                                f"maps to privileged permission set {t!r} ({'; '.join(why.reasons)}), which this "
                                f"landing zone does not bound: {'; '.join(gaps)}. Set allow_privileged_roles: true "
                                "and attach an SCP that denies these actions (see docs/aws.md, the privilege guard)",
                            )
                        )
    return out
