"""The strict profile: AWS behaviour that moto simplifies away, where meshcore depends on it.

moto answers at once, keeps retired fields and enforces little. Code written
against that passes its tests and fails on a real organization. With the strict
profile (on by default, see :data:`PROFILE`):

* **Organizations.** ``Account.Status`` (retired on 2026-09-09) is absent: only
  ``State``. ``CreateAccount`` stays ``IN_PROGRESS`` for ``create_polls`` reads
  of its status, with no ``AccountId`` and the account invisible to
  ``ListAccounts``/``DescribeAccount`` meanwhile. A failing request is ``IN_PROGRESS``
  as long, then ``FAILED`` with AWS's reason (``create_failures``), or with
  ``EMAIL_ALREADY_EXISTS`` for an e-mail address an account of the organization has
  (moto would create a second account). With ``creations_in_progress`` set, a
  ``CreateAccount`` beyond that many in progress (failing ones included) is refused with
  ``ConstraintViolationException`` ``ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED`` (AWS limits
  the creations in progress at a time; it does not publish how many).
  ``CloseAccount`` moves the account to
  ``PENDING_CLOSURE`` for ``closure_polls`` reads, then ``SUSPENDED``; the
  closure quota (the greater of 250 or 20 % of the member accounts, at most
  1,000, or ``closure_quota``) is enforced, every attempt counting, with
  ``ConstraintViolationException`` and its ``Reason``; the management account is
  refused (``CANNOT_CLOSE_MANAGEMENT_ACCOUNT``).
* **STS.** ``AssumeRole`` needs the role to exist, and the ``ExternalId`` its
  trust policy requires (``sts:ExternalId``).
* **Account Management.** ``PutAccountName`` for a member account needs trusted
  access for ``account.amazonaws.com``.
* **Identity Center** exists only in its home region (``ic_region``): elsewhere
  ``ListInstances`` is empty and every other call, the identity store's too, is
  refused with ``ResourceNotFoundException``. Account assignment
  creation and deletion stay ``IN_PROGRESS`` for ``assignment_polls`` status
  reads; permission-set provisioning for ``provisioning_polls``.
* **StackSets.** Operations stay ``RUNNING`` for ``stackset_polls`` reads; while
  one runs, another on the same StackSet is refused with
  ``OperationInProgressException`` unless ``ManagedExecution`` is active (then
  AWS queues it). A self-managed instance in an account without the execution
  role fails the operation, as AWS does, and the results list every targeted
  instance. All of it under the caller's ``OperationId`` (boto3 always sends one):
  a reused one is ``OperationIdAlreadyExistsException``, an unknown one
  ``OperationNotFoundException``; a StackSet name taken is ``NameAlreadyExistsException``.
  Each request that makes an operation is whole (:data:`STACKSET_REQUESTS`).
* **Cost Explorer.** Results for the current month (or later) are ``Estimated``.
* **IAM.** The AWS managed policies meshcore attaches (:data:`MANAGED_POLICIES`)
  exist in every account, as in AWS (moto has none unless it parses all 1,300
  for every account, which costs seconds per test).

Tests make a behaviour harsher or milder for one case by changing
:data:`PROFILE`; :func:`reset` restores the defaults.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_lock = threading.RLock()
# StackSet requests that make an operation run one at a time, each whole: AWS's one-operation-at-a-time
# check and the operation it admits, and a deployment's failures and the operation that reports them.
STACKSET_REQUESTS = threading.RLock()


@dataclass
class Profile:
    """How strict the emulator is. Counts are status reads, so tests need no real waiting."""

    create_polls: int = 1
    create_seconds: float = 0.0  # > 0: an account is IN_PROGRESS for this long (a latency benchmark's AWS)
    # Creations that may be IN_PROGRESS at once; one more is refused with ConstraintViolationException
    # ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED ("the number of accounts that can be in progress at a time";
    # AWS does not publish the number). None: no limit.
    creations_in_progress: int | None = None
    create_failures: dict[str, str] = field(default_factory=dict)  # e-mail or "*" -> FailureReason
    closure_polls: int = 1
    closure_quota: int | None = None  # None: AWS's formula
    enforce_external_id: bool = True
    require_trusted_access: bool = True
    ic_region: str = "us-east-1"
    assignment_polls: int = 1
    assignment_seconds: float = 0.0  # > 0: an assignment request is IN_PROGRESS for this long instead
    provisioning_polls: int = 1
    stackset_polls: int = 1
    require_execution_role: bool = True
    estimate_current_month: bool = True
    cloudtrail_delay_seconds: float = 0.0  # how long an event takes to appear in LookupEvents


PROFILE = Profile()


@dataclass
class _State:
    """What the profile remembers beyond moto's own state."""

    creating: dict[str, int] = field(default_factory=dict)  # account id -> status reads left
    creating_until: dict[str, float] = field(default_factory=dict)  # account id -> monotonic time it is ready
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> FAILED status
    failing: dict[str, int] = field(
        default_factory=dict
    )  # request id -> reads left IN_PROGRESS before FAILED
    failing_until: dict[str, float] = field(default_factory=dict)  # request id -> monotonic time it fails
    closing: dict[str, int] = field(default_factory=dict)  # account id -> reads left in PENDING_CLOSURE
    closure_attempts: dict[str, int] = field(default_factory=dict)  # management account -> attempts
    assignment_requests: dict[str, int] = field(default_factory=dict)  # request id -> reads left
    assignment_until: dict[str, float] = field(
        default_factory=dict
    )  # request id -> monotonic time it is done
    operations: dict[str, int] = field(default_factory=dict)  # StackSet operation id -> reads left
    failed_operations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # CloudTrail event history (management events)


