"""Hook specifications: the contract between the meshcore core and platform plugins.

A platform plugin is a module (or object) exposed through the entry-point group
``meshcore.platforms``; the entry-point name is the platform type users write in
config. It implements any of the hooks below with the :data:`meshcore.hookimpl`
marker. Hooks are called with keyword arguments only; an implementation may
accept a subset of the arguments (pluggy passes only those it names) but must
not give them defaults (pluggy never fills an argument that has one).

Dispatch: every hook except :func:`meshplatform_platform_types` is a
``firstresult`` hook whose first argument is ``platform``. The core calls it
only on the plugin that registered ``platform.type`` (a per-type registry), so a
plugin can never answer for another plugin's platforms. The contract still asks
a plugin to return ``None`` for a type it does not own, so that one plugin can
serve several types and the conformance suite can check it.

Every ``ctx`` argument is a :class:`meshcore.context.HookContext`: the journal,
step recorder, per-run cache, concurrency limiters and ownership lookups the
core gives plugins.

Errors: raise :class:`meshcore.errors.PlatformError` for a final failure (the
step fails with its message), :class:`meshcore.errors.RetryableError` for a
transient one (the core retries the hook with backoff). Any other exception is
reported as a plugin bug, naming the plugin; other tenants carry on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from meshcore.context import HookContext
    from meshcore.results import (
        Change,
        CostCollection,
        DeprovisionResult,
        DiscoveredTenant,
        PlatformType,
        PreflightReport,
        ProvisionResult,
        StepOutcome,
        ValidationProblem,
    )
    from meshcore.specs import LandingZoneSpec, Period, PlatformSpec, TenantRef, TenantSpec

PROJECT_NAME = "meshplatform"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------
# Platform types and config
# ---------------------------------------------------------------------------


@hookspec
def meshplatform_platform_types() -> list[PlatformType]:
    """Register the platform types this plugin provides.

    :returns: a list of :class:`~meshcore.results.PlatformType`; one of them
        must be named like the plugin's entry point.
    :raises: nothing should be raised; an exception makes the plugin "broken"
        in ``meshcore plugins`` and fatal only for configs that use it.

    Not ``firstresult``: the core asks each plugin separately.

    Example::

        @hookimpl
        def meshplatform_platform_types():
            return [PlatformType(name="aws", config_model=AwsConfig,
                                 landing_zone_model=AwsLandingZone,
                                 capabilities=frozenset(Capability))]
    """


@hookspec(firstresult=True)
def meshplatform_validate(
    platform: PlatformSpec, landing_zones: list[LandingZoneSpec]
) -> list[ValidationProblem] | None:
    """Check a platform's config and its landing zones beyond what the models express.

    Called by ``meshcore validate`` and before every ``plan``/``apply``; must
    make no cloud calls (use ``meshplatform_preflight`` for those).

    :param platform: the platform, ``config`` already validated by the plugin's model.
    :param landing_zones: the landing zones on this platform, configs validated.
    :returns: a list of :class:`~meshcore.results.ValidationProblem` (empty if
        all is well); ``None`` for a platform type the plugin does not own.
    :raises: nothing: report problems instead.

    ``firstresult``: the owning plugin answers.

    Example::

        @hookimpl
        def meshplatform_validate(platform, landing_zones):
            if platform.type != "aws":
                return None
            return [ValidationProblem(path="role_mappings.admin", message="...", landing_zone=lz.id)
                    for lz in landing_zones if privileged(lz)]
    """


@hookspec(firstresult=True)
def meshplatform_preflight(platform: PlatformSpec, ctx: HookContext) -> PreflightReport | None:
    """Check that credentials work and the needed permissions are granted.

    :param platform: the platform to check.
    :param ctx: the hook context (read-only use).
    :returns: a :class:`~meshcore.results.PreflightReport` with one check per
        role or permission; ``None`` for a foreign platform type.
    :raises: nothing for a failed check (report it as ``ok=False``).

    ``firstresult``: the owning plugin answers.

    Example::

        @hookimpl
        def meshplatform_preflight(platform, ctx):
            if platform.type != "aws":
                return None
            return PreflightReport(checks=[PreflightCheck(name="assume role", ok=True)])
    """


# ---------------------------------------------------------------------------
# Tenant lifecycle
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def meshplatform_plan_tenant(
    platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
) -> list[Change] | None:
    """Say what applying ``tenant`` would change, including drift. No writes.

    :param platform: the tenant's platform.
    :param tenant: the desired tenant, with its recorded ``platform_tenant_id``
        (``None`` if never provisioned) and ``status``.
    :param ctx: the hook context; use ``ctx.cache`` for bulk reads shared by all
        tenants of the platform.
    :returns: a list of :class:`~meshcore.results.Change` (empty: converged);
        ``None`` for a foreign platform type.
    :raises PlatformError: the state cannot be read.

    ``firstresult``: the owning plugin answers.

    Example::

        @hookimpl
        def meshplatform_plan_tenant(platform, tenant, ctx):
            if platform.type != "aws":
                return None
            if tenant.platform_tenant_id is None:
                return [Change(action="create", resource="account")]
            return diff(desired(tenant), observed(ctx, tenant.platform_tenant_id))
    """


@hookspec(firstresult=True)
def meshplatform_provision_tenant(
    platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
) -> ProvisionResult | None:
    """Create the tenant on the platform, or adopt ``tenant.import_id``, and converge it.

    Must be crash-safe: journal the intent with ``ctx.journal`` before any
    non-idempotent call and the operation id right after; when called again
    after a crash, resume from the open journal entry instead of creating a
    duplicate.

    :param platform: the tenant's platform.
    :param tenant: the desired tenant; ``platform_tenant_id`` is ``None``.
    :param ctx: the hook context.
    :returns: a :class:`~meshcore.results.ProvisionResult` with the new
        ``platform_tenant_id`` (status ``ready``), or status ``in_progress`` if an
        asynchronous operation is still running; ``None`` for a foreign type.
    :raises PlatformError: creation failed for a reason the user must fix.
    :raises ConflictError: the tenant exists but belongs to someone else.
    :raises RetryableError: a transient failure; the core retries.

    ``firstresult``: the owning plugin answers.

    Example::

        @hookimpl
        def meshplatform_provision_tenant(platform, tenant, ctx):
            if platform.type != "aws":
                return None
            entry = ctx.journal.find("create-account", email) or ctx.journal.begin(
                "create-account", email, {"name": name})
            ...
            return ProvisionResult(platform_tenant_id=account_id, changed=True)
    """


@hookspec(firstresult=True)
def meshplatform_update_tenant(
    platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
) -> ProvisionResult | None:
    """Converge an existing tenant (name, tags, placement) and repair drift.

    A call with nothing to change must make no write calls to the platform.

    :param platform: the tenant's platform.
    :param tenant: the desired tenant; ``platform_tenant_id`` is set.
    :param ctx: the hook context.
    :returns: a :class:`~meshcore.results.ProvisionResult` (``changed`` says
        whether anything was written); ``None`` for a foreign type.
    :raises PlatformError: the tenant cannot be converged.
    :raises RetryableError: a transient failure; the core retries.

    ``firstresult``: the owning plugin answers.

    Example::

        @hookimpl
        def meshplatform_update_tenant(platform, tenant, ctx):
            if platform.type != "aws":
                return None
            changed = ensure_tags(tenant) | ensure_ou(tenant)
            return ProvisionResult(platform_tenant_id=tenant.platform_tenant_id, changed=changed)
    """


@hookspec(firstresult=True)
def meshplatform_deprovision_tenant(
    platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
) -> DeprovisionResult | None:
    """Remove an approved-for-deletion tenant according to its landing zone's policy.

    Called on every run until it returns ``deleted``. Never deletes resources
    inside the tenant; closing or quarantining it is the plugin's choice by policy.

    :param platform: the tenant's platform.
    :param tenant: the tenant, ``status`` ``MARKED_FOR_DELETION``.
    :param ctx: the hook context.
    :returns: a :class:`~meshcore.results.DeprovisionResult`: ``deleted``,
        ``in_progress`` (poll again next run) or ``blocked`` (e.g. a quota; retried
        next run); ``None`` for a foreign type.
    :raises PlatformError: deletion is impossible as configured.

    ``firstresult``: the owning plugin answers.

    Example::

        @hookimpl
        def meshplatform_deprovision_tenant(platform, tenant, ctx):
            if platform.type != "aws":
                return None
            return DeprovisionResult(status="in_progress", message="PENDING_CLOSURE")
    """


# ---------------------------------------------------------------------------
# Landing zones
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def meshplatform_apply_landing_zone(
    platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
) -> StepOutcome | None:
    """Apply ``tenant.landing_zone`` to a provisioned tenant (guardrails, baselines).

    Called after provision/update for platforms with the ``landing_zones``
    capability. Must be idempotent; record sub-steps with ``ctx.step``.

    :param platform: the tenant's platform.
    :param tenant: the tenant, ``platform_tenant_id`` set.
    :param ctx: the hook context.
    :returns: a :class:`~meshcore.results.StepOutcome`; ``None`` for a foreign type.
    :raises PlatformError: a guardrail or baseline failed to apply.
    :raises RetryableError: a transient failure; the core retries.

    ``firstresult``: the owning plugin answers.

    Example::

        @hookimpl
        def meshplatform_apply_landing_zone(platform, tenant, ctx):
            if platform.type != "aws":
                return None
            with ctx.step("scp"):
                changed = attach_policies(tenant)
            return StepOutcome(changed=changed)
    """


# ---------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def meshplatform_replicate_access(
    platform: PlatformSpec, tenant: TenantSpec, ctx: HookContext
) -> StepOutcome | None:
    """Make the platform's permissions match ``tenant.bindings``.

    Expired bindings are already removed by the core. For a tenant
    ``MARKED_FOR_DELETION`` the bindings are empty: revoke everything. For a
    ``DELETED`` tenant, also remove what the plugin created for access (groups).

    :param platform: the tenant's platform.
    :param tenant: the tenant with its bindings in force.
    :param ctx: the hook context.
    :returns: a :class:`~meshcore.results.StepOutcome`; ``None`` for a foreign type.
    :raises PlatformError: access could not be replicated (record per-binding
        problems with ``ctx.step`` and carry on where possible).
    :raises RetryableError: a transient failure; the core retries.

    ``firstresult``: the owning plugin answers.

    Example::

        @hookimpl
        def meshplatform_replicate_access(platform, tenant, ctx):
            if platform.type != "aws":
                return None
            for binding in tenant.bindings:
                ensure_assignment(binding)
            return StepOutcome(changed=True)
    """


# ---------------------------------------------------------------------------
# Costs
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def meshplatform_collect_costs(
    platform: PlatformSpec, period: Period, tenants: list[TenantRef], ctx: HookContext
) -> CostCollection | None:
    """Collect the platform's costs for ``period``, per platform tenant.

    Return costs of every platform tenant the bill shows, managed or not; the
    core attributes them to tenants and reports the rest as unattributed.

    :param platform: the platform.
    :param period: the half-open UTC date range and granularity.
    :param tenants: the recorded tenants of this platform (for filtering if needed).
    :param ctx: the hook context.
    :returns: a :class:`~meshcore.results.CostCollection` whose records lie
        inside the period, with the number and price of API requests made;
        ``None`` for a foreign type.
    :raises RetryableError: a transient failure; the core retries.

    ``firstresult``: the owning plugin answers.

    Example::

        @hookimpl
        def meshplatform_collect_costs(platform, period, tenants, ctx):
            if platform.type != "aws":
                return None
            return CostCollection(records=[...], requests=1, request_cost=Decimal("0.01"))
    """


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def meshplatform_discover_tenants(platform: PlatformSpec, ctx: HookContext) -> list[DiscoveredTenant] | None:
    """List the tenants that exist on the platform (for import).

    The core removes those a tenant already manages; the plugin should leave
    out infrastructure that must never be a tenant (e.g. the management account).

    :param platform: the platform.
    :param ctx: the hook context.
    :returns: a list of :class:`~meshcore.results.DiscoveredTenant`; ``None``
        for a foreign type.
    :raises PlatformError: the platform cannot be listed.

    ``firstresult``: the owning plugin answers.

    Example::

        @hookimpl
        def meshplatform_discover_tenants(platform, ctx):
            if platform.type != "aws":
                return None
            return [DiscoveredTenant(platform_tenant_id=a["Id"], name=a["Name"]) for a in accounts()]
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

    Example::

        @hookimpl
        def meshplatform_cli_commands():
            app = typer.Typer(help="AWS plugin commands")

            @app.command()
            def sandbox(): ...

            return app
    """
