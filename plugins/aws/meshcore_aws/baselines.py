"""CloudFormation baselines as StackSet instances, deployed from the automation account.

* The StackSets are shared (one per landing zone and baseline, created and
  updated once per run); the instances are per tenant.
* Self-managed permission model with ``ManagedExecution`` active, so AWS queues
  concurrent operations on one StackSet instead of refusing them; operations run
  with parallel regions and the configured concurrency and failure tolerance.
* Parameter contract: a template may declare ``AccountId``, ``AccountName``,
  ``AccountEmail``, ``Workspace``, ``Project`` and ``Tags`` (replicated tags as
  ``key=value,...``); meshcore fills those it declares, plus the baseline's own
  ``parameters`` (placeholders allowed). Parameters the StackSet does not have
  yet are added by a StackSet update before any instance overrides them.
* Every operation carries meshcore's own ``OperationId``, journaled before the
  call, so a crash never sends it twice; an operation that outlives the run's
  wait is awaited by the next run.
* What meshcore deployed is recorded in the resources table (kind
  ``stack-instance``: StackSet, account, parameters digest, regions), because
  ``ListStackInstances`` does not return parameter overrides.
* When a tenant moves to another landing zone, instances of StackSets the new
  zone does not use are removed *before* the new ones are deployed, so two
  templates creating the same fixed-name resource never collide.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from functools import partial
from typing import Any

import yaml
from botocore.exceptions import ClientError

from meshcore import (
    Action,
    ActionResult,
    ActionStatus,
    ChangeAction,
    HookContext,
    JournalEntry,
    LandingZoneSpec,
    Observation,
    Phase,
    PlatformError,
    TenantSpec,
)
from meshcore_aws import naming, retries
from meshcore_aws.batches import Group, OperationBatches, Request
from meshcore_aws.config import AwsConfig, AwsLandingZone, BaselineConfig
from meshcore_aws.run import poll_count

DONE = {"SUCCEEDED"}
FAILED = {"FAILED", "STOPPED"}
_NAME_CHARS = re.compile(r"[^A-Za-z0-9-]")


def digest(parameters: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16]


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


def declared_parameters(body: str) -> dict[str, dict[str, Any]]:
    """Parameter name -> its declaration (Type, Default, ...)."""
    return {k: (v or {}) for k, v in (parse_template(body).get("Parameters") or {}).items()}


def lint(body: str, regions: list[str]) -> list[str]:
    """cfn-lint errors (not warnings) of a template; imported lazily, it is heavy."""
    from cfnlint.api import ManualArgs
    from cfnlint.api import lint as cfn_lint

    matches = cfn_lint(body, config=ManualArgs(regions=regions))
    return [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches if m.rule.id.startswith("E")]


def stackset_name(cfg: AwsConfig, lz_id: str, baseline: BaselineConfig) -> str:
    """``<prefix><landing zone>-<baseline>``, with characters StackSet names do not allow replaced."""
    name = _NAME_CHARS.sub("-", f"{cfg.stackset_name_prefix}{lz_id}-{baseline.name}")
    return name if name[:1].isalpha() else f"m{name}"


def regions(cfg: AwsConfig, baseline: BaselineConfig) -> list[str]:
    return list(baseline.regions or (cfg.region,))


class Baselines:
    """StackSet state of one platform in one run (shared by all tenants through the run)."""

    def __init__(self, sessions: Any, config: AwsConfig, sleep: Any):
        self.sessions = sessions
        self.cfg = config
        self.sleep = sleep
        self._lock = threading.RLock()
        self._sets: dict[str, dict[str, Any] | None] = {}
        self._instances: dict[str, list[dict[str, Any]]] = {}
        self._ended: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        self.batches = OperationBatches(self)

    @property
    def cf(self) -> Any:
        return self.sessions.client("automation", "cloudformation")

    @property
    def marker(self) -> tuple[str, str]:
        return f"{self.cfg.tags.prefix}managed-by", "meshcore"

    def admin_role(self) -> str:
        if self.cfg.stackset_administration_role_arn:
            return self.cfg.stackset_administration_role_arn
        ref = self.cfg.role("automation")
        account = (
            ref.account_id
            if ref
            else self.sessions.client("automation", "sts").get_caller_identity()["Account"]
        )
        return f"arn:{self.cfg.partition}:iam::{account}:role/AWSCloudFormationStackSetAdministrationRole"

    def preferences(self) -> dict[str, Any]:
        b = self.cfg.baselines
        return {
            "RegionConcurrencyType": "PARALLEL",
            "MaxConcurrentPercentage": b.max_concurrent_percentage,
            "FailureTolerancePercentage": b.failure_tolerance_percentage,
        }

    # -- reads --------------------------------------------------------------------

    def stack_set(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            if name not in self._sets:
                try:
                    self._sets[name] = self.cf.describe_stack_set(StackSetName=name)["StackSet"]
                except ClientError as exc:
                    if retries.code(exc) != "StackSetNotFoundException":
                        raise
                    self._sets[name] = None
            return self._sets[name]

    def instances(self, name: str, account: str) -> dict[str, dict[str, Any]]:
        """This account's instances of a StackSet, by region (all instances are listed once per run)."""
        with self._lock:
            if name not in self._instances:
                self._instances[name] = (
                    retries.listed(self.cf, "list_stack_instances", "Summaries", StackSetName=name)
                    if self.stack_set(name) is not None
                    else []
                )
            return {i["Region"]: i for i in self._instances[name] if i["Account"] == account}

    def forget(self, name: str) -> None:
        with self._lock:
            self._sets.pop(name, None)
            self._instances.pop(name, None)

    def owned(self, stack_set: dict[str, Any]) -> bool:
        key, value = self.marker
        return any(t.get("Key") == key and t.get("Value") == value for t in stack_set.get("Tags", []))

    # -- operations -------------------------------------------------------------------

    def operation(
        self, ctx: HookContext, name: str, what: str, send: Any, account: str | None = None
    ) -> ActionResult:
        """Journal, send (with meshcore's OperationId) and await one StackSet operation (of one account)."""
        key = f"{name}:{what}"
        entry = ctx.journal.find("stackset-operation", key)
        if entry is None:
            entry = ctx.journal.begin("stackset-operation", key, {"operation_id": str(uuid.uuid4())})
        op_id = entry.operation_id or str(entry.intent["operation_id"])
        if entry.operation_id is None:
            try:
                send(op_id)
            except ClientError as exc:
                if retries.code(exc) == "OperationInProgressException":
                    return ActionResult(
                        status=ActionStatus.IN_PROGRESS,
                        message=f"StackSet {name} is busy with another operation; retried next run",
                    )
                if retries.code(exc) != "OperationIdAlreadyExistsException":  # sent before a crash: just wait
                    entry.fail(retries.describe(exc))
                    raise PlatformError(
                        f"StackSet {name}: {what} was refused: {retries.describe(exc)}"
                    ) from None
            entry.record_operation(op_id)
        return self.wait(name, entry, account)

    def wait(self, name: str, entry: JournalEntry, account: str | None = None) -> ActionResult:
        """Await a journaled operation; with ``account``, only that account's outcome counts (a shared
        operation succeeds for some accounts and fails for others)."""
        op_id = str(entry.operation_id)
        outcome = self.settle(name, op_id)
        if outcome is None:
            return ActionResult(
                status=ActionStatus.IN_PROGRESS, message=f"StackSet {name} operation {op_id} is still running"
            )
        status, results = outcome
        reasons = failures(results, status, account)
        if reasons:
            entry.fail("; ".join(reasons))
            raise PlatformError(f"StackSet {name} operation {op_id} {status}: " + "; ".join(reasons))
        entry.complete({})
        return ActionResult(message=f"StackSet {name} operation {op_id} succeeded")

    def settle(self, name: str, op_id: str) -> tuple[str, list[dict[str, Any]]] | None:
        """Poll an operation until it ends: (status, per-instance results), or ``None`` if still running.

        An ended operation is remembered for the run, so the tenants of one shared operation read it once.
        """
        with self._lock:
            if op_id in self._ended:
                return self._ended[op_id]
        interval = max(self.cfg.poll_interval_seconds, 0)
        polls = poll_count(self.cfg.stackset_wait_seconds, interval)
        for attempt in range(polls):
            status = self.cf.describe_stack_set_operation(StackSetName=name, OperationId=op_id)[
                "StackSetOperation"
            ]["Status"]
            if status in DONE | FAILED:
                results = retries.listed(
                    self.cf,
                    "list_stack_set_operation_results",
                    "Summaries",
                    StackSetName=name,
                    OperationId=op_id,
                )
                self.forget(name)
                with self._lock:
                    self._ended[op_id] = (status, results)
                return status, results
            if attempt + 1 < polls:
                self.sleep(interval)
        return None

    def sent(self, name: str, op_id: str) -> bool:
        """Whether AWS knows an operation (a journaled intent whose call may not have gone out)."""
        try:
            self.cf.describe_stack_set_operation(StackSetName=name, OperationId=op_id)
        except ClientError as exc:
            if retries.code(exc) != "OperationNotFoundException":
                raise
            return False
        return True


