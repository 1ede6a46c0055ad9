"""Turn a validated config into the desired tenants plugins act on.

Resolves references, expands group bindings to their members, drops expired
bindings (a binding is in force up to and including its ``expires`` date),
merges workspace and project tags (the project wins) and computes the tags to
replicate (only those whose definition has a ``replication_key``).
"""

from __future__ import annotations

import datetime as dt

from meshcore.config import LoadedConfig
from meshcore.models import ConfigDocument, Project, Workspace
from meshcore.specs import BindingSpec, ProjectRef, TenantSpec, WorkspaceRef


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def bindings_in_force(doc: ConfigDocument, project: Project, on: dt.date) -> tuple[BindingSpec, ...]:
    users = {u.id: u for u in doc.users}
    groups = {g.id: g for g in doc.groups}
    out = []
    for b in project.bindings:
        if b.expires is not None and b.expires < on:
            continue
        if b.user:
            out.append(BindingSpec(role=b.role, user=b.user, users=(users[b.user],), expires=b.expires))
        else:
            members = tuple(users[m] for m in groups[b.group].members)  # type: ignore[index]
            out.append(BindingSpec(role=b.role, group=b.group, users=members, expires=b.expires))
    return tuple(out)


def merged_tags(workspace: Workspace, project: Project) -> dict[str, str]:
    return {**workspace.tags, **project.tags}


def replicated_tags(doc: ConfigDocument, tags: dict[str, str]) -> dict[str, str]:
    return {
        d.replication_key: tags[d.key] for d in doc.tag_definitions if d.replication_key and d.key in tags
    }


def desired_tenants(config: LoadedConfig, on: dt.date | None = None) -> list[TenantSpec]:
    """Every tenant the config declares, in config order, with its bindings in force ``on`` a date."""
    doc = config.document
    on = on or today_utc()
    out = []
    for ws in doc.workspaces:
        wref = WorkspaceRef(id=ws.id, name=ws.name or ws.id, tags=dict(ws.tags))
        for project in ws.projects:
            pref = ProjectRef(
                id=project.id,
                name=project.name or project.id,
                tags=dict(project.tags),
                payment_method=project.payment_method,
            )
            tags = merged_tags(ws, project)
            bindings = bindings_in_force(doc, project, on)
            for t in project.tenants:
                out.append(
                    TenantSpec(
                        workspace=wref,
                        project=pref,
                        platform_id=t.platform,
                        landing_zone=config.landing_zones[t.landing_zone],
                        import_id=t.import_id,
                        platform_tenant_id=None,
                        tags=tags,
                        replicated_tags=replicated_tags(doc, tags),
                        bindings=bindings,
                    )
                )
    return out
