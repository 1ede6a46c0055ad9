"""The ``meshcore`` command line.

Exit codes (also in docs/cli.md):

== ==========================================================================
0  success
1  the command ran but something failed (a tenant, a preflight check)
2  invalid config or usage
3  a plugin needed by the config is missing, broken or misbehaved
4  another runner holds the state store's apply lease (or one of the other ``settings.runners`` mode)
5  the state store cannot be opened
== ==========================================================================

Heavy modules are imported inside the commands that need them, so that
``meshcore --help`` and ``meshcore plugins`` start fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

if TYPE_CHECKING:  # pragma: no cover
    from meshcore.config import LoadedConfig
    from meshcore.plugins import PluginRegistry
    from meshcore.state import StateStore

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_PLUGIN, EXIT_LOCKED, EXIT_STATE = 0, 1, 2, 3, 4, 5
#: Version of ``plan -o json``'s shape (docs/cli.md); raised when a field changes meaning or goes away.
PLAN_SCHEMA_VERSION = 1


class _Commands(TyperGroup):
    """The command group; a state store that fails mid-command is reported, exit code 5, not a traceback."""

    def invoke(self, ctx: Any) -> Any:
        from meshcore.errors import StateStoreError

        try:
            return super().invoke(ctx)
        except StateStoreError as exc:
            raise _fail(str(exc), EXIT_STATE) from None


app = typer.Typer(
    name="meshcore",
    cls=_Commands,
    help="Replicate workspaces, projects, landing zones and role bindings into cloud platforms.\n\n"
    "Platform plugins add their own commands: meshcore <platform type> --help (e.g. meshcore aws --help).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@app.callback()
def _options(
    log_level: LogLevel = typer.Option(
        LogLevel.warning, "--log-level", envvar="MESHCORE_LOG_LEVEL", help="Log records from this level up."
    ),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="-v: info, -vv: debug."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Errors only."),
    log_format: LogFormat = typer.Option(
        LogFormat.text,
        "--log-format",
        envvar="MESHCORE_LOG_FORMAT",
        help="text, or json (one object a line).",
    ),
) -> None:
    """Logs go to standard error (so that -o json on standard output stays machine-readable)."""
    from meshcore.logs import configure

    level = log_level.value
    if verbose:
        level = "debug" if verbose > 1 else "info"
    if quiet:
        level = "error"
    configure(level, log_format.value)


class Output(StrEnum):
    table = "table"
    json = "json"


ConfigOpt = typer.Option(
    Path("meshcore.yaml"),
    "--config",
    "-c",
    envvar="MESHCORE_CONFIG",
    help="Config file, or a directory of YAML files.",
)
StateOpt = typer.Option(
    None,
    "--state",
    envvar="MESHCORE_STATE",
    help="State store: a SQLite file path or sqlite:///PATH, or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB "
    "[default: sqlite:///.meshcore/state.db].",
)
OutputOpt = typer.Option(Output.table, "--output", "-o", help="Output format.")


def _emit_json(data: Any) -> None:
    from meshcore.views import to_json

    console.print_json(to_json(data))


def _fail(message: str, code: int) -> typer.Exit:
    from meshcore.redaction import redact

    err.print(f"[bold red]error:[/] {escape(redact(message))}", highlight=False)  # text, never markup
    return typer.Exit(code)


def _fail_on(exc: Exception, code: int) -> typer.Exit:
    """Report ``exc``; a state store that cannot be used is always exit code 5, bad arguments 2."""
    from meshcore.errors import StateStoreError, UsageError

    if isinstance(exc, StateStoreError):
        code = EXIT_STATE
    elif isinstance(exc, UsageError):
        code = EXIT_CONFIG
    return _fail(str(exc), code)


def _months(period: str, to: str | None = None) -> list[str]:
    """The months of ``--period`` (and ``--to``), or exit code 2 saying what is wrong with them."""
    from meshcore.costs import months
    from meshcore.errors import UsageError

    try:
        return months(period, to)
    except UsageError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None


def _registry() -> PluginRegistry:
    from meshcore.plugins import PluginRegistry

    return PluginRegistry.discover()


def _load(config: Path, registry: Any = None) -> tuple[LoadedConfig, PluginRegistry]:
    from meshcore.config import load_config
    from meshcore.errors import ConfigError

    registry = registry or _registry()
    try:
        return load_config(config, registry), registry
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]✗[/] {_redacted(problem)}", highlight=False, soft_wrap=True)
        err.print(f"[bold red]{len(exc.problems)} problem(s)[/] in {config}")
        raise typer.Exit(_config_exit(exc)) from None


def _redacted(value: Any) -> str:
    from meshcore.redaction import redact

    return redact(str(value))


def _config_exit(exc: Any) -> int:
    """Exit code of a config error: 3 when a plugin the config needs is the problem, else 2."""
    return EXIT_PLUGIN if any(p.plugin for p in exc.problems) else EXIT_CONFIG


def _store(state: str | None, *, create: bool = True) -> StateStore:
    """Open the state store; ``create=False`` for commands that only read what earlier runs wrote."""
    from meshcore.errors import MeshcoreError
    from meshcore.state import DEFAULT_STATE_URL, StateStore

    try:
        return StateStore.open(state or DEFAULT_STATE_URL, create=create)
    except MeshcoreError as exc:
        raise _fail(str(exc), EXIT_STATE) from None


@app.command()
def plugins(output: Output = OutputOpt) -> None:
    """List installed platform plugins with version and status."""
    registry = _registry()
    infos = [i.as_dict() for i in sorted(registry.infos.values(), key=lambda i: i.name)]
    if output == Output.json:
        _emit_json(infos)
        return
    from meshcore.cli.render import plugins_table

    console.print(plugins_table(infos))


@app.command()
def validate(config: Path = ConfigOpt, output: Output = OutputOpt) -> None:
    """Check the config and report every problem with file, line and key path."""
    from meshcore.config import load_config
    from meshcore.errors import ConfigError

    try:
        loaded = load_config(config, _registry())
    except ConfigError as exc:
        if output == Output.json:
            _emit_json({"valid": False, "problems": [p.as_dict() for p in exc.problems]})
            raise typer.Exit(_config_exit(exc)) from None
        for problem in exc.problems:
            err.print(f"[red]✗[/] {_redacted(problem)}", highlight=False, soft_wrap=True)
        err.print(f"[bold red]{len(exc.problems)} problem(s)[/] in {config}")
        raise typer.Exit(_config_exit(exc)) from None
    doc = loaded.document
    n_tenants = sum(len(p.tenants) for w in doc.workspaces for p in w.projects)
    if output == Output.json:
        _emit_json(
            {
                "valid": True,
                "files": loaded.files,
                "platforms": len(doc.platforms),
                "workspaces": len(doc.workspaces),
                "tenants": n_tenants,
            }
        )
        return
    console.print(
        f"[green]✓[/] {config} is valid: {len(doc.platforms)} platform(s), "
        f"{len(doc.landing_zones)} landing zone(s), {len(doc.workspaces)} workspace(s), {n_tenants} tenant(s)"
    )


@app.command()
def schema(
    platform_type: str = typer.Option(
        None, "--platform-type", help="Print the config schema of one platform type instead."
    ),
) -> None:
    """Print the JSON Schema of the config file (for editors)."""
    if platform_type:
        from meshcore.errors import MeshcoreError

        try:
            ptype = _registry().platform_type(platform_type)
        except MeshcoreError as exc:
            raise _fail_on(exc, EXIT_PLUGIN) from None
        data = {"platform": ptype.config_model.model_json_schema()}
        if ptype.landing_zone_model is not None:
            data["landing_zone"] = ptype.landing_zone_model.model_json_schema()
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    from meshcore.models import ConfigDocument

    sys.stdout.write(json.dumps(ConfigDocument.model_json_schema(), indent=2) + "\n")


AllowDeletionsOpt = typer.Option(
    0,
    "--allow-deletions",
    min=0,
    help="Allow this run to mark up to N tenants for deletion (above settings.max_deletions_per_run).",
)


class PlanOutput(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


@app.command()
def plan(
    config: Path = ConfigOpt,
    state: str = StateOpt,
    output: PlanOutput = typer.Option(
        PlanOutput.table, "--output", "-o", help="table, json (versioned schema) or markdown (a PR comment)."
    ),
    allow_deletions: int = AllowDeletionsOpt,
    detailed_exitcode: bool = typer.Option(
        False,
        "--detailed-exitcode",
        help="Exit 0 when nothing would change, 2 when changes are pending, 1 on any error (for CI gates).",
    ),
) -> None:
    """Show, per platform and tenant, the actions apply would run, in its order (no cloud writes)."""
    from meshcore.errors import MeshcoreError, RefusedError
    from meshcore.reconciler import Reconciler

    try:
        loaded, registry = _load(config)
        store = _store(state)
        try:
            report = Reconciler(loaded, store, registry).plan(allow_deletions=allow_deletions)
        except RefusedError as exc:
            raise _fail(f"apply would be refused: {exc}", EXIT_CONFIG) from None
        except MeshcoreError as exc:
            raise _fail_on(exc, EXIT_FAILED) from None
    except typer.Exit as exc:
        # with --detailed-exitcode every error is 1, so that 2 means only "changes pending"
        raise typer.Exit(EXIT_FAILED if detailed_exitcode else exc.exit_code) from None
    if output == PlanOutput.json:
        _emit_json({"schema_version": PLAN_SCHEMA_VERSION, **report.as_dict()})
    elif output == PlanOutput.markdown:
        from meshcore.cli.render import plan_markdown

        sys.stdout.write(plan_markdown(report))
    else:
        from meshcore.cli.render import plan_view

        console.print(plan_view(report))
    if report.failed:
        raise typer.Exit(EXIT_FAILED)
    if detailed_exitcode and report.pending_changes():
        raise typer.Exit(EXIT_CONFIG)  # 2: changes pending


@app.command()
def apply(
    config: Path = ConfigOpt,
    state: str = StateOpt,
    output: Output = OutputOpt,
    wait: float = typer.Option(0.0, "--wait", help="Seconds to wait for another runner's lease."),
    allow_deletions: int = AllowDeletionsOpt,
) -> None:
    """Converge every tenant: run the planned actions in order. Tenants fail independently.

    SIGTERM or SIGINT stops the run gracefully: the actions in flight finish and are
    recorded, nothing else starts, and meshcore exits with 128 + the signal's number
    (143, 130); a second signal ends it at once."""
    from meshcore.errors import LockHeldError, MeshcoreError, RefusedError, StoppedError
    from meshcore.reconciler import Reconciler

    loaded, registry = _load(config)
    store = _store(state)
    stop = threading.Event()
    received: list[int] = []
    try:
        with _graceful(stop, received):
            if output == Output.json:
                report = Reconciler(loaded, store, registry, stop=stop).apply(
                    wait=wait, allow_deletions=allow_deletions
                )
            else:
                from meshcore.cli.render import apply_progress

                with apply_progress(console) as on_progress:
                    report = Reconciler(loaded, store, registry, on_progress=on_progress, stop=stop).apply(
                        wait=wait, allow_deletions=allow_deletions
                    )
    except StoppedError as exc:
        err.print(f"stopped by {signal.Signals(received[0]).name if received else 'a signal'}: {exc}")
        raise typer.Exit(128 + (received[0] if received else signal.SIGTERM)) from None
    except LockHeldError as exc:
        raise _fail_on(exc, EXIT_LOCKED) from None
    except RefusedError as exc:
        raise _fail(f"refused: {exc}", EXIT_CONFIG) from None
    except MeshcoreError as exc:
        raise _fail_on(exc, EXIT_FAILED) from None
    if output == Output.json:
        _emit_json(report.as_dict())
    else:
        from meshcore.cli.render import apply_view

        console.print(apply_view(report))
    if report.failed:  # a failure wins over a stop: it needs someone to look
        raise typer.Exit(EXIT_FAILED)
    if received and report.summary.get("not_run"):
        err.print(
            f"stopped by {signal.Signals(received[0]).name}: the actions in flight finished and were recorded, "
            "the rest did not start; the next apply goes on from there"
        )
        raise typer.Exit(128 + received[0])


@contextmanager
def _graceful(stop: threading.Event, received: list[int]) -> Iterator[None]:
    """While a run is applied: SIGTERM or SIGINT sets ``stop`` (the run winds down); a second one ends
    meshcore at once (``os._exit``: also as PID 1 in a container, where a default SIGTERM is ignored)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread can handle signals
        yield
        return
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if received:  # the second signal: at once (the actions in flight are not waited for)
            os._exit(128 + signum)
        received.append(signum)
        stop.set()

    for sig in signals:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def status(
    state: str = StateOpt,
    output: Output = OutputOpt,
    all_: bool = typer.Option(False, "--all", help="Include deleted tenants."),
) -> None:
    """Show recorded tenants, the last run and failures."""
    store = _store(state, create=False)
    if output == Output.json:
        from meshcore.views import status_data

        _emit_json(status_data(store, include_deleted=all_))
        return
    tenants = store.tenants(include_deleted=all_)
    runs = store.runs(limit=1)
    last = runs[0] if runs else None
    failures = [s for s in store.steps(run_id=last.id) if s.status == "failed"] if last else []
    from meshcore.cli.render import status_view

    console.print(status_view(tenants, last, failures))


