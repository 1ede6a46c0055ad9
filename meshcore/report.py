"""What ``plan`` and ``apply`` report: per platform and per tenant, every action and what became of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshcore.actions import Action
from meshcore.redaction import redact

#: Shown instead of a value that held a secret before it changed.
HIDDEN = "(hidden: the new value holds a secret)"


@dataclass
class ActionView:
    """An action as a report shows it (no callable).

    ``status`` in a plan: ``planned`` or ``blocked``; in an apply: ``changed``, ``ok``
    (nothing to change after all), ``failed``, ``in_progress`` (an asynchronous
    operation runs on), ``blocked`` (not run: a requirement failed or cannot be put
    in place, or an earlier phase failed), ``waiting`` (not run: it waits for an
    operation in progress, or the run was asked to stop) or ``refused`` (the core never runs it, e.g. a grant for a
    tenant marked for deletion).
    """

    phase: str
    change: str
    resource: str
    target: str
    key: str
    before: str | None = None
    after: str | None = None
    detail: str = ""
    requires: tuple[str, ...] = ()
    status: str = "planned"
    message: str = ""

    @classmethod
    def of(cls, action: Action) -> ActionView:
        """The action's view, secrets redacted.

        When the new value holds a secret, the old value is hidden too: after a
        secret is rotated, the old one is no longer known to be a secret, but it
        still is one.
        """
        after = redact(action.after) if action.after is not None else None
        before = action.before
        if before is not None and after != action.after:
            before = HIDDEN
        return cls(
            phase=action.phase.value,
            change=action.change.value,
            resource=redact(action.resource),
            target=redact(action.target),
            key=redact(action.key),
            before=redact(before) if before is not None else None,
            after=after,
            detail=redact(action.detail),
            requires=tuple(redact(r) for r in action.requires),
        )

    def describe(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-", "wait": "…"}.get(self.change, "?")
        text = f"{sign} {self.resource}" + (f" {self.target}" if self.target else "")
        if self.before is not None or self.after is not None:
            text += f": {self.before if self.before is not None else '∅'} → {self.after if self.after is not None else '∅'}"
        if self.detail:
            text += f" ({self.detail})"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "change": self.change,
            "resource": self.resource,
            "target": self.target,
            "key": self.key,
            "before": self.before,
            "after": self.after,
            "detail": self.detail,
            "requires": list(self.requires),
            "status": self.status,
            "message": self.message,
        }


@dataclass
class Item:
    """One tenant (``scope="tenant"``) or one platform's shared resources (``scope="platform"``).

    ``lifecycle`` is the tenant's lifecycle step (provision, update, mark, ...);
    ``status`` its outcome: plan: ``converged``, ``changes`` or ``error``; apply:
    ``ok``, ``changed``, ``failed``, ``in_progress``, ``waiting``, ``skipped`` or ``not_run``
    (not started: the run was asked to stop, see ``meshcore serve``); with shared runners also
    ``elsewhere`` (another runner has it) or ``fenced`` (its lease was lost mid-way).
    """

    key: str
    scope: str = "tenant"
    lifecycle: str = ""
    status: str = ""
    message: str = ""
    note: str = ""
    platform_tenant_id: str | None = None
    actions: list[ActionView] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    @property
    def error(self) -> str:
        return self.message if self.status in ("error", "failed") else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "scope": self.scope,
            "lifecycle": self.lifecycle,
            "status": self.status,
            "message": self.message,
            "note": self.note,
            "platform_tenant_id": self.platform_tenant_id,
            "events": list(self.events),
            "actions": [a.as_dict() for a in self.actions],
        }


@dataclass
class Report:
    """The outcome of one ``plan`` or ``apply`` run."""

    run_id: int
    command: str
    items: list[Item] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)

    @property
    def tenants(self) -> list[Item]:
        return [i for i in self.items if i.scope == "tenant"]

    @property
    def platforms(self) -> list[Item]:
        return [i for i in self.items if i.scope == "platform"]

    @property
    def failed(self) -> list[Item]:
        return [i for i in self.items if i.status in ("failed", "error")]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.tenants:
            out[item.status] = out.get(item.status, 0) + 1
        return out

    def pending_changes(self) -> int:
        return sum(1 for i in self.items for a in i.actions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "command": self.command,
            "summary": dict(self.summary),
            "counts": self.counts(),
            "items": [i.as_dict() for i in self.items],
        }
