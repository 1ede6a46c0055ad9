"""Service Control Policies: create/update the ones meshcore owns, attach and detach them to match.

meshcore owns a policy when its name starts with ``scp_name_prefix`` and it
carries the tag ``<tags.prefix>managed-by=meshcore``; it never updates,
attaches or detaches any other policy. The SCP policy type is enabled on the
root when needed. Every read is cached for the run; OU-level attachments are
shared by all tenants of a landing zone and converged once.
"""

from __future__ import annotations

import threading
from typing import Any

from meshcore.errors import PlatformError
from meshcore.results import Change, ChangeAction
from meshcore_aws.calls import error_code, paged
from meshcore_aws.config import AwsConfig, ScpConfig
from meshcore_aws.organization import OrgView
from meshcore_aws.policies import SCP_MAX_PER_TARGET

SCP = "SERVICE_CONTROL_POLICY"


class Guardrails:
    """SCP state of one organization for one run (shared through the run cache)."""

    def __init__(self, org: OrgView, config: AwsConfig):
        self.org = org
        self.cfg = config
        self._lock = threading.RLock()
        self._enabled: bool | None = None
        self._policies: dict[str, dict[str, Any]] | None = None  # name -> summary
        self._content: dict[str, str] = {}  # policy id -> content
        self._owned: dict[str, bool] = {}  # policy id -> carries our tag
        self._attached: dict[str, dict[str, str]] = {}  # target -> {policy id: name}
        self._target_locks: dict[str, threading.Lock] = {}

    @property
    def marker(self) -> tuple[str, str]:
        return f"{self.cfg.tags.prefix}managed-by", "meshcore"

    def full_name(self, scp: ScpConfig) -> str:
        return f"{self.cfg.scp_name_prefix}{scp.name}"

    def target_lock(self, target: str) -> threading.Lock:
        with self._lock:
            return self._target_locks.setdefault(target, threading.Lock())

    # -- reads ------------------------------------------------------------------------

    def enabled(self) -> bool:
        with self._lock:
            if self._enabled is None:
                root = self.org.call("list_roots")["Roots"][0]
                self._enabled = any(
                    t["Type"] == SCP and t["Status"] == "ENABLED" for t in root.get("PolicyTypes", [])
                )
            return self._enabled

    def policies(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            if self._policies is None:
                listed = paged(self.org.client.list_policies, "Policies", self.org.sleep, Filter=SCP)
                self._policies = {p["Name"]: p for p in listed}
            return self._policies

    def content(self, policy_id: str) -> str:
        with self._lock:
            if policy_id not in self._content:
                self._content[policy_id] = self.org.call("describe_policy", PolicyId=policy_id)["Policy"][
                    "Content"
                ]
            return self._content[policy_id]

    def owned(self, policy_id: str) -> bool:
        with self._lock:
            if policy_id not in self._owned:
                tags = paged(
                    self.org.client.list_tags_for_resource, "Tags", self.org.sleep, ResourceId=policy_id
                )
                key, value = self.marker
                self._owned[policy_id] = any(t["Key"] == key and t["Value"] == value for t in tags)
            return self._owned[policy_id]

    def attached(self, target: str) -> dict[str, str]:
        with self._lock:
            if target not in self._attached:
                listed = paged(
                    self.org.client.list_policies_for_target,
                    "Policies",
                    self.org.sleep,
                    TargetId=target,
                    Filter=SCP,
                )
                self._attached[target] = {p["Id"]: p["Name"] for p in listed}
            return dict(self._attached[target])

    def is_ours(self, policy_id: str, name: str) -> bool:
        return name.startswith(self.cfg.scp_name_prefix) and self.owned(policy_id)

    # -- diff and converge ---------------------------------------------------------------

    def plan(self, target: str, scps: list[ScpConfig], label: str) -> list[Change]:
        """Changes to make ``target`` carry exactly ``scps`` among the policies meshcore owns."""
        changes: list[Change] = []
        if scps and not self.enabled():
            changes.append(
                Change(
                    action=ChangeAction.UPDATE,
                    resource="policy type",
                    after="SCP enabled",
                    detail="enable SERVICE_CONTROL_POLICY on the root",
                )
            )
        existing = self.policies()
        for scp in scps:
            name = self.full_name(scp)
            found = existing.get(name)
            if found is None:
                changes.append(Change(action=ChangeAction.CREATE, resource=f"scp {name}"))
            elif not self.owned(found["Id"]):
                changes.append(
                    Change(
                        action=ChangeAction.UPDATE,
                        resource=f"scp {name}",
                        detail="CONFLICT: a policy of this name exists and is not owned by meshcore",
                    )
                )
                continue
            elif self.content(found["Id"]) != scp.content or found.get("Description", "") != scp.description:
                changes.append(
                    Change(action=ChangeAction.UPDATE, resource=f"scp {name}", detail="document changed")
                )
        attached = self.attached(target) if not target.startswith("pending:") else {}
        wanted = {self.full_name(s) for s in scps}
        for name in sorted(wanted - set(attached.values())):
            changes.append(Change(action=ChangeAction.CREATE, resource=f"scp attachment {name}", after=label))
        for pid, name in sorted(attached.items()):
            if name not in wanted and self.is_ours(pid, name):
                changes.append(
                    Change(action=ChangeAction.DELETE, resource=f"scp attachment {name}", before=label)
                )
        return changes

    def ensure(self, target: str, scps: list[ScpConfig], detach_others: bool = True) -> list[str]:
        """Converge ``target``; attach before detaching so it is never without guardrails. Returns what changed."""
        done: list[str] = []
        if scps and not self.enabled():
            self._enable()
            done.append("enabled SCPs on the root")
        ids = {}
        for scp in scps:
            pid, what = self._ensure_policy(scp)
            ids[self.full_name(scp)] = pid
            if what:
                done.append(what)
        with self.target_lock(target):
            attached = self.attached(target)
            missing = [name for name in ids if ids[name] not in attached]
            foreign = [pid for pid, name in attached.items() if not self.is_ours(pid, name)]
            if missing and len(foreign) + len(ids) > SCP_MAX_PER_TARGET:
                raise PlatformError(
                    f"{target} would carry {len(foreign) + len(ids)} SCPs ({len(foreign)} not managed by meshcore); "
                    f"AWS allows {SCP_MAX_PER_TARGET} per target"
                )
            for name in missing:
                self._attach(ids[name], target)
                done.append(f"attached {name}")
            if detach_others:
                for pid, name in attached.items():
                    if name not in ids and self.is_ours(pid, name):
                        self._detach(pid, target)
                        done.append(f"detached {name}")
        return done

    def detach_all_ours(self, target: str) -> list[str]:
        done = []
        with self.target_lock(target):
            for pid, name in self.attached(target).items():
                if self.is_ours(pid, name):
                    self._detach(pid, target)
                    done.append(f"detached {name}")
        return done

    # -- writes -------------------------------------------------------------------------

    def _enable(self) -> None:
        with self._lock:
            if self._enabled:
                return
            try:
                self.org.write("enable_policy_type", RootId=self.org.root_id(), PolicyType=SCP)
            except Exception as exc:
                if error_code(exc) != "PolicyTypeAlreadyEnabledException":
                    raise
            self._enabled = True

    def _ensure_policy(self, scp: ScpConfig) -> tuple[str, str]:
        name = self.full_name(scp)
        with self._lock:
            found = self.policies().get(name)
            if found is None:
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
                except Exception as exc:
                    if error_code(exc) != "DuplicatePolicyException":
                        raise
                    self._policies = None  # created concurrently: read it back
                    return self._ensure_policy(scp)
                self.policies()[name] = created
                self._content[created["Id"]] = scp.content
                self._owned[created["Id"]] = True
                return created["Id"], f"created {name}"
            pid = found["Id"]
            if not self.owned(pid):
                raise PlatformError(
                    f"an SCP named {name!r} exists but is not owned by meshcore; rename one of them"
                )
            if self.content(pid) != scp.content or found.get("Description", "") != scp.description:
                self.org.write(
                    "update_policy", PolicyId=pid, Content=scp.content, Description=scp.description
                )
                self._content[pid] = scp.content
                found["Description"] = scp.description
                return pid, f"updated {name}"
            return pid, ""

    def _attach(self, policy_id: str, target: str) -> None:
        try:
            self.org.write("attach_policy", PolicyId=policy_id, TargetId=target)
        except Exception as exc:
            if error_code(exc) != "DuplicatePolicyAttachmentException":
                raise
        with self._lock:
            name = next((n for n, p in self.policies().items() if p["Id"] == policy_id), policy_id)
            self._attached.setdefault(target, {})[policy_id] = name

    def _detach(self, policy_id: str, target: str) -> None:
        try:
            self.org.write("detach_policy", PolicyId=policy_id, TargetId=target)
        except Exception as exc:
            if error_code(exc) != "PolicyNotAttachedException":
                raise
        with self._lock:
            self._attached.get(target, {}).pop(policy_id, None)
