"""Durable state: tenants, journal, runs, steps, audit trail, leases, costs."""

from meshcore.state.store import DEFAULT_STATE_URL, StateStore

__all__ = ["DEFAULT_STATE_URL", "StateStore"]