@app.command()
def history(
    state: str = StateOpt,
    tenant: str = typer.Option(None, "--tenant", help="Steps of one tenant."),
    limit: int = typer.Option(10, "--limit"),
    output: Output = OutputOpt,
) -> None:
    """Show past runs, or the step history and audit trail of one tenant."""
    store = _store(state, create=False)
    if tenant:
        steps = store.steps(tenant_key=tenant)[-limit * 10 :]
        trail = store.audit_trail(tenant)
        if output == Output.json:
            _emit_json(
                {
                    "steps": [
                        {
                            "run": s.run_id,
                            "step": s.name,
                            "status": s.status,
                            "message": s.message,
                            "at": s.started_at,
                            "ms": s.duration_ms,
                            "runner": s.runner,  # shared runners: who recorded it, under which fencing token
                            "token": s.token,
                        }
                        for s in steps
                    ],
                    "audit": [
                        {"at": a.at, "action": a.action, "actor": a.actor, "details": a.details}
                        for a in trail
                    ],
                }
            )
            return
        from meshcore.cli.render import tenant_history_view

        console.print(tenant_history_view(tenant, steps, trail))
        return
    if output == Output.json:
        from meshcore.views import runs_data

        _emit_json(runs_data(store, limit))
        return
    runs = store.runs(limit)
    from meshcore.cli.render import runs_view

    console.print(runs_view(runs))


