"""The action model: what a plugin observes and what the core runs.

A plugin never plans and applies separately. For each tenant (and once per
platform for shared resources) it *observes* the cloud and returns an
:class:`Observation`: the :class:`Action` objects that would bring the cloud to
the desired state, and the keys of what it found already in place. ``plan``
prints those actions; ``apply`` runs exactly those actions, one recorded step
each, in the order the core derives from their :class:`Phase`.

The core owns the order and the safety rules (see ``docs/concepts.md``):

* phases run in :data:`ACTIVE_PHASES` order for a live tenant and in
  :data:`DELETION_PHASES` order for a tenant being deleted; revocation always
  comes first;
* a tenant's next phase starts only when every action of the earlier phases
  finished (a failure or an operation still in progress stops the tenant there);
* an action runs only when every key in its ``requires`` is confirmed: observed
  in place, or the key of an action that finished in this run;
* a grant is never run for a tenant marked for deletion, and nothing of the
  deletion phases for a tenant that is not approved for deletion.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from meshcore.results import ChangeAction


class Phase(StrEnum):
    """Where an action belongs in a tenant's order of work (see :data:`PHASE_DOCS`)."""

    REVOKE = "revoke"
    TARGET = "target"
    TENANT = "tenant"
    GUARDRAILS = "guardrails"
    PLACEMENT = "placement"
    CONFIGURE = "configure"
    BASELINE = "baseline"
    ACCESS = "access"
    TEARDOWN = "teardown"
    DEPROVISION = "deprovision"
    CLEANUP = "cleanup"


#: What belongs in each phase (the hook reference is generated from this).
PHASE_DOCS: dict[Phase, str] = {
    Phase.REVOKE: "Take away access that is no longer granted. Always first, for every tenant, every run.",
    Phase.TARGET: "The placement target exists and carries its guardrails (e.g. an OU and its SCPs).",
    Phase.TENANT: "Create, adopt or await the tenant itself (e.g. the AWS account).",
    Phase.GUARDRAILS: "The tenant's own guardrails (e.g. SCPs attached to the account).",
    Phase.PLACEMENT: "Place the tenant in its target (e.g. move the account into the OU).",
    Phase.CONFIGURE: "The tenant's name, tags and other settings.",
    Phase.BASELINE: "What the landing zone deploys into the tenant (e.g. StackSet instances).",
    Phase.ACCESS: "Grant access (groups, memberships, assignments). Last: only on a guarded, placed tenant.",
    Phase.TEARDOWN: "Deletion: remove what the landing zone deployed into the tenant.",
    Phase.DEPROVISION: "Deletion: close, quarantine or release the tenant.",
    Phase.CLEANUP: "Deletion: remove what was created outside the tenant for it (e.g. access groups).",
}


#: Order of work for a live tenant (and for shared, platform-wide resources).
ACTIVE_PHASES: tuple[Phase, ...] = (
    Phase.REVOKE,
    Phase.TARGET,
    Phase.TENANT,
    Phase.GUARDRAILS,
    Phase.PLACEMENT,
    Phase.CONFIGURE,
    Phase.BASELINE,
    Phase.ACCESS,
)
#: Order of work for a tenant whose deletion is approved.
DELETION_PHASES: tuple[Phase, ...] = (Phase.REVOKE, Phase.TEARDOWN, Phase.DEPROVISION, Phase.CLEANUP)
#: What a tenant marked for deletion but not yet approved may do: revoke access, nothing else.
MARKED_PHASES: tuple[Phase, ...] = (Phase.REVOKE,)
#: Phases whose actions give something (access, placement) that guardrails must precede.
GRANT_PHASES = frozenset({Phase.ACCESS})


class ActionStatus(StrEnum):
    DONE = "done"
    IN_PROGRESS = "in_progress"


