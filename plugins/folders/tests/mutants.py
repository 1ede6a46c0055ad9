"""Bugs planted in the reference plugin, one at a time, to measure the conformance kit.

Each mutant is (name, what it breaks, source text, replacement) applied to
``meshcore_folders/plugin.py``. They are the kinds of bugs real plugins ship:
no or broken crash safety, adopting what is not theirs, reusing ids, plans that
write, access never revoked, deletions that lie, implausible costs, discovery that
lists infrastructure, import-time side effects.
"""

from __future__ import annotations

MUTANTS: list[tuple[str, str, str, str]] = [
    (
        "adopt-any-namesake",
        "adopts a folder someone else created with the tenant's name",
        """        meta.get("managed_by") != tenant.key
        and recorded is None""",
        """        False
        and recorded is None""",
    ),
    (
        "ignore-owner",
        "adopts a folder bound to another tenant",
        "    if owner and owner != tenant.key:\n        raise ConflictError",
        "    if False:\n        raise ConflictError",
    ),
    (
        "ignore-import-id",
        "refuses an import made on purpose",
        "    if tenant.import_id:\n        return\n    recorded",
        "    recorded",
    ),
    (
        "reuse-deleted-id",
        "binds a deleted tenant's folder name again",
        '    while ctx.owner_of(base if n == 1 else f"{base}--{n}") is not None:',
        "    while False:",
    ),
    (
        "create-never-completes",
        "leaves the create intent open",
        '    ctx.resources.put("folder", folder.name, cloud_id=folder.name, completes=entry)',
        '    ctx.resources.put("folder", folder.name, cloud_id=folder.name)',
    ),
    (
        "adopt-never-completes",
        "leaves a crashed run's intent open when adopting",
        '            entry.complete({"recovered": "by name"})',
        "            pass",
    ),
    (
        "new-intent-every-time",
        "begins a new intent on every create, leaving the old one open",
        """    entry = ctx.journal.find("create-folder", folder.name) or ctx.journal.begin(
        "create-folder", folder.name, {"tenant": tenant.key}
    )""",
        """    ctx.journal.begin("create-folder", folder.name, {"tenant": tenant.key})
    entry = ctx.journal.begin("create-folder", folder.name, {"tenant": tenant.key})""",
    ),
    (
        "no-marker",
        "creates folders without its ownership marker (a crash then looks foreign)",
        """            "managed_by": tenant.key,""",
        """            "managed_by": "",""",
    ),
    (
        "no-platform-id",
        "never returns the created tenant's id",
        """    return ActionResult(platform_tenant_id=folder.name, message=f"created {folder}")""",
        """    return ActionResult(message=f"created {folder}")""",
    ),
    (
        "create-unchanged",
        "reports creating the tenant as no change",
        """    return ActionResult(platform_tenant_id=folder.name, message=f"created {folder}")""",
        """    return ActionResult(platform_tenant_id=folder.name, changed=False, message=f"created {folder}")""",
    ),
    (
        "tags-never-converge",
        "never updates tags",
        """    if meta.get("tags") != tenant.replicated_tags:""",
        """    if False:""",
    ),
    (
        "tags-written-wrong",
        "writes the wrong tags",
        """                run=lambda: _update(_folder(platform, ctx), tags=dict(tenant.replicated_tags)),""",
        """                run=lambda: _update(_folder(platform, ctx), tags={}),""",
    ),
    (
        "tags-not-at-creation",
        "creates the folder without its tags and believes it has them",
        """            "tags": dict(tenant.replicated_tags),
            "guardrails": [],""",
        """            "tags": {},
            "guardrails": [],""",
    ),
    (
        "plan-writes",
        "creates the folder while observing (plan writes)",
        """    folder = _root(platform) / name
    meta = _read(folder)
    actions: list[Action] = []""",
        """    folder = _root(platform) / name
    folder.mkdir(parents=True, exist_ok=True)
    meta = _read(folder)
    actions: list[Action] = []""",
    ),
    (
        "never-revoke",
        "never takes access away",
        """        for perm, user in sorted(have - want)
    ]""",
        """        for perm, user in sorted(have - want)
        if False
    ]""",
    ),
    (
        "revoke-in-access-phase",
        "revokes in the access phase (never run for a tenant being deleted)",
        """            phase=Phase.REVOKE,
            change=ChangeAction.DELETE,
            resource="access",""",
        """            phase=Phase.ACCESS,
            change=ChangeAction.DELETE,
            resource="access",""",
    ),
    (
        "grant-without-guardrails",
        "grants access without requiring the landing zone's guardrails",
        """            requires=(f"guardrails:{name}",),
            run=partial(change, perm, user, True),""",
        """            run=partial(change, perm, user, True),""",
    ),
    (
        "grant-wrong-user",
        "grants the permission to the wrong user",
        """            run=partial(change, perm, user, True),""",
        """            run=partial(change, perm, "alice", True),""",
    ),
    (
        "grant-in-revoke-phase",
        "grants in the revoke phase, before any guardrail",
        """            phase=Phase.ACCESS,
            change=ChangeAction.CREATE,
            resource="access",""",
        """            phase=Phase.REVOKE,
            change=ChangeAction.CREATE,
            resource="access",""",
    ),
    (
        "deprovision-does-nothing",
        "says the tenant is deleted but removes nothing",
        """    if not folder.exists():
        return Observation()
    archive""",
        """    if True:
        return Observation()
    archive""",
    ),
    (
        "deprovision-never-finishes",
        "plans a removal forever",
        """    if not folder.exists():
        return Observation()
    archive""",
        """    archive""",
    ),
    (
        "deprovision-removes-everything",
        "removes the whole root instead of the tenant",
        """            os.replace(folder, target)""",
        """            shutil.rmtree(folder.parent)""",
    ),
    (
        "deprovision-before-approval",
        "deletes a tenant whose deletion nobody approved",
        """    if not tenant.deletion_approved or tenant.platform_tenant_id is None:
        return Observation()
    folder = _root(platform) / tenant.platform_tenant_id""",
        """    if tenant.platform_tenant_id is None:
        return Observation()
    folder = _root(platform) / tenant.platform_tenant_id""",
    ),
    (
        "costs-empty",
        "reports no costs at all",
        """    return CostCollection(records=tuple(records), requests=0)""",
        """    return CostCollection(records=(), requests=0)""",
    ),
    (
        "costs-negative",
        "reports negative costs",
        """                amount=amount,""",
        """                amount=-amount - 1,""",
    ),
    (
        "costs-outside-period",
        "reports costs for the wrong days",
        """                usage_start=period.start,""",
        """                usage_start=period.start - dt.timedelta(days=1),""",
    ),
    (
        "discovery-lists-archives",
        "offers archived (deleted) tenants for import",
        """        if p.is_dir() and not p.name.startswith(".") and ".archived-" not in p.name""",
        """        if p.is_dir() and not p.name.startswith(".")""",
    ),
    (
        "discovery-skips-foreign",
        "offers only its own tenants for import, never the ones to import",
        """        if p.is_dir() and not p.name.startswith(".") and ".archived-" not in p.name""",
        """        if p.is_dir() and not p.name.startswith(".") and ".archived-" not in p.name
        and (_read(p) or {}).get("managed_by")""",
    ),
    (
        "preflight-checks-nothing",
        "declares preflight and checks nothing",
        """    return PreflightReport(
        checks=(""",
        """    return PreflightReport(checks=())
    return PreflightReport(
        checks=(""",
    ),
    (
        "wrong-type-name",
        "registers a type that is not its entry-point name",
        '''TYPE = "folders"''',
        '''TYPE = "folder"''',
    ),
    (
        "import-starts-a-thread",
        "starts a thread when imported",
        """_lock = threading.Lock()""",
        """_lock = threading.Lock()
threading.Thread(target=lambda: __import__("time").sleep(5), daemon=True).start()""",
    ),
    (
        "import-opens-a-connection",
        "opens a database connection when imported",
        """_lock = threading.Lock()""",
        """_lock = threading.Lock()
_db = __import__("sqlite3").connect(":memory:")""",
    ),
    (
        "names-collide",
        "names tenants by project only (two workspaces share a folder)",
        '''    return f"{tenant.workspace.id}--{tenant.project.id}"''',
        '''    return f"{tenant.project.id}"''',
    ),
    (
        "capability-without-hook",
        "declares a capability whose hook it does not implement",
        """@hookimpl
def meshplatform_discover_tenants(""",
        """def meshplatform_discover_tenants(""",
    ),
]