def failures(results: list[dict[str, Any]], status: str, account: str | None) -> list[str]:
    """Why an operation failed (for one account, or for any): its instances that did not succeed."""
    if account is None and status not in FAILED:
        return []  # a StackSet-wide operation within its failure tolerance
    mine = [r for r in results if account is None or r.get("Account") == account]
    reasons = [
        f"{r.get('Account')}/{r.get('Region')}: {r.get('StatusReason') or r.get('Status')}"
        for r in mine
        if r.get("Status") != "SUCCEEDED"
    ]
    if status in FAILED and not reasons and (account is None or not mine):
        reasons.append(f"the operation {status} with no result for {account or 'any account'}")
    return reasons


# -- shared: the StackSets -----------------------------------------------------------------------


def platform_actions(run: Any, landing_zones: list[LandingZoneSpec], ctx: HookContext) -> Observation:
    """Create or update each landing zone baseline's StackSet (template, parameters, managed execution)."""
    cfg: AwsConfig = run.cfg
    sets: Baselines = run.baselines
    actions: list[Action] = []
    in_place: set[str] = set()
    problems: dict[str, str] = {}
    for lz in landing_zones:
        zone: AwsLandingZone = lz.config
        for baseline in zone.baselines:
            name = stackset_name(cfg, lz.id, baseline)
            key = f"stackset:{name}"
            current = sets.stack_set(name)
            declared = declared_parameters(baseline.template_body)
            if current is None:
                actions.append(
                    Action(
                        phase=Phase.BASELINE,
                        change=ChangeAction.CREATE,
                        resource="stackset",
                        target=name,
                        key=key,
                        detail=f"baseline {baseline.name} of {lz.id}",
                        run=partial(_create_set, sets, name, baseline, declared),
                    )
                )
                continue
            if not sets.owned(current):
                problems[key] = f"a StackSet named {name} exists and is not meshcore's; rename the baseline"
                continue
            have = {p["ParameterKey"] for p in current.get("Parameters", [])}
            reasons = []
            if current.get("TemplateBody") != baseline.template_body:
                reasons.append("template changed")
            if have != set(declared):
                reasons.append("parameters " + ", ".join(sorted(set(declared) ^ have)))
            if not (current.get("ManagedExecution") or {}).get("Active"):
                reasons.append("managed execution off")
            if reasons:
                actions.append(
                    Action(
                        phase=Phase.BASELINE,
                        change=ChangeAction.UPDATE,
                        resource="stackset",
                        target=name,
                        key=key,
                        detail="; ".join(reasons),
                        run=partial(
                            sets.operation,
                            ctx,
                            name,
                            "update-set",
                            partial(_update_set, sets, name, baseline, declared, have),
                        ),
                    )
                )
            else:
                in_place.add(key)
    return Observation(actions=tuple(actions), in_place=frozenset(in_place), problems=problems)


