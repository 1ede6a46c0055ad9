"""boto3 sessions and clients for every role the plugin acts as, cached and refreshed before expiry.

* the base session uses the standard credential chain (env, profile, web identity);
* ``management``, ``automation`` and ``cost_explorer`` assume their configured
  role with its own ExternalId; a scope without a role uses the base credentials
  only where the config says so explicitly (see ``AwsConfig``);
* a member account's credentials come from the account access role, assumed
  from the management session; its clients are shared by every member account
  and sign each call as its account (:mod:`meshcore_aws.member_clients`).

Credentials are refreshable: a role is assumed when first used and again
before its credentials expire, and at once when AWS answers that a token
expired. ``AWS_ENDPOINT_URL`` is honoured by botocore itself. Every client gets
:mod:`meshcore_aws.retries`' rules.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

from meshcore import PlatformError
from meshcore_aws import retries
from meshcore_aws.config import AwsConfig, RoleRef
from meshcore_aws.counting import WRITE_PREFIXES
from meshcore_aws.member_clients import ActingCredentials, MemberClient
from meshcore_aws.once import Once

log = logging.getLogger(__name__)

#: (event name, handler) pairs registered, first, on every client created here (tests and benchmarks
#: count API calls on ``before-send``, and may answer a request themselves to simulate a fault).
EVENT_HOOKS: list[tuple[str, Callable[..., Any]]] = []


def _log_write(http_response: Any = None, parsed: Any = None, model: Any = None, **_kw: Any) -> None:
    """Every cloud write at INFO, with its operation and AWS's request id (what AWS support asks for)."""
    name = getattr(model, "name", "")
    if name.startswith(WRITE_PREFIXES):
        request_id = (parsed or {}).get("ResponseMetadata", {}).get("RequestId", "")
        status = getattr(http_response, "status_code", "")
        log.info("AWS %s: HTTP %s, request id %s", name, status, request_id or "none")


def _role_credentials(refresh: Callable[[], dict[str, str]]) -> Any:
    """Refreshable credentials that can also be expired on demand (when AWS says the token expired)."""
    from botocore.credentials import DeferredRefreshableCredentials

    class RoleCredentials(DeferredRefreshableCredentials):
        def expire(self) -> None:
            with self._refresh_lock:
                self._expiry_time = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)

    return RoleCredentials(refresh_using=refresh, method="sts-assume-role")


