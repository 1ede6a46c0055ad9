"""AWS calls with bounded, jittered retries of throttling and transient failures.

Organizations answers throttling with HTTP 400 ``TooManyRequestsException`` and
``ConcurrentModificationException``, which botocore does not retry at all;
Identity Center answers ``ConflictException`` under concurrency. botocore's own
retries are switched off (see :data:`CLIENT_CONFIG`) so that every attempt is
counted and every wait goes through one patchable sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshcore.retry import Backoff, call_with_retries

RETRYABLE_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ConcurrentModificationException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalServerException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ConflictException",
        "OperationInProgressException",
        "PriorRequestNotComplete",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
BACKOFF = Backoff(attempts=8, base=0.5, cap=20.0)


def client_config() -> Any:
    """botocore config for every client: no botocore retries (we retry), sane timeouts."""
    from botocore.config import Config

    return Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=60)


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_retryable(exc: BaseException) -> bool:
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ConnectionClosedError | EndpointConnectionError | ReadTimeoutError | ConnectionError):
        return True
    if isinstance(exc, ClientError):
        if error_code(exc) in RETRYABLE_CODES:
            return True
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return isinstance(status, int) and status >= 500
    return False


EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})


def _refresh_credentials(fn: Callable[..., Any]) -> None:
    """After AWS said the token expired, make the client's refreshable credentials re-assume their role."""
    client = getattr(fn, "__self__", None)
    creds = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    refresh = getattr(creds, "_protected_refresh", None)
    if refresh is not None:
        refresh(is_mandatory=True)


def aws_call(
    fn: Callable[..., Any], sleep: Callable[[float], None], backoff: Backoff = BACKOFF, **kwargs: Any
) -> Any:
    """Call ``fn(**kwargs)``, retrying throttling and transient errors with backoff.

    An expired-token answer (clock skew, or credentials that outlived what AWS allows)
    refreshes the client's credentials before the retry.
    """

    def retry_on(exc: BaseException) -> bool:
        if error_code(exc) in EXPIRED_CODES:
            _refresh_credentials(fn)
        return is_retryable(exc)

    return call_with_retries(lambda: fn(**kwargs), retry_on=retry_on, backoff=backoff, sleep=sleep)


def paged(fn: Callable[..., Any], key: str, sleep: Callable[[float], None], **kwargs: Any) -> list[Any]:
    """Follow ``NextToken`` to the end, each page retried on its own."""
    out: list[Any] = []
    token = None
    while True:
        args = dict(kwargs)
        if token:
            args["NextToken"] = token
        page = aws_call(fn, sleep, **args)
        out.extend(page.get(key, []))
        token = page.get("NextToken")
        if not token:
            return out