@app.command()
def approve(
    tenant: str = typer.Argument(..., help="Tenant key: workspace/project@platform."), state: str = StateOpt
) -> None:
    """Approve the deletion of a tenant marked for deletion."""
    from meshcore.errors import MeshcoreError
    from meshcore.reconciler import approve_deletion

    try:
        console.print(approve_deletion(_store(state, create=False), tenant))
    except MeshcoreError as exc:
        raise _fail_on(exc, EXIT_FAILED) from None


@app.command()
def preflight(config: Path = ConfigOpt, state: str = StateOpt, output: Output = OutputOpt) -> None:
    """Check each platform's credentials and permissions."""
    from meshcore.context import HookContext
    from meshcore.errors import MeshcoreError
    from meshcore.results import Capability

    loaded, registry = _load(config)
    store = _store(state)
    run = store.start_run("preflight", "cli")
    rows, ok = [], True
    for pid, platform in loaded.platforms.items():
        if not registry.has_capability(platform.type, Capability.PREFLIGHT):
            rows.append({"platform": pid, "check": "-", "ok": True, "message": "no preflight for this type"})
            continue
        ctx = HookContext(backend=store, platform_id=pid, run_id=run.id)
        try:
            report = registry.call("meshplatform_preflight", platform, ctx=ctx)
        except MeshcoreError as exc:
            rows.append({"platform": pid, "check": "preflight", "ok": False, "message": str(exc)})
            ok = False
            continue
        for c in report.checks:
            rows.append(
                {"platform": pid, "check": c.name, "ok": c.ok, "message": c.message, "scope": c.scope}
            )
            ok = ok and c.ok
    store.finish_run(run.id, "ok" if ok else "failed", {"checks": len(rows)})
    if output == Output.json:
        _emit_json(rows)
    else:
        from meshcore.cli.render import preflight_table

        console.print(preflight_table(rows))
    if not ok:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def discover(
    platform_id: str = typer.Argument(..., help="Platform id from the config."),
    config: Path = ConfigOpt,
    state: str = StateOpt,
    output: Output = OutputOpt,
) -> None:
    """List tenants on a platform that no tenant manages (candidates for import_id)."""
    from meshcore.context import HookContext
    from meshcore.errors import MeshcoreError

    loaded, registry = _load(config)
    if platform_id not in loaded.platforms:
        raise _fail(f"platform {platform_id!r} is not in the config", EXIT_CONFIG)
    store = _store(state)
    run = store.start_run("discover", "cli")
    platform = loaded.platforms[platform_id]
    try:
        found = registry.call(
            "meshplatform_discover_tenants",
            platform,
            ctx=HookContext(backend=store, platform_id=platform_id, run_id=run.id),
        )
    except MeshcoreError as exc:
        raise _fail_on(exc, EXIT_FAILED) from None
    managed = {t.platform_tenant_id for t in store.tenants(platform_id, include_deleted=True)}
    unmanaged = [d for d in found if d.platform_tenant_id not in managed]
    store.finish_run(run.id, "ok", {"found": len(found), "unmanaged": len(unmanaged)})
    if output == Output.json:
        _emit_json([d.model_dump(mode="json") for d in unmanaged])
        return
    from meshcore.cli.render import discovered_table

    console.print(discovered_table(platform_id, unmanaged))