class Sessions:
    """All sessions and clients of one platform config."""

    def __init__(self, config: AwsConfig, platform_id: str):
        import boto3

        self.config = config
        self.platform_id = platform_id  # names the platform in the calls reported to meshcore's telemetry
        self._sessions = Once()  # scope -> session
        self._credentials: dict[str, Any] = {}
        self._clients = Once()  # (scope, service, region:timeout) -> client
        self.base = boto3.session.Session(region_name=config.region)
        self._core_template: Any = None
        self._template_lock = threading.Lock()
        self._acting = ActingCredentials()  # the member account each thread's call acts as

    def _template(self) -> Any:
        """The botocore session that assumed-role sessions are copied from (made on first use)."""
        from botocore.session import get_session

        with self._template_lock:
            if self._core_template is None:
                core = get_session()
                core.register_component("data_loader", self.base._session.get_component("data_loader"))
                core.set_config_variable("region", self.config.region)
                self._core_template = core
            return self._core_template

    @property
    def partition(self) -> str:
        return self.config.partition

    def _assumed(
        self,
        source: Any,
        source_scope: str,
        role_arn: str,
        external_id: str | None,
        session_name: str,
        scope: str,
    ) -> Any:
        # one STS client per source session, shared by every role assumed from it (a client costs ms of CPU)
        sts = self._clients.get(
            (source_scope, "sts", f"{self.config.region}:60"),
            lambda: self._new_client(source, "sts", self.config.region, self._expirer(source_scope)),
        )

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

        # A shallow copy of one prepared botocore session: it shares the data loader (service models and
        # endpoint data parsed once, not once per member account), the endpoint resolver and the built-in
        # event handlers, and has credentials of its own. A new botocore session costs ~20 ms of CPU
        # registering handlers and ~200 ms parsing models; this costs microseconds.
        core = copy.copy(self._template())
        credentials = _role_credentials(refresh)
        core._credentials = credentials
        self._credentials[scope] = credentials
        return core

    def role(self, name: str) -> Any:
        """Session for ``management``, ``automation`` or ``cost_explorer``."""

        def make() -> Any:
            try:
                ref: RoleRef | None = self.config.role(name)
            except ValueError:
                raise PlatformError(
                    f"the platform config has no '{name}' role; set {name}: {{role_arn: ..., external_id: ...}}, "
                    f"or {name}: base to use the replicator's own credentials"
                ) from None
            if ref is None:
                return self.base
            secret = ref.external_id.get_secret_value() if ref.external_id else None
            return self._assumed(self.base, "", ref.role_arn, secret, ref.session_name, name)

        return self._sessions.get(name, make)

    def member(self, account_id: str) -> Any:
        """Credentials inside a member account, through its account access role (assumed on first use)."""
        key = f"account:{account_id}"

        def make() -> Any:
            arn = f"arn:{self.partition}:iam::{account_id}:role/{self.config.account_access_role}"
            session = self._assumed(self.role("management"), "management", arn, None, "meshcore", key)
            return session.get_credentials()

        return self._sessions.get(key, make)

    def _shared_member_client(self, service: str, region: str, read_timeout: int) -> Any:
        """The one client of ``service`` that every member account's calls go through."""

        def make() -> Any:
            core = copy.copy(self._template())
            core._credentials = self._acting
            # a token that expired is the acting account's: refreshed before the retry is signed
            return self._new_client(core, service, region, self._acting.expire, read_timeout)

        return self._clients.get(("members", service, f"{region}:{read_timeout}"), make)

    def _new_client(
        self, session: Any, service: str, region: str, on_expired: Callable[[], None], read_timeout: int = 60
    ) -> Any:
        """A client of ``session`` (the base boto3 session, or an assumed-role botocore session);
        ``on_expired`` refreshes its credentials when AWS says they expired."""
        cfg = self.config
        make = session.create_client if hasattr(session, "create_client") else session.client
        client = make(
            service,
            region_name=region,
            config=retries.client_config(cfg.max_attempts, read_timeout, cfg.retry_mode),
        )

        retries.install(client, cfg.max_attempts, on_expired=on_expired)
        client.meta.events.register("after-call", _log_write)
        client.meta.events.register("response-received", retries.report_attempts(self.platform_id))
        for name, handler in reversed(EVENT_HOOKS):
            client.meta.events.register_first(name, handler)
        return client

    def client(self, scope: str, service: str, region: str | None = None, read_timeout: int = 60) -> Any:
        """A cached client; ``scope`` is a role name or ``account:<id>``; ``region`` overrides the platform's."""
        region = region or self.config.region

        def make() -> Any:
            if scope.startswith("account:"):
                credentials = self.member(scope.split(":", 1)[1])
                shared = self._shared_member_client(service, region, read_timeout)
                return MemberClient(shared, self._acting, credentials)
            return self._new_client(self.role(scope), service, region, self._expirer(scope), read_timeout)

        return self._clients.get((scope, service, f"{region}:{read_timeout}"), make)

    def _expirer(self, scope: str) -> Callable[[], None]:
        def expire() -> None:
            creds = self._credentials.get(scope)
            if creds is not None:
                creds.expire()

        return expire

    def forget(self, scope: str) -> None:
        """Drop a scope's session and clients (e.g. after its credentials were rejected)."""
        self._sessions.forget(lambda key: key == scope)
        self._credentials.pop(scope, None)
        self._clients.forget(lambda key: isinstance(key, tuple) and key[0] == scope)

    def org(self) -> Any:
        return self.client("management", "organizations")
