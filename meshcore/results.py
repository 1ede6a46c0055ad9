"""What platform plugins return to the core.

Every hook result is validated against these models by the core
(:mod:`meshcore.plugins.dispatch`); a malformed result is reported as an error
that names the plugin, never passed on.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Capability(StrEnum):
    """What a platform type can do; the core only calls hooks for declared capabilities."""

    TENANTS = "tenants"
    LANDING_ZONES = "landing_zones"
    SHARED_RESOURCES = "shared_resources"
    ACCESS = "access"
    COSTS = "costs"
    DISCOVERY = "discovery"
    PREFLIGHT = "preflight"
    CHANGE_FEED = "change_feed"


class PlatformType(Result):
    """Registration of one platform type by a plugin.

    ``config_model`` validates ``platforms[].config``; ``landing_zone_model``
    (optional) validates ``landing_zones[].config`` for landing zones on
    platforms of this type.
    """

    name: str = Field(pattern=r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$")
    description: str = ""
    config_model: type[BaseModel]
    landing_zone_model: type[BaseModel] | None = None
    capabilities: frozenset[Capability] = frozenset({Capability.TENANTS})


class PreflightCheck(Result):
    """One check of a preflight: e.g. 'assume MeshfedServiceRole' or 'organizations:ListRoots'."""

    name: str
    ok: bool
    message: str = ""
    scope: str = ""


class PreflightReport(Result):
    checks: tuple[PreflightCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


class ValidationProblem(Result):
    """A semantic problem in a platform's or landing zone's config found by the plugin.

    ``path`` is a dotted key path relative to the section the plugin was given
    (e.g. ``role_mappings.admin``); ``landing_zone`` names the landing zone when
    the problem is in one, ``tenant`` the tenant's key (``workspace/project@platform``)
    when it is in a tenant (``path`` is then relative to the tenant's entry).
    """

    path: str
    message: str
    landing_zone: str | None = None
    tenant: str | None = None


class ChangeAction(StrEnum):
    """What an action does to its resource (``wait``: awaits an operation started earlier)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    WAIT = "wait"


class CostRecord(Result):
    """One cost line: an amount for one platform tenant, day or month, seller and product."""

    platform_tenant_id: str
    usage_start: dt.date
    usage_end: dt.date
    seller: str = ""
    product: str = ""
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    amount: Decimal
    estimated: bool = Field(
        default=False,
        description="The platform may still change the amount (e.g. AWS Cost Explorer's Estimated); "
        "chargeback for the month stays provisional while any line is estimated.",
    )


class CostCollection(Result):
    """Costs for one period, plus what collecting them cost (requests and their price)."""

    records: tuple[CostRecord, ...] = ()
    requests: int = Field(default=0, ge=0)
    request_cost: Decimal = Decimal("0")
    request_cost_currency: str = "USD"
    complete: bool = True
    message: str = ""


class DiscoveredTenant(Result):
    """An existing tenant on the platform (e.g. an AWS account) that could be imported."""

    platform_tenant_id: str
    name: str = ""
    status: str = ""
    attributes: dict[str, str] = {}


class ChangedTenants(Result):
    """What a platform's change feed says changed since a point in time (``meshplatform_changed_tenants``).

    ``platform_tenant_ids``: the tenants (platform ids) something may have changed on;
    ``everything``: a change that may concern any tenant (the run reads them all);
    ``until``: the feed is complete up to here (the next run asks from here on).
    """

    platform_tenant_ids: frozenset[str] = frozenset()
    everything: bool = False
    until: AwareDatetime
