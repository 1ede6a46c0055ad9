"""Generate ``docs/hooks.md`` from the hook specs, the phases and the models plugins exchange with the core.

    python -m meshcore.docgen            # rewrites docs/hooks.md with the reference pages
    python -m meshcore.docgen --check    # exit 1 if it is out of date

The page cannot drift from the contract: every hook's section is its spec's
signature and docstring, the phase table is :data:`meshcore.actions.PHASE_DOCS`,
and the data reference is rendered from the pydantic models.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from typing import Any

from pydantic import BaseModel

from meshcore import hookspecs
from meshcore.actions import ACTIVE_PHASES, DELETION_PHASES, PHASE_DOCS, Action, ActionResult, Observation
from meshcore.results import (
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

GROUPS: list[tuple[str, list[str]]] = [
    (
        "Platform types and config",
        [
            "meshplatform_platform_types",
            "meshplatform_validate",
            "meshplatform_preflight",
            "meshplatform_identity",
        ],
    ),
    ("Shared resources", ["meshplatform_platform_actions"]),
    ("Tenant lifecycle", ["meshplatform_tenant_actions", "meshplatform_landing_zone_actions"]),
    ("Access", ["meshplatform_access_actions"]),
    ("Costs", ["meshplatform_collect_costs"]),
    ("Discovery", ["meshplatform_discover_tenants"]),
    ("Change feed", ["meshplatform_changed_tenants"]),
    ("Command-line extensions", ["meshplatform_cli_commands"]),
]
RECEIVED: list[type[BaseModel]] = [
    PlatformSpec,
    LandingZoneSpec,
    TenantSpec,
    WorkspaceRef,
    ProjectRef,
    BindingSpec,
    Period,
    TenantRef,
]
RETURNED: list[type[BaseModel]] = [
    Observation,
    Action,
    ActionResult,
    PlatformType,
    ValidationProblem,
    PreflightReport,
    PreflightCheck,
    CostCollection,
    CostRecord,
    DiscoveredTenant,
    ChangedTenants,
]

PREAMBLE = """\
# Hook reference

Generated from `meshcore/hookspecs.py`, `meshcore/actions.py` and the models by
`python -m meshcore.docgen`; do not edit by hand. `tests/test_config_docs.py` fails when it
is out of date.

