"""Plugin discovery (stevedore) and dispatch (pluggy), with validation of everything plugins return.

Loading path, the only one: stevedore lists the entry points of the group
``meshcore.platforms``, skips those disabled by ``MESHCORE_DISABLE_PLUGINS``
(comma-separated names), imports the rest, and each loaded object is registered
with pluggy under its entry-point name, which is the platform type it provides.

A plugin that fails to import, fails to register, implements a misspelled hook
(``check_pending``), or does not register the platform type its entry point
names, is kept as *broken* with its error: ``meshcore plugins`` shows it and it
is fatal only when a configured platform needs it. Two different entry points
for one name are a *duplicate*: an error for that type.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from meshcore import hookspecs
from meshcore.actions import Observation
from meshcore.errors import MeshcoreError, PluginError
from meshcore.results import (
    Capability,
    ChangedTenants,
    CostCollection,
    DiscoveredTenant,
    PlatformType,
    PreflightReport,
    ValidationProblem,
)
from meshcore.specs import PlatformSpec

ENTRY_POINT_GROUP = "meshcore.platforms"
DISABLE_ENV = "MESHCORE_DISABLE_PLUGINS"

# hook name -> (model, is_list): what the core accepts back from each dispatched hook.
RESULT_TYPES: dict[str, tuple[type[BaseModel] | type[str], bool]] = {
    "meshplatform_validate": (ValidationProblem, True),
    "meshplatform_preflight": (PreflightReport, False),
    "meshplatform_identity": (str, False),
    "meshplatform_platform_actions": (Observation, False),
    "meshplatform_tenant_actions": (Observation, False),
    "meshplatform_landing_zone_actions": (Observation, False),
    "meshplatform_access_actions": (Observation, False),
    "meshplatform_collect_costs": (CostCollection, False),
    "meshplatform_discover_tenants": (DiscoveredTenant, True),
    "meshplatform_changed_tenants": (ChangedTenants, False),
}
#: Hooks that may answer ``None`` (the plugin cannot tell).
OPTIONAL_ANSWER = frozenset({"meshplatform_identity", "meshplatform_changed_tenants"})
#: capability -> the hook a plugin declaring it must implement (and may implement only then).
CAPABILITY_HOOKS: dict[Capability, str] = {
    Capability.TENANTS: "meshplatform_tenant_actions",
    Capability.LANDING_ZONES: "meshplatform_landing_zone_actions",
    Capability.SHARED_RESOURCES: "meshplatform_platform_actions",
    Capability.ACCESS: "meshplatform_access_actions",
    Capability.COSTS: "meshplatform_collect_costs",
    Capability.DISCOVERY: "meshplatform_discover_tenants",
    Capability.PREFLIGHT: "meshplatform_preflight",
    Capability.CHANGE_FEED: "meshplatform_changed_tenants",
}


@dataclass
class PluginInfo:
    """What ``meshcore plugins`` shows about one entry point."""

    name: str
    target: str
    status: str = "loaded"  # loaded | broken | disabled | duplicate
    error: str = ""
    distribution: str | None = None
    version: str | None = None
    platform_type: PlatformType | None = None
    plugin: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "loaded"

    def as_dict(self) -> dict[str, Any]:
        pt = self.platform_type
        return {
            "name": self.name,
            "target": self.target,
            "status": self.status,
            "error": self.error,
            "distribution": self.distribution,
            "version": self.version,
            "capabilities": sorted(c.value for c in pt.capabilities) if pt else [],
            "description": pt.description if pt else "",
        }


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


class PluginRegistry:
    """Platform types by name, the pluggy manager behind them, and typed dispatch."""

    def __init__(self) -> None:
        self.pm = new_plugin_manager()
        self.infos: dict[str, PluginInfo] = {}
        self._callers: dict[tuple[str, str], Any] = {}
        self._owners: dict[tuple[str, str], tuple[str, str]] = {}  # (name, target) -> (distribution, version)

    # -- loading ---------------------------------------------------------------

    @classmethod
    def discover(cls, only: set[str] | None = None) -> PluginRegistry:
        """Load every platform plugin installed under the entry-point group (or only those named)."""
        from stevedore import NamedExtensionManager
        from stevedore.extension import ExtensionManager

        registry = cls()
        disabled = disabled_plugins()
        ExtensionManager.ENTRY_POINT_CACHE.pop(ENTRY_POINT_GROUP, None)
        targets: dict[str, set[str]] = {}
        owners: dict[tuple[str, str], tuple[str, str]] = {}
        for name, value, dist, version in scan_entry_points():
            targets.setdefault(name, set()).add(value)
            owners.setdefault((name, value), (dist, version))
        registry._owners = owners
        wanted = []
        for name, values in sorted(targets.items()):
            target = ", ".join(sorted(values))
            if name in disabled:
                registry.infos[name] = PluginInfo(name, target, "disabled", f"disabled by {DISABLE_ENV}")
            elif len(values) > 1:
                registry.infos[name] = PluginInfo(
                    name,
                    target,
                    "duplicate",
                    f"platform type {name!r} is provided by {len(values)} different entry "
                    f"points ({target}); uninstall all but one",
                )
            elif only is None or name in only:
                wanted.append(name)

        def on_failure(_mgr: Any, ep: Any, err: BaseException) -> None:
            registry.infos[ep.name] = PluginInfo(
                ep.name, ep.value, "broken", f"import failed: {type(err).__name__}: {err}"
            )

        mgr = NamedExtensionManager(
            ENTRY_POINT_GROUP,
            names=wanted,
            on_load_failure_callback=on_failure,
            propagate_map_exceptions=False,
        )
        seen: set[str] = set()
        for ext in mgr.extensions:
            if ext.name in seen:  # the same target listed twice (e.g. editable installs)
                continue
            seen.add(ext.name)
            registry.register(ext.name, ext.plugin, target=ext.entry_point.value)
        return registry

    def _dist_of(self, name: str, target: str, plugin: Any) -> tuple[str | None, str | None]:
        found = self._owners.get((name, target))
        return found if found else _distribution_of(plugin)

    def register(self, name: str, plugin: Any, target: str = "") -> PluginInfo:
        """Register a plugin object as the provider of platform type ``name``.

        Never raises: problems make the plugin *broken* and are kept in its info.
        """
        info = PluginInfo(name, target or _describe(plugin))
        info.distribution, info.version = self._dist_of(name, info.target, plugin)
        self.infos[name] = info
        self._callers.clear()
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy does not roll back a failed register
            self._forget(name)
            return self._broken(info, f"registration failed: {exc}")
        retired = sorted(
            impl
            for impl in dir(plugin)
            if impl in hookspecs.RETIRED_HOOKS and hasattr(getattr(plugin, impl), "meshplatform_impl")
        )
        if retired:
            self._forget(name)
            return self._broken(
                info,
                f"implements hooks of contract 1 ({', '.join(retired)}); this meshcore implements hook "
                f"contract {hookspecs.CONTRACT_VERSION}, where plugins return actions "
                "(see docs/hooks.md, 'Changes')",
            )
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self._forget(name)
            return self._broken(info, f"unknown hook (misspelled?): {exc}")
        info.plugin = plugin
        try:
            caller = self.pm.subset_hook_caller(
                "meshplatform_platform_types", remove_plugins=self._others(name)
            )
            answers = caller()
        except Exception as exc:
            self._forget(name)
            return self._broken(info, f"meshplatform_platform_types raised {type(exc).__name__}: {exc}")
        types = [t for answer in answers for t in (answer or [])]
        try:
            types = [t if isinstance(t, PlatformType) else PlatformType.model_validate(t) for t in types]
        except ValidationError as exc:
            self._forget(name)
            return self._broken(info, f"meshplatform_platform_types returned a malformed type: {_brief(exc)}")
        match = [t for t in types if t.name == name]
        if not match:
            self._forget(name)
            return self._broken(
                info,
                f"entry point {name!r} must register platform type {name!r} "
                f"(it registered: {', '.join(t.name for t in types) or 'none'})",
            )
        ptype = match[0]
        implemented = {h.name for h in self.pm.get_hookcallers(plugin) or []}
        missing = sorted(
            CAPABILITY_HOOKS[c] for c in ptype.capabilities if CAPABILITY_HOOKS[c] not in implemented
        )
        undeclared = sorted(
            f"{hook} (capability {cap.value!r})"
            for cap, hook in CAPABILITY_HOOKS.items()
            if hook in implemented and cap not in ptype.capabilities
        )
        if Capability.TENANTS not in ptype.capabilities or missing or undeclared:
            self._forget(name)
            reasons = []
            if Capability.TENANTS not in ptype.capabilities:
                reasons.append("every platform type needs the 'tenants' capability")
            if missing:
                reasons.append(f"declares capabilities without their hooks: {', '.join(missing)}")
            if undeclared:
                reasons.append(f"implements hooks without declaring the capability: {', '.join(undeclared)}")
            return self._broken(info, "; ".join(reasons))
        info.platform_type = ptype
        return info

    def _broken(self, info: PluginInfo, error: str) -> PluginInfo:
        info.status, info.error, info.plugin = "broken", error, None
        return info

    def _forget(self, name: str) -> None:
        if self.pm.get_plugin(name) is not None:
            with contextlib.suppress(Exception):  # partially registered: drop what pluggy kept
                self.pm.unregister(name=name)

    def _others(self, name: str) -> list[Any]:
        return [p for n, p in self.pm.list_name_plugin() if n != name]

    # -- lookups -----------------------------------------------------------------

    def types(self) -> dict[str, PlatformType]:
        return {n: i.platform_type for n, i in self.infos.items() if i.ok and i.platform_type}

    def platform_type(self, name: str) -> PlatformType:
        """The registered type, or a :class:`PluginError` that says why it is unavailable."""
        info = self.infos.get(name)
        if info is None:
            installed = ", ".join(sorted(self.types())) or "none"
            raise PluginError(
                name, f"no installed plugin provides platform type {name!r} (installed: {installed})"
            )
        if not info.ok or info.platform_type is None:
            raise PluginError(name, f"is {info.status}: {info.error}")
        return info.platform_type

    def implements(self, type_name: str, hook: str) -> bool:
        """Whether the plugin owning ``type_name`` implements ``hook`` (for optional hooks)."""
        plugin = self.infos[type_name].plugin if type_name in self.infos else None
        return plugin is not None and any(h.name == hook for h in self.pm.get_hookcallers(plugin) or [])

    def has_capability(self, type_name: str, capability: Capability) -> bool:
        return capability in self.platform_type(type_name).capabilities

    # -- dispatch ----------------------------------------------------------------

    def call(self, hook: str, platform: PlatformSpec, **kwargs: Any) -> Any:
        """Call ``hook`` on the plugin owning ``platform.type`` and validate its answer.

        Core errors (:class:`MeshcoreError` and subclasses) raised by the plugin
        pass through unchanged; any other exception becomes a :class:`PluginError`
        naming the plugin.
        """
        name = platform.type
        self.platform_type(name)
        caller = self._callers.get((hook, name))
        if caller is None:
            caller = self.pm.subset_hook_caller(hook, remove_plugins=self._others(name))
            self._callers[(hook, name)] = caller
        try:
            result = caller(platform=platform, **kwargs)
        except MeshcoreError:
            raise
        except Exception as exc:
            raise PluginError(name, f"{hook} raised {type(exc).__name__}: {exc}") from exc
        return self.check_result(name, hook, result)

    def cli_commands(self, name: str) -> Any:
        """The command group plugin ``name`` adds to the CLI, or ``None``."""
        self.platform_type(name)
        caller = self.pm.subset_hook_caller("meshplatform_cli_commands", remove_plugins=self._others(name))
        try:
            answers = [a for a in caller() if a is not None]
        except Exception as exc:
            raise PluginError(name, f"meshplatform_cli_commands raised {type(exc).__name__}: {exc}") from exc
        return answers[0] if answers else None

    def check_result(self, plugin: str, hook: str, result: Any) -> Any:
        """Validate a hook's answer against :data:`RESULT_TYPES`."""
        model, is_list = RESULT_TYPES[hook]
        if result is None:
            if hook in OPTIONAL_ANSWER:
                return None
            raise PluginError(plugin, f"{hook} returned None")
        if model is str:
            if not isinstance(result, str) or not result.strip():
                raise PluginError(plugin, f"{hook} must return a non-empty string or None")
            return result
        if model is Observation and isinstance(result, list | tuple):
            result = {"actions": tuple(result)}
        try:
            if is_list:
                if not isinstance(result, list | tuple):
                    raise PluginError(
                        plugin, f"{hook} must return a list of {model.__name__}, got {type(result).__name__}"
                    )
                return [r if isinstance(r, model) else model.model_validate(r) for r in result]  # type: ignore[union-attr]
            return result if isinstance(result, model) else model.model_validate(result)  # type: ignore[union-attr]
        except ValidationError as exc:
            raise PluginError(
                plugin, f"{hook} returned a malformed {model.__name__}: {_brief(exc)}"
            ) from None


def _brief(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "<value>"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _describe(plugin: Any) -> str:
    mod = getattr(plugin, "__module__", None) or getattr(plugin, "__name__", "")
    return f"{mod}:{getattr(plugin, '__qualname__', type(plugin).__name__)}" if mod else repr(plugin)


def scan_entry_points() -> list[tuple[str, str, str, str]]:
    """Every (name, target, distribution, version) in the group, one row per distribution.

    ``importlib.metadata.entry_points()`` keeps only one entry point per name,
    which would hide a second plugin claiming the same platform type.
    """
    rows, seen = [], set()
    for dist in importlib.metadata.distributions():
        dist_name = dist.metadata["Name"] or "?"
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                key = (ep.name, ep.value, dist_name)
                if key not in seen:  # editable installs can list a distribution twice
                    seen.add(key)
                    rows.append((ep.name, ep.value, dist_name, dist.version))
    return rows


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distribution_of(plugin: Any) -> tuple[str | None, str | None]:
    module = getattr(plugin, "__module__", None) or getattr(plugin, "__name__", "") or ""
    top = module.split(".")[0]
    try:
        dists = _packages_distributions().get(top, [])
        if dists:
            return dists[0], importlib.metadata.version(dists[0])
    except Exception:
        pass
    return None, None
