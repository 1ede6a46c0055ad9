"""Run one observation's actions in the core's order, under its safety rules, recording each as a step.

The rules (``docs/concepts.md`` explains why):

1. Phases run in the order given (revocation first). Within a phase, actions
   run in the order the plugin returned them.
2. An action runs only if every key it ``requires`` is *confirmed*: observed in
   place, or the key of an action that finished in this run (the platform's
   shared actions included).
3. A phase starts only when every action of the earlier phases finished. A
   failure or an operation still in progress stops the tenant there; what
   follows is recorded as ``blocked`` (after a failure: the tenant failed) or
   ``waiting`` (after an operation still in progress: the next run goes on).
4. An action of a phase the tenant's lifecycle does not allow (a grant for a
   tenant marked for deletion, a deletion for a live tenant) is never run: it
   is recorded as ``refused`` and fails the tenant.
5. Once ``stop`` is set (a service shutting down), the action running finishes
   and no further action starts: the rest is recorded as ``waiting`` (the next
   run goes on from there).

``plan`` uses :func:`predict` to show which actions would be blocked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from meshcore import logs
from meshcore.actions import Action, ActionResult, ActionStatus, Phase
from meshcore.errors import MeshcoreError, PluginError
from meshcore.redaction import redact
from meshcore.report import ActionView
from meshcore.state.tables import utcnow

log = logging.getLogger(__name__)

#: Phases whose actions may return the tenant's platform id.
ID_PHASES = frozenset({Phase.TENANT, Phase.DEPROVISION})
#: The message of an action not started because the run was asked to stop.
STOPPING = "not started: meshcore is stopping; the next run goes on"


class Confirmed:
    """Keys confirmed in this run, keys known not to be in place (with the reason), and keys still in progress."""

    def __init__(self, parent: Confirmed | None = None):
        self._parent = parent
        self.keys: set[str] = set()
        self.problems: dict[str, str] = {}
        self.pending: dict[str, str] = {}

    def add(self, key: str) -> None:
        self.keys.add(key)
        self.problems.pop(key, None)
        self.pending.pop(key, None)

    def ok(self, key: str) -> bool:
        return key in self.keys or (self._parent is not None and self._parent.ok(key))

    def waiting(self, key: str) -> bool:
        """Whether ``key`` is not confirmed only because an operation is still in progress."""
        if key in self.pending:
            return True
        if key in self.problems or key in self.keys:
            return False
        return self._parent is not None and self._parent.waiting(key)

    def why_not(self, key: str) -> str:
        if key in self.problems:
            return self.problems[key]
        if key in self.pending:
            return self.pending[key]
        if self._parent is not None and not self._parent.ok(key):
            parent_reason = self._parent.why_not(key)
            if parent_reason != "not in place":
                return parent_reason
        return "not in place"


def step_name(view: ActionView) -> str:
    name = f"{view.phase} {view.resource}" + (f" {view.target}" if view.target else "")
    return name[:128]


@dataclass
class Outcome:
    """What running one tenant's (or one platform's) actions came to."""

    views: list[ActionView] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)

    def _any(self, status: str) -> bool:
        return any(v.status == status for v in self.views)

    @property
    def failed(self) -> bool:
        return self._any("failed") or self._any("refused") or self._any("blocked")

    @property
    def in_progress(self) -> bool:
        return self._any("in_progress") or self._any("waiting")

    @property
    def blocked(self) -> bool:
        return self._any("blocked")

    @property
    def changed(self) -> bool:
        return self._any("changed")

    @property
    def complete(self) -> bool:
        """Every action finished (none failed, blocked, refused or still running)."""
        return all(v.status in ("changed", "ok") for v in self.views)

    def phase_complete(self, phase: Phase) -> bool:
        return all(v.status in ("changed", "ok") for v in self.views if v.phase == phase.value)

    def first_problem(self) -> str:
        for status in ("refused", "failed", "blocked", "in_progress", "waiting"):
            for v in self.views:
                if v.status == status:
                    return f"{step_name(v)}: {v.message}"
        return ""


def _result(plugin: str, action: Action, answer: Any) -> ActionResult:
    if answer is None:
        return ActionResult()
    if isinstance(answer, ActionResult):
        result = answer
    else:
        try:
            result = ActionResult.model_validate(answer)
        except ValidationError as exc:
            raise PluginError(plugin, f"action {action.key!r} returned a malformed result: {exc}") from None
    if result.platform_tenant_id is not None and action.phase not in ID_PHASES:
        raise PluginError(
            plugin, f"action {action.key!r} of phase {action.phase.value} returned a platform tenant id"
        )
    return result


def execute(
    actions: Iterable[Action],
    *,
    phases: tuple[Phase, ...],
    confirmed: Confirmed,
    plugin: str,
    record: Callable[[ActionView, Any, float], None],
    on_result: Callable[[Action, ActionResult], None] | None = None,
    stop: threading.Event | None = None,
) -> Outcome:
    """Run ``actions`` by the rules in this module's docstring; ``record`` stores each step as it ends.

    ``on_result`` sees every finished action's result before the next action
    starts (the reconciler binds a new platform tenant id there). An exception
    it raises fails that action. ``BaseException`` that is not an ``Exception``
    (a simulated crash, ``KeyboardInterrupt``) propagates: nothing else runs.
    """
    outcome = Outcome()
    actions = list(actions)
    allowed = set(phases)
    for action in actions:
        if action.phase not in allowed:
            view = ActionView.of(action)
            view.status = "refused"
            view.message = (
                f"the core never runs a {action.phase.value} action for this tenant's lifecycle "
                f"(allowed: {', '.join(p.value for p in phases)}); plugin {plugin!r} returned it"
            )
            outcome.views.append(view)
            record(view, utcnow(), time.perf_counter())
    gate, gate_status = "", ""
    for phase in phases:
        for action in (a for a in actions if a.phase == phase):
            view = ActionView.of(action)
            outcome.views.append(view)
            started, t0 = utcnow(), time.perf_counter()
            missing = [k for k in action.requires if not confirmed.ok(k)]
            if not gate and stop is not None and stop.is_set():
                gate, gate_status = STOPPING, "waiting"
            if gate:
                view.status, view.message = gate_status, gate
            elif missing:
                view.status = "waiting" if all(confirmed.waiting(k) for k in missing) else "blocked"
                view.message = "requires " + "; ".join(f"{k} ({confirmed.why_not(k)})" for k in missing)
                (confirmed.pending if view.status == "waiting" else confirmed.problems)[action.key] = (
                    view.message
                )
            else:
                result = _run_one(action, view, confirmed, plugin, on_result)
                if result is not None and view.status in ("changed", "ok"):
                    outcome.attributes.update(result.attributes)
            record(view, started, t0)
        if not gate and not outcome.phase_complete(phase):
            stuck = [v for v in outcome.views if v.phase == phase.value and v.status not in ("changed", "ok")]
            gate_status = (
                "waiting" if all(v.status in ("in_progress", "waiting") for v in stuck) else "blocked"
            )
            gate = f"waits for the {phase.value} phase, which did not complete"
    return outcome


def _run_one(
    action: Action,
    view: ActionView,
    confirmed: Confirmed,
    plugin: str,
    on_result: Callable[[Action, ActionResult], None] | None,
) -> ActionResult | None:
    """Run one action; sets ``view``'s status and message; returns the result if there was one."""
    with logs.scope(step=step_name(view)):
        result = _run_logged(action, view, confirmed, plugin, on_result)
    return result