class ActionResult(BaseModel):
    """What running an action achieved.

    ``DONE`` confirms the action's key for this run. ``IN_PROGRESS`` means an
    asynchronous operation is still running (its id journaled): the tenant stops
    at this phase and the next run observes it again. A tenant-phase action that
    created or adopted the tenant returns its ``platform_tenant_id``; the core
    binds it in the state store at once, before anything else runs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: ActionStatus = ActionStatus.DONE
    changed: bool = True
    message: str = ""
    platform_tenant_id: str | None = Field(default=None, min_length=1, max_length=256)
    attributes: dict[str, str] = {}

    @field_validator("platform_tenant_id")
    @classmethod
    def _no_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be blank")
        return v


class Action(BaseModel):
    """One change to the cloud, as ``plan`` shows it and as ``apply`` runs it.

    ``resource`` names the kind of thing (``account``, ``scp-attachment``,
    ``group-member``, ...), ``target`` which one; ``before``/``after`` are what
    ``plan`` prints. ``key`` (default ``resource:target``) identifies the
    action for ``requires`` and must be unique within one observation. ``run``
    performs the change; it is never called by ``plan`` and is called at most
    once by ``apply``. It returns an :class:`ActionResult` (``None`` means
    ``DONE``) or raises :class:`~meshcore.errors.PlatformError`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    phase: Phase
    change: ChangeAction
    resource: str = Field(min_length=1, max_length=128)
    target: str = Field(default="", max_length=1024)
    before: str | None = None
    after: str | None = None
    detail: str = ""
    key: str = ""
    requires: tuple[str, ...] = ()
    run: Callable[[], ActionResult | None] = Field(exclude=True, repr=False)

    @model_validator(mode="after")
    def _default_key(self) -> Action:
        if not self.key:
            object.__setattr__(
                self, "key", f"{self.resource}:{self.target}" if self.target else self.resource
            )
        return self

    def describe(self) -> str:
        """One line: ``+ account ws-p: ∅ → 1234`` style, as plan and steps show it."""
        sign = {"create": "+", "update": "~", "delete": "-", "wait": "…"}.get(self.change.value, "?")
        text = f"{sign} {self.resource}" + (f" {self.target}" if self.target else "")
        if self.before is not None or self.after is not None:
            text += f": {self.before if self.before is not None else '∅'} → {self.after if self.after is not None else '∅'}"
        if self.detail:
            text += f" ({self.detail})"
        return text

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Observation(BaseModel):
    """What one observing hook found.

    * ``actions``: what must change, in the plugin's order within each phase;
    * ``in_place``: keys of what is already as desired (they satisfy ``requires``);
    * ``problems``: keys that cannot be put in place, with the reason (an action
      requiring one is blocked and shows the reason; e.g. a placement target
      that does not exist);
    * ``platform_tenant_id``: from the tenant hook only, the existing tenant it
      found for a tenant not yet bound (an import, or adoption by natural key);
      the other hooks then observe that tenant;
    * ``attributes``: display data for ``meshcore status``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    actions: tuple[Action, ...] = ()
    in_place: frozenset[str] = frozenset()
    problems: dict[str, str] = {}
    platform_tenant_id: str | None = None
    attributes: dict[str, str] = {}

    @model_validator(mode="after")
    def _unique_keys(self) -> Observation:
        seen: set[str] = set()
        for action in self.actions:
            if action.key in seen:
                raise ValueError(f"two actions share the key {action.key!r}")
            seen.add(action.key)
        return self


def merge(observations: list[Observation]) -> Observation:
    """One observation from several (the tenant, landing-zone and access hooks of one tenant)."""
    actions: list[Action] = []
    in_place: set[str] = set()
    problems: dict[str, str] = {}
    attributes: dict[str, str] = {}
    found: str | None = None
    for obs in observations:
        actions.extend(obs.actions)
        in_place |= obs.in_place
        problems.update(obs.problems)
        attributes.update(obs.attributes)
        found = found or obs.platform_tenant_id
    return Observation(
        actions=tuple(actions),
        in_place=frozenset(in_place),
        problems=problems,
        platform_tenant_id=found,
        attributes=attributes,
    )


def ordered(actions: tuple[Action, ...] | list[Action], phases: tuple[Phase, ...]) -> list[Action]:
    """Actions sorted by phase (stable: the plugin's order within a phase)."""
    rank = {p: i for i, p in enumerate(phases)}
    return sorted(actions, key=lambda a: rank.get(a.phase, len(rank)))


__all__ = [
    "ACTIVE_PHASES",
    "DELETION_PHASES",
    "GRANT_PHASES",
    "MARKED_PHASES",
    "PHASE_DOCS",
    "Action",
    "ActionResult",
    "ActionStatus",
    "Observation",
    "Phase",
    "merge",
    "ordered",
]
