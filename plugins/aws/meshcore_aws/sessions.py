"""boto3 sessions for every role the plugin acts as, cached and refreshed before expiry.

* the base session uses the standard credential chain (env, profile, web identity);
* ``management``, ``automation`` and ``cost_explorer`` sessions assume their
  configured role with its own ExternalId (or are the base session when no role
  is configured, e.g. against a local emulator);
* a member account's session assumes the account access role from the
  management session.

Credentials are botocore ``DeferredRefreshableCredentials``: the role is only
assumed when first used and re-assumed before the credentials expire.
``AWS_ENDPOINT_URL`` is honoured by botocore itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from meshcore_aws.calls import client_config
from meshcore_aws.config import AwsConfig, RoleRef

#: (event name, handler) pairs registered on every botocore session created here
#: (tests and benchmarks count API calls with ``before-call``).
EVENT_HOOKS: list[tuple[str, Callable[..., Any]]] = []


class Sessions:
    """All sessions and clients of one platform config."""

    def __init__(self, config: AwsConfig):
        import boto3

        self.config = config
        self._lock = threading.RLock()
        self._sessions: dict[str, Any] = {}
        self._clients: dict[tuple[str, str], Any] = {}
        self.base = boto3.session.Session(region_name=config.region)
        self._hook(self.base)

    @staticmethod
    def _hook(session: Any) -> None:
        events = session._session.get_component("event_emitter") if hasattr(session, "_session") else None
        if events is not None:
            for name, handler in EVENT_HOOKS:
                events.register(name, handler)

    def _assumed(self, source: Any, role_arn: str, external_id: str | None, session_name: str) -> Any:
        import boto3
        from botocore.credentials import DeferredRefreshableCredentials
        from botocore.session import get_session

        sts = source.client("sts", region_name=self.config.region, config=client_config())

        def refresh() -> dict[str, str]:
            kwargs: dict[str, Any] = {
                "RoleArn": role_arn,
                "RoleSessionName": session_name,
                "DurationSeconds": 3600,
            }
            if external_id:
                kwargs["ExternalId"] = external_id
            creds = sts.assume_role(**kwargs)["Credentials"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        core = get_session()
        core._credentials = DeferredRefreshableCredentials(refresh_using=refresh, method="sts-assume-role")
        core.set_config_variable("region", self.config.region)
        session = boto3.session.Session(botocore_session=core)
        self._hook(session)
        return session

    def role(self, name: str) -> Any:
        """Session for ``management``, ``automation`` or ``cost_explorer``."""
        with self._lock:
            if name not in self._sessions:
                ref: RoleRef | None = getattr(self.config, name)
                if ref is None:
                    self._sessions[name] = self.base
                else:
                    secret = ref.external_id.get_secret_value() if ref.external_id else None
                    self._sessions[name] = self._assumed(self.base, ref.role_arn, secret, ref.session_name)
            return self._sessions[name]

    def member(self, account_id: str) -> Any:
        """Session inside a member account, through its account access role."""
        key = f"account:{account_id}"
        with self._lock:
            if key not in self._sessions:
                arn = f"arn:aws:iam::{account_id}:role/{self.config.account_access_role}"
                self._sessions[key] = self._assumed(self.role("management"), arn, None, "meshcore")
            return self._sessions[key]

    def client(self, scope: str, service: str, region: str | None = None) -> Any:
        """A cached client; ``scope`` is a role name or ``account:<id>``; ``region`` overrides the platform's."""
        with self._lock:
            key = (scope, f"{service}@{region or self.config.region}")
            if key not in self._clients:
                session = (
                    self.member(scope.split(":", 1)[1]) if scope.startswith("account:") else self.role(scope)
                )
                self._clients[key] = session.client(
                    service, region_name=region or self.config.region, config=client_config()
                )
            return self._clients[key]

    def forget(self, scope: str) -> None:
        """Drop a scope's session and clients (e.g. after its credentials were rejected)."""
        with self._lock:
            self._sessions.pop(scope, None)
            for key in [k for k in self._clients if k[0] == scope]:  # every service and region
                del self._clients[key]

    def org(self) -> Any:
        return self.client("management", "organizations")