This is **hook contract version {version}**. How the core runs what these hooks return
(phases, gating, `requires`, deletion) is explained in [Concepts](concepts.md#plan-and-apply-observations-and-actions);
how to write a plugin, with a tested example, in [Writing a plugin](writing-plugins.md).

Conventions that hold for every hook:

- Implement hooks with the `meshcore.hookimpl` marker, in a module or on an object your entry
  point (group `meshcore.platforms`) loads. The entry-point name is the platform type.
- The core calls hooks with keyword arguments. Take only the arguments you need, and never give
  them defaults (pluggy does not pass an argument that has one).
- **Dispatch.** The core keeps a per-type registry and calls a hook only on the plugin that
  registered `platform.type`, so no plugin ever sees another plugin's platforms and none needs
  an `if platform.type != ...` check. We chose this over letting every plugin answer in turn
  because it makes hijacking impossible (a buggy plugin cannot answer for another type), lets
  errors name the right plugin, and costs one call instead of one per installed plugin.
- **Capabilities** a plugin declares decide which hooks it must implement (and may: a hook
  without its capability, or a capability without its hook, makes the plugin *broken*):

{capabilities}

- **Results are validated** against the models below; you may return model instances or plain
  dicts, and an observing hook may return a plain list of actions. A malformed result is
  reported as `plugin '<name>': ...`, and only the tenant at hand fails.
- **Errors.** Raise `meshcore.errors.PlatformError` (or `ConflictError`) for a failure the user
  must act on. Any other exception is reported as a bug in your plugin. Transient cloud errors
  are yours to retry (e.g. with your SDK's retry modes); the next run observes again anyway.
- **`ctx`** is a `meshcore.context.HookContext`: `ctx.journal` (intents), `ctx.resources`
  (what you created), `ctx.quota(name)`, `ctx.cache`, `ctx.limiter(name, n)`,
  `ctx.owner_of(id)`, `ctx.platform_tenant_id`, `ctx.sleep(s)`.

## Phases

Every action names its phase. The core runs a live tenant's phases in the first order below
and a tenant whose deletion is approved in the second; a tenant marked for deletion but not
approved runs `revoke` only.

- live tenant: {active}
- deletion: {deletion}

| Phase | What belongs in it |
| --- | --- |
{phases}
"""

WHEN = """\
## When hooks are called

1. **Loading the config** (every command): `meshplatform_platform_types` once per plugin when it
   loads; `meshplatform_validate` once per platform, with its landing zones and tenants. No cloud calls.
2. **`plan` and `apply`**, per platform: `meshplatform_identity` (a changed identity refuses the
   run), then `meshplatform_platform_actions` for the shared resources; `apply` runs their
   actions. Their keys are confirmed for every tenant of the platform.
3. Per tenant, in parallel (`settings.concurrency`), each observed on its own:
   `meshplatform_tenant_actions`, then `meshplatform_landing_zone_actions` and
   `meshplatform_access_actions` (these two see the tenant id the first one found). If any of
   them fails, only the revoke-phase actions of the others run in that run. Tenants removed
   from the config start first (their access is revoked, or checked to stay revoked), then the
   other tenants already in their cloud, then tenants still to create, an earlier run's creation
   still in progress before a new one: a creation waits on the cloud for minutes and holds a
   worker meanwhile.
4. `apply` runs the actions phase by phase (see [Phases](#phases)); each action is recorded as a
   step the moment it ends (the core records steps: a plugin records nothing itself). A
   tenant whose deletion phases all completed is observed again; when nothing is left to do
   it is `DELETED`.
5. `meshplatform_collect_costs` (`meshcore costs collect`), `meshplatform_discover_tenants`
   (`meshcore discover`), `meshplatform_preflight` (`meshcore preflight`) and
   `meshplatform_cli_commands` (`meshcore <type> ...`) only when their command runs.
"""

CHANGES = """\
## Changes

**Contract 2** replaced the six hooks that planned and applied separately
(`plan_tenant`, `provision_tenant`, `update_tenant`, `deprovision_tenant`,
`apply_landing_zone`, `replicate_access`) by observing hooks that return actions, added
`meshplatform_platform_actions` for shared resources and `meshplatform_identity`, dropped the
`None` answer for foreign platform types and the `RetryableError` retry, and gave plugins the
resources table and quotas in `ctx`. A plugin of contract 1 is reported as broken with a
message that says so.
"""


def _rst_to_md(text: str) -> str:
    """The few reStructuredText forms our docstrings use, as Markdown."""
    text = re.sub(r":(?:class|func|data|mod|meth):`~?([^`]+)`", lambda m: f"`{m.group(1)}`", text)
    text = text.replace("``", "`")
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "Example::":
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i][4:] if lines[i].startswith("    ") else "")
                i += 1
            out += [
                "**Example**",
                "",
                "```python",
                *textwrap.dedent("\n".join(block)).strip().splitlines(),
                "```",
            ]
            continue
        m = re.match(r"^\.\. versionadded:: (\S+)", line.strip())
        if m:
            out.append(f"*Since contract {m.group(1)}.*")
            i += 1
            continue
        m = re.match(r"^:param (\w+):(.*)$", line)
        if m:
            out.append(f"- **param** `{m.group(1)}`:{m.group(2)}")
        elif line.startswith(":returns:"):
            out.append("- **returns**" + line[len(":returns:") :])
        elif line.startswith(":raises"):
            head, _, rest = line[len(":raises") :].partition(":")
            out.append(f"- **raises**{(' `' + head.strip() + '`') if head.strip() else ''}:{rest}")
        else:
            out.append(line)
        i += 1
    return "\n".join(out)


def _signature(name: str, fn: Any) -> str:
    params = ", ".join(inspect.signature(fn).parameters)
    ret = inspect.signature(fn).return_annotation
    ret = ret if isinstance(ret, str) else getattr(ret, "__name__", str(ret))
    return f"def {name}({params}) -> {ret}"


def render_context() -> str:
    """The context's services, from :mod:`meshcore.context` (module, class and method docstrings)."""
    from meshcore import context

    parts = ["## The context (`ctx`)\n", _rst_to_md(inspect.getdoc(context) or "") + "\n"]
    for cls in (
        context.HookContext,
        context.Journal,
        context.JournalEntry,
        context.Resources,
        context.Quota,
        context.RunCache,
    ):
        parts.append(f"### `{cls.__name__}`\n\n{_rst_to_md(inspect.getdoc(cls) or '')}\n")
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_"):
                continue
            sig = str(inspect.signature(fn)).replace("(self, ", "(").replace("(self)", "()")
            parts.append(f"- `{name}{sig}`: {_rst_to_md(inspect.getdoc(fn) or '').strip()}")
        parts.append("")
    return "\n".join(parts)


def render_hooks() -> str:
    from meshcore.docgen import render_models
    from meshcore.plugins import CAPABILITY_HOOKS

    caps = "\n".join(f"  - `{c.value}` → `{h}`" for c, h in CAPABILITY_HOOKS.items())
    parts = [
        PREAMBLE.format(
            version=hookspecs.CONTRACT_VERSION,
            capabilities=caps,
            active=" → ".join(f"`{p.value}`" for p in ACTIVE_PHASES),
            deletion=" → ".join(f"`{p.value}`" for p in DELETION_PHASES),
            phases="\n".join(f"| `{p.value}` | {doc} |" for p, doc in PHASE_DOCS.items()),
        )
    ]
    specs = dict(inspect.getmembers(hookspecs, inspect.isfunction))
    for title, names in GROUPS:
        parts.append(f"## {title}\n")
        for name in names:
            fn = specs[name]
            doc = _rst_to_md(inspect.getdoc(fn) or "")
            parts.append(f"### `{name}`\n\n```python\n{_signature(name, fn)}\n```\n\n{doc}\n")
    parts.append(WHEN)
    parts.append(render_context())
    parts.append("## What hooks receive\n")
    parts.append(render_models(RECEIVED, level=3))
    parts.append("## What hooks return\n")
    parts.append(render_models(RETURNED, level=3))
    parts.append(CHANGES)
    return "\n".join(p.rstrip() + "\n" for p in parts)


def grouped_hooks() -> list[str]:
    return [n for _title, names in GROUPS for n in names]
