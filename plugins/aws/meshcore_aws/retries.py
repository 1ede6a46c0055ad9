"""How AWS calls are retried: botocore's standard retry mode, plus the few rules it cannot know.

botocore's standard mode already retries throttling (``TooManyRequestsException``,
``ThrottlingException``, ``LimitExceededException``, ...), transient failures (HTTP
500/502/503/504, ``RequestTimeout``, connection errors) and errors the service
model marks retryable, with jittered exponential backoff. This module adds, per
client, one ``needs-retry`` handler for what the service models do not say:

* codes that mean "try again shortly": Organizations
  ``ConcurrentModificationException`` and ``PolicyChangesInProgressException``,
  IAM ``ConcurrentModification``, sso-admin ``ConflictException`` (another
  operation on the same instance), Identity Store ``ConflictException`` only when
  its ``Reason`` is ``CONCURRENT_MODIFICATION`` (``UNIQUENESS_CONSTRAINT_VIOLATION``
  is an answer, not a hiccup);
* calls that are never retried after an *ambiguous* failure (a timeout, a
  dropped connection, HTTP 5xx), because a retry of a request that did reach AWS
  would duplicate it: ``CreateAccount`` (no client token; meshcore recovers
  through ``ListCreateAccountStatus`` instead) and Lambda ``Invoke``. A clear
  refusal such as throttling is still retried.

We use botocore's retries rather than a loop of our own so that every attempt
goes through one well-tested path; tests make the waits instant with
:func:`instant_backoff`. :func:`report_attempts` tells meshcore's telemetry about
every attempt and retry (``meshcore serve``'s metrics).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from meshcore import record_cloud_call, record_retry

#: (service id as botocore hyphenizes it, error code) pairs retried on top of botocore's own.
EXTRA_RETRYABLE: frozenset[tuple[str, str]] = frozenset(
    {
        ("organizations", "ConcurrentModificationException"),
        ("organizations", "PolicyChangesInProgressException"),
        ("organizations", "ServiceException"),  # an internal error, answered with HTTP 400
        ("iam", "ConcurrentModification"),
        ("sso-admin", "ConflictException"),
        ("identitystore", "ConflictException"),
        ("account", "ConflictException"),
    }
)
#: Reason values of a retryable code: only these make it retryable (others are answers).
RETRYABLE_REASONS: dict[tuple[str, str], frozenset[str]] = {
    ("identitystore", "ConflictException"): frozenset({"CONCURRENT_MODIFICATION"}),
}
#: (service id, operation) never retried after an ambiguous failure.
NEVER_RETRIED: frozenset[tuple[str, str]] = frozenset(
    {("organizations", "CreateAccount"), ("lambda", "Invoke")}
)
#: Error codes that leave open whether the request took effect (besides timeouts and HTTP 5xx).
AMBIGUOUS_CODES = frozenset({"ServiceException", "InternalFailure", "InternalError", "ServiceUnavailable"})

_scale = 1.0  # 0 in tests: waits become instant


def instant_backoff(enabled: bool = True) -> None:
    """Make every retry wait zero seconds (tests), or restore real waits."""
    global _scale
    _scale = 0.0 if enabled else 1.0
    from botocore.retries import standard

    if enabled and not hasattr(standard.ExponentialBackoff, "_meshcore_delay"):
        standard.ExponentialBackoff._meshcore_delay = standard.ExponentialBackoff.delay_amount
        standard.ExponentialBackoff.delay_amount = lambda self, context: 0
    elif not enabled and hasattr(standard.ExponentialBackoff, "_meshcore_delay"):
        standard.ExponentialBackoff.delay_amount = standard.ExponentialBackoff._meshcore_delay
        del standard.ExponentialBackoff._meshcore_delay


def client_config(max_attempts: int = 8, read_timeout: int = 60, mode: str = "standard") -> Any:
    """botocore config for every client: ``standard`` (or ``adaptive``) retries, sane timeouts, and a
    connection pool as large as the run's parallel requests (botocore keeps 10: with 32 tenants at
    once, every request past the tenth would open, and throw away, a TLS connection of its own)."""
    from botocore.config import Config

    return Config(
        retries={"mode": mode, "total_max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=read_timeout,
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )


#: Connections each client keeps open: above the default run concurrency (32), opened only when needed.
MAX_POOL_CONNECTIONS = 64


#: Codes (besides HTTP 429) that say AWS throttled a request: botocore's own list.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)


def report_attempts(platform: str) -> Callable[..., None]:
    """A ``response-received`` handler that reports every attempt, and every retry, to meshcore's telemetry."""

    def handler(
        event_name: str = "",
        response_dict: Any = None,
        parsed_response: Any = None,
        context: Any = None,
        exception: Any = None,
        **_kw: Any,
    ) -> None:
        _, service, operation = event_name.split(".", 2)
        name = f"{service}.{operation}"
        error = parsed_response.get("Error", {}) if isinstance(parsed_response, dict) else {}
        status = response_dict.get("status_code", 0) if isinstance(response_dict, dict) else 0
        if exception is None and not error:
            outcome = "ok"
        elif status == 429 or (isinstance(error, dict) and error.get("Code") in THROTTLING_CODES):
            outcome = "throttled"
        else:
            outcome = "error"
        context = context if isinstance(context, dict) else {}
        if context.get("retries", {}).get("attempt", 1) > 1:
            record_retry(platform, name, throttled=context.get("meshcore_throttled", False))
        context["meshcore_throttled"] = outcome == "throttled"  # what the next attempt, if any, retries
        record_cloud_call(platform, name, outcome)

    return handler


