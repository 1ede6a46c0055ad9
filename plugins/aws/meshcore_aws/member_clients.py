"""One botocore client per service for every member account, each call signed as its account.

A botocore client costs milliseconds of CPU to build (a class with a method per operation, a
copy of every event handler): one per new member account was a fifth of meshcore's CPU for a
new tenant, for the one or two IAM calls it makes there. The clients here are shared by all
member accounts; :class:`MemberClient` is a per-account handle that makes the calling thread
act as its account for the duration of one call. botocore signs a request, and re-signs its
retries, in the thread that calls the operation, reading the credentials then; the shared
client's credentials answer with that thread's account's, and refuse to sign when the thread
acts as no account, so a call can never go out with another account's credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class ActingCredentials:
    """Credentials of whichever member account the calling thread acts as (see :class:`MemberClient`)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def current(self) -> Any:
        """The acting account's own (refreshable) credentials; raises outside :meth:`MemberClient` calls."""
        credentials = getattr(self._local, "credentials", None)
        if credentials is None:
            raise RuntimeError("a shared member-account client was called outside a member account's call")
        return credentials

    def get_frozen_credentials(self) -> Any:
        """What botocore's signer reads for every attempt of a request."""
        return self.current().get_frozen_credentials()

    def get_deferred_property(self, name: str) -> Callable[[], Any]:
        """What botocore asks the credentials of a new client for (e.g. ``account_id`` for endpoints)."""
        return lambda: getattr(getattr(self._local, "credentials", None), name, None)

    def expire(self) -> None:
        """AWS said the acting account's token expired: refresh it before the retry is signed."""
        self.current().expire()

    def call(self, credentials: Any, operation: Callable[..., Any], **kwargs: Any) -> Any:
        """``operation(**kwargs)`` signed with ``credentials`` (restored afterwards: calls may nest)."""
        previous = getattr(self._local, "credentials", None)
        self._local.credentials = credentials
        try:
            return operation(**kwargs)
        finally:
            self._local.credentials = previous


class MemberClient:
    """A member account's view of a shared client: its operations, its errors, its metadata."""

    def __init__(self, shared: Any, acting: ActingCredentials, credentials: Any):
        self._shared = shared
        self._acting = acting
        self._credentials = credentials
        self.exceptions = shared.exceptions
        self.meta = shared.meta

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in self._shared.meta.method_to_api_mapping:
            # paginators and waiters call operations later, outside this handle: not offered
            raise AttributeError(f"member-account clients offer AWS operations only, not {name!r}")
        operation = getattr(self._shared, name)

        def call(**kwargs: Any) -> Any:
            return self._acting.call(self._credentials, operation, **kwargs)

        return call
