"""A fidelity layer over moto: AWS behaviour the plugin depends on that moto lacks or gets wrong.

Used by the sandbox (``meshcore aws sandbox``/``demo``) and by the test suite,
never by the plugin's runtime code. :func:`patch` applies it to the moto
running in this process (in-process ``mock_aws`` or ``ThreadedMotoServer``).

What it adds:

* calls AWS has and moto lacks: sso-admin ``ListTagsForResource`` and
  ``DescribePermissionSetProvisioningStatus``, account ``PutAccountName``;
* permission-set provisioning as AWS does it: an assignment provisions the
  set to its account; changing the set leaves those accounts on the old version
  (``LATEST_PERMISSION_SET_NOT_PROVISIONED``) until ``ProvisionPermissionSet``;
* a StackSet's ``ManagedExecution`` as it was set (moto always says inactive);
* StackSet operations under the caller's ``OperationId`` (moto makes up its
  own), and ``OperationIdAlreadyExistsException`` when one is reused;
* the strict profile (:mod:`meshcore_aws_emulator.strict`, on by default):
  no retired ``Account.Status``, asynchronous operations that take their time
  and can fail, ExternalIds, the closure quota, trusted access, Identity Center's
  home region, StackSet execution roles and estimated Cost Explorer months.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from meshcore_aws_emulator import strict
from meshcore_aws_emulator.strict import PROFILE

__all__ = ["MOTO_CONFIG", "PROFILE", "patch", "reset", "strict"]

#: moto settings the emulator runs with (Lambda without Docker). AWS managed policies that
#: meshcore attaches exist in every account: see :func:`strict.apply`.
MOTO_CONFIG: dict[str, Any] = {"lambda": {"use_docker": False}}

_lock = threading.Lock()
_patched = False


class Provisioning:
    """Which version of each permission set each account has (moto keeps none of this). Requests come
    from many threads at once: every method holds the lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: dict[str, int] = {}  # permission set arn -> version
        self.accounts: dict[str, dict[str, int]] = {}  # permission set arn -> account -> provisioned version
        self.requests: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}  # request id -> status reads it still answers IN_PROGRESS

    def changed(self, ps: str) -> None:
        with self.lock:
            self.version[ps] = self.version.get(ps, 0) + 1

    def assigned(self, ps: str, account: str) -> None:
        with self.lock:
            self.accounts.setdefault(ps, {})[account] = self.version.get(ps, 0)

    def unassigned(self, ps: str, account: str, still_used: bool) -> None:
        if not still_used:
            with self.lock:
                self.accounts.get(ps, {}).pop(account, None)

    def provision(self, ps: str, request: dict[str, Any], polls: int) -> None:
        """Every account of ``ps`` gets its current version; ``request`` answers IN_PROGRESS ``polls`` times."""
        with self.lock:
            for account in self.accounts.get(ps, {}):
                self.accounts[ps][account] = self.version.get(ps, 0)
            self.requests[request["RequestId"]] = request
            self.polls[request["RequestId"]] = polls

    def status(self, request: str) -> dict[str, Any] | None:
        """A provisioning request's status now (one of its IN_PROGRESS reads used up), or ``None``."""
        with self.lock:
            status = self.requests.get(request)
            if status is not None and self.polls.get(request, 0) > 0:
                self.polls[request] -= 1
                return {**status, "Status": "IN_PROGRESS"}
            return status

    def listed(self, ps: str, status: str | None) -> list[str]:
        with self.lock:
            current = self.version.get(ps, 0)
            accounts = sorted(self.accounts.get(ps, {}).items())
        return [
            account
            for account, version in accounts
            if status is None or (status == "LATEST_PERMISSION_SET_PROVISIONED") == (version == current)
        ]


PROVISIONING = Provisioning()


def reset() -> None:
    """Forget the emulated state (a fresh organization)."""
    PROVISIONING.__init__()  # type: ignore[misc]
    strict.reset()


def patch() -> None:
    """Apply the fidelity layer to moto in this process (idempotent)."""
    global _patched
    with _lock:
        if _patched:
            return
        _patched = True
    _patch_ssoadmin()
    _patch_account()
    _patch_cloudformation()
    _serialise_route_compilation()
    strict.apply()


