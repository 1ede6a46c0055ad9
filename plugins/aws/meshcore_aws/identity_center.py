"""IAM Identity Center: the instance in its home region, users, and the asynchronous-status poll.

Identity Center lives in one home region: ``sso-admin`` and ``identitystore``
find no instance anywhere else, so every client here uses
``identity_center.region``, not the platform's region. Groups and memberships
(:mod:`meshcore_aws.groups`), permission sets (:mod:`meshcore_aws.permission_sets`)
and account assignments (:mod:`meshcore_aws.assignments`) build on this.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from meshcore import PlatformError
from meshcore_aws import retries
from meshcore_aws.config import AwsConfig, IdentityCenterConfig
from meshcore_aws.once import Once

#: How long a request is waited on before the run reports it still in progress (in poll intervals, as
#: long as 120 looks at the interval), and a bound on the looks (an interval of 0 looks 120 times).
MAX_WAIT_INTERVALS = 118
MAX_LOOKS = 1000


class IdentityCenter:
    """The Identity Center instance of one platform in one run (shared by all tenants)."""

    def __init__(self, sessions: Any, cfg: AwsConfig, sleep: Callable[[float], None], limiter: Any):
        assert cfg.identity_center is not None
        self.ic: IdentityCenterConfig = cfg.identity_center
        self.cfg = cfg
        self.sessions = sessions
        self.sleep = sleep
        self.limiter = limiter  # caps Identity Center operations in flight across tenants
        self._lock = threading.RLock()
        self._instance: tuple[str, str] | None = None
        self._users = Once()  # user name or e-mail -> identity-store user id (None: not there)
        self._views: dict[str, Any] = {}

    @property
    def sso(self) -> Any:
        return self.sessions.client("management", "sso-admin", region=self.ic.region)

    @property
    def ids(self) -> Any:
        return self.sessions.client("management", "identitystore", region=self.ic.region)

    def view(self, name: str, make: Callable[[], Any]) -> Any:
        """A per-run view built on this instance (groups, assignments, permission sets), made once."""
        with self._lock:
            if name not in self._views:
                self._views[name] = make()
            return self._views[name]

    # -- instance and users --------------------------------------------------------------

    def instance(self) -> tuple[str, str]:
        """(instance ARN, identity store id), from the config or discovered in the home region."""
        with self._lock:
            if self._instance is None:
                if self.ic.instance_arn and self.ic.identity_store_id:
                    self._instance = (self.ic.instance_arn, self.ic.identity_store_id)
                else:
                    found = retries.listed(self.sso, "list_instances", "Instances")
                    if self.ic.instance_arn:
                        found = [i for i in found if i["InstanceArn"] == self.ic.instance_arn]
                    if len(found) != 1:
                        raise PlatformError(
                            f"found {len(found)} IAM Identity Center instances in {self.ic.region}; set "
                            "identity_center.region to the instance's home region"
                            + (" and identity_center.instance_arn and identity_store_id" if found else "")
                        )
                    self._instance = (found[0]["InstanceArn"], found[0]["IdentityStoreId"])
            return self._instance

    @property
    def instance_arn(self) -> str:
        return self.instance()[0]

    @property
    def store_id(self) -> str:
        return self.instance()[1]

    def user_id(self, user: Any) -> str | None:
        """The identity-store user id of a config user (by user name or e-mail), ``None`` if unknown.

        Looked up once per run and user, however many tenants bind the user at once.
        """
        key = user.id if self.ic.match_users_by == "user_name" else user.email
        path = {"user_name": "userName", "email": "emails.value"}[self.ic.match_users_by]

        def lookup() -> str | None:
            try:
                found: str = self.ids.get_user_id(
                    IdentityStoreId=self.store_id,
                    AlternateIdentifier={"UniqueAttribute": {"AttributePath": path, "AttributeValue": key}},
                )["UserId"]
            except ClientError as exc:
                if not retries.identity_absent(exc):
                    raise
                return None
            return found

        result: str | None = self._users.get(key, lookup)
        return result

    def write(self, client: Any, op: str, **kwargs: Any) -> Any:
        """An Identity Center write, at most ``max_in_flight`` at once across tenants."""
        with self.limiter:
            return getattr(client, op)(**kwargs)

    def poll(self, status: dict[str, Any], describe: Callable[[str], dict[str, Any]], what: str) -> None:
        """Wait for an asynchronous Identity Center request; its FAILED status raises with AWS's reason."""
        interval = self.cfg.poll_interval_seconds
        waited, looks = 0.0, 0
        while True:
            state = status.get("Status")
            if state == "SUCCEEDED":
                return
            if state == "FAILED":
                raise PlatformError(f"{what} FAILED: {status.get('FailureReason') or 'no reason given'}")
            if looks >= (MAX_LOOKS if interval > 0 else 120) or waited >= MAX_WAIT_INTERVALS * interval > 0:
                break
            wait = poll_wait(waited, interval)
            self.sleep(wait)
            waited, looks = waited + wait, looks + 1
            status = describe(status["RequestId"])
        raise PlatformError(f"{what} did not finish in time; the next run checks it again")


def poll_wait(waited: float, interval: float) -> float:
    """How long to wait before the next look at a request that has been waited on for ``waited`` seconds.

    Most Identity Center requests end within seconds: look every quarter of the interval at first,
    then after a quarter of the time waited so far (a waiter sees an ending at most about a quarter
    of its wait late, where doubling waits saw it up to a whole wait late; a listing shared with
    other waiters can add up to one more look), at least once per interval.
    """
    return min(interval, max(interval / 4, waited / 4))
