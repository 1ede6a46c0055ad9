"""Service Control Policies: the landing zones' OUs and their SCPs (shared), and SCPs on each account.

meshcore owns a policy when its name starts with ``scp_name_prefix`` *and* it
carries the tag ``<tags.prefix>managed-by=meshcore``; it never updates,
attaches, detaches or deletes any other policy. A policy of that name without
the tag is reported as a conflict, never taken over.

Keys other actions ``require`` (so nothing is placed or granted before its guardrails):

* ``ou:<ref>``: the landing zone's OU exists;
* ``scp-type``: the SCP policy type is enabled on the root;
* ``scp-policy:<name>``: the owned policy exists with the configured document;
* ``scp-ou:<name>@<ref>``: it is attached to the OU;
* ``scp-account:<name>@<tenant>``: it is attached to the tenant's account.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from meshcore import (
    Action,
    ActionResult,
    ActionStatus,
    ChangeAction,
    HookContext,
    LandingZoneSpec,
    Observation,
    Phase,
    PlatformError,
    TenantSpec,
)
from meshcore_aws import retries
from meshcore_aws.config import AwsConfig, AwsLandingZone, ScpConfig
from meshcore_aws.organization import OrgView
from meshcore_aws.policies import SCP_MAX_PER_TARGET

SCP = "SERVICE_CONTROL_POLICY"


def full_name(cfg: AwsConfig, scp: ScpConfig) -> str:
    return f"{cfg.scp_name_prefix}{scp.name}"


def ou_scps(lz: AwsLandingZone) -> list[ScpConfig]:
    return [s for s in lz.scps if s.attach_to == "ou"]


def account_scps(lz: AwsLandingZone) -> list[ScpConfig]:
    return [s for s in lz.scps if s.attach_to == "account"]


def target_keys(cfg: AwsConfig, lz: AwsLandingZone) -> tuple[str, ...]:
    """What must be in place before an account is created in, or moved to, the landing zone's OU."""
    keys = [f"ou:{lz.ou}"]
    if lz.scps:
        keys.append("scp-type")
    keys += [f"scp-ou:{full_name(cfg, s)}@{lz.ou}" for s in ou_scps(lz)]
    return tuple(keys)


def guardrail_keys(cfg: AwsConfig, lz: AwsLandingZone, tenant: TenantSpec) -> tuple[str, ...]:
    """Every SCP of the landing zone confirmed: meshcore's, with the configured document, attached to the
    OU or to the account. Every grant of access requires these."""
    return (
        target_keys(cfg, lz)
        + tuple(f"scp-policy:{full_name(cfg, s)}" for s in lz.scps)
        + tuple(f"scp-account:{full_name(cfg, s)}@{tenant.key}" for s in account_scps(lz))
    )


