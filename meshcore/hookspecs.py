"""Hook specifications: the contract between the meshcore core and platform plugins.

A platform plugin is a module (or object) exposed through the entry-point group
``meshcore.platforms``; the entry-point name is the platform type users write in
config. It implements the hooks below with the :data:`meshcore.hookimpl` marker.
Hooks are called with keyword arguments only; an implementation may accept a
subset of the arguments (pluggy passes only those it names) but must not give
them defaults (pluggy never fills an argument that has one).

**Contract version 2.** Plugins do not plan and apply separately: the
*observing* hooks (``meshplatform_*_actions``) read the cloud and return an
:class:`~meshcore.actions.Observation` of typed :class:`~meshcore.actions.Action`
objects. ``meshcore plan`` prints those actions; ``meshcore apply`` runs exactly
those, in the order of their :class:`~meshcore.actions.Phase`, and records each
as a step. The core owns ordering, gating, deletion limits and the state store;
see ``docs/concepts.md``.

**Dispatch.** The core keeps a registry of platform types and calls a hook only
on the plugin that registered ``platform.type`` (pluggy's
``subset_hook_caller``), so a plugin never sees another plugin's platforms and
needs no ``if platform.type != ...`` check. Every dispatched hook is
``firstresult``: the one owning plugin answers. Which hooks a plugin must
implement follows from the capabilities it declares (checked when it loads).

**Errors.** Raise :class:`meshcore.errors.PlatformError` (or its subclass
:class:`~meshcore.errors.ConflictError`) for a failure the user must act on; the
hook's tenant (or the platform, for whole-platform hooks) fails with that
message and the others carry on. Any other exception is reported as a plugin
bug that names the plugin. Transient cloud errors are the plugin's to retry;
anything still failing is retried by the next run, which observes again.

Every ``ctx`` argument is a :class:`meshcore.context.HookContext`: the journal
of intents, the resources table, quotas, the per-run cache and limiters.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from meshcore.actions import Observation
    from meshcore.context import HookContext
    from meshcore.results import (
        ChangedTenants,
        CostCollection,
        DiscoveredTenant,
        PlatformType,
        PreflightReport,
        ValidationProblem,
    )
    from meshcore.specs import LandingZoneSpec, Period, PlatformSpec, TenantRef, TenantSpec

PROJECT_NAME = "meshplatform"
#: Version of this contract; a plugin built for another version is reported as broken.
CONTRACT_VERSION = 2
#: Hooks of contract version 1, to tell the author of an old plugin what changed.
RETIRED_HOOKS = frozenset(
    {
        "meshplatform_plan_tenant",
        "meshplatform_provision_tenant",
        "meshplatform_update_tenant",
        "meshplatform_deprovision_tenant",
        "meshplatform_apply_landing_zone",
        "meshplatform_replicate_access",
    }
)

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------
# Platform types and config
# ---------------------------------------------------------------------------


@hookspec
def meshplatform_platform_types() -> list[PlatformType]:  # type: ignore[empty-body]
    """Register the platform types this plugin provides.

    :returns: a list of :class:`~meshcore.results.PlatformType`; one of them
        must be named like the plugin's entry point.
    :raises: nothing should be raised; an exception makes the plugin "broken"
        in ``meshcore plugins`` and fatal only for configs that use it.

    Not ``firstresult``: the core asks each plugin separately, when it loads.

    .. versionadded:: 1

    Example::

        @hookimpl
        def meshplatform_platform_types():
            return [PlatformType(name="acme", config_model=AcmeConfig,
                                 landing_zone_model=AcmeLandingZone,
                                 capabilities=frozenset({Capability.TENANTS, Capability.ACCESS}))]
    """


@hookspec(firstresult=True)
def meshplatform_validate(  # type: ignore[empty-body]
    platform: PlatformSpec, landing_zones: list[LandingZoneSpec], tenants: list[TenantSpec]
) -> list[ValidationProblem]:
    """Check a platform's config, its landing zones and its tenants beyond what the models express.

    Called by ``meshcore validate`` and before every ``plan`` and ``apply``;
    must make no cloud calls (``meshplatform_preflight`` is for those). This is
    where a plugin renders what it will name each tenant in the cloud and
    refuses names the cloud would reject, or two tenants whose names collide.

    :param platform: the platform, ``config`` already validated by the plugin's model.
    :param landing_zones: the landing zones on this platform, configs validated.
    :param tenants: the tenants declared on this platform, in config order
        (no ``platform_tenant_id``: validation does not read the state).
    :returns: a list of :class:`~meshcore.results.ValidationProblem` (empty if all is well);
        set ``tenant`` to a tenant's key to point the problem at its entry in the config.
    :raises: nothing: report problems instead.

    ``firstresult``: the owning plugin answers.

    .. versionadded:: 1

    Example::

        @hookimpl
        def meshplatform_validate(platform, landing_zones, tenants):
            return [ValidationProblem(path="role_mappings.admin", landing_zone=lz.id,
                                      message="maps to a privileged role without a boundary")
                    for lz in landing_zones if privileged(lz)]

    .. versionchanged:: 2
       ``tenants`` added (a hook implementation may leave it out of its signature).
    """


@hookspec(firstresult=True)
def meshplatform_preflight(platform: PlatformSpec, ctx: HookContext) -> PreflightReport:  # type: ignore[empty-body]
    """Check that credentials work and every permission a run needs is granted.

    Needs the ``preflight`` capability.

    :param platform: the platform to check.
    :param ctx: the hook context (read-only use).
    :returns: a :class:`~meshcore.results.PreflightReport` with one check per
        role or permission.
    :raises: nothing for a failed check (report it as ``ok=False``).

    ``firstresult``: the owning plugin answers.

    .. versionadded:: 1

    Example::

        @hookimpl
        def meshplatform_preflight(platform, ctx):
            return PreflightReport(checks=[PreflightCheck(name="assume role", ok=True)])
    """


@hookspec(firstresult=True)
def meshplatform_identity(platform: PlatformSpec, ctx: HookContext) -> str | None:
    """Say which cloud instance this platform config points at (e.g. the AWS organization id).

    The core records the answer per platform id on first use. A platform id
    that later points at another instance, or a new platform id that points at
    an instance recorded under another id (a renamed platform), is refused
    before any change: either would bind one cloud tenant to two tenants.
    Optional; without it the core cannot detect renames.

    :param platform: the platform.
    :param ctx: the hook context (read-only use).
    :returns: a stable, non-secret identifier of the cloud instance, or ``None``
        when it cannot be told.
    :raises PlatformError: the platform cannot be reached.

    ``firstresult``: the owning plugin answers.

    .. versionadded:: 2

    Example::

        @hookimpl
        def meshplatform_identity(platform, ctx):
            return "aws-organization:" + org(platform).describe_organization()["Organization"]["Id"]
    """


# ---------------------------------------------------------------------------
# Shared resources (one per platform, used by many tenants)
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def meshplatform_platform_actions(  # type: ignore[empty-body]
    platform: PlatformSpec, landing_zones: list[LandingZoneSpec], ctx: HookContext
) -> Observation:
    """Observe the resources the platform's landing zones share and say what must change.

    Placement targets, their guardrails, templates, permission sets: whatever
    many tenants use. Called once per ``plan`` and ``apply``, before any tenant.
    ``apply`` runs the returned actions first, in phase order; a tenant action
    whose ``requires`` names one of their keys runs only once it is confirmed.
    Needs the ``shared_resources`` capability.

    :param platform: the platform.
    :param landing_zones: the platform's landing zones in the config.
    :param ctx: the hook context (``ctx.tenant_key`` is empty).
    :returns: an :class:`~meshcore.actions.Observation`; report what cannot be
        put in place in ``problems`` (key → reason) rather than raising, so
        that landing zones without problems go on.
    :raises PlatformError: the platform cannot be read at all.

    ``firstresult``: the owning plugin answers.

    .. versionadded:: 2

    Example::

        @hookimpl
        def meshplatform_platform_actions(platform, landing_zones, ctx):
            obs = Observation()
            for lz in landing_zones:
                if folder_exists(lz.config.folder):
                    obs = obs.model_copy(update={"in_place": obs.in_place | {f"folder:{lz.config.folder}"}})
                else:
                    obs = obs.model_copy(update={"actions": (*obs.actions, Action(
                        phase=Phase.TARGET, change=ChangeAction.CREATE, resource="folder",
                        target=lz.config.folder, run=lambda f=lz.config.folder: make_folder(f)))})
            return obs
    """


# ---------------------------------------------------------------------------
# Tenant lifecycle
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def meshplatform_tenant_actions(platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext) -> Observation:  # type: ignore[empty-body]
    """Observe the tenant itself and say what must change: create, adopt, place, configure, delete.

    For a tenant that is ``ACTIVE``: actions of the ``tenant``, ``placement``
    and ``configure`` phases (and ``target``/``guardrails`` if the tenant has
    its own). For a tenant ``MARKED_FOR_DELETION`` whose deletion is approved
    (``tenant.deletion_approved``): ``deprovision`` actions, until observing
    finds nothing left to do — the core then records it ``DELETED``.

    A tenant with no ``platform_tenant_id`` was never bound: look it up by its
    natural key (and by any open journal intent) before planning a create, and
    return an existing one as ``platform_tenant_id`` in the observation with an
    action that adopts it. Never adopt what ``ctx.owner_of`` says belongs to
    another tenant, live or deleted. The action that creates or adopts returns
    the id in its :class:`~meshcore.actions.ActionResult`; the core binds it at
    once. Inside ``run`` closures, read the id from ``ctx.platform_tenant_id``.

    :param platform: the tenant's platform.
    :param tenant: the desired tenant, with its recorded ``platform_tenant_id``
        (``None`` if never bound), ``status`` and ``deletion_approved``.
    :param ctx: the hook context, scoped to this tenant.
    :returns: an :class:`~meshcore.actions.Observation`.
    :raises PlatformError: the tenant cannot be observed (e.g. its cloud
        tenant vanished); the tenant fails and nothing runs.
    :raises ConflictError: the tenant's natural key is taken by something that
        is not this tenant's.

    ``firstresult``: the owning plugin answers. Needs the ``tenants`` capability.

    .. versionadded:: 2

    Example::

        @hookimpl
        def meshplatform_tenant_actions(platform, tenant, ctx):
            if tenant.platform_tenant_id is None:
                return Observation(actions=(Action(
                    phase=Phase.TENANT, change=ChangeAction.CREATE, resource="project",
                    target=name(tenant), requires=(f"folder:{tenant.landing_zone.config.folder}",),
                    run=lambda: create_project(ctx, tenant)),))
            return Observation(actions=tuple(tag_actions(ctx, tenant)))
    """


@hookspec(firstresult=True)
def meshplatform_changed_tenants(
    platform: PlatformSpec, ctx: HookContext, since: dt.datetime
) -> ChangedTenants | None:
    """Say which tenants may have changed on the platform since ``since``: the change feed that lets an
    ``apply`` with ``settings.drift_check.mode: incremental`` skip reading the others.

    Read the platform's own record of changes (e.g. an audit log of management events), not the
    tenants. Name every tenant a change may concern: a tenant left out is not read in this run, so
    drift on it stays until the next full check. Changes the feed cannot see (e.g. made inside a
    tenant) must be documented by the plugin; the periodic full check
    (``drift_check.full_every_hours``) finds them. Allow for the feed's own delay: ask it from
    somewhat before ``since``.

    :param platform: the platform.
    :param ctx: the hook context (platform scope).
    :param since: an aware UTC time: the ``until`` this hook returned last time.
    :returns: :class:`~meshcore.results.ChangedTenants` (``platform_tenant_ids``, ``everything``,
        ``until``), or ``None`` if the plugin cannot tell this time (the run reads every tenant).
    :raises PlatformError: the feed cannot be read; the run reads every tenant.

    ``firstresult``: the owning plugin answers. Needs the ``change_feed`` capability.

    .. versionadded:: 2

    Example::

        @hookimpl
        def meshplatform_changed_tenants(platform, ctx, since):
            events = audit_log(platform).events(start=since - DELAY)
            return ChangedTenants(
                platform_tenant_ids=frozenset(e.project_id for e in events if e.project_id),
                everything=any(e.project_id is None for e in events),
                until=utcnow(),
            )
    """


@hookspec(firstresult=True)
def meshplatform_landing_zone_actions(  # type: ignore[empty-body]
    platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
) -> Observation:
    """Observe the landing zone's guardrails and baseline on one tenant and say what must change.

    ``guardrails`` and ``baseline`` actions for an ``ACTIVE`` tenant (before
    the tenant exists, everything is to be created); ``teardown`` actions for a
    tenant whose deletion is approved. Needs the ``landing_zones`` capability.

    :param platform: the tenant's platform.
    :param tenant: the tenant; ``platform_tenant_id`` is the bound id, the id
        the tenant hook found, or ``None`` when it is still to be created.
    :param ctx: the hook context, scoped to this tenant.
    :returns: an :class:`~meshcore.actions.Observation`.
    :raises PlatformError: the tenant's guardrails or baseline cannot be read.

    ``firstresult``: the owning plugin answers.

    .. versionadded:: 2

    Example::

        @hookimpl
        def meshplatform_landing_zone_actions(platform, tenant, ctx):
            have = guardrails_of(tenant.platform_tenant_id)
            want = set(tenant.landing_zone.config.guardrails)
            return Observation(
                in_place=frozenset(f"guardrail:{g}" for g in want & have),
                actions=tuple(attach(ctx, g) for g in sorted(want - have)))
    """


# ---------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def meshplatform_access_actions(platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext) -> Observation:  # type: ignore[empty-body]
    """Observe who has access to the tenant and say what must change to match ``tenant.bindings``.

    Removing access is always a ``revoke`` action (the core runs it first, for
    every tenant, every run until it is confirmed); granting is an ``access``
    action (run last, only when every earlier phase is confirmed). For a tenant
    marked for deletion the bindings are empty: revoke everything; once its
    deletion is approved, ``cleanup`` actions remove what was created for
    access (e.g. groups). Expired bindings are already dropped by the core.
    Needs the ``access`` capability.

    :param platform: the tenant's platform.
    :param tenant: the tenant with its bindings in force.
    :param ctx: the hook context, scoped to this tenant.
    :returns: an :class:`~meshcore.actions.Observation`.
    :raises PlatformError: access cannot be read.

    ``firstresult``: the owning plugin answers.

    .. versionadded:: 2

    Example::

        @hookimpl
        def meshplatform_access_actions(platform, tenant, ctx):
            have, want = granted(tenant), wanted(tenant)
            return Observation(actions=tuple(
                [revoke(ctx, g) for g in sorted(have - want)]
                + [grant(ctx, g) for g in sorted(want - have)]))
    """


# ---------------------------------------------------------------------------
# Costs
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def meshplatform_collect_costs(  # type: ignore[empty-body]
    platform: PlatformSpec, period: Period, tenants: list[TenantRef], ctx: HookContext
) -> CostCollection:
    """Collect the platform's costs for ``period``, per platform tenant.

    Return costs of every platform tenant the bill shows, managed or not; the
    core attributes them to tenants and reports the rest as unattributed.
    Needs the ``costs`` capability.

    :param platform: the platform.
    :param period: the half-open UTC date range and granularity.
    :param tenants: the recorded tenants of this platform (for filtering if needed).
    :param ctx: the hook context.
    :returns: a :class:`~meshcore.results.CostCollection` whose records lie
        inside the period, with the number and price of API requests made.
    :raises PlatformError: the costs cannot be read.

    ``firstresult``: the owning plugin answers.

    .. versionadded:: 1

    Example::

        @hookimpl
        def meshplatform_collect_costs(platform, period, tenants, ctx):
            return CostCollection(records=[...], requests=1, request_cost=Decimal("0.01"))
    """


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def meshplatform_discover_tenants(platform: PlatformSpec, ctx: HookContext) -> list[DiscoveredTenant]:  # type: ignore[empty-body]
    """List the tenants that exist on the platform (for import).

    The core removes those a tenant already manages; the plugin leaves out
    infrastructure that must never be a tenant (e.g. the management account).
    Needs the ``discovery`` capability.

    :param platform: the platform.
    :param ctx: the hook context.
    :returns: a list of :class:`~meshcore.results.DiscoveredTenant`.
    :raises PlatformError: the platform cannot be listed.

    ``firstresult``: the owning plugin answers.

    .. versionadded:: 1

    Example::

        @hookimpl
        def meshplatform_discover_tenants(platform, ctx):
            return [DiscoveredTenant(platform_tenant_id=p.id, name=p.name) for p in projects()]
    """


# ---------------------------------------------------------------------------
# Command-line extensions
# ---------------------------------------------------------------------------


@hookspec
def meshplatform_cli_commands() -> Any:
    """Give the ``meshcore`` command line this plugin's own commands.

    The core mounts the returned ``typer.Typer`` (or click group) as
    ``meshcore <platform type> ...``, e.g. ``meshcore aws sandbox``. Only the
    plugin named on the command line is loaded for this, so other commands stay
    fast. Import heavy modules inside the commands, not at the top.

    :returns: a ``typer.Typer`` or click group, or ``None`` for no commands.
    :raises: nothing should be raised; an exception is reported as a plugin error.

    Not ``firstresult``: the core asks the one plugin named on the command line.

    .. versionadded:: 1

    Example::

        @hookimpl
        def meshplatform_cli_commands():
            app = typer.Typer(help="ACME plugin commands")

            @app.command()
            def sandbox(): ...

            return app
    """