def _serialise_route_compilation() -> None:
    """Compile werkzeug's URL rules one at a time. The emulator builds them lazily with ``ast``, and
    CPython before 3.11.8 fails two threads parsing at once ("AST constructor recursion depth
    mismatch", gh-106905): seen as a failed Lambda invoke when tenants ran in parallel."""
    import threading

    from werkzeug.routing.rules import Rule

    compile_builder = Rule._compile_builder
    lock = threading.Lock()

    def one_at_a_time(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return compile_builder(self, *args, **kwargs)

    Rule._compile_builder = one_at_a_time  # type: ignore[method-assign]


def _patch_ssoadmin() -> None:
    from moto.ssoadmin.models import SSOAdminBackend
    from moto.ssoadmin.responses import SSOAdminResponse

    def list_tags_for_resource(self: Any) -> str:
        ps = self.ssoadmin_backend._find_permission_set(
            self._get_param("InstanceArn"), self._get_param("ResourceArn")
        )
        return json.dumps({"Tags": ps.tags or []})

    def provision_permission_set(self: Any) -> str:
        ps = self._get_param("PermissionSetArn")
        self.ssoadmin_backend._find_permission_set(self._get_param("InstanceArn"), ps)
        status = {"Status": "SUCCEEDED", "RequestId": str(uuid.uuid4()), "PermissionSetArn": ps}
        PROVISIONING.provision(ps, status, PROFILE.provisioning_polls)
        return json.dumps({"PermissionSetProvisioningStatus": {**status, "Status": "IN_PROGRESS"}})

    def describe_permission_set_provisioning_status(self: Any) -> str:
        self.ssoadmin_backend  # noqa: B018 -- refused outside Identity Center's home region (strict profile)
        request = self._get_param("ProvisionPermissionSetRequestId")
        status = PROVISIONING.status(request)
        if status is None:
            from moto.ssoadmin.exceptions import ResourceNotFoundException

            raise ResourceNotFoundException("no such provisioning request")
        return json.dumps({"PermissionSetProvisioningStatus": status})

    def list_accounts_for_provisioned_permission_set(self: Any) -> str:
        ps = self._get_param("PermissionSetArn")
        self.ssoadmin_backend._find_permission_set(self._get_param("InstanceArn"), ps)
        return json.dumps({"AccountIds": PROVISIONING.listed(ps, self._get_param("ProvisioningStatus"))})

    responses = {
        "list_tags_for_resource": list_tags_for_resource,
        "provision_permission_set": provision_permission_set,
        "describe_permission_set_provisioning_status": describe_permission_set_provisioning_status,
        "list_accounts_for_provisioned_permission_set": list_accounts_for_provisioned_permission_set,
    }
    for name, handler in responses.items():
        setattr(SSOAdminResponse, name, handler)

    create, delete = SSOAdminBackend.create_account_assignment, SSOAdminBackend.delete_account_assignment

    def create_account_assignment(self: Any, **kw: Any) -> Any:
        out = create(self, **kw)
        PROVISIONING.assigned(kw["permission_set_arn"], kw["target_id"])
        return out

    def delete_account_assignment(self: Any, **kw: Any) -> Any:
        out = delete(self, **kw)
        still = any(
            a.permission_set_arn == kw["permission_set_arn"] and a.target_id == kw["target_id"]
            for a in self.account_assignments
        )
        PROVISIONING.unassigned(kw["permission_set_arn"], kw["target_id"], still)
        return out

    SSOAdminBackend.create_account_assignment = create_account_assignment  # type: ignore[method-assign,assignment]
    SSOAdminBackend.delete_account_assignment = delete_account_assignment  # type: ignore[method-assign,assignment]

    for name in (
        "update_permission_set",
        "put_inline_policy_to_permission_set",
        "delete_inline_policy_from_permission_set",
        "attach_managed_policy_to_permission_set",
        "detach_managed_policy_from_permission_set",
        "attach_customer_managed_policy_reference_to_permission_set",
        "detach_customer_managed_policy_reference_from_permission_set",
    ):
        original = getattr(SSOAdminBackend, name)

        def changing(self: Any, *args: Any, __original: Any = original, **kw: Any) -> Any:
            out = __original(self, *args, **kw)
            PROVISIONING.changed(kw.get("permission_set_arn") or args[1])
            return out

        setattr(SSOAdminBackend, name, changing)


def _patch_account() -> None:
    from moto.account import urls as account_urls
    from moto.account.responses import AccountResponse

    def put_account_name(self: Any) -> Any:
        from moto.core.responses import EmptyResult
        from moto.organizations.models import organizations_backends

        account_id, name = self._get_param("AccountId"), self._get_param("AccountName")
        if (
            account_id
            and PROFILE.require_trusted_access
            and not strict.trusted_access(account_id, "account.amazonaws.com")
        ):
            from moto.core.exceptions import JsonRESTError

            raise JsonRESTError(
                "AccessDeniedException",
                "The request failed because the organization does not have trusted access enabled for "
                "account.amazonaws.com",
            )
        for backends in organizations_backends.values():
            for backend in backends.values():
                if backend.org is not None and any(a.id == account_id for a in backend.accounts):
                    backend.get_account_by_id(account_id).name = name
        return EmptyResult()

    AccountResponse.put_account_name = put_account_name  # type: ignore[attr-defined]
    account_urls.url_paths["{0}/putAccountName$"] = AccountResponse.dispatch


def _patch_cloudformation() -> None:
    from moto.cloudformation.models import StackSet
    from moto.cloudformation.responses import CloudFormationResponse

    StackSet.managed_execution = property(  # type: ignore[method-assign,assignment]
        lambda self: {"Active": getattr(self, "_meshcore_managed_execution", False)}
    )
    for name in ("create_stack_set", "update_stack_set"):
        original = getattr(CloudFormationResponse, name)

        def remembering(self: Any, __original: Any = original) -> Any:
            out = __original(self)
            active = self._get_param("ManagedExecution.Active")
            if active is not None:
                stackset = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
                stackset._meshcore_managed_execution = str(active).lower() == "true"
            return out

        setattr(CloudFormationResponse, name, remembering)

    for name in (
        "create_stack_instances",
        "update_stack_instances",
        "delete_stack_instances",
        "update_stack_set",
    ):
        original = getattr(CloudFormationResponse, name)

        def with_operation_id(self: Any, __original: Any = original) -> Any:
            # One StackSet request at a time (see strict.STACKSET_REQUESTS): the request's operation is
            # the one with the id moto gave it, and it gets the failures of the deployment just made.
            with strict.STACKSET_REQUESTS:
                wanted = self._get_param("OperationId")
                stackset = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
                if wanted and any(op["OperationId"] == wanted for op in stackset.operations):
                    raise strict.cloudformation_error(
                        "OperationIdAlreadyExistsException", f"The operation ID {wanted} already exists"
                    )
                out = __original(self)
                result = getattr(out, "_result", None)
                if wanted and isinstance(result, dict) and result.get("OperationId", wanted) != wanted:
                    for op in stackset.operations:
                        if op["OperationId"] == result["OperationId"]:
                            op["OperationId"] = wanted
                    strict.operation_renamed(result["OperationId"], wanted)
                    result["OperationId"] = wanted
                return out

        setattr(CloudFormationResponse, name, with_operation_id)
