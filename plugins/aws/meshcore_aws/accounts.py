"""Account lifecycle states, read from ``Account.State`` (``Status`` was retired by AWS on 2026-09-09).

``State`` is ``PENDING_ACTIVATION | ACTIVE | SUSPENDED | PENDING_CLOSURE | CLOSED``
(organizations:AccountState). An account is *usable* when ``ACTIVE``; *not ready
yet* while ``PENDING_ACTIVATION``; *closing* while ``PENDING_CLOSURE``; *closed*
when ``SUSPENDED`` (the 90-day post-closure period) or ``CLOSED``.
"""

from __future__ import annotations

from typing import Any

ACTIVE = "ACTIVE"
PENDING_ACTIVATION = "PENDING_ACTIVATION"
PENDING_CLOSURE = "PENDING_CLOSURE"
CLOSED_STATES = frozenset({"SUSPENDED", "CLOSED"})
#: States in which meshcore writes nothing to an account.
INACTIVE = frozenset({PENDING_CLOSURE, *CLOSED_STATES})


def state(account: dict[str, Any]) -> str:
    """The account's ``State`` (``UNKNOWN`` if AWS did not say)."""
    return str(account.get("State") or "UNKNOWN")