@app.command()
def serve(
    config: Path = ConfigOpt,
    state: str = StateOpt,
    interval: int = typer.Option(
        300, "--interval", min=1, help="Seconds from the start of one reconcile to the next."
    ),
    costs_interval: int = typer.Option(
        86400, "--costs-interval", min=0, help="Seconds between cost collections (0: none)."
    ),
    listen: str = typer.Option("127.0.0.1:9464", "--listen", help="HOST:PORT of the HTTP endpoints."),
    max_staleness: int = typer.Option(
        None,
        "--max-staleness",
        min=1,
        help="/readyz fails when no run ended ok for this many seconds [default: 3 times --interval].",
    ),
) -> None:
    """Run apply every --interval seconds and costs collect every --costs-interval, with health
    endpoints and Prometheus metrics on --listen, until SIGTERM or SIGINT."""
    from meshcore.errors import UsageError
    from meshcore.serve import Service, bind, parse_listen, run

    try:
        host, port = parse_listen(listen)
    except UsageError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    try:  # the address first: a port in use is exit 2 before anything, the state store included, is made
        server = bind(host, port, None)
    except UsageError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    try:
        service = Service(
            config,
            _store(state),
            _registry(),
            interval=interval,
            costs_interval=costs_interval,
            max_staleness=max_staleness or 3 * interval,
        )
    except BaseException:
        server.server_close()
        raise
    server.service = service
    import logging

    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    logging.getLogger("meshcore.serve").warning(  # a log record: JSON in --log-format json, hidden by -q
        "serving http://%s/ (healthz, readyz, metrics, status, runs); apply every %s s, %s",
        address,
        interval,
        f"costs every {costs_interval} s" if costs_interval else "no cost collection",
    )
    try:
        run(service, server)
    finally:
        service.store.close()


