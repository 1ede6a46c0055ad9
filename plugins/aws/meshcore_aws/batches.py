"""One StackSet operation for many accounts: the tenants of a run that deploy the same StackSet
with the same regions and parameter overrides share one operation.

AWS queues every operation on a StackSet behind a running one, even a non-conflicting one
(``ManagedExecution``), so one operation per account puts a landing zone's new accounts in
line, each waiting minutes for the one before. Here operations are group-committed: the first
tenant's starts at once; tenants arriving while it runs wait and go together in the next. N
accounts cost a handful of operations.

AWS applies one set of ``ParameterOverrides`` to every account of an operation, so only
tenants with equal overrides can share one: a baseline that declares per-account parameters
(``AccountId``, ``AccountName``, ``AccountEmail``, ``Workspace``, ``Project``, ``Tags``)
costs an operation per account. A template can use ``${AWS::AccountId}`` instead.

Each tenant journals the shared operation id before the call and records it after, so a
crash anywhere leaves every tenant of the batch knowing whether the operation went out.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from botocore.exceptions import ClientError

from meshcore import ActionResult, ActionStatus, HookContext, JournalEntry, PlatformError
from meshcore_aws import retries

if TYPE_CHECKING:  # pragma: no cover
    from meshcore_aws.baselines import Baselines


class Group(NamedTuple):
    """What must be equal for accounts to share an operation."""

    stack_set: str
    operation: str  # create_stack_instances or update_stack_instances
    regions: tuple[str, ...]
    overrides: tuple[tuple[str, str], ...]


@dataclass
class Request:
    """One tenant's account waiting to join an operation."""

    ctx: HookContext
    account: str
    journal_key: str
    outcome: ActionResult | Exception | None = field(default=None)


class OperationBatches:
    """Pending and running operations of one run, by :class:`Group`."""

    def __init__(self, sets: Baselines):
        self.sets = sets
        self._cond = threading.Condition()
        self._pending: dict[Group, list[Request]] = {}
        self._running: set[Group] = set()

    def join(self, group: Group, request: Request) -> ActionResult:
        """Deploy ``request``'s account in the next operation of ``group``; returns its account's outcome."""
        with self._cond:
            self._pending.setdefault(group, []).append(request)
            while request.outcome is None and group in self._running:
                self._cond.wait()
            if request.outcome is None:  # nothing of this group runs: lead the next operation
                self._running.add(group)
                batch = self._pending.pop(group)
        if request.outcome is None:
            try:
                outcomes = self._operate(group, batch)
            except Exception as exc:  # the call itself failed: every account of the batch shares it
                outcomes = [exc] * len(batch)
            with self._cond:
                for r, outcome in zip(batch, outcomes, strict=True):
                    r.outcome = outcome
                self._running.discard(group)
                self._cond.notify_all()
        if isinstance(request.outcome, Exception):
            raise request.outcome
        assert request.outcome is not None
        return request.outcome

    def _operate(self, group: Group, batch: list[Request]) -> list[ActionResult | Exception]:
        sets, name = self.sets, group.stack_set
        op_id = str(uuid.uuid4())
        accounts = sorted({r.account for r in batch})
        entries = [
            r.ctx.journal.begin(
                "stackset-operation", r.journal_key, {"operation_id": op_id, "accounts": len(accounts)}
            )
            for r in batch
        ]
        try:
            getattr(sets.cf, group.operation)(
                StackSetName=name,
                Accounts=accounts,
                Regions=list(group.regions),
                ParameterOverrides=[{"ParameterKey": k, "ParameterValue": v} for k, v in group.overrides],
                OperationPreferences=sets.preferences(),
                OperationId=op_id,
            )
        except ClientError as exc:
            busy = retries.code(exc) == "OperationInProgressException"
            for e in entries:
                e.fail("StackSet busy" if busy else retries.describe(exc))
            if busy:
                message = f"StackSet {name} is busy with another operation; retried next run"
                return [ActionResult(status=ActionStatus.IN_PROGRESS, message=message)] * len(batch)
            raise PlatformError(
                f"StackSet {name}: {group.operation} was refused: {retries.describe(exc)}"
            ) from None
        for e in entries:
            e.record_operation(op_id)
        if sets.settle(name, op_id) is None:  # outlives this run's wait: the next run awaits it, per tenant
            message = f"StackSet {name} operation {op_id} is still running"
            return [ActionResult(status=ActionStatus.IN_PROGRESS, message=message)] * len(batch)
        return [
            _outcome(sets, name, r.account, e, len(accounts)) for r, e in zip(batch, entries, strict=True)
        ]


def _outcome(
    sets: Baselines, name: str, account: str, entry: JournalEntry, shared: int
) -> ActionResult | Exception:
    try:
        result = sets.wait(name, entry, account)
    except PlatformError as exc:
        return exc
    if result.status == ActionStatus.DONE and shared > 1:
        return ActionResult(message=f"{result.message} ({shared} accounts in one operation)")
    return result


__all__ = ["Group", "OperationBatches", "Request"]
