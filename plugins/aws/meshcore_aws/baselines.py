"""CloudFormation baselines as StackSet instances, deployed from the automation account.

* self-managed permission model: the StackSet administration role in the
  automation account assumes the execution role in each target account;
* templates are linted with cfn-lint before anything is written
  (``meshcore validate`` reports errors with the landing zone's key path);
* parameter contract: a template may declare ``AccountId``, ``AccountName``,
  ``AccountEmail``, ``Workspace``, ``Project`` and ``Tags`` (replicated tags as
  ``key=value,...``); meshcore fills those it declares, plus the baseline's own
  ``parameters`` (placeholders allowed);
* one operation per StackSet at a time (a lock per StackSet in a run, and AWS's
  ``OperationInProgressException`` retried); each operation carries our own
  ``OperationId``, journaled before the call, so a crash never sends it twice;
* a FAILED operation surfaces each instance's reason as a failed step.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from typing import Any

import yaml

from meshcore.errors import PlatformError
from meshcore.results import Change, ChangeAction
from meshcore_aws import naming
from meshcore_aws.calls import aws_call, error_code, paged
from meshcore_aws.config import AwsConfig, BaselineConfig

CONTRACT = ("AccountId", "AccountName", "AccountEmail", "Workspace", "Project", "Tags")
DONE = {"SUCCEEDED"}
FAILED = {"FAILED", "STOPPED"}


def digest(parameters: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16]


class StillRunning(Exception):
    """A StackSet operation outlived this run's wait; the journal keeps it for the next run."""


