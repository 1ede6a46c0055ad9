"""What ``status -o json`` and ``history -o json`` show, as data: the CLI and ``meshcore serve`` share it."""

from __future__ import annotations

import json
from typing import Any

from meshcore.redaction import redact, redact_data
from meshcore.state import StateStore


def status_data(store: StateStore, include_deleted: bool = False) -> dict[str, Any]:
    """Recorded tenants, the last run and its failed steps."""
    tenants = store.tenants(include_deleted=include_deleted)
    runs = store.runs(limit=1)
    last = runs[0] if runs else None
    failures = [s for s in store.steps(run_id=last.id) if s.status == "failed"] if last else []
    return {
        "tenants": [
            {
                "tenant": t.key,
                "status": t.status,
                "platform_tenant_id": t.platform_tenant_id,
                "landing_zone": t.landing_zone,
                "provisioning": t.provisioning,
                "access_revoked_at": t.revoked_at,
                "attributes": t.attributes,
                "last_error": t.last_error,
            }
            for t in tenants
        ],
        "last_run": {
            "id": last.id,
            "command": last.command,
            "status": last.status,
            "started_at": last.started_at,
            "finished_at": last.finished_at,
            "summary": last.summary,
        }
        if last
        else None,
        "failures": [{"tenant": f.tenant_key, "step": f.name, "message": f.message} for f in failures],
    }


def runs_data(store: StateStore, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most recent runs, newest first."""
    return [
        {
            "id": r.id,
            "command": r.command,
            "status": r.status,
            "runner": r.runner,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "summary": r.summary,
        }
        for r in store.runs(limit)
    ]


def to_json(data: Any) -> str:
    """``data`` as JSON text, redacted (before serializing: escaped non-ASCII would hide a secret)."""
    return redact(json.dumps(redact_data(data), default=str))