def _set_parameters(declared: dict[str, dict[str, Any]], have: set[str]) -> list[dict[str, Any]]:
    """StackSet-level parameters: keep existing values; a new one gets its template default (or a placeholder
    that every instance overrides)."""
    out = []
    for key, decl in sorted(declared.items()):
        if key in have:
            out.append({"ParameterKey": key, "UsePreviousValue": True})
        else:
            out.append({"ParameterKey": key, "ParameterValue": str(decl.get("Default", "-"))})
    return out


def _create_set(
    sets: Baselines, name: str, baseline: BaselineConfig, declared: dict[str, dict[str, Any]]
) -> ActionResult:
    key, value = sets.marker
    try:
        sets.cf.create_stack_set(
            StackSetName=name,
            TemplateBody=baseline.template_body,
            Description=f"meshcore baseline {baseline.name}",
            Parameters=_set_parameters(declared, set()),
            Capabilities=list(baseline.capabilities),
            PermissionModel="SELF_MANAGED",
            AdministrationRoleARN=sets.admin_role(),
            ExecutionRoleName=sets.cfg.stackset_execution_role_name,
            ManagedExecution={"Active": True},
            Tags=[{"Key": key, "Value": value}],
        )
    except ClientError as exc:
        if retries.code(exc) != "NameAlreadyExistsException":
            raise
        sets.forget(name)
        found = sets.stack_set(name)
        if found is None or not sets.owned(found):
            raise PlatformError(f"a StackSet named {name} appeared that meshcore does not own") from None
    sets.forget(name)
    return ActionResult(message=f"created StackSet {name}")