costs_app = typer.Typer(help="Collect costs and show tenant usage reports.", no_args_is_help=True)
chargeback_app = typer.Typer(help="Chargeback statements per project and month.", no_args_is_help=True)
app.add_typer(costs_app, name="costs")
app.add_typer(chargeback_app, name="chargeback")
PeriodOpt = typer.Option(..., "--period", "-p", help="Month, e.g. 2026-10.")


@costs_app.command("collect")
def costs_collect(
    period: str = PeriodOpt,
    to: str = typer.Option(None, "--to", help="Last month of a range (inclusive)."),
    config: Path = ConfigOpt,
    state: str = StateOpt,
    output: Output = OutputOpt,
) -> None:
    """Collect costs of a month (or a range) from every platform; re-running replaces that data."""
    from meshcore.costs import CostService
    from meshcore.errors import MeshcoreError

    wanted = _months(period, to)
    loaded, registry = _load(config)
    store = _store(state)
    try:
        result = CostService(loaded, store, registry).collect(wanted)
    except MeshcoreError as exc:
        raise _fail_on(exc, EXIT_FAILED) from None
    if output == Output.json:
        _emit_json(result.as_dict())
    else:
        console.print(
            f"collected {result.lines} usage line(s) for {', '.join(result.months)} "
            f"({result.unattributed} unattributed)"
        )
        for pid, n in result.requests.items():
            console.print(f"  {pid}: {n} API request(s), cost {result.request_cost[pid]}")
        for note in result.incomplete:
            console.print(f"  [yellow]incomplete:[/] {note}")
        for problem in result.problems:
            err.print(f"  [red]✗[/] {_redacted(problem)}")
    if result.problems:
        raise typer.Exit(EXIT_FAILED)


