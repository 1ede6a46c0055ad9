"""Chargeback statements: per project and month, versioned, exported to CSV and JSON.

A statement sums the usage lines of all the project's tenants (on every
platform, deleted tenants included) per seller, product and currency, and
captures the project's payment method and tags. While the month is open (until
``finalize_after_days`` after its end), or while the platform still marks any of
its usage as estimated, statements are previews, computed on demand and never
stored. Once final, a statement is stored as version 1; if
late costs change the sums afterwards, that version is marked CANCELLED and a
new version is stored — nothing is overwritten.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

from meshcore.config import LoadedConfig
from meshcore.costs import is_final, month_bounds
from meshcore.state import StateStore


def _project_index(config: LoadedConfig | None) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    if config is None:
        return out
    for ws in config.document.workspaces:
        for p in ws.projects:
            out[(ws.id, p.id)] = {
                "payment_method": p.payment_method.model_dump(mode="json") if p.payment_method else {},
                "tags": {**ws.tags, **p.tags},
            }
    return out


def compute(store: StateStore, month: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(workspace, project) -> {lines, totals} of a month from the stored usage lines."""
    sums: dict[tuple[str, str], dict[tuple[str, str, str], Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    for line in store.usage(month):
        if line.tenant_key is None:
            continue
        ws, project = line.tenant_key.split("@", 1)[0].split("/", 1)
        sums[(ws, project)][(line.seller, line.product, line.currency)] += Decimal(line.amount)
    out = {}
    for key, items in sums.items():
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for (_s, _p, cur), amount in items.items():
            totals[cur] += amount
        out[key] = {
            "lines": [
                {"seller": s, "product": p, "currency": c, "amount": str(a)}
                for (s, p, c), a in sorted(items.items())
            ],
            "totals": {c: str(a) for c, a in sorted(totals.items())},
        }
    return out


def statements(
    store: StateStore,
    month: str,
    finalize_after_days: int,
    config: LoadedConfig | None = None,
    now: Any = None,
) -> list[dict[str, Any]]:
    """The month's statements: stored versions (finalizing due ones first) or previews."""
    month_bounds(month)
    computed = compute(store, month)
    projects = _project_index(config)
    estimated = any(line.estimated for line in store.usage(month))  # the platform may still change it
    if estimated or not is_final(month, finalize_after_days, now):
        return [
            {
                "workspace": ws,
                "project": p,
                "period": month,
                "version": 0,
                "status": "PREVIEW",
                **({"note": "the platform still estimates some of these amounts"} if estimated else {}),
                **data,
                **projects.get((ws, p), {"payment_method": {}, "tags": {}}),
            }
            for (ws, p), data in sorted(computed.items())
        ]
    for (ws, project), data in sorted(computed.items()):
        meta = projects.get((ws, project), {"payment_method": {}, "tags": {}})
        store.finalize_statement(
            ws, project, month, data["lines"], data["totals"], meta["payment_method"], meta["tags"]
        )
    return [_row(s) for s in store.statements(month)]


def _row(s: Any) -> dict[str, Any]:
    return {
        "workspace": s.workspace,
        "project": s.project,
        "period": s.period,
        "version": s.version,
        "status": s.status,
        "lines": s.lines.get("items", []),
        "totals": s.totals,
        "payment_method": s.payment_method,
        "tags": s.tags,
    }


def export(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2, sort_keys=True) + "\n"
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(
        [
            "workspace",
            "project",
            "period",
            "version",
            "status",
            "seller",
            "product",
            "currency",
            "amount",
            "payment_method",
            "budget",
        ]
    )
    for r in rows:
        pm = r.get("payment_method") or {}
        for line in r["lines"]:
            writer.writerow(
                [
                    r["workspace"],
                    r["project"],
                    r["period"],
                    r["version"],
                    r["status"],
                    line["seller"],
                    line["product"],
                    line["currency"],
                    line["amount"],
                    pm.get("id", ""),
                    pm.get("budget") or "",
                ]
            )
    return buf.getvalue()
