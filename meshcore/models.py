"""Declarative domain model: what platform teams write in their config files.

These are the *inputs* of meshcore. They are frozen and reject unknown keys, so
a typo in a config file is an error, never a silently ignored setting.
Platform-specific sections (``platforms[].config``, ``landing_zones[].config``)
stay plain mappings here and are validated by the owning plugin's own model.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from meshcore.identifiers import Identifier, ProjectId, UserId, WorkspaceId

DEFAULT_PROJECT_ROLES: tuple[str, ...] = ("admin", "user", "reader")


class Frozen(BaseModel):
    """Base of every input model: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class TenantStatus(StrEnum):
    """Lifecycle of a tenant (a project's presence on one platform)."""

    ACTIVE = "ACTIVE"
    MARKED_FOR_DELETION = "MARKED_FOR_DELETION"
    DELETED = "DELETED"


class WorkspaceRole(StrEnum):
    OWNER = "owner"
    MANAGER = "manager"
    MEMBER = "member"


class TagDefinition(Frozen):
    """A tag users may set on workspaces or projects.

    Only tags whose definition has a ``replication_key`` are replicated to the
    cloud, under that key.
    """

    key: Identifier
    description: str = ""
    replication_key: str | None = Field(default=None, min_length=1, max_length=128)
    required: bool = False
    allowed_values: tuple[str, ...] | None = None
    applies_to: tuple[Literal["workspace", "project"], ...] = ("workspace", "project")


class User(Frozen):
    """A person who can be bound to project roles."""

    id: UserId
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    name: str = ""
    external_id: str | None = None


class Group(Frozen):
    """A named set of users; a binding to a group binds each member."""

    id: Identifier
    description: str = ""
    members: tuple[UserId, ...] = ()


class RoleBinding(Frozen):
    """Grants a project role to exactly one user or one group, optionally until a date."""

    user: UserId | None = None
    group: Identifier | None = None
    role: Identifier
    expires: dt.date | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> RoleBinding:
        if (self.user is None) == (self.group is None):
            raise ValueError("a binding names exactly one of 'user' or 'group'")
        return self

    @property
    def subject(self) -> str:
        return f"user:{self.user}" if self.user else f"group:{self.group}"


class PaymentMethod(Frozen):
    """How a project pays: captured on every chargeback statement."""

    id: Identifier
    name: str = ""
    budget: Decimal | None = Field(default=None, ge=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    expires: dt.date | None = None


class TenantDecl(Frozen):
    """A project's presence on one platform, placed in one landing zone."""

    platform: Identifier
    landing_zone: Identifier
    import_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Adopt this existing platform tenant (e.g. an AWS account id) instead of creating one.",
    )


class Project(Frozen):
    """An environment of a workspace; has tenants on platforms and role bindings."""

    id: ProjectId
    name: str = ""
    tags: dict[Identifier, str] = {}
    payment_method: PaymentMethod | None = None
    bindings: tuple[RoleBinding, ...] = ()
    tenants: tuple[TenantDecl, ...] = ()


class WorkspaceMember(Frozen):
    user: UserId
    role: WorkspaceRole = WorkspaceRole.MEMBER


class Workspace(Frozen):
    """A team: owns projects."""

    id: WorkspaceId
    name: str = ""
    tags: dict[Identifier, str] = {}
    members: tuple[WorkspaceMember, ...] = ()
    projects: tuple[Project, ...] = ()


class PlatformDecl(Frozen):
    """One integrated cloud instance (e.g. one AWS organization)."""

    id: Identifier
    type: Identifier = Field(description="Platform type, supplied by an installed plugin.")
    name: str = ""
    config: dict[str, Any] = Field(
        default_factory=dict, description="Validated by the platform plugin's config model."
    )


class DeletionPolicy(Frozen):
    auto_approve: bool = Field(
        default=False,
        description="Delete tenants removed from config without waiting for 'meshcore approve'.",
    )


class LandingZoneDecl(Frozen):
    """Per-platform template for tenants: placement, guardrails, baseline, access."""

    id: Identifier
    platform: Identifier
    name: str = ""
    description: str = ""
    deletion: DeletionPolicy = DeletionPolicy()
    config: dict[str, Any] = Field(
        default_factory=dict, description="Validated by the platform plugin's landing-zone model."
    )


class CostSettings(Frozen):
    """How usage reports and chargeback statements are finalized."""

    finalize_after_days: int = Field(
        default=6, ge=0, le=60, description="A month's reports become final this many days after it ends."
    )


class DriftCheck(Frozen):
    """How ``apply`` looks for drift in the tenants it does not change (see docs/concepts.md)."""

    mode: Literal["full", "incremental"] = Field(
        default="full",
        description="full: every tenant is read in every run. incremental: a tenant whose desired state "
        "did not change, that the last run found converged and that the platform's change feed does not "
        "name is not read again (platforms without a change feed are always read in full).",
    )
    full_every_hours: float = Field(
        default=24,
        gt=0,
        le=24 * 30,
        description="incremental: a full drift check at least this often (what a change feed cannot see, "
        "e.g. changes made inside a tenant, is found by it).",
    )


class Settings(Frozen):
    """Run-wide settings."""

    concurrency: int = Field(default=8, ge=1, le=64, description="Tenants reconciled in parallel.")
    project_roles: tuple[Identifier, ...] = DEFAULT_PROJECT_ROLES
    max_deletions_per_run: int = Field(
        default=5,
        ge=0,
        le=10000,
        description="An apply that would mark more tenants for deletion than this is refused before any "
        "change, unless 'meshcore apply --allow-deletions N' allows at least that many.",
    )
    costs: CostSettings = CostSettings()
    drift_check: DriftCheck = DriftCheck()
    runners: Literal["single", "shared"] = Field(
        default="single",
        description="single: one runner applies the state at a time (the apply lease). shared: several "
        "runners on one PostgreSQL state split the tenants, each tenant under a lease of its own.",
    )
    lease_seconds: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="shared runners: how long a tenant's, the platform's or an API-budget slot's lease lasts "
        "unless renewed (renewed every third of it); a dead runner's tenants are taken over after it.",
    )

    @model_validator(mode="after")
    def _incremental_needs_one_runner(self) -> Settings:
        if self.drift_check.mode == "incremental" and self.runners == "shared":
            raise ValueError(
                "drift_check.mode: incremental needs runners: single (shared runners always check in full)"
            )
        return self


class ConfigDocument(Frozen):
    """The whole desired state: the top level of a meshcore config file."""

    version: Literal[1] = 1
    settings: Settings = Settings()
    platforms: tuple[PlatformDecl, ...] = ()
    landing_zones: tuple[LandingZoneDecl, ...] = ()
    tag_definitions: tuple[TagDefinition, ...] = ()
    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()
    workspaces: tuple[Workspace, ...] = ()
