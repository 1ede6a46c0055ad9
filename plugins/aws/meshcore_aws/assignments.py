"""Identity Center account assignments: which permission sets a group has on an account.

Creating and deleting an assignment is asynchronous and can fail only in its
status: each request is polled until it ends, and ``FAILED`` raises with AWS's
reason. The requests in flight are looked at together (one
``ListAccountAssignmentCreationStatus(Filter={Status: IN_PROGRESS})`` per look for
all of them, see :class:`~meshcore_aws.watch.RequestWatch`). Reads are per
group and account, cached for the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from meshcore_aws import retries
from meshcore_aws.identity_center import IdentityCenter
from meshcore_aws.watch import RequestWatch


class Assignments:
    def __init__(self, center: IdentityCenter):
        self.center = center
        self._lock = threading.RLock()
        self._assigned: dict[tuple[str, str], set[str]] = {}
        self._created = self._watch(
            "list_account_assignment_creation_status",
            "AccountAssignmentsCreationStatus",
            lambda rid: center.sso.describe_account_assignment_creation_status(
                InstanceArn=center.instance_arn, AccountAssignmentCreationRequestId=rid
            )["AccountAssignmentCreationStatus"],
        )
        self._deleted = self._watch(
            "list_account_assignment_deletion_status",
            "AccountAssignmentsDeletionStatus",
            lambda rid: center.sso.describe_account_assignment_deletion_status(
                InstanceArn=center.instance_arn, AccountAssignmentDeletionRequestId=rid
            )["AccountAssignmentDeletionStatus"],
        )

    def _fresh(self) -> float:
        """How old a shared listing may be: an eighth of the poll interval."""
        return float(self.center.cfg.poll_interval_seconds) / 8

    def _watch(self, operation: str, key: str, describe: Callable[[str], dict[str, Any]]) -> RequestWatch:
        def in_progress() -> set[str]:
            listed = retries.listed(
                self.center.sso,
                operation,
                key,
                InstanceArn=self.center.instance_arn,
                Filter={"Status": "IN_PROGRESS"},
            )
            return {str(s["RequestId"]) for s in listed}

        return RequestWatch(in_progress, describe, lambda rid: {"RequestId": rid, "Status": "IN_PROGRESS"})

    def of(self, gid: str, account: str) -> set[str]:
        """Permission set ARNs assigned to a group on an account."""
        key = (gid, account)
        with self._lock:
            if key in self._assigned:
                return set(self._assigned[key])
        listed = retries.listed(
            self.center.sso,
            "list_account_assignments_for_principal",
            "AccountAssignments",
            InstanceArn=self.center.instance_arn,
            PrincipalId=gid,
            PrincipalType="GROUP",
            Filter={"AccountId": account},
        )
        found = {a["PermissionSetArn"] for a in listed if a.get("AccountId") == account}
        with self._lock:
            self._assigned[key] = found
        return set(found)

    def create(self, gid: str, account: str, arn: str, label: str) -> None:
        self._change(gid, account, arn, label, create=True)

    def delete(self, gid: str, account: str, arn: str, label: str) -> None:
        self._change(gid, account, arn, label, create=False)

    def _change(self, gid: str, account: str, arn: str, label: str, create: bool) -> None:
        sso, inst = self.center.sso, self.center.instance_arn
        kwargs = {
            "InstanceArn": inst,
            "TargetId": account,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": arn,
            "PrincipalType": "GROUP",
            "PrincipalId": gid,
        }
        if create:
            status = self.center.write(sso, "create_account_assignment", **kwargs)[
                "AccountAssignmentCreationStatus"
            ]
            self.center.poll(status, self._created.looker(self._fresh()), f"assigning {label} on {account}")
        else:
            status = self.center.write(sso, "delete_account_assignment", **kwargs)[
                "AccountAssignmentDeletionStatus"
            ]
            self.center.poll(status, self._deleted.looker(self._fresh()), f"removing {label} from {account}")
        with self._lock:
            current = self._assigned.setdefault((gid, account), set())
            (current.add if create else current.discard)(arn)


def assignments_of(center: IdentityCenter) -> Assignments:
    return center.view("assignments", lambda: Assignments(center))
