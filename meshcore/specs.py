"""What the core hands to platform plugins: resolved, frozen views of the desired state.

The config models (:mod:`meshcore.models`) say what users wrote; these say what
a plugin needs to act on one platform or one tenant, with references resolved
(landing zone object instead of its id, group bindings expanded to users,
expired bindings dropped, replicated tags computed).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict

from meshcore.models import PaymentMethod, TenantStatus, User


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class PlatformSpec(Spec):
    """One configured platform; ``config`` is an instance of the plugin's config model."""

    id: str
    type: str
    name: str
    config: Any


class LandingZoneSpec(Spec):
    """One landing zone; ``config`` is an instance of the plugin's landing-zone model (or a dict)."""

    id: str
    platform: str
    name: str
    auto_approve_deletion: bool
    config: Any


class WorkspaceRef(Spec):
    id: str
    name: str
    tags: dict[str, str]


class ProjectRef(Spec):
    id: str
    name: str
    tags: dict[str, str]
    payment_method: PaymentMethod | None = None


class BindingSpec(Spec):
    """A role binding in force, with group bindings expanded to their members.

    ``group`` is set when the binding came from a group; ``users`` then holds its
    members (a user binding has exactly one user).
    """

    role: str
    user: str | None = None
    group: str | None = None
    users: tuple[User, ...]
    expires: dt.date | None = None


class TenantSpec(Spec):
    """Everything a plugin needs to converge one tenant.

    ``platform_tenant_id`` is the id bound to the tenant in the state store
    (e.g. the AWS account id); ``None`` means none is bound yet (``import_id``
    then names the one to adopt, if any). ``deletion_approved`` is set for a
    tenant ``MARKED_FOR_DELETION`` whose deletion may now be carried out.
    """

    workspace: WorkspaceRef
    project: ProjectRef
    platform_id: str
    landing_zone: LandingZoneSpec
    status: TenantStatus = TenantStatus.ACTIVE
    platform_tenant_id: str | None = None
    import_id: str | None = None
    tags: dict[str, str]
    replicated_tags: dict[str, str]
    bindings: tuple[BindingSpec, ...] = ()
    deletion_approved: bool = False

    @property
    def key(self) -> str:
        """Stable identity of the tenant: ``workspace/project@platform``."""
        return tenant_key(self.workspace.id, self.project.id, self.platform_id)


def tenant_key(workspace: str, project: str, platform: str) -> str:
    return f"{workspace}/{project}@{platform}"


class Period(Spec):
    """A half-open UTC date range ``[start, end)`` for cost collection."""

    start: dt.date
    end: dt.date
    granularity: str = "MONTHLY"

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


class TenantRef(Spec):
    """A recorded tenant, as passed to whole-platform hooks (costs, discovery)."""

    key: str
    workspace: str
    project: str
    platform_tenant_id: str | None
    status: TenantStatus
