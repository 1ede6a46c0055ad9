"""Identity Center groups and their memberships: one group per tenant and project role.

meshcore only touches groups it recorded in the resources table (kind
``ic-group``, owned by the tenant). A group it creates carries a description
naming the tenant and role (its marker): a group of the same name that meshcore
did not record is adopted only when it carries this tenant's marker (made by
meshcore for this tenant, e.g. before a crash or a lost state store); any other
is a conflict, never adopted.

Members are read per group (``ListGroupMemberships``), or, when the identity store
has fewer users than the run has groups to check, per user
(``ListGroupMembershipsForMember`` for every user of the store): the same complete
answer, since only users can be members, in fewer calls when many tenants share
few people.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from meshcore_aws import retries
from meshcore_aws.identity_center import IdentityCenter
from meshcore_aws.once import Once

#: Reads per user pay off only when they are clearly fewer than reads per group.
PER_USER_FACTOR = 4
#: Users whose memberships are read at once when building the per-user index.
PER_USER_READERS = 8


def description(tenant_key: str, role: str) -> str:
    return f"managed by meshcore: role {role} of {tenant_key}"


class Groups:
    """Group ids and members, read once per run and kept current after writes."""

    def __init__(self, center: IdentityCenter):
        self.center = center
        self._lock = threading.RLock()
        self._ids: dict[str, str | None] = {}
        self._members: dict[str, dict[str, str]] = {}
        self._expected = 0
        self._by_user = Once()

    def expect(self, groups: int) -> None:
        """How many groups this run will check (at least): decides between reads per group and per user."""
        with self._lock:
            self._expected = max(self._expected, groups)

    def group_id(self, name: str) -> str | None:
        """The id of the group called ``name``, whoever made it (``None``: no such group)."""
        with self._lock:
            if name in self._ids:
                return self._ids[name]
        try:
            gid: str | None = self.center.ids.get_group_id(
                IdentityStoreId=self.center.store_id,
                AlternateIdentifier={
                    "UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": name}
                },
            )["GroupId"]
        except ClientError as exc:
            if not retries.identity_absent(exc):
                raise
            gid = None
        with self._lock:
            self._ids[name] = gid
        return gid

    def description_of(self, gid: str) -> str:
        """The group's description (meshcore's marker on groups it creates)."""
        found = self.center.ids.describe_group(IdentityStoreId=self.center.store_id, GroupId=gid)
        return str(found.get("Description", ""))

    def create(self, name: str, text: str) -> str:
        """Create a group; one of that name appearing meanwhile (a lost answer of ours) is looked up."""
        try:
            gid: str = self.center.write(
                self.center.ids,
                "create_group",
                IdentityStoreId=self.center.store_id,
                DisplayName=name,
                Description=text,
            )["GroupId"]
        except ClientError as exc:
            if retries.code(exc) != "ConflictException":
                raise
            with self._lock:
                self._ids.pop(name, None)
            found = self.group_id(name)
            if found is None:
                raise
            gid = found
        with self._lock:
            self._ids[name] = gid
            self._members.setdefault(gid, {})
        return gid

    def delete(self, gid: str, name: str) -> None:
        try:
            self.center.write(
                self.center.ids, "delete_group", IdentityStoreId=self.center.store_id, GroupId=gid
            )
        except ClientError as exc:
            if not retries.identity_absent(exc):
                raise
        with self._lock:
            self._ids[name] = None
            self._members.pop(gid, None)

    def members(self, gid: str) -> dict[str, str]:
        """User id -> membership id."""
        with self._lock:
            if gid in self._members:
                return dict(self._members[gid])
        if self._by_user.get("index", self._index_by_user):
            with self._lock:  # every user's groups are known: a group not among them has no members
                return dict(self._members.setdefault(gid, {}))
        listed = retries.listed(
            self.center.ids,
            "list_group_memberships",
            "GroupMemberships",
            IdentityStoreId=self.center.store_id,
            GroupId=gid,
        )
        found = {
            m["MemberId"]["UserId"]: m["MembershipId"] for m in listed if "UserId" in m.get("MemberId", {})
        }
        with self._lock:
            self._members[gid] = found
        return dict(found)

    def _index_by_user(self) -> bool:
        """Read every user's memberships if that is cheaper than reading each group's; ``False`` if not.

        Users are listed only until they outnumber what reads per group would cost.
        """
        with self._lock:
            budget = self._expected // PER_USER_FACTOR
        if budget < 2:
            return False
        users: list[str] = []
        for user in retries.pages(
            self.center.ids, "list_users", "Users", 100, IdentityStoreId=self.center.store_id
        ):
            users.append(user["UserId"])
            if len(users) + (len(users) + 99) // 100 > budget:
                return False

        def groups_of_user(uid: str) -> list[dict[str, Any]]:
            listed: list[dict[str, Any]] = retries.listed(
                self.center.ids,
                "list_group_memberships_for_member",
                "GroupMemberships",
                100,
                IdentityStoreId=self.center.store_id,
                MemberId={"UserId": uid},
            )
            return listed

        with ThreadPoolExecutor(max_workers=PER_USER_READERS, thread_name_prefix="meshcore-members") as pool:
            memberships = [m for found in pool.map(groups_of_user, users) for m in found]
        index: dict[str, dict[str, str]] = {}
        for m in memberships:
            uid = m.get("MemberId", {}).get("UserId")
            if uid is not None:
                index.setdefault(m["GroupId"], {})[uid] = m["MembershipId"]
        with self._lock:
            for gid, members in index.items():
                self._members.setdefault(gid, members)
        return True

    def add(self, gid: str, uid: str) -> None:
        try:
            mid = self.center.write(
                self.center.ids,
                "create_group_membership",
                IdentityStoreId=self.center.store_id,
                GroupId=gid,
                MemberId={"UserId": uid},
            )["MembershipId"]
        except ClientError as exc:
            if retries.code(exc) != "ConflictException":  # already a member (UNIQUENESS_CONSTRAINT_VIOLATION)
                raise
            mid = self._membership_id(gid, uid)
        with self._lock:
            self._members.setdefault(gid, {})[uid] = mid

    def _membership_id(self, gid: str, uid: str) -> str:
        return str(
            self.center.ids.get_group_membership_id(
                IdentityStoreId=self.center.store_id, GroupId=gid, MemberId={"UserId": uid}
            )["MembershipId"]
        )

    def remove(self, gid: str, uid: str, membership_id: str) -> None:
        try:
            self.center.write(
                self.center.ids,
                "delete_group_membership",
                IdentityStoreId=self.center.store_id,
                MembershipId=membership_id,
            )
        except ClientError as exc:
            if not retries.identity_absent(exc):
                raise
        with self._lock:
            self._members.get(gid, {}).pop(uid, None)


def groups_of(center: IdentityCenter) -> Groups:
    return center.view("groups", lambda: Groups(center))


__all__ = ["Groups", "description", "groups_of"]
