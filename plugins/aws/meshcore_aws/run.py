"""One platform's AWS state for one run, shared by every hook and every tenant of that run.

:func:`aws_run` keeps one :class:`AwsRun` per platform in the run cache: the
sessions, the organization view, and (on first use) the guardrails, baselines and
Identity Center views. Each reads in bulk once and updates itself after its own
writes, so observing many tenants costs few calls and always sees this run's changes.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

from meshcore import HookContext, PlatformSpec
from meshcore_aws.config import AwsConfig
from meshcore_aws.organization import OrgView
from meshcore_aws.sessions import Sessions

if TYPE_CHECKING:  # pragma: no cover
    from meshcore_aws.baselines import Baselines
    from meshcore_aws.creation_slots import CreationSlots
    from meshcore_aws.guardrails import Guardrails
    from meshcore_aws.identity_center import IdentityCenter
    from meshcore_aws.vending import CreationWatch

_lock = threading.Lock()
_sessions: dict[tuple[str, str], Sessions] = {}


def sessions_for(platform: PlatformSpec) -> Sessions:
    """The cached sessions of a platform config (kept across runs: credentials stay warm)."""
    key = (platform.id, platform.config.model_dump_json())
    with _lock:
        if key not in _sessions:
            _sessions[key] = Sessions(platform.config, platform.id)
        return _sessions[key]


def reset_sessions() -> None:
    """Forget every cached session (tests, or after credentials changed)."""
    with _lock:
        _sessions.clear()


class AwsRun:
    """Everything the hooks of one platform share in one run."""

    def __init__(self, platform: PlatformSpec, ctx: HookContext):
        self.platform = platform
        self.cfg: AwsConfig = platform.config
        self.sessions = sessions_for(platform)
        self.sleep = ctx.sleep
        self.stopping = ctx.stopping
        self._ctx = ctx
        self.org = OrgView(
            self.sessions, self.cfg, ctx.limiter("organizations-writes", self.cfg.org_write_concurrency)
        )
        self._views: dict[str, Any] = {}
        self._views_lock = threading.Lock()

    def once(self, name: str, make: Any) -> Any:
        """The run's value called ``name``, made by the first caller (views, run-wide counts)."""
        with self._views_lock:
            if name not in self._views:
                self._views[name] = make()
            return self._views[name]

    @property
    def creations(self) -> CreationWatch:
        """Account creations in flight, polled once per interval for every tenant of the run."""
        from meshcore_aws.vending import CreationWatch

        return self.once("creations", lambda: CreationWatch(self.org))

    @property
    def creation_slots(self) -> CreationSlots:
        """How many account creations the run keeps in progress (see :mod:`meshcore_aws.creation_slots`)."""
        from meshcore_aws.creation_slots import CreationSlots

        return self.once("creation_slots", lambda: CreationSlots(self.cfg.max_account_creations_in_flight))

    @property
    def guardrails(self) -> Guardrails:
        from meshcore_aws.guardrails import Guardrails

        return self.once("guardrails", lambda: Guardrails(self.org, self.cfg))

    @property
    def baselines(self) -> Baselines:
        from meshcore_aws.baselines import Baselines

        return self.once("baselines", lambda: Baselines(self.sessions, self.cfg, self.sleep))

    @property
    def identity_center(self) -> IdentityCenter:
        from meshcore_aws.identity_center import IdentityCenter

        ic = self.cfg.identity_center
        assert ic is not None
        return self.once(
            "identity_center",
            lambda: IdentityCenter(
                self.sessions, self.cfg, self.sleep, self._ctx.limiter("identity-center", ic.max_in_flight)
            ),
        )


def aws_run(platform: PlatformSpec, ctx: HookContext) -> AwsRun:
    """This run's :class:`AwsRun` of ``platform`` (one per run and platform, shared by all tenants)."""
    run: Any = ctx.cache.get("aws", lambda: AwsRun(platform, ctx))
    return run


def poll_count(wait_seconds: float, interval: float) -> int:
    """How many status reads fit in ``wait_seconds`` at ``interval`` (an interval under 1 s counts as 1 s,
    so that a zero interval, e.g. in tests, still reads a bounded number of times rather than once)."""
    return max(1, math.ceil(wait_seconds / max(interval, 1.0)))
