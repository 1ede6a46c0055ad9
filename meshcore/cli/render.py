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
    "not_run": "dim",
    "elsewhere": "dim",
    "fenced": "yellow",
    "warning": "yellow",
    "blocked": "bold yellow",
    "refused": "bold red",
    "converged": "green",
    "changes": "cyan",
    "error": "bold red",
    "loaded": "green",
    "broken": "bold red",
    "duplicate": "bold red",
    "disabled": "dim",
}
_ACTION_SIGN = {
    "create": ("+", "green"),
    "update": ("~", "yellow"),
    "delete": ("-", "red"),
    "wait": ("…", "cyan"),
}


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


def _action_line(view: Any, show_status: bool) -> Text:
    sign, style = _ACTION_SIGN.get(view.change, ("?", ""))
    blocked = view.status in ("blocked", "refused", "failed")
    line = Text(f"    {sign} ", style=style)
    line.append(f"[{view.phase}] ", style="dim")
    line.append(view.resource + (f" {view.target}" if view.target else ""), style=style)
    if view.before is not None or view.after is not None:
        before = view.before if view.before is not None else "∅"
        after = view.after if view.after is not None else "∅"
        line.append(f": {redact(before)} → {redact(after)}")
    if view.detail:
        line.append(f"  ({redact(view.detail)})", style="dim")
    if show_status and view.status not in ("planned",):
        line.append(f"  {view.status}", style=_STATUS_STYLE.get(view.status, ""))
    if view.message and (blocked or view.status == "in_progress"):
        line.append(f": {redact(view.message)}", style="red" if blocked else "yellow")
    return line


def plan_view(report: Any) -> Group:
    parts: list[Any] = []
    for item in report.items:
        header = Text(item.key, style="bold")
        if item.lifecycle and item.scope == "tenant":
            header.append(f"  [{item.lifecycle}]", style="dim")
        if item.platform_tenant_id:
            header.append(f"  {item.platform_tenant_id}", style="dim")
        if item.note:
            header.append(f"  {redact(item.note)}", style="yellow")
        parts.append(header)
        if item.message:
            parts.append(Text(f"    ! {redact(item.message)}", style="bold red"))
        for event in item.events:
            parts.append(Text(f"    * {redact(event)}", style="yellow"))
        if not item.actions and not item.message and not item.events:
            parts.append(Text("    no changes", style="dim"))
        for view in item.actions:
            parts.append(_action_line(view, show_status=view.status != "planned"))
    n = report.pending_changes()
    blocked = report.summary.get("blocked", 0)
    tail = f"\nPlan: {n} action(s) across {sum(1 for i in report.items if i.actions)} item(s)"
    tail += f"; {blocked} would be blocked." if blocked else "."
    parts.append(Text(tail, style="bold"))
    return Group(*parts)


def plan_markdown(report: Any) -> str:
    """The plan as Markdown for a pull-request comment: a summary line, then one diff block per item."""
    n = report.pending_changes()
    changed = [i for i in report.items if i.actions or i.message or i.events]
    blocked = report.summary.get("blocked", 0)
    lines = [f"### meshcore plan: {n} action(s) across {sum(1 for i in report.items if i.actions)} item(s)"]
    if blocked:
        lines.append(f"**{blocked} action(s) would be blocked.**")
    if report.failed:
        lines.append(f"**{len(report.failed)} item(s) could not be planned.**")
    if not changed:
        lines.append("\nNo changes: everything is converged.")
    for item in changed:
        title = f"`{item.key}`" + (
            f" — {item.lifecycle}" if item.lifecycle and item.scope == "tenant" else ""
        )
        lines += ["", f"**{title}**" + (f" ({redact(item.note)})" if item.note else "")]
        if item.message:
            lines.append(f"> ⚠ {redact(item.message)}")
        for event in item.events:
            lines.append(f"> {redact(event)}")
        if item.actions:
            lines.append("```diff")
            for view in item.actions:
                sign = {"create": "+", "delete": "-"}.get(view.change, "!")
                text = _action_line(view, show_status=view.status != "planned").plain.strip()
                lines.append(f"{sign} {text[2:] if text[:1] in '+-~…?' else text}")
            lines.append("```")
    return redact("\n".join(lines)) + "\n"


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


def summary_line(summary: dict[str, int]) -> str:
    """'2 marked for deletion, access revoked on 2, 0 deleted' style."""
    parts = [
        f"{summary.get('tenants', 0)} tenant(s)",
        f"{summary.get('changed', 0)} changed",
        f"{summary.get('bound', 0)} created or adopted",
        f"{summary.get('marked_for_deletion', 0)} marked for deletion",
        f"access revoked on {summary.get('access_revoked', 0)}",
        f"{summary.get('deleted', 0)} deleted",
    ]
    for key, label in (
        ("in_progress", "in progress"),
        ("waiting", "awaiting approval"),
        ("failed", "failed"),
        ("not_run", "not started (stopping)"),
        ("elsewhere", "applied by other runners"),
        ("fenced", "left to another runner (lease lost)"),
    ):
        if summary.get(key):
            parts.append(f"{summary[key]} {label}")
    return ", ".join(parts) + "."


def apply_view(report: Any) -> Group:
    table = Table(title=f"Apply (run {report.run_id})")
    for col in ("tenant", "lifecycle", "result", "platform id", "message"):
        table.add_column(col)
    for item in report.items:
        message = item.message or "; ".join(item.events)
        table.add_row(
            item.key, item.lifecycle, _status(item.status), item.platform_tenant_id or "", redact(message)
        )
    changed = any(i.status == "changed" for i in report.items) or any(i.actions for i in report.platforms)
    tail = summary_line(report.summary)
    if not changed and not report.failed:
        tail += "  No changes: everything is converged."
    return Group(table, Text(tail, style="bold"))


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
    shared = any(s.runner for s in steps)  # recorded by shared runners: show who, under which lease token
    for col in ("run", "step", "status", "ms", *(("runner", "token") if shared else ()), "message"):
        table.add_column(col)
    for s in steps:
        lease = (s.runner or "-", str(s.token or "-")) if shared else ()
        table.add_row(str(s.run_id), s.name, _status(s.status), str(s.duration_ms), *lease, s.message)
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