class Guardrails:
    """SCP state of one organization for one run (shared by all tenants through the run)."""

    def __init__(self, org: OrgView, config: AwsConfig):
        self.org = org
        self.cfg = config
        self._lock = threading.RLock()
        self._policies: dict[str, dict[str, Any]] | None = None  # name -> summary
        self._content: dict[str, str] = {}  # policy id -> content
        self._owned: dict[str, bool] = {}  # policy id -> carries our tag
        self._attached: dict[str, dict[str, str]] = {}  # target -> {policy id: name}

    @property
    def marker(self) -> tuple[str, str]:
        return f"{self.cfg.tags.prefix}managed-by", "meshcore"

    # -- reads ------------------------------------------------------------------------

    def enabled(self) -> bool:
        root = self.org.root()
        return any(t["Type"] == SCP and t["Status"] == "ENABLED" for t in root.get("PolicyTypes", []))

    def policies(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            if self._policies is None:
                listed = retries.listed(self.org.client, "list_policies", "Policies", Filter=SCP)
                self._policies = {p["Name"]: p for p in listed}
            return self._policies

    def content(self, policy_id: str) -> str:
        with self._lock:
            if policy_id not in self._content:
                self._content[policy_id] = self.org.client.describe_policy(PolicyId=policy_id)["Policy"][
                    "Content"
                ]
            return self._content[policy_id]

    def owned(self, policy_id: str, name: str) -> bool:
        if not name.startswith(self.cfg.scp_name_prefix):
            return False
        with self._lock:
            if policy_id not in self._owned:
                key, value = self.marker
                self._owned[policy_id] = self.org.tags_of(policy_id).get(key) == value
            return self._owned[policy_id]

    def attached(self, target: str) -> dict[str, str]:
        with self._lock:
            if target not in self._attached:
                listed = retries.listed(
                    self.org.client, "list_policies_for_target", "Policies", TargetId=target, Filter=SCP
                )
                self._attached[target] = {p["Id"]: p["Name"] for p in listed}
            return dict(self._attached[target])

    def differs(self, policy_id: str, scp: ScpConfig, summary: dict[str, Any]) -> bool:
        """Compare documents as parsed JSON (a console edit that only reformats is no change)."""
        try:
            same = json.loads(self.content(policy_id)) == scp.document
        except ValueError:
            same = False
        return not same or summary.get("Description", "") != scp.description

    # -- writes -------------------------------------------------------------------------

    def enable(self, sleep: Any, wait: float) -> ActionResult:
        """Enable the SCP policy type and wait until AWS reports it ENABLED (it passes PENDING_ENABLE)."""
        try:
            self.org.write("enable_policy_type", RootId=self.org.root_id(), PolicyType=SCP)
        except ClientError as exc:
            if retries.code(exc) != "PolicyTypeAlreadyEnabledException":
                raise
        for _ in range(max(1, int(wait))):
            if any(
                t["Type"] == SCP and t["Status"] == "ENABLED"
                for t in self.org.root(refresh=True).get("PolicyTypes", [])
            ):
                return ActionResult(message="SERVICE_CONTROL_POLICY enabled on the root")
            sleep(1.0)
        return ActionResult(
            status=ActionStatus.IN_PROGRESS, message="the SCP policy type is still being enabled"
        )

    def create(self, scp: ScpConfig) -> ActionResult:
        name = full_name(self.cfg, scp)
        key, value = self.marker
        try:
            created = self.org.write(
                "create_policy",
                Name=name,
                Description=scp.description,
                Type=SCP,
                Content=scp.content,
                Tags=[{"Key": key, "Value": value}],
            )["Policy"]["PolicySummary"]
        except ClientError as exc:
            if retries.code(exc) != "DuplicatePolicyException":
                raise
            with self._lock:
                self._policies = None  # created concurrently (another runner): read it back once
            found = self.policies().get(name)
            if found is None or not self.owned(found["Id"], name):
                raise PlatformError(f"an SCP named {name!r} appeared that meshcore does not own") from None
            return ActionResult(changed=False, message=f"{name} exists")
        with self._lock:
            self.policies()[name] = created
            self._content[created["Id"]] = scp.content
            self._owned[created["Id"]] = True
        return ActionResult(message=f"created {name}")

    def update(self, scp: ScpConfig) -> ActionResult:
        name = full_name(self.cfg, scp)
        found = self.policies()[name]
        self.org.write(
            "update_policy", PolicyId=found["Id"], Content=scp.content, Description=scp.description
        )
        with self._lock:
            self._content[found["Id"]] = scp.content
            found["Description"] = scp.description
        return ActionResult(message=f"updated {name}")

    def attach(self, name: str, target: str) -> ActionResult:
        policy = self.policies().get(name)
        if policy is None:
            raise PlatformError(f"SCP {name} does not exist")
        try:
            self.org.write("attach_policy", PolicyId=policy["Id"], TargetId=target)
        except ClientError as exc:
            if retries.code(exc) != "DuplicatePolicyAttachmentException":
                raise
        with self._lock:
            self._attached.setdefault(target, {})[policy["Id"]] = name
        return ActionResult(message=f"attached {name} to {target}")

    def detach(self, policy_id: str, name: str, target: str) -> ActionResult:
        try:
            self.org.write("detach_policy", PolicyId=policy_id, TargetId=target)
        except ClientError as exc:
            if retries.code(exc) != "PolicyNotAttachedException":
                raise
        with self._lock:
            self._attached.get(target, {}).pop(policy_id, None)
        return ActionResult(message=f"detached {name} from {target}")

    def delete(self, policy_id: str, name: str) -> ActionResult:
        try:
            self.org.write("delete_policy", PolicyId=policy_id)
        except ClientError as exc:
            if retries.code(exc) != "PolicyNotFoundException":
                raise
        with self._lock:
            (self._policies or {}).pop(name, None)
        return ActionResult(message=f"deleted {name}")


# -- shared: OUs, policies, OU attachments --------------------------------------------------------


def platform_actions(run: Any, landing_zones: list[LandingZoneSpec], ctx: HookContext) -> Observation:
    """The landing zones' OUs, the SCP policy type, the owned SCPs and their OU attachments."""
    cfg: AwsConfig = run.cfg
    guards: Guardrails = run.guardrails
    org: OrgView = run.org
    actions: list[Action] = []
    in_place: set[str] = set()
    problems: dict[str, str] = {}
    zones = [lz.config for lz in landing_zones]
    for ref in dict.fromkeys(z.ou for z in zones):
        create = any(z.create_ou for z in zones if z.ou == ref)
        if org.find_ou(ref) is not None:
            in_place.add(f"ou:{ref}")
        elif create:
            actions.append(
                Action(
                    phase=Phase.TARGET,
                    change=ChangeAction.CREATE,
                    resource="ou",
                    target=ref,
                    key=f"ou:{ref}",
                    run=partial(_create_ou, org, ref),
                )
            )
        else:
            problems[f"ou:{ref}"] = f"OU {ref} does not exist (create it, or set create_ou: true)"
    scps = {full_name(cfg, s): s for z in zones for s in z.scps}
    if scps:
        if guards.enabled():
            in_place.add("scp-type")
        else:
            actions.append(
                Action(
                    phase=Phase.TARGET,
                    change=ChangeAction.UPDATE,
                    resource="policy-type",
                    target=SCP,
                    key="scp-type",
                    after="ENABLED",
                    detail="enable SCPs on the root",
                    run=lambda: guards.enable(run.sleep, 60),
                )
            )
    for name, scp in scps.items():
        actions += _policy_actions(guards, ctx, name, scp, in_place, problems)
    for ref in dict.fromkeys(z.ou for z in zones):
        wanted = {full_name(cfg, s) for z in zones if z.ou == ref for s in ou_scps(z)}
        actions += _ou_attachments(guards, org, ref, wanted, in_place, problems)
    actions += _unused_policies(guards, ctx, set(scps))
    return Observation(actions=tuple(actions), in_place=frozenset(in_place), problems=problems)


def _create_ou(org: OrgView, ref: str) -> ActionResult:
    return ActionResult(message=f"created OU {ref} ({org.create_ou_path(ref)})")


def _policy_actions(
    guards: Guardrails,
    ctx: HookContext,
    name: str,
    scp: ScpConfig,
    in_place: set[str],
    problems: dict[str, str],
) -> list[Action]:
    key = f"scp-policy:{name}"
    found = guards.policies().get(name)

    def recorded(result: ActionResult) -> ActionResult:
        policy = guards.policies().get(name)
        if policy is not None:
            ctx.resources.put("scp", name, cloud_id=policy["Id"])
        return result

    if found is None:
        return [
            Action(
                phase=Phase.TARGET,
                change=ChangeAction.CREATE,
                resource="scp",
                target=name,
                key=key,
                requires=("scp-type",),
                run=lambda: recorded(guards.create(scp)),
            )
        ]
    if not guards.owned(found["Id"], name):
        problems[key] = (
            f"an SCP named {name!r} exists and is not meshcore's (it lacks the tag "
            f"{guards.marker[0]}={guards.marker[1]}); rename one of them"
        )
        return []
    if guards.differs(found["Id"], scp, found):
        return [
            Action(
                phase=Phase.TARGET,
                change=ChangeAction.UPDATE,
                resource="scp",
                target=name,
                key=key,
                detail="document or description changed",
                run=lambda: recorded(guards.update(scp)),
            )
        ]
    in_place.add(key)
    return []


def _ou_attachments(
    guards: Guardrails, org: OrgView, ref: str, wanted: set[str], in_place: set[str], problems: dict[str, str]
) -> list[Action]:
    ou_id = org.find_ou(ref)
    attached = guards.attached(ou_id) if ou_id else {}
    names = {name for pid, name in attached.items() if guards.owned(pid, name)}  # a namesake is not ours
    for pid, name in attached.items():
        if name in wanted and name not in names:
            problems[f"scp-ou:{name}@{ref}"] = (
                f"OU {ref} carries a policy named {name} ({pid}) that is not meshcore's; detach it"
            )
    missing = sorted(n for n in wanted - names if f"scp-ou:{n}@{ref}" not in problems)
    if missing and len(attached) + len(missing) > SCP_MAX_PER_TARGET:
        for name in missing:
            problems[f"scp-ou:{name}@{ref}"] = (
                f"OU {ref} would carry {len(attached) + len(missing)} SCPs; AWS allows {SCP_MAX_PER_TARGET} per target"
            )
        missing = []
    in_place |= {f"scp-ou:{n}@{ref}" for n in wanted & names}

    def attach(name: str) -> ActionResult:
        target = org.find_ou(ref)
        if target is None:
            raise PlatformError(f"OU {ref} does not exist")
        return guards.attach(name, target)

    actions = [
        Action(
            phase=Phase.TARGET,
            change=ChangeAction.CREATE,
            resource="scp-attachment",
            target=f"{name} @ {ref}",
            key=f"scp-ou:{name}@{ref}",
            requires=(f"ou:{ref}", f"scp-policy:{name}", "scp-type"),
            run=partial(attach, name),
        )
        for name in missing
    ]
    for pid, name in sorted(attached.items(), key=lambda x: x[1]):
        if name not in wanted and guards.owned(pid, name):  # detached only after the new ones are on
            actions.append(
                Action(
                    phase=Phase.TARGET,
                    change=ChangeAction.DELETE,
                    resource="scp-attachment",
                    target=f"{name} @ {ref}",
                    key=f"scp-ou-detach:{name}@{ref}",
                    requires=tuple(f"scp-ou:{n}@{ref}" for n in sorted(wanted)),
                    run=partial(guards.detach, pid, name, ou_id or ""),
                )
            )
    return actions


def _unused_policies(guards: Guardrails, ctx: HookContext, wanted: Iterable[str]) -> list[Action]:
    """SCPs this installation created that no landing zone uses any more, and attached nowhere: delete
    them (AWS limits their number). A tagged policy this state does not record (e.g. another
    installation's) is never deleted."""
    actions = []
    for name, summary in sorted(guards.policies().items()):
        if name in wanted or not guards.owned(summary["Id"], name):
            continue
        record = ctx.resources.get("scp", name)
        if record is None or record.cloud_id != summary["Id"]:
            continue
        targets = retries.listed(
            guards.org.client, "list_targets_for_policy", "Targets", PolicyId=summary["Id"]
        )
        if targets:
            continue  # still attached (e.g. to an account whose tenant detaches it in this run): next run
        actions.append(
            Action(
                phase=Phase.TARGET,
                change=ChangeAction.DELETE,
                resource="scp",
                target=name,
                detail="no landing zone uses it",
                run=partial(_delete_recorded, guards, ctx, summary["Id"], name),
            )
        )
    return actions


def _delete_recorded(guards: Guardrails, ctx: HookContext, policy_id: str, name: str) -> ActionResult:
    result = guards.delete(policy_id, name)
    ctx.resources.remove("scp", name)
    return result


# -- per tenant: SCPs on the account ------------------------------------------------------------


def account_actions(run: Any, tenant: TenantSpec, ctx: HookContext) -> Observation:
    """Attach the landing zone's account-level SCPs (new ones before old ones are detached)."""
    cfg: AwsConfig = run.cfg
    guards: Guardrails = run.guardrails
    lz: AwsLandingZone = tenant.landing_zone.config
    wanted = {full_name(cfg, s) for s in account_scps(lz)}
    recorded = ctx.resources.owned("scp-account")
    if not wanted and not recorded:
        return Observation()  # nothing meshcore put on this account, nothing to read
    aid = tenant.platform_tenant_id
    attached = guards.attached(aid) if aid else {"(FullAWSAccess)": "FullAWSAccess"}
    names = {name for pid, name in attached.items() if guards.owned(pid, name)}
    in_place = {f"scp-account:{n}@{tenant.key}" for n in wanted & names}
    problems: dict[str, str] = {
        f"scp-account:{name}@{tenant.key}": (
            f"account {aid} carries a policy named {name} ({pid}) that is not meshcore's; detach it"
        )
        for pid, name in attached.items()
        if name in wanted and name not in names
    }
    missing = sorted(wanted - names - {n for n in wanted if f"scp-account:{n}@{tenant.key}" in problems})
    if missing and len(attached) + len(missing) > SCP_MAX_PER_TARGET:
        for name in missing:
            problems[f"scp-account-room:{name}@{tenant.key}"] = (
                f"account {aid} would carry {len(attached) + len(missing)} SCPs "
                f"({len(attached)} attached already); AWS allows {SCP_MAX_PER_TARGET} per target"
            )

    def attach(name: str) -> ActionResult:
        account = _bound(ctx)
        result = guards.attach(name, account)
        ctx.resources.put("scp-account", f"{name}@{account}", cloud_id=account)
        return result

    def detach(pid: str, name: str) -> ActionResult:
        account = _bound(ctx)
        result = guards.detach(pid, name, account)
        ctx.resources.remove("scp-account", f"{name}@{account}")
        return result

    actions = [
        Action(
            phase=Phase.GUARDRAILS,
            change=ChangeAction.CREATE,
            resource="scp-attachment",
            target=f"{name} @ account",
            key=f"scp-account:{name}@{tenant.key}",
            requires=(f"scp-policy:{name}", "scp-type")
            + ((f"scp-account-room:{name}@{tenant.key}",) if problems else ()),
            run=partial(attach, name),
        )
        for name in missing
    ]
    actions += [
        Action(
            phase=Phase.GUARDRAILS,
            change=ChangeAction.DELETE,
            resource="scp-attachment",
            target=f"{name} @ account",
            key=f"scp-account-detach:{name}@{tenant.key}",
            requires=tuple(f"scp-account:{n}@{tenant.key}" for n in sorted(wanted)),  # new ones first
            run=partial(detach, pid, name),
        )
        for pid, name in sorted(attached.items(), key=lambda x: x[1])
        if aid and name not in wanted and guards.owned(pid, name)
    ]
    return Observation(actions=tuple(actions), in_place=frozenset(in_place), problems=problems)


def _bound(ctx: HookContext) -> str:
    if ctx.platform_tenant_id is None:
        raise PlatformError("the tenant has no account yet")
    return ctx.platform_tenant_id