def _update_set(
    sets: Baselines,
    name: str,
    baseline: BaselineConfig,
    declared: dict[str, dict[str, Any]],
    have: set[str],
    op: str,
) -> Any:
    return sets.cf.update_stack_set(
        StackSetName=name,
        TemplateBody=baseline.template_body,
        Parameters=_set_parameters(declared, have),
        Capabilities=list(baseline.capabilities),
        AdministrationRoleARN=sets.admin_role(),
        ExecutionRoleName=sets.cfg.stackset_execution_role_name,
        ManagedExecution={"Active": True},
        OperationPreferences=sets.preferences(),
        OperationId=op,
    )


# -- per tenant: the instances ------------------------------------------------------------------


def parameters(baseline: BaselineConfig, tenant: TenantSpec, account: dict[str, str]) -> dict[str, str]:
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


def instance_actions(run: Any, tenant: TenantSpec, ctx: HookContext, account: dict[str, str]) -> Observation:
    """Remove instances of StackSets the landing zone no longer uses, then deploy or update its own.

    A ``DRIFTED`` instance is reported (an attribute), not "repaired": an update with the same
    template and parameters leaves the resources as they are and would never clear the drift.
    """
    cfg: AwsConfig = run.cfg
    sets: Baselines = run.baselines
    lz: AwsLandingZone = tenant.landing_zone.config
    aid = tenant.platform_tenant_id
    wanted = {stackset_name(cfg, tenant.landing_zone.id, b): b for b in lz.baselines}
    recorded = {r.key.split("@", 1)[0]: r for r in ctx.resources.owned("stack-instance")}
    actions: list[Action] = []
    in_place: set[str] = set()
    problems: dict[str, str] = {}
    drift: list[str] = []
    for name, rec in sorted(recorded.items()):
        if name not in wanted:
            actions.append(
                _remove_action(
                    sets, ctx, name, rec.data.get("regions", []), retain=False, phase=Phase.BASELINE
                )
            )
    removals = tuple(a.key for a in actions)  # the old zone's instances go before the new zone's come
    for name, baseline in wanted.items():
        key = f"stack-instance:{name}@{tenant.key}"
        want_regions = regions(cfg, baseline)
        open_op = ctx.journal.find("stackset-operation", f"{name}:instances@{tenant.key}")
        params = parameters(baseline, tenant, {**account, "id": aid or ""})
        if open_op is not None and open_op.operation_id:
            actions.append(
                Action(
                    phase=Phase.BASELINE,
                    change=ChangeAction.WAIT,
                    resource="stack-instance",
                    target=f"{name} @ {aid or 'new account'}",
                    key=key,
                    detail=f"operation {open_op.operation_id} started by an earlier run",
                    run=partial(_finish, sets, ctx, name, open_op, want_regions, digest(params)),
                )
            )
            continue
        have = sets.instances(name, aid) if aid else {}
        applied = recorded[name].data.get("params") if name in recorded else None
        missing = [r for r in want_regions if r not in have]
        inoperable = [r for r, i in have.items() if i.get("Status") == "INOPERABLE"]
        if inoperable:
            problems[key] = (
                f"{name} in {', '.join(inoperable)} is INOPERABLE; AWS excludes it from updates: delete the "
                "instance with RetainStacks=true, then the next run deploys it again"
            )
            continue
        stale = [
            r
            for r in want_regions
            if r in have and (have[r].get("Status") == "OUTDATED" or (aid and applied != digest(params)))
        ]
        drift += [f"{name} {r}" for r, i in sorted(have.items()) if i.get("DriftStatus") == "DRIFTED"]
        if not missing and not stale:
            in_place.add(key)
            continue
        actions.append(
            Action(
                phase=Phase.BASELINE,
                change=ChangeAction.CREATE if missing else ChangeAction.UPDATE,
                resource="stack-instance",
                target=f"{name} @ {aid or 'new account'}",
                key=key,
                after=", ".join(missing or stale),
                detail="deploy" if missing else "parameters or template changed",
                requires=(f"stackset:{name}", f"stackset-execution-role@{tenant.key}", *removals),
                run=partial(_deploy, sets, ctx, tenant, name, baseline, account),
            )
        )
    attributes = (
        {"drift": "DRIFTED: " + ", ".join(drift) + " (run drift detection after fixing it)"} if drift else {}
    )
    return Observation(
        actions=tuple(actions), in_place=frozenset(in_place), problems=problems, attributes=attributes
    )


