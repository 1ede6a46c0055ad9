"""How plugins report their cloud calls and retries, for ``meshcore serve``'s metrics.

A plugin calls :func:`record_cloud_call` once per request it sends to its cloud
(every attempt, retries included) and :func:`record_retry` once per retried
attempt. Both are public (``from meshcore import record_cloud_call, record_retry``)
and cost next to nothing: while no sink is installed (every command but ``serve``)
they only check their arguments. ``meshcore serve`` installs a sink that counts
them as Prometheus metrics (docs/operations.md, "Service").

A sink that fails never fails the cloud call that reported to it: the error is
logged at debug and dropped.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)

#: What became of one request: answered, refused because of throttling, or any other error
#: (an error answer, a timeout, a dropped connection).
OUTCOMES = ("ok", "throttled", "error")


class TelemetrySink(Protocol):
    """Receives what plugins report (the service's metrics, or a test's recorder)."""

    def cloud_call(self, platform: str, operation: str, outcome: str) -> None: ...

    def retry(self, platform: str, operation: str, throttled: bool) -> None: ...


_sink: TelemetrySink | None = None


def install(sink: TelemetrySink | None) -> TelemetrySink | None:
    """Make ``sink`` receive every report from now on (``None``: drop them); returns the previous sink."""
    global _sink
    previous, _sink = _sink, sink
    return previous


def record_cloud_call(platform: str, operation: str, outcome: str = "ok") -> None:
    """Report one request to a cloud API.

    ``platform`` is the platform id from the config, ``operation`` names the API call as
    ``service.Operation`` (e.g. ``organizations.CreateAccount``), ``outcome`` is one of
    :data:`OUTCOMES`. Raises ``ValueError`` for another outcome (a plugin bug).
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"cloud call outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    sink = _sink
    if sink is None:
        return
    try:
        sink.cloud_call(platform, operation, outcome)
    except Exception:  # telemetry never breaks a cloud call
        log.debug("telemetry sink failed on a cloud call", exc_info=True)


def record_retry(platform: str, operation: str, throttled: bool) -> None:
    """Report that a request to ``operation`` is sent again; ``throttled``: because the cloud throttled it."""
    sink = _sink
    if sink is None:
        return
    try:
        sink.retry(platform, operation, throttled)
    except Exception:  # telemetry never breaks a cloud call
        log.debug("telemetry sink failed on a retry", exc_info=True)