@costs_app.command("report")
def costs_report(
    period: str = PeriodOpt,
    by: str = typer.Option("tenant", "--by", help="tenant, project or workspace."),
    config: Path = ConfigOpt,
    state: str = StateOpt,
    output: Output = OutputOpt,
) -> None:
    """Show a month's usage per tenant, project or workspace (unattributed accounts included)."""
    from meshcore.costs import CostService
    from meshcore.errors import MeshcoreError

    _months(period)
    loaded, registry = _load(config)
    try:
        report = CostService(loaded, _store(state, create=False), registry).report(period, by)
    except MeshcoreError as exc:
        raise _fail_on(exc, EXIT_CONFIG) from None
    if output == Output.json:
        _emit_json(report)
        return
    from meshcore.cli.render import usage_table

    console.print(usage_table(report))


@chargeback_app.command("export")
def chargeback_export(
    period: str = PeriodOpt,
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or json."),
    out: Path = typer.Option(None, "--out", help="Write to this file instead of standard output."),
    all_versions: bool = typer.Option(
        False, "--all-versions", help="Include CANCELLED versions (an audit trail; do not sum them)."
    ),
    config: Path = ConfigOpt,
    state: str = StateOpt,
) -> None:
    """Export a month's chargeback statements (finalizing them when the month is due).

    By default only each project's current version (FINAL or PREVIEW), so the rows add up.
    """
    from meshcore.chargeback import export, statements
    from meshcore.errors import MeshcoreError

    if fmt not in ("csv", "json"):
        raise _fail("--format must be csv or json", EXIT_CONFIG)
    _months(period)
    loaded, _registry = _load(config)
    try:
        rows = statements(
            _store(state, create=False), period, loaded.document.settings.costs.finalize_after_days, loaded
        )
    except MeshcoreError as exc:
        raise _fail_on(exc, EXIT_CONFIG) from None
    if not all_versions:
        rows = [r for r in rows if r["status"] != "CANCELLED"]
    from meshcore.redaction import redact_data

    text = export(redact_data(rows), fmt)
    if out:
        _write_out(out, text)
        console.print(f"wrote {len(rows)} statement(s) to {out}")
    else:
        sys.stdout.write(text)


def _write_out(path: Path, text: str) -> None:
    """Write ``--out``: a regular file completely or not at all, anything else (a pipe, /dev/stdout,
    a symlink) written through as it is. A path that cannot be written is exit code 2."""
    import os
    import stat
    import tempfile

    def fail(exc: OSError) -> typer.Exit:
        return _fail(f"cannot write --out {path}: {exc.strerror or exc}", EXIT_CONFIG)

    try:
        st = path.lstat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise fail(exc) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise _fail(f"cannot write --out {path}: it is a directory", EXIT_CONFIG)
        try:
            with open(path, "w", encoding="utf-8") as handle:  # follows a symlink, writes into a pipe
                handle.write(text)
        except OSError as exc:
            raise fail(exc) from None
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise fail(exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o644)  # keep an existing file's mode
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise fail(exc) from None


def _mount_plugin_commands(argv: list[str]) -> None:
    """Mount ``meshcore <type> ...`` for the plugin named first on the command line (only that one is loaded)."""
    args = iter(argv[1:])
    command = None
    for arg in args:  # skip the global options (and the values of those that take one)
        if arg in ("--log-level", "--log-format"):
            next(args, None)
        elif not arg.startswith("-"):
            command = arg
            break
    if command is None or command in {c.name for c in app.registered_commands}:
        return
    from meshcore.plugins import scan_entry_points

    if command not in {name for name, *_ in scan_entry_points()}:
        return
    from meshcore.errors import MeshcoreError
    from meshcore.plugins import PluginRegistry

    try:
        group = PluginRegistry.discover(only={command}).cli_commands(command)
    except MeshcoreError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(EXIT_PLUGIN) from None
    if group is not None:
        app.add_typer(group, name=command)


def main() -> None:
    """Console-script entry point."""
    from meshcore import gc_settings

    gc_settings.tune()
    _mount_plugin_commands(sys.argv)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