def _deploy(
    sets: Baselines,
    ctx: HookContext,
    tenant: TenantSpec,
    name: str,
    baseline: BaselineConfig,
    account: dict[str, str],
) -> ActionResult:
    """Deploy or update this account's instances (regions as AWS has them when the action runs)."""
    aid = ctx.platform_tenant_id
    if aid is None:
        raise PlatformError("the tenant has no account yet")
    params = parameters(baseline, tenant, {**account, "id": aid})
    want_regions = regions(sets.cfg, baseline)
    have = sets.instances(name, aid)
    missing = [r for r in want_regions if r not in have]  # as AWS has it now
    stale_regions = [r for r in want_regions if r in have]

    if ctx.resources.get("stack-instance", f"{name}@{aid}") is None:  # recorded before it exists, so that a
        ctx.resources.put(  # deletion after a crash mid-operation still removes it
            "stack-instance", f"{name}@{aid}", cloud_id=aid, data={"params": "", "regions": want_regions}
        )

    stale = ctx.journal.find("stackset-operation", f"{name}:instances@{tenant.key}")
    if stale is not None:  # journaled by a run that stopped before recording the call: did it go out?
        if sets.sent(name, str(stale.intent["operation_id"])):
            stale.record_operation(str(stale.intent["operation_id"]))
            return _finish(sets, ctx, name, stale, want_regions, digest(params))
        stale.fail("never sent: the run stopped before the call")

    group = Group(
        name,
        "create_stack_instances" if missing else "update_stack_instances",
        tuple(missing or stale_regions),
        tuple(sorted(params.items())),
    )
    result = sets.batches.join(group, Request(ctx, aid, f"{name}:instances@{tenant.key}"))
    if result.status == ActionStatus.DONE:
        ctx.resources.put(
            "stack-instance",
            f"{name}@{aid}",
            cloud_id=aid,
            data={"params": digest(params), "regions": want_regions},
        )
    return result


def _finish(
    sets: Baselines, ctx: HookContext, name: str, entry: JournalEntry, want_regions: list[str], params: str
) -> ActionResult:
    aid = ctx.platform_tenant_id
    result = sets.wait(name, entry, aid)
    if result.status == ActionStatus.DONE and aid:
        ctx.resources.put(
            "stack-instance", f"{name}@{aid}", cloud_id=aid, data={"params": params, "regions": want_regions}
        )
    return result


def _remove_action(
    sets: Baselines, ctx: HookContext, name: str, regions_: list[str], retain: bool, phase: Phase
) -> Action:
    def go() -> ActionResult:
        aid = ctx.platform_tenant_id
        if aid is None:
            raise PlatformError("the tenant has no account")
        have = sets.instances(name, aid)
        if not have:
            ctx.resources.remove("stack-instance", f"{name}@{aid}")
            return ActionResult(changed=False, message=f"no instance of {name} in {aid}")
        result = sets.operation(
            ctx,
            name,
            f"delete@{aid}",
            lambda op: sets.cf.delete_stack_instances(
                StackSetName=name,
                Accounts=[aid],
                Regions=sorted(have),
                RetainStacks=retain,
                OperationPreferences=sets.preferences(),
                OperationId=op,
            ),
            aid,
        )
        if result.status == ActionStatus.DONE:
            ctx.resources.remove("stack-instance", f"{name}@{aid}")
        return result

    return Action(
        phase=phase,
        change=ChangeAction.DELETE,
        resource="stack-instance",
        target=name,
        key=f"stack-instance-remove:{name}",
        before=", ".join(regions_) or None,
        detail="stacks retained" if retain else "not part of this landing zone",
        run=go,
    )


def teardown_actions(run: Any, tenant: TenantSpec, ctx: HookContext) -> list[Action]:
    """Deletion: remove every instance meshcore deployed to the account (keeping stacks where configured)."""
    cfg: AwsConfig = run.cfg
    sets: Baselines = run.baselines
    lz: AwsLandingZone | None = tenant.landing_zone.config
    keep = {
        stackset_name(cfg, tenant.landing_zone.id, b): b.retain_stacks_on_delete
        for b in (lz.baselines if lz else ())
    }
    return [
        _remove_action(
            sets,
            ctx,
            rec.key.split("@", 1)[0],
            rec.data.get("regions", []),
            keep.get(rec.key.split("@", 1)[0], True),
            Phase.TEARDOWN,
        )
        for rec in ctx.resources.owned("stack-instance")
    ]
