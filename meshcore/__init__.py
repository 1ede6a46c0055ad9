"""meshcore: a plugin-based platform adapter framework.

**For plugin authors**, everything needed is importable from here (and only this is
the public contract; other modules are internals that may change):

* the marker: :data:`hookimpl`;
* what observing hooks return: :class:`Observation`, :class:`Action`,
  :class:`ActionResult`, :class:`ActionStatus`, :class:`Phase`, :class:`ChangeAction`,
  and :func:`merge` to combine observations;
* what hooks receive: :class:`PlatformSpec`, :class:`LandingZoneSpec`,
  :class:`TenantSpec`, :class:`BindingSpec`, :class:`WorkspaceRef`,
  :class:`ProjectRef`, :class:`Period`, :class:`TenantRef`, :class:`TenantStatus`;
* the other results: :class:`PlatformType`, :class:`Capability`,
  :class:`ValidationProblem`, :class:`PreflightReport`, :class:`PreflightCheck`,
  :class:`CostCollection`, :class:`CostRecord`, :class:`DiscoveredTenant`;
* the context and errors: :class:`HookContext` (with :class:`JournalEntry`), :class:`PlatformError`,
  :class:`ConflictError`;
* :func:`record_cloud_call` and :func:`record_retry`: report each request to the cloud and
  each retry (``meshcore serve`` counts them as metrics; a no-op otherwise);
* :func:`is_secret`: whether a config value holds a secret from the environment (a plugin
  that transforms values, e.g. into a cloud's naming rules, refuses secrets there, because
  a transformed secret can no longer be recognised and redacted).

The hook specs themselves are in :mod:`meshcore.hookspecs` and documented in
``docs/hooks.md``. Names are imported on first use, so ``import meshcore`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from meshcore.hookspecs import CONTRACT_VERSION, hookimpl

__version__ = "0.2.0"

if TYPE_CHECKING:  # type checkers see the real names; at run time they load on first use
    from meshcore.actions import Action, ActionResult, ActionStatus, Observation, Phase, merge
    from meshcore.context import HookContext, JournalEntry
    from meshcore.errors import ConflictError, PlatformError
    from meshcore.models import TenantStatus
    from meshcore.redaction import is_secret
    from meshcore.results import (
        Capability,
        ChangeAction,
        ChangedTenants,
        CostCollection,
        CostRecord,
        DiscoveredTenant,
        PlatformType,
        PreflightCheck,
        PreflightReport,
        ValidationProblem,
    )
    from meshcore.specs import (
        BindingSpec,
        LandingZoneSpec,
        Period,
        PlatformSpec,
        ProjectRef,
        TenantRef,
        TenantSpec,
        WorkspaceRef,
    )
    from meshcore.telemetry import record_cloud_call, record_retry

_PUBLIC: dict[str, str] = {
    "Action": "meshcore.actions",
    "ActionResult": "meshcore.actions",
    "ActionStatus": "meshcore.actions",
    "Observation": "meshcore.actions",
    "merge": "meshcore.actions",
    "JournalEntry": "meshcore.context",
    "Phase": "meshcore.actions",
    "ChangeAction": "meshcore.results",
    "ChangedTenants": "meshcore.results",
    "Capability": "meshcore.results",
    "PlatformType": "meshcore.results",
    "ValidationProblem": "meshcore.results",
    "PreflightReport": "meshcore.results",
    "PreflightCheck": "meshcore.results",
    "CostCollection": "meshcore.results",
    "CostRecord": "meshcore.results",
    "DiscoveredTenant": "meshcore.results",
    "PlatformSpec": "meshcore.specs",
    "LandingZoneSpec": "meshcore.specs",
    "TenantSpec": "meshcore.specs",
    "BindingSpec": "meshcore.specs",
    "WorkspaceRef": "meshcore.specs",
    "ProjectRef": "meshcore.specs",
    "Period": "meshcore.specs",
    "TenantRef": "meshcore.specs",
    "TenantStatus": "meshcore.models",
    "HookContext": "meshcore.context",
    "PlatformError": "meshcore.errors",
    "ConflictError": "meshcore.errors",
    "is_secret": "meshcore.redaction",
    "record_cloud_call": "meshcore.telemetry",
    "record_retry": "meshcore.telemetry",
}

__all__ = [
    "CONTRACT_VERSION",
    "Action",
    "ActionResult",
    "ActionStatus",
    "BindingSpec",
    "Capability",
    "ChangeAction",
    "ChangedTenants",
    "ConflictError",
    "CostCollection",
    "CostRecord",
    "DiscoveredTenant",
    "HookContext",
    "JournalEntry",
    "LandingZoneSpec",
    "Observation",
    "Period",
    "Phase",
    "PlatformError",
    "PlatformSpec",
    "PlatformType",
    "PreflightCheck",
    "PreflightReport",
    "ProjectRef",
    "TenantRef",
    "TenantSpec",
    "TenantStatus",
    "ValidationProblem",
    "WorkspaceRef",
    "__version__",
    "hookimpl",
    "is_secret",
    "merge",
    "record_cloud_call",
    "record_retry",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'meshcore' has no attribute {name!r}")
