"""Rich renderings of CLI results: tables for humans (``--output json`` bypasses these)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from meshcore.redaction import redact

_STATUS_STYLE = {
    "ok": "green",
    "changed": "cyan",
    "failed": "bold red",
    "in_progress": "yellow",
    "waiting": "yellow",
    "skipped": "dim",
    "warning": "yellow",
    "loaded": "green",
    "broken": "bold red",
    "duplicate": "bold red",
    "disabled": "dim",
}
_ACTION_SIGN = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red")}


def _status(value: str) -> Text:
    return Text(value, style=_STATUS_STYLE.get(value, ""))


def plugins_table(infos: list[dict[str, Any]]) -> Table:
    table = Table(title="Platform plugins (entry-point group meshcore.platforms)")
    for col in ("type", "status", "version", "capabilities", "details"):
        table.add_column(col)
    for i in infos:
        version = f"{i['distribution']} {i['version']}" if i["distribution"] else "-"
        table.add_row(
            i["name"],
            _status(i["status"]),
            version,
            ", ".join(i["capabilities"]),
            i["error"] or i["description"],
        )
    if not infos:
        table.add_row("-", "-", "-", "-", "no platform plugins installed")
    return table


def plan_view(items: list[Any]) -> Group:
    parts: list[Any] = []
    n_changes = 0
    for item in items:
        header = Text(f"{item.key}", style="bold")
        header.append(f"  [{item.action}]", style="dim")
        if item.note:
            header.append(f"  {item.note}", style="yellow")
        parts.append(header)
        if item.error:
            parts.append(Text(f"    ! {redact(item.error)}", style="bold red"))
        if not item.changes and not item.error:
            parts.append(Text("    no changes", style="dim"))
        for c in item.changes:
            n_changes += 1
            sign, style = _ACTION_SIGN.get(c.action, ("?", ""))
            line = Text(f"    {sign} {c.resource}", style=style)
            if c.before is not None or c.after is not None:
                line.append(
                    f": {c.before if c.before is not None else '∅'} → {c.after if c.after is not None else '∅'}"
                )
            if c.detail:
                line.append(f"  ({c.detail})", style="dim")
            parts.append(line)
    parts.append(
        Text(
            f"\nPlan: {n_changes} change(s) across {sum(1 for i in items if i.changes)} of {len(items)} tenant(s).",
            style="bold",
        )
    )
    return Group(*parts)


@contextmanager
def apply_progress(console: Console) -> Iterator[Callable[[Any], None]]:
    progress = Progress(
        TextColumn("[bold]apply"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
    )
    task = progress.add_task("", total=None)

    def on_progress(result: Any) -> None:
        progress.update(task, advance=1, description=f"{result.key}: {result.status}")

    with progress:
        yield on_progress


def apply_view(report: Any) -> Group:
    table = Table(title=f"Apply (run {report.run_id})")
    for col in ("tenant", "action", "result", "platform id", "message"):
        table.add_column(col)
    for r in report.results:
        table.add_row(r.key, r.action, _status(r.status), r.platform_tenant_id or "", redact(r.message))
    counts = report.counts()
    changed = counts.get("changed", 0)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing to do"
    tail = Text(
        f"{summary}."
        + ("  No changes: everything is converged." if not changed and not report.failed else ""),
        style="bold",
    )
    return Group(table, tail)


def status_view(tenants: list[Any], last: Any, failures: list[Any]) -> Group:
    table = Table(title="Tenants")
    for col in ("tenant", "status", "platform id", "landing zone", "attributes", "last error"):
        table.add_column(col)
    for t in tenants:
        attrs = ", ".join(f"{k}={v}" for k, v in sorted((t.attributes or {}).items()))
        style = {"ACTIVE": "green", "DELETED": "dim"}.get(t.status, "yellow")
        table.add_row(
            t.key,
            Text(t.status, style=style),
            t.platform_tenant_id or f"({t.provisioning})",
            t.landing_zone,
            attrs,
            Text(t.last_error, style="red"),
        )
    parts: list[Any] = [table]
    if last is not None:
        parts.append(
            Text(
                f"Last run: #{last.id} {last.command} {last.status} at "
                f"{last.started_at:%Y-%m-%d %H:%M:%S} {last.summary or ''}"
            )
        )
    for f in failures:
        parts.append(Text(f"  ✗ {f.tenant_key} {f.name}: {f.message}", style="red"))
    return Group(*parts)


def runs_view(runs: list[Any]) -> Table:
    table = Table(title="Runs")
    for col in ("id", "command", "status", "started", "finished", "summary", "runner"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            str(r.id),
            r.command,
            _status(r.status),
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            f"{r.finished_at:%H:%M:%S}" if r.finished_at else "-",
            str(r.summary or ""),
            r.runner,
        )
    return table


def tenant_history_view(key: str, steps: list[Any], trail: list[Any]) -> Group:
    table = Table(title=f"Steps of {key}")
    for col in ("run", "step", "status", "ms", "message"):
        table.add_column(col)
    for s in steps:
        table.add_row(str(s.run_id), s.name, _status(s.status), str(s.duration_ms), s.message)
    audit = Table(title="Audit trail")
    for col in ("at", "action", "actor", "details"):
        audit.add_column(col)
    for a in trail:
        audit.add_row(f"{a.at:%Y-%m-%d %H:%M:%S}", a.action, a.actor, str(a.details or ""))
    return Group(table, audit)


def preflight_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Preflight")
    for col in ("platform", "check", "result", "message"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["platform"], r["check"], _status("ok" if r["ok"] else "failed"), r.get("message", ""))
    return table


def discovered_table(platform_id: str, found: list[Any]) -> Table:
    table = Table(title=f"Unmanaged tenants on {platform_id}")
    for col in ("platform tenant id", "name", "status", "attributes"):
        table.add_column(col)
    for d in found:
        table.add_row(
            d.platform_tenant_id, d.name, d.status, ", ".join(f"{k}={v}" for k, v in d.attributes.items())
        )
    if not found:
        table.add_row("-", "every tenant on this platform is managed", "", "")
    return table


def usage_table(report: dict[str, Any]) -> Group:
    table = Table(title=f"Usage {report['period']} ({report['status']}) by {report['by']}")
    for col in (report["by"], "seller", "product", "amount"):
        table.add_column(col, justify="right" if col == "amount" else "left")
    for line in report["lines"]:
        table.add_row(
            line[report["by"]], line["seller"], line["product"], f"{line['amount']} {line['currency']}"
        )
    totals = ", ".join(f"{a} {c}" for c, a in report["totals"].items()) or "no costs"
    return Group(table, Text(f"Total: {totals}", style="bold"))
