"""A per-run view of the AWS organization, read in bulk and shared by all tenants.

One ``ListAccounts`` walk gives every account's id, e-mail and status; one
``ListAccountsForParent`` walk per landing-zone OU tells which accounts already
sit where they belong, so ``ListParents`` is only needed for accounts that are
elsewhere (new or drifted). Writes made in this run update the view.
"""

from __future__ import annotations

import threading
from typing import Any

from meshcore.errors import PlatformError
from meshcore_aws.calls import aws_call, error_code, paged
from meshcore_aws.config import OU_ID, AwsConfig
from meshcore_aws.sessions import Sessions


class OrgView:
    def __init__(self, sessions: Sessions, config: AwsConfig, sleep: Any, limiter: Any):
        self.sessions = sessions
        self.config = config
        self.sleep = sleep
        self.limiter = limiter  # caps Organizations writes in flight
        self._lock = threading.RLock()
        self._org: dict[str, Any] | None = None
        self._root: str | None = None
        self._accounts: dict[str, dict[str, Any]] | None = None
        self._children: dict[str, list[dict[str, Any]]] = {}
        self._in_ou: dict[str, set[str]] = {}
        self._parents: dict[str, str] = {}
        self._tags: dict[str, dict[str, str]] = {}

    @property
    def client(self) -> Any:
        return self.sessions.org()

    def call(self, op: str, **kwargs: Any) -> Any:
        return aws_call(getattr(self.client, op), self.sleep, **kwargs)

    def write(self, op: str, **kwargs: Any) -> Any:
        """An Organizations write, at most ``org_write_concurrency`` in flight across tenants."""
        with self.limiter:
            return self.call(op, **kwargs)

    # -- organization -------------------------------------------------------------------

    def organization(self) -> dict[str, Any]:
        with self._lock:
            if self._org is None:
                try:
                    self._org = self.call("describe_organization")["Organization"]
                except Exception as exc:
                    code = error_code(exc)
                    if code == "AWSOrganizationsNotInUseException":
                        raise PlatformError(
                            "the management account is not part of an AWS organization"
                        ) from None
                    raise
            return self._org

    @property
    def management_account_id(self) -> str:
        return str(self.organization()["MasterAccountId"])

    def root_id(self) -> str:
        with self._lock:
            if self._root is None:
                self._root = self.call("list_roots")["Roots"][0]["Id"]
            return self._root

    # -- accounts ---------------------------------------------------------------------

    def accounts(self, refresh: bool = False) -> dict[str, dict[str, Any]]:
        with self._lock:
            if self._accounts is None or refresh:
                listed = paged(
                    self.client.list_accounts, "Accounts", self.sleep, MaxResults=self.config.page_size
                )
                self._accounts = {a["Id"]: a for a in listed}
            return self._accounts

    def account(self, account_id: str, refresh: bool = False) -> dict[str, Any] | None:
        found = self.accounts().get(account_id)
        if found is None or refresh:
            try:
                found = self.call("describe_account", AccountId=account_id)["Account"]
            except Exception as exc:
                if error_code(exc) == "AccountNotFoundException":
                    return None
                raise
            with self._lock:
                self.accounts()[account_id] = found
        return found

    def by_email(self, email: str, refresh: bool = False) -> dict[str, Any] | None:
        email = email.lower()
        for acct in self.accounts(refresh).values():
            if str(acct.get("Email", "")).lower() == email:
                return acct
        return None

    def remember(self, account: dict[str, Any]) -> None:
        with self._lock:
            self.accounts()[account["Id"]] = account

    # -- OUs ----------------------------------------------------------------------------

    def _ous_under(self, parent: str) -> list[dict[str, Any]]:
        with self._lock:
            if parent not in self._children:
                self._children[parent] = paged(
                    self.client.list_organizational_units_for_parent,
                    "OrganizationalUnits",
                    self.sleep,
                    ParentId=parent,
                    MaxResults=self.config.page_size,
                )
            return self._children[parent]

    def resolve_ou(self, ref: str, create: bool = False) -> str:
        """An OU id for an id or a path like ``/Workloads/Dev`` (created if ``create``)."""
        if OU_ID.match(ref):
            return ref
        parent = self.root_id()
        walked = ""
        for part in [p for p in ref.split("/") if p]:
            walked += "/" + part
            match = next((ou for ou in self._ous_under(parent) if ou["Name"] == part), None)
            if match is None:
                if not create:
                    raise PlatformError(f"OU {walked} does not exist (set create_ou: true to create it)")
                match = self._create_ou(parent, part)
            parent = match["Id"]
        return parent

    def _create_ou(self, parent: str, name: str) -> dict[str, Any]:
        with self._lock:
            # another tenant of this run may have created it since we looked: check again under the lock
            existing = next((o for o in self._ous_under(parent) if o["Name"] == name), None)
            if existing is not None:
                return existing
            try:
                ou = self.write("create_organizational_unit", ParentId=parent, Name=name)[
                    "OrganizationalUnit"
                ]
            except Exception as exc:
                if error_code(exc) != "DuplicateOrganizationalUnitException":
                    raise
                self._children.pop(parent, None)  # created concurrently: read it back
                ou = next(o for o in self._ous_under(parent) if o["Name"] == name)
                return ou
            self._children.setdefault(parent, []).append(ou)
            return ou

    def accounts_in(self, ou_id: str) -> set[str]:
        with self._lock:
            if ou_id not in self._in_ou:
                listed = paged(
                    self.client.list_accounts_for_parent,
                    "Accounts",
                    self.sleep,
                    ParentId=ou_id,
                    MaxResults=self.config.page_size,
                )
                self._in_ou[ou_id] = {a["Id"] for a in listed}
            return self._in_ou[ou_id]

    def parent_of(self, account_id: str, expected: str) -> str:
        """The account's parent; free when it sits in ``expected`` (bulk-read), else one ListParents."""
        if account_id in self.accounts_in(expected):
            return expected
        with self._lock:
            if account_id in self._parents:
                return self._parents[account_id]
        parent = self.call("list_parents", ChildId=account_id)["Parents"][0]["Id"]
        with self._lock:
            self._parents[account_id] = parent
        return parent

    def move(self, account_id: str, source: str, destination: str) -> None:
        try:
            self.write(
                "move_account", AccountId=account_id, SourceParentId=source, DestinationParentId=destination
            )
        except Exception as exc:
            if error_code(exc) != "DuplicateAccountException":  # already there (e.g. a concurrent runner)
                raise
        with self._lock:
            for ou, members in self._in_ou.items():
                if ou != destination:
                    members.discard(account_id)
            if destination in self._in_ou:
                self._in_ou[destination].add(account_id)
            self._parents[account_id] = destination

    # -- tags ---------------------------------------------------------------------------

    def tags_of(self, account_id: str) -> dict[str, str]:
        with self._lock:
            if account_id in self._tags:
                return dict(self._tags[account_id])
        listed = paged(self.client.list_tags_for_resource, "Tags", self.sleep, ResourceId=account_id)
        tags = {t["Key"]: t["Value"] for t in listed}
        with self._lock:
            self._tags[account_id] = tags
        return dict(tags)

    def set_tags(self, account_id: str, tags: dict[str, str]) -> None:
        self.write(
            "tag_resource",
            ResourceId=account_id,
            Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        )
        with self._lock:
            self._tags.setdefault(account_id, {}).update(tags)

    def remove_tags(self, account_id: str, keys: list[str]) -> None:
        self.write("untag_resource", ResourceId=account_id, TagKeys=sorted(keys))
        with self._lock:
            for k in keys:
                self._tags.get(account_id, {}).pop(k, None)