#: Codes that say the request's credentials expired: refresh them and retry.
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})


def install(client: Any, max_attempts: int, on_expired: Callable[[], None] | None = None) -> Any:
    """Register the extra retry rules on ``client``; ``on_expired`` refreshes its credentials. Returns it."""
    service = client.meta.service_model.service_id.hyphenize()

    def extra(attempts: int, response: Any = None, caught_exception: Any = None, **_kw: Any) -> float | None:
        if response is None or attempts >= max_attempts:
            return None
        parsed = response[1] if isinstance(response, tuple) else {}
        error = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
        code = error.get("Code", "") if isinstance(error, dict) else ""
        if code in EXPIRED_CODES and on_expired is not None:
            on_expired()  # botocore signs the retry with the refreshed credentials
            return 0.0
        if (service, code) not in EXTRA_RETRYABLE:
            return None
        reasons = RETRYABLE_REASONS.get((service, code))
        if reasons is not None and parsed.get("Reason") not in reasons:
            return None
        return _scale * random.random() * min(20.0, 0.5 * 2 ** (attempts - 1))

    def never(response: Any = None, caught_exception: Any = None, **_kw: Any) -> bool | None:
        """No retry when the request may have reached AWS; a clear refusal (throttling) is retried as usual."""
        if caught_exception is not None and ambiguous(caught_exception):
            return False
        status = response[0].status_code if isinstance(response, tuple) and response[0] is not None else 0
        parsed = response[1] if isinstance(response, tuple) and isinstance(response[1], dict) else {}
        if status >= 500 or parsed.get("Error", {}).get("Code") in AMBIGUOUS_CODES:
            return False
        return None

    client.meta.events.register_first(f"needs-retry.{service}", extra, unique_id=f"meshcore-extra-{service}")
    for svc, operation in NEVER_RETRIED:
        if svc == service:
            client.meta.events.register_first(
                f"needs-retry.{service}.{operation}", never, unique_id=f"meshcore-never-{service}-{operation}"
            )
    return client


def code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` ("" for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def identity_absent(exc: BaseException) -> bool:
    """An identity-store ``ResourceNotFoundException`` about the group, user or membership asked for. One
    about the store itself (``ResourceType`` ``IDENTITY_STORE``: a wrong store id, or Identity Center's
    home region elsewhere) is an error, never "absent": a deletion would be recorded as done."""
    response = getattr(exc, "response", None)
    store = isinstance(response, dict) and response.get("ResourceType") == "IDENTITY_STORE"
    return code(exc) == "ResourceNotFoundException" and not store


def reason(exc: BaseException) -> str:
    """The modeled ``Reason`` of an error (e.g. ``CLOSE_ACCOUNT_QUOTA_EXCEEDED``), if it has one."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Reason") or response.get("Error", {}).get("Reason") or "")
    return ""


def describe(exc: BaseException) -> str:
    """``Code: message`` of an AWS error, for step messages."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        message = str(err.get("Message", str(exc)))
        if "<html" in message.lower() or "<!doctype" in message.lower():  # not AWS: a web server's error page
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            operation = getattr(exc, "operation_name", "the call")
            return (
                f"HTTP {status}: the endpoint answered {operation} with a web page, not an AWS error "
                "(is AWS_ENDPOINT_URL an emulator that lacks this call?)"
            )
        return f"{err.get('Code', type(exc).__name__)}: {message}"
    return f"{type(exc).__name__}: {exc}"


def ambiguous(exc: BaseException) -> bool:
    """Whether a failed call may still have reached AWS (timeouts, connection resets, 5xx)."""
    from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

    if isinstance(exc, ReadTimeoutError | ConnectionClosedError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return (isinstance(status, int) and status >= 500) or code(exc) in AMBIGUOUS_CODES
    return False


def pages(
    client: Any, operation: str, key: str, page_size: int | None = None, **kwargs: Any
) -> Iterator[Any]:
    """Every item under ``key`` across all pages of ``operation`` (boto3's paginator)."""
    config = {"PageSize": page_size} if page_size else {}
    for page in client.get_paginator(operation).paginate(**kwargs, PaginationConfig=config):
        yield from page.get(key, [])


def listed(client: Any, operation: str, key: str, page_size: int | None = None, **kwargs: Any) -> list[Any]:
    return list(pages(client, operation, key, page_size, **kwargs))
