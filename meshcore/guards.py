"""Refusals checked before a run changes anything: blast radius, vanished landing zones, renamed platforms.

Each check raises :class:`~meshcore.errors.RefusedError` (exit code 2) with a
message that says what was found and how to proceed. ``plan`` runs the same
checks and reports them, so a pipeline sees the refusal before ``apply``.
"""

from __future__ import annotations

from meshcore.config import LoadedConfig
from meshcore.errors import RefusedError
from meshcore.lifecycle import Lifecycle, Task, missing_landing_zones
from meshcore.state import StateStore
from meshcore.state.tables import TenantRow


def check_deletions(config: LoadedConfig, tasks: list[Task], recorded: list[TenantRow], allow: int) -> None:
    """Refuse a run that would mark more tenants for deletion than allowed, or empties a populated state.

    ``allow`` is ``apply --allow-deletions N``: it permits up to N tenants to
    be marked for deletion in this run, whatever ``settings.max_deletions_per_run`` says.
    """
    marked = sorted(t.key for t in tasks if t.lifecycle == Lifecycle.MARK_FOR_DELETION)
    live = [r for r in recorded if r.status == "ACTIVE"]
    limit = config.document.settings.max_deletions_per_run
    if not config.document.workspaces and live and allow < len(live):
        raise RefusedError(
            f"the config declares no workspaces, but the state holds {len(live)} live tenant(s); "
            "applying it would remove all of them. If that is intended, run "
            f"'meshcore apply --allow-deletions {len(live)}'"
        )
    if len(marked) > max(limit, allow):
        shown = ", ".join(marked[:10]) + (f" and {len(marked) - 10} more" if len(marked) > 10 else "")
        raise RefusedError(
            f"this run would mark {len(marked)} tenant(s) for deletion ({shown}), more than "
            f"settings.max_deletions_per_run ({limit}); nothing was changed. If that is intended, run "
            f"'meshcore apply --allow-deletions {len(marked)}'"
        )


def check_landing_zones(config: LoadedConfig, recorded: list[TenantRow]) -> None:
    """Refuse when a landing zone left the config while live tenants still use it."""
    missing = missing_landing_zones(config, recorded)
    if missing:
        parts = [f"{lz!r} ({', '.join(sorted(keys))})" for lz, keys in sorted(missing.items())]
        raise RefusedError(
            "landing zone(s) no longer in the config but still used by live tenants: "
            + "; ".join(parts)
            + ". Keep a landing zone in the config until its tenants are deleted (its deletion policy "
            "and access rules are needed to delete them safely)"
        )


def check_identity(store: StateStore, platform_id: str, type_name: str, identity: str | None) -> None:
    """Refuse a platform id that now points at another cloud, or a cloud recorded under another id."""
    if identity is None:
        return
    recorded = store.platform_identity(platform_id)
    if recorded is not None and recorded.identity and recorded.identity != identity:
        raise RefusedError(
            f"platform {platform_id!r} now points at {identity}, but its tenants were recorded on "
            f"{recorded.identity}; a platform id must keep pointing at the same cloud. Restore the "
            "platform's config, or give the new cloud a new platform id"
        )
    live = {r.platform for r in store.tenants()}
    for other in store.platforms_with_identity(identity):
        if other != platform_id and other in live:
            raise RefusedError(
                f"platform {platform_id!r} points at {identity}, which is recorded as platform {other!r} "
                f"with live tenants; renaming a platform id would bind each cloud tenant to two tenants. "
                f"Rename it back to {other!r}"
            )


def check_distinct(platform_id: str, identity: str, seen: dict[str, str]) -> None:
    """Refuse two platforms of one config that point at the same cloud (one account, two tenants)."""
    for other, known in seen.items():
        if known == identity and other != platform_id:
            raise RefusedError(
                f"platforms {other!r} and {platform_id!r} both point at {identity}; each cloud may be "
                "configured once, or every tenant would be bound twice. Remove one of them"
            )