STATE = _State()


def reset() -> None:
    """Default profile, no remembered state."""
    global PROFILE, STATE
    with _lock:
        PROFILE.__init__()  # type: ignore[misc]
        STATE.__init__()  # type: ignore[misc]


def closure_quota(member_accounts: int) -> int:
    """AWS's closure quota for an organization of this size (or the profile's)."""
    if PROFILE.closure_quota is not None:
        return PROFILE.closure_quota
    return min(1000, max(250, member_accounts * 20 // 100))


def apply() -> None:
    """Patch moto in this process (called once by :func:`meshcore_aws_emulator.patch`)."""
    _organizations()
    _sts()
    _sso_regions()
    _assignments()
    _group_memberships()
    _stacksets()
    _cost_explorer()
    _managed_policies()
    _event_history()


# -- Organizations -------------------------------------------------------------------------


def _organizations() -> None:
    from moto.organizations import models
    from moto.organizations.exceptions import (
        AccountAlreadyClosedException,
        AccountNotFoundException,
        ConstraintViolationException,
        OrganizationsClientError,
    )

    account_cls, backend = models.FakeAccount, models.OrganizationsBackend
    status_of = account_cls.create_account_status.fget  # type: ignore[attr-defined]

    def describe(self: Any) -> dict[str, Any]:
        with _lock:
            left = STATE.closing.get(self.id)
            if left is not None:
                if left <= 0:
                    STATE.closing.pop(self.id)
                    self.state = self.status = "SUSPENDED"
                else:
                    STATE.closing[self.id] = left - 1
        return {
            "Id": self.id,
            "Arn": self.arn,
            "Email": self.email,
            "Name": self.name,
            "State": self.state,
            "JoinedMethod": self.joined_method,
            "JoinedTimestamp": models.unix_time(self.create_time),
        }

    def in_progress(account_id: str) -> bool:
        return (
            STATE.creating.get(account_id, 0) > 0
            or STATE.creating_until.get(account_id, 0) > time.monotonic()
        )

    def create_account_status(self: Any) -> dict[str, Any]:
        data = copy.deepcopy(status_of(self))
        if in_progress(self.id):
            data["CreateAccountStatus"]["State"] = "IN_PROGRESS"
            data["CreateAccountStatus"].pop("AccountId", None)
            data["CreateAccountStatus"].pop("CompletedTimestamp", None)
        return data

    def hidden(account_id: str) -> bool:
        return in_progress(account_id)

    create, list_accounts = backend.create_account, backend.list_accounts
    list_for_parent, get_by_id = backend.list_accounts_for_parent, backend.get_account_by_id

    def create_account(self: Any, **kwargs: Any) -> dict[str, Any]:
        with _lock:  # the e-mail check and the creation as one step: the server answers on several threads
            limit = PROFILE.creations_in_progress
            failing = sum(
                1
                for r in STATE.failed
                if STATE.failing.get(r, 0) > 0 or STATE.failing_until.get(r, 0) > time.monotonic()
            )  # a request that will fail is in progress until it does, and holds its place
            if limit is not None and sum(1 for a in self.accounts if in_progress(a.id)) + failing >= limit:
                error = ConstraintViolationException(
                    "You attempted to exceed the number of accounts that can be in progress at a time."
                )
                error.reason = "ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED"  # type: ignore[attr-defined]
                raise error
            taken = any(a.email.lower() == kwargs["Email"].lower() for a in self.accounts)
            out = create(self, **kwargs)
            st = out["CreateAccountStatus"]
            reason = (
                "EMAIL_ALREADY_EXISTS"  # AWS: one account per e-mail address (moto would make a second)
                if taken
                else PROFILE.create_failures.get(kwargs["Email"]) or PROFILE.create_failures.get("*")
            )
            # still in the same step: no other request may see the new account created before it was
            if reason:
                self.accounts = [a for a in self.accounts if a.id != st["AccountId"]]
                STATE.failed[st["Id"]] = {
                    "Id": st["Id"],
                    "AccountName": kwargs["AccountName"],
                    "State": "FAILED",
                    "FailureReason": reason,
                    "RequestedTimestamp": st["RequestedTimestamp"],
                }
                # AWS answers IN_PROGRESS and fails later, seen by a status read
                if PROFILE.create_seconds > 0:
                    STATE.failing_until[st["Id"]] = time.monotonic() + PROFILE.create_seconds
                elif PROFILE.create_polls > 0:
                    STATE.failing[st["Id"]] = PROFILE.create_polls
                return {"CreateAccountStatus": failed_status(st["Id"], read=False)}
            if PROFILE.create_seconds > 0:
                STATE.creating_until[st["AccountId"]] = time.monotonic() + PROFILE.create_seconds
            elif PROFILE.create_polls > 0:
                STATE.creating[st["AccountId"]] = PROFILE.create_polls
        return create_account_status(get_by_id(self, st["AccountId"]))

    def failed_status(request: str, read: bool = True) -> dict[str, Any]:
        """A failing creation's status: IN_PROGRESS (no reason yet) until its reads or time run out. A
        ``read`` uses one up. Called under ``_lock``."""
        status = STATE.failed[request]
        if STATE.failing_until.get(request, 0) > time.monotonic() or STATE.failing.get(request, 0) > 0:
            if read and STATE.failing.get(request, 0) > 0:
                STATE.failing[request] -= 1
            return {k: v for k, v in status.items() if k != "FailureReason"} | {"State": "IN_PROGRESS"}
        return status

    def describe_create_account_status(self: Any, **kwargs: Any) -> dict[str, Any]:
        request = kwargs["CreateAccountRequestId"]
        if request in STATE.failed:
            with _lock:
                return {"CreateAccountStatus": failed_status(request)}
        account = self.get_account_by_attr("create_account_status_id", request)
        with _lock:  # the status and the read it uses up as one step (a listing could use it too)
            out = create_account_status(account)
            if STATE.creating.get(account.id, 0) > 0:
                STATE.creating[account.id] -= 1
        return out

    def list_create_account_status(self: Any, **kwargs: Any) -> dict[str, Any]:
        # Listed and paged here: moto's own pages repeat their NextToken past the first page.
        states = kwargs.get("States") or ["IN_PROGRESS", "SUCCEEDED", "FAILED"]
        start = int(kwargs.get("NextToken") or 0)
        size = min(int(kwargs.get("MaxResults") or 20), 20)  # AWS returns at most 20 a page
        with _lock:  # a listing is a status read of every creation it shows in progress, as one step
            everything = [create_account_status(a)["CreateAccountStatus"] for a in self.accounts]
            everything += [failed_status(request, read=False) for request in STATE.failed]
            matching = [st for st in everything if st["State"] in states]
            page = matching[start : start + size]
            for st in page:
                if st["Id"] in STATE.failed:
                    failed_status(st["Id"])  # the read it uses up
                elif st["State"] == "IN_PROGRESS":
                    account = self.get_account_by_attr("create_account_status_id", st["Id"])
                    if account is not None and STATE.creating.get(account.id, 0) > 0:
                        STATE.creating[account.id] -= 1
        out: dict[str, Any] = {"CreateAccountStatuses": page}
        if start + size < len(matching):
            out["NextToken"] = str(start + size)
        return out

    # Reads of accounts take the lock too, so that an account being created is never seen in between.
    def visible_accounts(self: Any, **kwargs: Any) -> Any:
        with _lock:
            accounts, token = list_accounts(self, **kwargs)  # described accounts (dicts)
            return [a for a in accounts if not hidden(a["Id"])], token  # type: ignore[index]

    def visible_for_parent(self: Any, **kwargs: Any) -> Any:
        with _lock:
            accounts, token = list_for_parent(self, **kwargs)  # account objects
            return [a for a in accounts if not hidden(a.id)], token

    def get_account_by_id(self: Any, account_id: str) -> Any:
        with _lock:
            if hidden(account_id):
                raise AccountNotFoundException
            return get_by_id(self, account_id)

    def close_account(self: Any, **kwargs: Any) -> None:
        if self.org is None:
            raise models.AWSOrganizationsNotInUseException
        account = get_account_by_id(self, kwargs["AccountId"])
        with _lock:
            members = sum(1 for a in self.accounts if a.id != self.org.master_account_id)
            used = STATE.closure_attempts.get(self.org.master_account_id, 0)
            STATE.closure_attempts[self.org.master_account_id] = used + 1  # a refused attempt counts too
            if account.id == self.org.master_account_id:
                error = ConstraintViolationException("You can't close the management account with this API.")
                error.reason = "CANNOT_CLOSE_MANAGEMENT_ACCOUNT"  # type: ignore[attr-defined]
                raise error
            if account.state in ("SUSPENDED", "CLOSED"):
                raise AccountAlreadyClosedException
            if account.id in STATE.closing:
                raise OrganizationsClientError(
                    "ConflictException", f"account {account.id} is already being closed"
                )
            if used >= closure_quota(members):
                error = ConstraintViolationException(
                    "You have exceeded close account quota for the past 30 days."
                )
                error.reason = "CLOSE_ACCOUNT_QUOTA_EXCEEDED"  # type: ignore[attr-defined]
                raise error
            account.state = account.status = "PENDING_CLOSURE"
            STATE.closing[account.id] = PROFILE.closure_polls

    account_cls.describe = describe  # type: ignore[method-assign]
    account_cls.create_account_status = property(create_account_status)  # type: ignore[method-assign,assignment]
    backend.create_account = create_account  # type: ignore[method-assign]
    backend.describe_create_account_status = describe_create_account_status  # type: ignore[method-assign]
    backend.list_create_account_status = list_create_account_status  # type: ignore[method-assign]
    backend.list_accounts = visible_accounts  # type: ignore[method-assign,assignment]
    backend.list_accounts_for_parent = visible_for_parent  # type: ignore[method-assign,assignment]
    backend.get_account_by_id = get_account_by_id  # type: ignore[method-assign]
    backend.close_account = close_account  # type: ignore[method-assign]


def trusted_access(account_id: str, principal: str) -> bool:
    """Whether the organization that holds ``account_id`` enabled trusted access for ``principal``."""
    from moto.organizations.models import organizations_backends

    for backends in organizations_backends.values():
        for backend in backends.values():
            if backend.org is not None and any(a.id == account_id for a in backend.accounts):
                return any(s.get("ServicePrincipal") == principal for s in backend.services)
    return False


# -- STS -----------------------------------------------------------------------------------------


def _sts() -> None:
    from moto.iam.models import iam_backends
    from moto.sts.exceptions import STSClientError
    from moto.sts.models import STSBackend

    assume = STSBackend.assume_role

    def assume_role(self: Any, **kwargs: Any) -> Any:
        if PROFILE.enforce_external_id:
            arn = kwargs["role_arn"]
            account, name = arn.split(":")[4], arn.rsplit("/", 1)[-1]
            denied = STSClientError(
                "AccessDenied", f"User is not authorized to perform: sts:AssumeRole on resource: {arn}"
            )
            try:
                role = iam_backends[account]["global"].get_role(name)
            except Exception:  # moto raises its own IAMNotFoundException
                raise denied from None
            wanted = _external_ids(role.assume_role_policy_document)
            if wanted and kwargs.get("external_id") not in wanted:
                raise denied
        return assume(self, **kwargs)

    STSBackend.assume_role = assume_role  # type: ignore[method-assign,assignment]


def _external_ids(document: str) -> set[str]:
    """ExternalIds a trust policy's Allow statements require (empty: none required)."""
    try:
        policy = json.loads(document) if isinstance(document, str) else document
    except ValueError:
        return set()
    statements = policy.get("Statement", []) if isinstance(policy, dict) else []
    wanted: set[str] = set()
    for st in statements if isinstance(statements, list) else [statements]:
        if st.get("Effect") != "Allow":
            continue
        for values in st.get("Condition", {}).get("StringEquals", {}).items():
            if values[0].lower() == "sts:externalid":
                wanted |= set(values[1] if isinstance(values[1], list) else [values[1]])
    return wanted


# -- Identity Center -------------------------------------------------------------------------------


def _sso_regions() -> None:
    from moto.identitystore.exceptions import ResourceNotFoundException as StoreNotFound
    from moto.identitystore.responses import IdentityStoreResponse
    from moto.ssoadmin.exceptions import ResourceNotFoundException
    from moto.ssoadmin.models import SSOAdminBackend
    from moto.ssoadmin.responses import SSOAdminResponse

    def home_only(response_cls: type, prop: str, error: Any) -> None:
        original = getattr(response_cls, prop)

        def backend(self: Any) -> Any:
            if self.region != PROFILE.ic_region and self._get_action() != "ListInstances":
                raise error(
                    f"IAM Identity Center is not enabled in {self.region} (its home region is elsewhere)"
                )
            return original.fget(self)

        setattr(response_cls, prop, property(backend))

    home_only(SSOAdminResponse, "ssoadmin_backend", ResourceNotFoundException)
    home_only(  # moto's identity-store errors take keyword arguments only
        IdentityStoreResponse,
        "identitystore_backend",
        lambda message: StoreNotFound(message=message, resource_type="IDENTITY_STORE"),
    )
    list_instances = SSOAdminBackend.list_instances

    def instances_in_home_region(self: Any) -> Any:
        return list_instances(self) if self.region_name == PROFILE.ic_region else []

    SSOAdminBackend.list_instances = instances_in_home_region  # type: ignore[method-assign]


def _group_memberships() -> None:
    """A second membership of one user in one group is refused with ``ConflictException``, as AWS does
    (moto would add a duplicate)."""
    from moto.identitystore.exceptions import ConflictException
    from moto.identitystore.models import IdentityStoreBackend

    create = IdentityStoreBackend.create_group_membership

    def create_group_membership(
        self: Any, identity_store_id: str, group_id: str, member_id: dict[str, str]
    ) -> Any:
        store = self._IdentityStoreBackend__get_identity_store(identity_store_id)
        with _lock:  # the server answers requests on several threads: check and add as one step
            for membership in store.group_memberships.values():
                if membership["GroupId"] == group_id and membership["MemberId"].get(
                    "UserId"
                ) == member_id.get("UserId"):
                    raise ConflictException(
                        message="Member already exists in the group", reason="UNIQUENESS_CONSTRAINT_VIOLATION"
                    )
            return create(self, identity_store_id, group_id, member_id)

    delete = IdentityStoreBackend.delete_group_membership

    def delete_group_membership(self: Any, identity_store_id: str, membership_id: str) -> None:
        with _lock:
            delete(self, identity_store_id, membership_id)

    # moto walks a store's groups while another request adds one ("dictionary changed size during
    # iteration" at 1,000 tenants): AWS answers concurrent requests, so these run one at a time here
    for name in ("create_group", "get_group_id", "list_groups", "describe_group", "delete_group"):
        original = getattr(IdentityStoreBackend, name, None)
        if original is None:
            continue

        def serial(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _lock:
                return __original(self, *args, **kwargs)

        setattr(IdentityStoreBackend, name, serial)
    IdentityStoreBackend.create_group_membership = create_group_membership  # type: ignore[method-assign]
    IdentityStoreBackend.delete_group_membership = delete_group_membership  # type: ignore[method-assign]


def _assignments() -> None:
    from moto.core.exceptions import JsonRESTError
    from moto.ssoadmin.responses import SSOAdminResponse

    def started(name: str, key: str) -> None:
        original = getattr(SSOAdminResponse, name)

        def handler(self: Any) -> str:
            out = json.loads(original(self))
            if PROFILE.assignment_seconds > 0:
                with _lock:
                    STATE.assignment_until[out[key]["RequestId"]] = (
                        time.monotonic() + PROFILE.assignment_seconds
                    )
                out[key]["Status"] = "IN_PROGRESS"
            elif PROFILE.assignment_polls > 0:
                with _lock:
                    STATE.assignment_requests[out[key]["RequestId"]] = PROFILE.assignment_polls
                out[key]["Status"] = "IN_PROGRESS"
            return json.dumps(out)

        setattr(SSOAdminResponse, name, handler)

    def described(name: str, key: str, request: str) -> None:
        original = getattr(SSOAdminResponse, name)

        def handler(self: Any) -> str:
            out = json.loads(original(self))
            rid = self._get_param(request)
            with _lock:
                left = STATE.assignment_requests.get(rid, 0)
                if left > 0:
                    STATE.assignment_requests[rid] = left - 1
                    out[key]["Status"] = "IN_PROGRESS"
                if STATE.assignment_until.get(rid, 0) > time.monotonic():
                    out[key]["Status"] = "IN_PROGRESS"
            return json.dumps(out)

        setattr(SSOAdminResponse, name, handler)

    def listed(name: str, key: str, assignments: str) -> None:
        """``List...Status``, which moto lacks: every request of the kind, newest last, filtered by status
        and paged as AWS does (``MaxResults`` 1..100; a page goes on after the request the last one ended
        with); a listing is a status read of each request it shows."""

        def handler(self: Any) -> str:
            limit = int(self._get_param("MaxResults") or 100)
            if not 1 <= limit <= 100:
                raise JsonRESTError("ValidationException", "MaxResults must be between 1 and 100")
            wanted = (self._get_param("Filter") or {}).get("Status")
            after = self._get_param("NextToken")  # the request id the previous page ended with
            now = time.monotonic()
            page: list[dict[str, Any]] = []
            more = False
            with _lock:
                requests = list(getattr(self.ssoadmin_backend, assignments))
                ids = [a.request_id for a in requests]
                first = ids.index(after) + 1 if after in ids else 0
                for assignment in requests[first:]:
                    rid = assignment.request_id
                    running = (
                        STATE.assignment_requests.get(rid, 0) > 0 or STATE.assignment_until.get(rid, 0) > now
                    )
                    status = "IN_PROGRESS" if running else "SUCCEEDED"
                    if wanted and status != wanted:
                        continue
                    if len(page) == limit:
                        more = True
                        break
                    if STATE.assignment_requests.get(rid, 0) > 0:  # this page is a status read of it
                        STATE.assignment_requests[rid] -= 1
                    page.append({"Status": status, "RequestId": rid, "CreatedDate": assignment.created_date})
            out: dict[str, Any] = {key: page}
            if more:
                out["NextToken"] = page[-1]["RequestId"]
            return json.dumps(out)

        setattr(SSOAdminResponse, name, handler)

    listed(
        "list_account_assignment_creation_status", "AccountAssignmentsCreationStatus", "account_assignments"
    )
    listed(
        "list_account_assignment_deletion_status",
        "AccountAssignmentsDeletionStatus",
        "deleted_account_assignments",
    )
    started("create_account_assignment", "AccountAssignmentCreationStatus")
    started("delete_account_assignment", "AccountAssignmentDeletionStatus")
    described(
        "describe_account_assignment_creation_status",
        "AccountAssignmentCreationStatus",
        "AccountAssignmentCreationRequestId",
    )
    described(
        "describe_account_assignment_deletion_status",
        "AccountAssignmentDeletionStatus",
        "AccountAssignmentDeletionRequestId",
    )


# -- StackSets -------------------------------------------------------------------------------------


def _stacksets() -> None:
    from moto.cloudformation.models import CloudFormationBackend, StackInstances, StackSet
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.responses import ActionResult
    from moto.iam.models import iam_backends

    create_operation, get_operation = StackSet._create_operation, StackSet.get_operation
    create_instances = StackInstances.create_instances
    create_stack_set = CloudFormationBackend.create_stack_set

    def unique_stack_set(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        """A name is one StackSet (moto makes a second one)."""
        with STACKSET_REQUESTS:
            if any(s.name == name and s.status == "ACTIVE" for s in self.stacksets.values()):
                raise cloudformation_error("NameAlreadyExistsException", f"StackSet {name} already exists")
            return create_stack_set(self, name, *args, **kwargs)

    CloudFormationBackend.create_stack_set = unique_stack_set  # type: ignore[method-assign]

    def _create_operation(self: Any, operation_id: str, action: str, status: str, **kw: Any) -> Any:
        op = create_operation(self, operation_id, action, status, **kw)
        with _lock:
            failures = STATE.failed_operations.pop("__next__", [])
            if failures:
                STATE.failed_operations[op["OperationId"]] = failures
                op["Status"] = "FAILED"
            if PROFILE.stackset_polls > 0:
                STATE.operations[op["OperationId"]] = PROFILE.stackset_polls
        return op

    def get(self: Any, operation_id: str) -> Any:
        with STACKSET_REQUESTS:  # not while a request is making an operation (it gets the caller's id last)
            if not any(op["OperationId"] == operation_id for op in self.operations):
                raise cloudformation_error(  # moto: a ValidationError
                    "OperationNotFoundException", f"Operation {operation_id} not found"
                )
            op = get_operation(self, operation_id)
            with _lock:
                left = STATE.operations.get(operation_id, 0)
                if left > 0:
                    STATE.operations[operation_id] = left - 1
                    return {**op, "Status": "RUNNING"}
            return op

    def create(self: Any, accounts: list[str], regions: list[str], *args: Any, **kwargs: Any) -> Any:
        """Deploy per account; an account without the execution role fails its instance, as in AWS."""
        done: list[dict[str, Any]] = []
        stackset = _stackset_named(self.account_id, self.stackset_name)
        role = (
            stackset.execution_role_name if stackset is not None else "AWSCloudFormationStackSetExecutionRole"
        )
        self_managed = kwargs.get("permission_model", "SELF_MANAGED") == "SELF_MANAGED"
        for account in accounts:
            if PROFILE.require_execution_role and self_managed and not _has_role(iam_backends, account, role):
                with _lock:
                    STATE.failed_operations.setdefault("__next__", []).extend(
                        {
                            "Account": account,
                            "Region": region,
                            "Status": "FAILED",
                            "StatusReason": (
                                f"Account {account} should have '{role}' role with trust relationship to "
                                "Role 'AWSCloudFormationStackSetAdministrationRole'."
                            ),
                        }
                        for region in regions
                    )
                continue
            done += create_instances(self, [account], regions, *args, **kwargs)
        return done

    StackSet._create_operation = _create_operation  # type: ignore[method-assign,assignment]
    StackSet.get_operation = get  # type: ignore[method-assign]
    StackInstances.create_instances = create  # type: ignore[method-assign]

    for name in (
        "create_stack_instances",
        "update_stack_instances",
        "delete_stack_instances",
        "update_stack_set",
    ):
        original = getattr(CloudFormationResponse, name)

        def one_at_a_time(self: Any, __original: Any = original) -> Any:
            with STACKSET_REQUESTS:
                stackset = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
                with _lock:
                    running = [
                        op["OperationId"]
                        for op in stackset.operations
                        if STATE.operations.get(op["OperationId"], 0) > 0
                    ]
                if running and not stackset.managed_execution.get("Active"):
                    raise cloudformation_error(
                        "OperationInProgressException",
                        f"Another Operation on StackSet is in progress: {running[0]}",
                    )
                return __original(self)

        setattr(CloudFormationResponse, name, one_at_a_time)

    results = CloudFormationResponse.list_stack_set_operation_results

    def list_results(self: Any) -> Any:
        """Every instance the operation targeted has a result, as on AWS: the failed ones with their
        reason, the others as moto has them (its status is the operation's: SUCCEEDED for those)."""
        failures = STATE.failed_operations.get(self._get_param("OperationId"))
        if not failures:
            return results(self)
        failed = {(f["Account"], f["Region"]) for f in failures}
        listed: dict[str, Any] = results(self).result  # type: ignore[assignment]
        others = [
            {**r, "Status": "SUCCEEDED"}
            for r in listed["Summaries"]
            if (r["Account"], r["Region"]) not in failed
        ]
        return ActionResult({"Summaries": [*failures, *others]})

    CloudFormationResponse.list_stack_set_operation_results = list_results  # type: ignore[method-assign]


def operation_renamed(moto_id: str, operation_id: str) -> None:
    """A StackSet operation got the caller's ``OperationId`` (boto3 always sends one, its idempotency
    token): what the emulator keeps about it (reads left while running, failed instances) goes with it."""
    with _lock:
        if moto_id in STATE.operations:
            STATE.operations[operation_id] = STATE.operations.pop(moto_id)
        if moto_id in STATE.failed_operations:
            STATE.failed_operations[operation_id] = STATE.failed_operations.pop(moto_id)


def _stackset_named(account_id: str, name: str) -> Any:
    from moto.cloudformation.models import cloudformation_backends

    for backend in cloudformation_backends[account_id].values():
        for stackset in backend.stacksets.values():
            if stackset.name == name and stackset.status == "ACTIVE":
                return stackset
    return None


def _has_role(iam_backends: Any, account: str, role: str) -> bool:
    try:
        iam_backends[account]["global"].get_role(role)
    except Exception:  # moto's IAMNotFoundException
        return False
    return True


def cloudformation_error(code: str, message: str) -> Exception:
    """A CloudFormation error with AWS's code (moto has none of these)."""
    from moto.cloudformation.exceptions import CloudFormationError

    return type(code, (CloudFormationError,), {"code": code})(message)


# -- Cost Explorer ---------------------------------------------------------------------------------


def _cost_explorer() -> None:
    from moto.ce.models import CostExplorerBackend

    original = CostExplorerBackend.get_cost_and_usage

    def get_cost_and_usage(self: Any, body: str) -> dict[str, Any]:
        out = original(self, body)
        if PROFILE.estimate_current_month:
            month_start = dt.datetime.now(dt.UTC).date().replace(day=1).isoformat()
            for result in out.get("ResultsByTime", []):
                if result.get("TimePeriod", {}).get("End", "") > month_start:
                    result["Estimated"] = True
        return out

    CostExplorerBackend.get_cost_and_usage = get_cost_and_usage  # type: ignore[method-assign]


# -- IAM -------------------------------------------------------------------------------------------

#: AWS managed policies present in every emulated account (what meshcore and its tests attach).
MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "ReadOnlyAccess", "ViewOnlyAccess")
_PARSED: dict[str, Any] = {}


def _managed_policies() -> None:
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy, IAMBackend

    original = IAMBackend._init_aws_policies

    def init(self: Any) -> list[Any]:
        loaded = original(self)  # everything, if moto was told to load them all
        if loaded:
            return loaded
        if not _PARSED:
            everything = json.loads(aws_managed_policies_data)
            _PARSED.update({name: everything[name] for name in MANAGED_POLICIES})
        return [
            AWSManagedPolicy.from_data(n, self.account_id, self.region_name, d) for n, d in _PARSED.items()
        ]

    IAMBackend._init_aws_policies = init  # type: ignore[method-assign]


# -- CloudTrail event history ------------------------------------------------------------------

#: Services whose writes the event history records (moto's service name -> CloudTrail event source).
EVENT_SOURCES = {
    "organizations": "organizations.amazonaws.com",
    "sso-admin": "sso.amazonaws.com",
    "identitystore": "identitystore.amazonaws.com",
    "account": "account.amazonaws.com",
}
#: Global services: their events are recorded in us-east-1, whatever endpoint was called.
GLOBAL_SOURCES = {"organizations.amazonaws.com", "account.amazonaws.com"}
READ_PREFIXES = ("List", "Describe", "Get")


def _event_history() -> None:
    """``LookupEvents`` (moto has none): the management events of the services meshcore writes to,
    as AWS records them (event source, name, region, ``requestParameters`` with camel-case names),
    visible ``PROFILE.cloudtrail_delay_seconds`` after the call; one lookup attribute, time range,
    ``MaxResults`` 1..50, newest first, paged."""
    import uuid

    from moto.cloudtrail.responses import CloudTrailResponse
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import BaseResponse

    call_action = BaseResponse.call_action

    def recorded(self: Any) -> Any:
        status, headers, body = call_action(self)
        source = EVENT_SOURCES.get(self.service_name or "")
        if source is not None and int(status) < 400:
            action = self._get_action()
            if not action.startswith(READ_PREFIXES):
                try:
                    params = json.loads(self.body or "{}")
                except ValueError:
                    params = {}
                event = {
                    "eventVersion": "1.08",
                    "eventID": str(uuid.uuid4()),
                    "eventTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "eventSource": source,
                    "eventName": action,
                    "awsRegion": "us-east-1" if source in GLOBAL_SOURCES else self.region,
                    "readOnly": False,
                    "requestParameters": {k[:1].lower() + k[1:]: v for k, v in params.items()},
                }
                with _lock:
                    STATE.events.append({"at": time.time(), "event": event})
        return status, headers, body

    BaseResponse.call_action = recorded  # type: ignore[method-assign]

    def lookup_events(self: Any) -> str:
        limit = int(self._get_param("MaxResults") or 50)
        if not 1 <= limit <= 50:
            raise JsonRESTError("InvalidMaxResultsException", "MaxResults must be between 1 and 50")
        attributes = self._get_param("LookupAttributes") or []
        if len(attributes) > 1:
            raise JsonRESTError("InvalidLookupAttributesException", "only one lookup attribute is allowed")
        start, end = self._get_param("StartTime"), self._get_param("EndTime")
        visible_before = time.time() - PROFILE.cloudtrail_delay_seconds
        with _lock:
            events = [e for e in STATE.events if e["at"] <= visible_before]
        found = []
        for entry in reversed(events):  # newest first
            event = entry["event"]
            when = dt.datetime.strptime(event["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            if event["awsRegion"] != self.region:
                continue
            if start is not None and when.timestamp() < float(start):
                continue
            if end is not None and when.timestamp() > float(end):
                continue
            if attributes:
                key, value = attributes[0]["AttributeKey"], attributes[0]["AttributeValue"]
                field_of = {"EventName": "eventName", "EventSource": "eventSource", "EventId": "eventID"}
                if key == "ReadOnly":
                    if value != "false":
                        continue
                elif event.get(field_of.get(key, ""), None) != value:
                    continue
            found.append(
                {
                    "EventId": event["eventID"],
                    "EventName": event["eventName"],
                    "ReadOnly": "false",
                    "EventTime": when.timestamp(),
                    "EventSource": event["eventSource"],
                    "Resources": [],
                    "CloudTrailEvent": json.dumps(event),
                }
            )
        first = int(self._get_param("NextToken") or 0)
        out: dict[str, Any] = {"Events": found[first : first + limit]}
        if first + limit < len(found):
            out["NextToken"] = str(first + limit)
        return json.dumps(out)

    CloudTrailResponse.lookup_events = lookup_events  # type: ignore[attr-defined]
