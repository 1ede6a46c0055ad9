"""Count the AWS API calls the plugin makes, per operation (tests, benchmarks, cost of a run).

Register :meth:`CallCounter.handler` on botocore's ``before-send`` event through
``meshcore_aws.sessions.EVENT_HOOKS`` (see :meth:`CallCounter.hooks`); it counts
one call per HTTP request (botocore's retries included) and can add latency per
call to simulate a slow network.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

WRITE_PREFIXES = (
    "Create",
    "Move",
    "Tag",
    "Untag",
    "Close",
    "Delete",
    "Put",
    "Update",
    "Attach",
    "Detach",
    "Enable",
)


class CallCounter(Counter):
    """Calls by operation name; ``handler`` is the botocore event handler."""

    def __init__(self, latency: float = 0.0):
        super().__init__()
        self.latency = latency

    def handler(self, event_name: str = "", **_kw: Any) -> None:
        self[event_name.rsplit(".", 1)[-1]] += 1
        if self.latency:
            time.sleep(self.latency)

    def hooks(self) -> list[tuple[str, Any]]:
        """What to put in ``meshcore_aws.sessions.EVENT_HOOKS``."""
        return [("before-send", self.handler)]

    @property
    def writes(self) -> dict[str, int]:
        return {k: v for k, v in self.items() if k.startswith(WRITE_PREFIXES)}

    def total(self) -> int:
        return sum(self.values())