def _run_logged(
    action: Action,
    view: ActionView,
    confirmed: Confirmed,
    plugin: str,
    on_result: Callable[[Action, ActionResult], None] | None,
) -> ActionResult | None:
    try:
        result = _result(plugin, action, action.run())
        if on_result is not None:
            on_result(action, result)
    except MeshcoreError as exc:
        view.status, view.message = "failed", redact(str(exc))
        confirmed.problems[action.key] = f"failed: {view.message}"
        log.warning("%s failed: %s", view.describe(), view.message)
        return None
    except Exception as exc:  # a plugin bug fails this action, never the run
        view.status = "failed"
        view.message = redact(f"plugin {plugin!r} raised {type(exc).__name__}: {exc}")
        confirmed.problems[action.key] = f"failed: {view.message}"
        log.error("%s: %s", view.describe(), view.message, exc_info=True)
        return None
    if result.status == ActionStatus.IN_PROGRESS:
        view.status = "in_progress"
        view.message = redact(result.message or "in progress")
        confirmed.pending[action.key] = f"in progress: {view.message}"
        return result
    view.status = "changed" if result.changed else "ok"
    view.message = redact(result.message or view.describe())
    confirmed.add(action.key)
    log.info("%s: %s", view.status, view.message)
    return result


def predict(
    actions: Iterable[Action], *, phases: tuple[Phase, ...], confirmed: Confirmed, gated: bool = True
) -> list[ActionView]:
    """What ``plan`` shows: each action, ``blocked`` with the reason where apply could not run it.

    Assumes every runnable action succeeds (plan cannot know otherwise), so an
    action is predicted blocked when a requirement is known not to be in
    place, or when it follows one that is.
    """
    views: list[ActionView] = []
    actions = list(actions)
    allowed = set(phases)
    keys = Confirmed(confirmed)
    for action in actions:
        if action.phase not in allowed:
            view = ActionView.of(action)
            view.status = "refused"
            view.message = f"a {action.phase.value} action is never run for this tenant's lifecycle"
            views.append(view)
    gate = ""
    for phase in phases:
        for action in (a for a in actions if a.phase == phase):
            view = ActionView.of(action)
            views.append(view)
            missing = [k for k in action.requires if not keys.ok(k)]
            if gate:
                view.status, view.message = "blocked", gate
            elif missing:
                view.status = "blocked"
                view.message = "requires " + "; ".join(f"{k} ({keys.why_not(k)})" for k in missing)
            else:
                keys.add(action.key)
        if gated and not gate and any(v.status == "blocked" and v.phase == phase.value for v in views):
            gate = f"waits for the {phase.value} phase, which cannot complete"
    return views
