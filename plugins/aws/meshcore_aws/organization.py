"""A per-run view of the AWS organization, read in bulk and shared by all tenants.

One ``ListAccountsForParent`` walk per landing-zone OU tells which accounts already
sit where they belong, with their e-mail and state, so ``ListParents`` is only needed
for accounts that are elsewhere (new or drifted). The whole organization's
``ListAccounts`` walk (its size is the organization's, not meshcore's) is made only
when something needs it: an account not where it belongs, an e-mail to check for a
new account, a closure's quota, import candidates. Writes made in this run update the view, so that
what a later observation reads is what AWS now holds.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import ClientError

from meshcore import PlatformError
from meshcore_aws import retries
from meshcore_aws.config import OU_ID, AwsConfig
from meshcore_aws.sessions import Sessions


class OrgView:
    def __init__(self, sessions: Sessions, config: AwsConfig, limiter: Any):
        self.sessions = sessions
        self.config = config
        self.limiter = limiter  # caps Organizations writes in flight across tenants
        self._lock = threading.RLock()
        self._org: dict[str, Any] | None = None
        self._root: dict[str, Any] | None = None
        self._accounts: dict[str, dict[str, Any]] | None = None
        self._emails: dict[str, dict[str, Any]] = {}  # lower-case e-mail -> account, kept with _accounts
        self._accounts_error: ClientError | None = None
        self._children: dict[str, list[dict[str, Any]]] = {}
        self._in_ou: dict[str, set[str]] = {}
        self._listed_in_ou: dict[str, dict[str, Any]] = {}  # account id -> account, from the OU listings
        self._parents: dict[str, str] = {}
        self._tags: dict[str, dict[str, str]] = {}
        self._ou_ids: dict[str, bool] = {}  # OU or root id -> exists

    @property
    def client(self) -> Any:
        return self.sessions.org()

    def write(self, op: str, **kwargs: Any) -> Any:
        """An Organizations write, at most ``org_write_concurrency`` in flight across tenants."""
        with self.limiter:
            return getattr(self.client, op)(**kwargs)

    def _list(self, op: str, key: str, **kwargs: Any) -> list[Any]:
        return retries.listed(self.client, op, key, self.config.page_size, **kwargs)

    # -- organization -------------------------------------------------------------------

    def organization(self) -> dict[str, Any]:
        with self._lock:
            if self._org is None:
                try:
                    self._org = self.client.describe_organization()["Organization"]
                except ClientError as exc:
                    if retries.code(exc) == "AWSOrganizationsNotInUseException":
                        raise PlatformError(
                            "the management account is not part of an AWS organization"
                        ) from None
                    raise
            return self._org

    @property
    def management_account_id(self) -> str:
        return str(self.organization()["MasterAccountId"])

    def root(self, refresh: bool = False) -> dict[str, Any]:
        with self._lock:
            if self._root is None or refresh:
                self._root = self.client.list_roots()["Roots"][0]
            return self._root

    def root_id(self) -> str:
        return str(self.root()["Id"])

    # -- accounts ---------------------------------------------------------------------

    def accounts(self, refresh: bool = False) -> dict[str, dict[str, Any]]:
        """Every account of the organization, listed once per run. A listing that failed (after
        botocore's retries) fails every later caller of the run at once: a throttled API is not
        asked again by each tenant and hook."""
        with self._lock:
            if self._accounts_error is not None and not refresh:
                raise self._accounts_error
            if self._accounts is None or refresh:
                try:
                    self._accounts = {a["Id"]: a for a in self._list("list_accounts", "Accounts")}
                    self._emails = {str(a.get("Email", "")).lower(): a for a in self._accounts.values()}
                    self._accounts_error = None
                except ClientError as exc:
                    self._accounts_error = exc
                    raise
            return self._accounts

    def account(
        self, account_id: str, refresh: bool = False, expected: str | None = None
    ) -> dict[str, Any] | None:
        """The account as this run knows it (``None``: not in the organization). With ``expected``, the
        OU it belongs in: an account listed there is answered from that OU's listing, without the
        whole organization's."""
        in_expected = (
            expected is not None
            and not refresh
            and self._accounts is None
            and account_id in self.accounts_in(expected)
        )
        if in_expected:
            with self._lock:
                listed = self._listed_in_ou.get(account_id)
            if listed is not None:
                return listed
        found = self.accounts().get(account_id)
        if found is None or refresh:
            try:
                found = self.client.describe_account(AccountId=account_id)["Account"]
            except ClientError as exc:
                if retries.code(exc) == "AccountNotFoundException":
                    return None
                raise
            self._add(found)
        return found

    def renamed(self, account_id: str, name: str) -> None:
        """Record a rename this run made, in whatever this run has read (nothing is read for it)."""
        with self._lock:
            for known in (self._accounts or {}, self._listed_in_ou):
                if account_id in known:
                    known[account_id]["Name"] = name

    def by_email(self, email: str, refresh: bool = False) -> dict[str, Any] | None:
        with self._lock:
            self.accounts(refresh)
            return self._emails.get(email.lower())

    def _add(self, account: dict[str, Any]) -> None:
        with self._lock:
            self.accounts()[account["Id"]] = account
            self._emails[str(account.get("Email", "")).lower()] = account

    def remember(
        self, account: dict[str, Any], parent: str | None = None, tags: dict[str, str] | None = None
    ) -> None:
        """Record an account this run created (nothing to re-read: we know its parent and tags)."""
        with self._lock:
            self._add(account)
            if parent is not None:
                self._parents[account["Id"]] = parent
            if tags is not None:
                self._tags[account["Id"]] = dict(tags)

    # -- OUs ----------------------------------------------------------------------------

    def _ous_under(self, parent: str) -> list[dict[str, Any]]:
        with self._lock:
            if parent not in self._children:
                self._children[parent] = self._list(
                    "list_organizational_units_for_parent", "OrganizationalUnits", ParentId=parent
                )
            return self._children[parent]

    def find_ou(self, ref: str) -> str | None:
        """The OU id for an id or a path like ``/Workloads/Dev``, or ``None`` if it does not exist."""
        if OU_ID.match(ref):
            return ref if self._ou_exists(ref) else None
        parent = self.root_id()
        for part in [p for p in ref.split("/") if p]:
            match = next((ou for ou in self._ous_under(parent) if ou["Name"] == part), None)
            if match is None:
                return None
            parent = match["Id"]
        return parent

    def _ou_exists(self, ou_id: str) -> bool:
        """Whether an OU (or the root) id exists; read once per run."""
        with self._lock:
            if ou_id not in self._ou_ids:
                if ou_id.startswith("r-"):
                    self._ou_ids[ou_id] = ou_id == self.root_id()
                else:
                    try:
                        self.client.describe_organizational_unit(OrganizationalUnitId=ou_id)
                        self._ou_ids[ou_id] = True
                    except ClientError as exc:
                        if retries.code(exc) != "OrganizationalUnitNotFoundException":
                            raise
                        self._ou_ids[ou_id] = False
            return self._ou_ids[ou_id]

    def create_ou_path(self, ref: str) -> str:
        """Create every missing OU of a path; returns the last one's id."""
        parent = self.root_id()
        for part in [p for p in ref.split("/") if p]:
            with self._lock:
                match = next((ou for ou in self._ous_under(parent) if ou["Name"] == part), None)
                if match is None:
                    try:
                        match = self.write(  # tagged: the setup policy lets meshcore move accounts into it
                            "create_organizational_unit",
                            ParentId=parent,
                            Name=part,
                            Tags=[{"Key": f"{self.config.tags.prefix}managed-by", "Value": "meshcore"}],
                        )["OrganizationalUnit"]
                        self._children.setdefault(parent, []).append(match)
                    except ClientError as exc:
                        if retries.code(exc) != "DuplicateOrganizationalUnitException":
                            raise
                        self._children.pop(parent, None)  # created concurrently: read it back
                        match = next(ou for ou in self._ous_under(parent) if ou["Name"] == part)
                    self._in_ou.setdefault(match["Id"], set())
            parent = match["Id"]
        return parent

    def accounts_in(self, ou_id: str) -> set[str]:
        with self._lock:
            if ou_id not in self._in_ou:
                listed = self._list("list_accounts_for_parent", "Accounts", ParentId=ou_id)
                self._in_ou[ou_id] = {a["Id"] for a in listed}
                for a in listed:
                    self._listed_in_ou.setdefault(a["Id"], a)
            return self._in_ou[ou_id]

    def parent_of(self, account_id: str, expected: str | None) -> str:
        """The account's parent; free when it sits in ``expected`` (bulk-read), else one ListParents."""
        if expected is not None and account_id in self.accounts_in(expected):
            return expected
        with self._lock:
            if account_id in self._parents:
                return self._parents[account_id]
        parent = self.client.list_parents(ChildId=account_id)["Parents"][0]["Id"]
        with self._lock:
            self._parents[account_id] = parent
        return str(parent)

    def move(self, account_id: str, source: str, destination: str) -> None:
        try:
            self.write(
                "move_account", AccountId=account_id, SourceParentId=source, DestinationParentId=destination
            )
        except ClientError as exc:
            if retries.code(exc) != "DuplicateAccountException":  # already there (e.g. a concurrent runner)
                raise
        with self._lock:
            for ou, members in self._in_ou.items():
                if ou != destination:
                    members.discard(account_id)
            if destination in self._in_ou:
                self._in_ou[destination].add(account_id)
            self._parents[account_id] = destination

    # -- tags ---------------------------------------------------------------------------

    def tags_of(self, resource_id: str) -> dict[str, str]:
        with self._lock:
            if resource_id in self._tags:
                return dict(self._tags[resource_id])
        tags = {
            t["Key"]: t["Value"]
            for t in retries.listed(self.client, "list_tags_for_resource", "Tags", ResourceId=resource_id)
        }
        with self._lock:
            self._tags[resource_id] = tags
        return dict(tags)

    def set_tags(self, resource_id: str, tags: dict[str, str]) -> None:
        self.write(
            "tag_resource",
            ResourceId=resource_id,
            Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        )
        with self._lock:
            self._tags.setdefault(resource_id, {}).update(tags)

    def remove_tags(self, resource_id: str, keys: list[str]) -> None:
        self.write("untag_resource", ResourceId=resource_id, TagKeys=sorted(keys))
        with self._lock:
            for k in keys:
                self._tags.get(resource_id, {}).pop(k, None)