class _TolerantLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML, treating intrinsic tags (!Ref, !Sub, ...) as plain values."""


_TolerantLoader.add_multi_constructor(
    "!",
    lambda loader, _suffix, node: (
        loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None
    ),
)


def parse_template(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        data = yaml.load(body, Loader=_TolerantLoader)
    if not isinstance(data, dict):
        raise PlatformError("the template is not a mapping")
    return data


def declared_parameters(body: str) -> set[str]:
    return set((parse_template(body).get("Parameters") or {}).keys())


def lint(body: str, regions: list[str]) -> list[str]:
    """cfn-lint errors (not warnings) of a template; imported lazily, it is heavy."""
    from cfnlint.api import ManualArgs
    from cfnlint.api import lint as cfn_lint

    matches = cfn_lint(body, config=ManualArgs(regions=regions))
    return [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches if m.rule.id.startswith("E")]


class Baselines:
    """StackSet state for one platform in one run (shared through the run cache)."""

    def __init__(self, sessions: Any, config: AwsConfig, sleep: Any):
        self.sessions = sessions
        self.cfg = config
        self.sleep = sleep
        self._lock = threading.RLock()
        self._sets: dict[str, dict[str, Any] | None] = {}
        self._instances: dict[str, list[dict[str, Any]]] = {}
        self._set_locks: dict[str, threading.Lock] = {}
        self._owned_sets: list[str] | None = None

    @property
    def cf(self) -> Any:
        return self.sessions.client("automation", "cloudformation")

    def call(self, op: str, **kwargs: Any) -> Any:
        return aws_call(getattr(self.cf, op), self.sleep, **kwargs)

    def name(self, lz_id: str, baseline: BaselineConfig) -> str:
        return f"{self.cfg.stackset_name_prefix}{lz_id}-{baseline.name}"

    def regions(self, baseline: BaselineConfig) -> list[str]:
        return list(baseline.regions or (self.cfg.region,))

    def set_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._set_locks.setdefault(name, threading.Lock())

    def admin_role(self) -> str:
        if self.cfg.stackset_administration_role_arn:
            return self.cfg.stackset_administration_role_arn
        account = self.cfg.automation.account_id if self.cfg.automation else self._caller_account()
        return f"arn:aws:iam::{account}:role/AWSCloudFormationStackSetAdministrationRole"

    def _caller_account(self) -> str:
        return self.sessions.client("automation", "sts").get_caller_identity()["Account"]

    # -- reads --------------------------------------------------------------------

    def stack_set(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            if name not in self._sets:
                try:
                    self._sets[name] = self.call("describe_stack_set", StackSetName=name)["StackSet"]
                except Exception as exc:
                    if error_code(exc) != "StackSetNotFoundException":
                        raise
                    self._sets[name] = None
            return self._sets[name]

    def owned_sets(self) -> list[str]:
        with self._lock:
            if self._owned_sets is None:
                listed = paged(self.cf.list_stack_sets, "Summaries", self.sleep, Status="ACTIVE")
                self._owned_sets = [
                    s["StackSetName"]
                    for s in listed
                    if s["StackSetName"].startswith(self.cfg.stackset_name_prefix)
                ]
            return list(self._owned_sets)

    def instances(self, name: str, account: str) -> dict[str, dict[str, Any]]:
        """This account's instances of a StackSet, by region (all instances are listed once per run)."""
        with self._lock:
            if name not in self._instances:
                if self.stack_set(name) is None:
                    self._instances[name] = []
                else:
                    self._instances[name] = paged(
                        self.cf.list_stack_instances, "Summaries", self.sleep, StackSetName=name
                    )
            return {i["Region"]: i for i in self._instances[name] if i["Account"] == account}

    def _forget_instances(self, name: str) -> None:
        with self._lock:
            self._instances.pop(name, None)

    # -- desired ----------------------------------------------------------------------

    def parameters(self, baseline: BaselineConfig, tenant: Any, account: dict[str, str]) -> dict[str, str]:
        declared = declared_parameters(baseline.template_body)
        values = {
            "workspace": tenant.workspace.id,
            "project": tenant.project.id,
            "platform": tenant.platform_id,
            "workspace_name": tenant.workspace.name,
            "project_name": tenant.project.name,
        }
        contract = {
            "AccountId": account["id"],
            "AccountName": account["name"],
            "AccountEmail": account["email"],
            "Workspace": tenant.workspace.id,
            "Project": tenant.project.id,
            "Tags": ",".join(f"{k}={v}" for k, v in sorted(tenant.replicated_tags.items())),
        }
        out = {k: v for k, v in contract.items() if k in declared}
        for key, pattern in baseline.parameters.items():
            out[key] = naming.render(pattern, values, tenant.tags)
        return out

    def plan(
        self, ctx: Any, name: str, baseline: BaselineConfig, tenant: Any, account: dict[str, str]
    ) -> list[Change]:
        changes = []
        current = self.stack_set(name)
        if current is None:
            changes.append(Change(action=ChangeAction.CREATE, resource=f"stackset {name}"))
        elif current.get("TemplateBody") != baseline.template_body:
            changes.append(
                Change(action=ChangeAction.UPDATE, resource=f"stackset {name}", detail="template changed")
            )
        have = self.instances(name, account["id"]) if current is not None else {}
        want = self.parameters(baseline, tenant, account)
        applied = self.recorded(ctx, account["id"]).get(name, {}).get("params")
        for region in self.regions(baseline):
            inst = have.get(region)
            if inst is None:
                changes.append(
                    Change(
                        action=ChangeAction.CREATE,
                        resource=f"stack instance {name}",
                        after=f"{account['id']}/{region}",
                    )
                )
                continue
            reason = self._outdated(inst, want, applied)
            if reason:
                changes.append(
                    Change(
                        action=ChangeAction.UPDATE,
                        resource=f"stack instance {name}",
                        detail=f"{account['id']}/{region}: {reason}",
                    )
                )
        return changes

    @staticmethod
    def _outdated(inst: dict[str, Any], want: dict[str, str], applied: str | None) -> str:
        if inst.get("Status") not in (None, "CURRENT"):
            return f"instance is {inst.get('Status')}"
        if inst.get("DriftStatus") == "DRIFTED":
            return "stack drifted"
        if applied is not None and applied != digest(want):
            return "parameters changed"
        return ""

    # -- what meshcore deployed (ListStackInstances does not return parameter overrides) --

    @staticmethod
    def recorded(ctx: Any, account_id: str) -> dict[str, dict[str, Any]]:
        """StackSet name -> what meshcore last applied to this account (params digest, regions)."""
        latest: dict[str, dict[str, Any]] = {}
        for entry in ctx.journal.history("stackset-instance", key_prefix=f"{account_id}:"):
            latest[entry.key.split(":", 1)[1]] = entry.result
        return {name: result for name, result in latest.items() if not result.get("removed")}

    @staticmethod
    def _record(ctx: Any, account_id: str, name: str, result: dict[str, Any]) -> None:
        entry = ctx.journal.begin("stackset-instance", f"{account_id}:{name}", {})
        entry.complete(result)

    # -- writes -------------------------------------------------------------------------

    def ensure(
        self, ctx: Any, name: str, baseline: BaselineConfig, tenant: Any, account: dict[str, str]
    ) -> list[str]:
        done: list[str] = []
        want = self.parameters(baseline, tenant, account)
        with self.set_lock(name):
            current = self.stack_set(name)
            set_params = [{"ParameterKey": k, "ParameterValue": "-"} for k in sorted(want)]
            if current is None:
                self.call(
                    "create_stack_set",
                    StackSetName=name,
                    TemplateBody=baseline.template_body,
                    Description=f"meshcore baseline {baseline.name}",
                    Parameters=set_params,
                    Capabilities=list(baseline.capabilities),
                    PermissionModel="SELF_MANAGED",
                    AdministrationRoleARN=self.admin_role(),
                    ExecutionRoleName=self.cfg.stackset_execution_role_name,
                )
                with self._lock:
                    self._sets.pop(name, None)
                    self._instances[name] = []
                done.append(f"created stackset {name}")
            elif current.get("TemplateBody") != baseline.template_body:
                self._operation(
                    ctx,
                    name,
                    "update-set",
                    lambda op: self.call(
                        "update_stack_set",
                        StackSetName=name,
                        TemplateBody=baseline.template_body,
                        Parameters=[{"ParameterKey": k, "UsePreviousValue": True} for k in sorted(want)],
                        Capabilities=list(baseline.capabilities),
                        AdministrationRoleARN=self.admin_role(),
                        ExecutionRoleName=self.cfg.stackset_execution_role_name,
                        OperationId=op,
                    ),
                )
                with self._lock:
                    self._sets.pop(name, None)
                self._forget_instances(name)
                done.append(f"updated template of {name}")
            overrides = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(want.items())]

            def send(op_name: str, regions: list[str]) -> Any:
                return lambda op: self.call(
                    op_name,
                    StackSetName=name,
                    Accounts=[account["id"]],
                    Regions=regions,
                    ParameterOverrides=overrides,
                    OperationId=op,
                )

            for what, op_name in (
                (f"create:{account['id']}", "create_stack_instances"),
                (f"update:{account['id']}", "update_stack_instances"),
            ):
                if ctx.journal.find("stackset-operation", f"{name}:{what}") is not None:
                    # an operation of an earlier run is still open: finish it before deciding anything
                    self._operation(ctx, name, what, send(op_name, self.regions(baseline)))
                    self._forget_instances(name)
                    done.append(f"finished the pending {what.split(':')[0]} of {name}")
            have = self.instances(name, account["id"])
            applied = self.recorded(ctx, account["id"]).get(name, {}).get("params")
            missing = [r for r in self.regions(baseline) if r not in have]
            stale = [
                r for r in self.regions(baseline) if r in have and self._outdated(have[r], want, applied)
            ]
            if missing:
                self._operation(ctx, name, f"create:{account['id']}", send("create_stack_instances", missing))
                done.append(f"deployed {name} to {account['id']} in {', '.join(missing)}")
            if stale:
                self._operation(ctx, name, f"update:{account['id']}", send("update_stack_instances", stale))
                done.append(f"updated {name} in {account['id']} ({', '.join(stale)})")
            if missing or stale:
                self._forget_instances(name)
            if missing or stale or applied != digest(want):
                self._record(
                    ctx, account["id"], name, {"params": digest(want), "regions": self.regions(baseline)}
                )
        return done

    def remove(self, ctx: Any, name: str, account_id: str, retain: bool) -> list[str]:
        with self.set_lock(name):
            have = self.instances(name, account_id)
            if not have:
                self._record(ctx, account_id, name, {"removed": True})
                return []
            self._operation(
                ctx,
                name,
                f"delete:{account_id}",
                lambda op: self.call(
                    "delete_stack_instances",
                    StackSetName=name,
                    Accounts=[account_id],
                    Regions=sorted(have),
                    RetainStacks=retain,
                    OperationId=op,
                ),
            )
            self._forget_instances(name)
            self._record(ctx, account_id, name, {"removed": True})
            return [
                f"removed {name} from {account_id} ({', '.join(sorted(have))}{', stacks retained' if retain else ''})"
            ]

    def _operation(self, ctx: Any, name: str, what: str, send: Any) -> None:
        """Journal, send (with our OperationId) and wait for one StackSet operation."""
        key = f"{name}:{what}"
        entry = ctx.journal.find("stackset-operation", key)
        if entry is None:
            op_id = str(uuid.uuid4())
            entry = ctx.journal.begin(
                "stackset-operation", key, {"stack_set": name, "what": what, "operation_id": op_id}
            )
        op_id = entry.operation_id or entry.intent["operation_id"]
        if entry.operation_id is None:
            try:
                answer = send(op_id)
                op_id = answer.get("OperationId", op_id)
            except Exception as exc:
                if error_code(exc) != "OperationIdAlreadyExistsException":  # sent before a crash: just wait
                    entry.fail(str(exc))
                    raise PlatformError(f"StackSet {name}: {what} was refused: {exc}") from None
            entry.record_operation(op_id)
        try:
            self._wait(name, op_id)
        except StillRunning:
            raise
        except PlatformError as exc:
            entry.fail(str(exc))
            raise
        entry.complete({})

    def _wait(self, name: str, op_id: str) -> None:
        interval = max(self.cfg.poll_interval_seconds, 0)
        polls = max(1, int(self.cfg.stackset_wait_seconds / interval) if interval else 1)
        for attempt in range(polls):
            op = self.call("describe_stack_set_operation", StackSetName=name, OperationId=op_id)[
                "StackSetOperation"
            ]
            status = op["Status"]
            if status in DONE:
                return
            if status in FAILED:
                results = paged(
                    self.cf.list_stack_set_operation_results,
                    "Summaries",
                    self.sleep,
                    StackSetName=name,
                    OperationId=op_id,
                )
                reasons = [
                    f"{r.get('Account')}/{r.get('Region')}: {r.get('StatusReason') or r.get('Status')}"
                    for r in results
                    if r.get("Status") != "SUCCEEDED"
                ]
                raise PlatformError(
                    f"StackSet {name} operation {op_id} {status}: "
                    + ("; ".join(reasons) or "no reason given")
                )
            if attempt + 1 < polls:
                self.sleep(interval)
        raise StillRunning(f"StackSet {name} operation {op_id} is still running")
