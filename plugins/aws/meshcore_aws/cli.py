"""``meshcore aws ...``: the sandbox, the end-to-end demo and the account-setup templates."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="Commands of the AWS plugin.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 140)


def example_config() -> Path:
    """The example organization shipped in the package (``meshcore_aws/example``), wherever it is installed."""
    path = Path(__file__).resolve().parent / "example" / "meshcore.yaml"
    if not path.is_file():
        raise typer.BadParameter(
            f"{path} is missing from the installed meshcore-aws; reinstall it or pass --config"
        )
    return path


@app.command()
def sandbox(
    port: int = typer.Option(5000, min=1, max=65535, help="Port on 127.0.0.1."),
    bootstrap: bool = typer.Option(True, help="Set up the organization, accounts, roles and users."),
) -> None:
    """Run a local AWS organization in the foreground (Ctrl-C stops it)."""
    from meshcore_aws.sandbox import Sandbox

    box = Sandbox(port=port)
    try:
        endpoint = box.start()
    except OSError as exc:
        _fail(2, str(exc))
    if bootstrap:
        box.bootstrap()
    console.print(f"[bold green]AWS sandbox running at {endpoint}[/]")
    for name, account in box.accounts.items():
        console.print(f"  {name:12} account {account}")
    console.print("\nUse it from another shell:")
    for key, value in box.env().items():
        console.print(f"  export {key}={value}")
    if bootstrap:
        console.print(f"  meshcore apply -c {example_config()}")
        console.print("  meshcore aws init --out meshcore.yaml   # a starter config of this organization")
        console.print(f"  aws --endpoint-url {endpoint} organizations list-accounts")
    else:
        console.print("  (nothing set up: no organization, accounts or roles yet)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        box.stop()


@app.command()
def demo(
    config: Path = typer.Option(
        None, "--config", "-c", help="Default: the example organization shipped with the plugin."
    ),
    state: str = typer.Option(None, "--state", help="Default: a fresh temporary state store."),
) -> None:
    """Replicate the example organization into a fresh in-process sandbox, twice, and show the result.

    The demo runs the same ``meshcore`` commands a user runs (``apply``, ``status``,
    ``costs collect``, ``chargeback export``) against the sandbox.
    """
    from meshcore_aws.sandbox import Sandbox

    config = config or example_config()
    state = state or f"sqlite:///{tempfile.mkdtemp(prefix='meshcore-demo-')}/state.db"
    box = Sandbox()
    box.start()
    try:
        box.bootstrap()
        env = {**os.environ, **box.env()}
        console.print(f"[bold]Config[/] {config}", highlight=False)
        console.print(
            f"[bold]Sandbox[/] AWS organization at {box.endpoint} "
            f"(management {box.accounts['management']}, meshcloud {box.accounts['meshcloud']}, "
            f"automation {box.accounts['automation']})"
        )
        common = ["--config", str(config), "--state", state]
        for attempt in ("first", "second"):
            t0 = time.perf_counter()
            report, code = _meshcore(env, "apply", *common, "-o", "json")
            counts = ", ".join(f"{v} {k}" for k, v in sorted(report["counts"].items()))
            failed = [i for i in report["items"] if i["status"] == "failed"]
            verdict = "no changes" if not report["counts"].get("changed") and not failed else "converged"
            console.print(
                f"[bold]{attempt} apply[/]: {counts} in {time.perf_counter() - t0:.1f}s — {verdict}"
            )
            for item in failed:
                console.print(f"  [red]✗ {item['key']}: {item['message']}[/]")
            if code not in (0, 1):
                raise typer.Exit(code)
        status, _ = _meshcore(env, "status", "--state", state, "-o", "json")
        _show_tenants(box, status["tenants"])
        _show_access(box)
        today = dt.datetime.now(dt.UTC).date().replace(day=1)
        end = today - dt.timedelta(days=1)
        last = end.strftime("%Y-%m")
        accounts = [t["platform_tenant_id"] for t in status["tenants"] if t["platform_tenant_id"]]
        box.inject_costs(end.replace(day=1).isoformat(), today.isoformat(), accounts)
        result, _ = _meshcore(env, "costs", "collect", "--period", last, *common, "-o", "json")
        console.print(
            f"[bold]costs[/] {last}: {result['lines']} usage lines from {result['requests'].get('aws', 0)} "
            f"Cost Explorer request(s) ({result['request_cost'].get('aws')}), "
            f"{result['unattributed']} unattributed"
        )
        rows, _ = _meshcore(env, "chargeback", "export", "--period", last, "--format", "json", *common)
        _show_chargeback(rows, last)
    finally:
        box.stop()


def _meshcore(env: dict[str, str], *args: str) -> tuple[Any, int]:
    """Run one ``meshcore`` command as a user would and return its JSON output and exit code."""
    done = subprocess.run(
        [sys.executable, "-m", "meshcore", *args], env=env, capture_output=True, text=True, check=False
    )
    try:
        return json.loads(done.stdout), done.returncode
    except json.JSONDecodeError:
        console.print(
            f"[red]meshcore {args[0]} failed (exit {done.returncode}):[/]\n{done.stderr or done.stdout}"
        )
        raise typer.Exit(done.returncode or 1) from None


def _show_tenants(box: Any, tenants: list[dict[str, Any]]) -> None:
    org = box.client("organizations")
    names: dict[str, str] = {}

    def walk(parent: str, prefix: str) -> None:
        for ou in org.list_organizational_units_for_parent(ParentId=parent)["OrganizationalUnits"]:
            names[ou["Id"]] = f"{prefix}/{ou['Name']}"
            walk(ou["Id"], names[ou["Id"]])

    walk(org.list_roots()["Roots"][0]["Id"], "")
    table = Table(title="Tenants")
    for col in ("tenant", "account", "OU", "alias", "replicated tags (meshcore:)"):
        table.add_column(col)
    for t in tenants:
        account = t["platform_tenant_id"]
        parent = org.list_parents(ChildId=account)["Parents"][0]["Id"] if account else ""
        tags = org.list_tags_for_resource(ResourceId=account)["Tags"] if account else []
        shown = sorted(
            (x["Key"].split(":", 1)[-1], x["Value"]) for x in tags if x["Key"].startswith("meshcore:")
        )
        table.add_row(
            t["tenant"],
            account or "-",
            names.get(parent, parent),
            t["attributes"].get("alias", ""),
            ", ".join(f"{k}={v}" for k, v in shown if k not in ("workspace", "project", "platform")),
        )
    console.print(table)


def _show_access(box: Any) -> None:
    sso = box.client("sso-admin")
    store = box.client("identitystore")
    instance = sso.list_instances()["Instances"][0]
    ps_names = {}
    for arn in sso.list_permission_sets(InstanceArn=instance["InstanceArn"])["PermissionSets"]:
        ps_names[arn] = sso.describe_permission_set(
            InstanceArn=instance["InstanceArn"], PermissionSetArn=arn
        )["PermissionSet"]["Name"]
    users = {
        u["UserId"]: u["UserName"]
        for u in store.list_users(IdentityStoreId=instance["IdentityStoreId"])["Users"]
    }
    table = Table(title="Who has which role (IAM Identity Center)")
    for col in ("group", "members", "permission sets on account"):
        table.add_column(col)
    for g in sorted(
        store.list_groups(IdentityStoreId=instance["IdentityStoreId"])["Groups"],
        key=lambda g: g["DisplayName"],
    ):
        members = store.list_group_memberships(
            IdentityStoreId=instance["IdentityStoreId"], GroupId=g["GroupId"]
        )["GroupMemberships"]
        assigned = sso.list_account_assignments_for_principal(
            InstanceArn=instance["InstanceArn"], PrincipalId=g["GroupId"], PrincipalType="GROUP"
        )["AccountAssignments"]
        table.add_row(
            g["DisplayName"],
            ", ".join(sorted(users.get(m["MemberId"]["UserId"], "?") for m in members)),
            ", ".join(
                sorted(f"{ps_names.get(a['PermissionSetArn'], '?')} @ {a['AccountId']}" for a in assigned)
            ),
        )
    console.print(table)


def _show_chargeback(rows: list[dict[str, Any]], month: str) -> None:
    table = Table(title=f"Chargeback {month}")
    for col in ("project", "version", "status", "total", "payment method"):
        table.add_column(col)
    for r in rows:
        pm = r.get("payment_method") or {}
        table.add_row(
            f"{r['workspace']}/{r['project']}",
            str(r["version"]),
            r["status"],
            ", ".join(f"{a} {c}" for c, a in r["totals"].items()),
            pm.get("id", ""),
        )
    console.print(table)


@app.command()
def init(
    out: Path = typer.Option(Path("meshcore.yaml"), "--out", help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    platform_id: str = typer.Option("aws", "--platform-id", help="The platform's id in the config."),
    identity_center_region: str = typer.Option(
        None,
        "--identity-center-region",
        help="Identity Center's home region; default: found by asking each region.",
    ),
) -> None:
    """Write a starter config for the organization of the current AWS credentials, reading only.

    It holds a landing zone per OU, the Identity Center instance and, commented out, the
    existing accounts as import candidates. As written it validates and changes nothing.
    Credentials: boto3's default chain (against the local sandbox: its exports).
    """
    import boto3
    from botocore.exceptions import BotoCoreError

    from meshcore_aws import inventory, starter_config

    if not starter_config.IDENTIFIER.fullmatch(platform_id):
        _fail(
            2,
            f"--platform-id {platform_id!r} is not an id: 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit",
        )
    if out.exists() and not force:
        _fail(2, f"{out} exists; pass --force to overwrite it")
    try:
        found = inventory.read(boto3.Session(), identity_center_region)
    except inventory.InventoryError as exc:
        _fail(1, str(exc))
    except BotoCoreError as exc:  # a broken profile or config file
        _fail(1, f"cannot use the AWS credentials: {exc}")
    text = starter_config.render(found, platform_id, dt.datetime.now(dt.UTC).date())
    # written beside the target and renamed over it: a failed write (a full disk) leaves nothing behind,
    # and an existing file is replaced whole or not at all
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("x", encoding="utf-8") as handle:
            handle.write(text)
        if force:
            os.replace(temporary, out)
        else:
            os.link(temporary, out)  # fails if it appeared meanwhile
    except FileExistsError:
        _fail(2, f"{out} exists; pass --force to overwrite it")
    except OSError as exc:
        _fail(2, f"cannot write {out}: {exc.strerror or exc}")
    finally:
        temporary.unlink(missing_ok=True)
    ic = found.identity_center
    console.print(
        f"wrote {out}: organization {found.organization_id}, {len(found.ous) - 1} OU(s), "
        + (f"Identity Center in {ic.region}" if ic else "no Identity Center instance found")
        + f"; next: meshcore validate -c {out}",
        highlight=False,
    )


def _fail(code: int, message: str) -> NoReturn:
    """One line on standard error, then exit with ``code`` (see the exit codes in the CLI docs)."""
    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(' '.join(message.split()))}", highlight=False
    )
    raise typer.Exit(code)


@app.command("setup-templates")
def setup_templates(directory: Path = typer.Argument(..., help="Where to write the templates.")) -> None:
    """Write CloudFormation templates for the meshcloud, management and automation accounts."""
    from meshcore_aws.setup_templates import write_templates

    for path in write_templates(directory):
        console.print(f"wrote {path}")


policies_app = typer.Typer(
    help="The AWS managed-policy snapshot the privilege guard reads.", no_args_is_help=True
)
app.add_typer(policies_app, name="managed-policies")


@policies_app.command("refresh")
def managed_policies_refresh(
    out: Path = typer.Option(..., "--out", help="Where to write the snapshot (gzip JSON)."),
    profile: str = typer.Option(
        None, "--profile", help="AWS profile (default: the standard credential chain)."
    ),
) -> None:
    """Take a new snapshot of every AWS managed policy's document from IAM (ListPolicies, GetPolicyVersion).

    AWS managed policies are the same in every account: any credentials with
    iam:ListPolicies and iam:GetPolicyVersion do. Point
    ``identity_center.managed_policies_file`` at the file to have the guard use it.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from meshcore_aws import managed_policies

    try:
        iam = boto3.Session(profile_name=profile).client("iam")
        snapshot = managed_policies.take(iam)
    except (BotoCoreError, ClientError) as exc:
        console.print(
            f"[bold red]error:[/] cannot read AWS managed policies from IAM: {exc}", highlight=False
        )
        raise typer.Exit(1) from None
    try:
        managed_policies.write(snapshot, out)
    except OSError as exc:
        console.print(f"[bold red]error:[/] cannot write {out}: {exc.strerror or exc}", highlight=False)
        raise typer.Exit(2) from None
    console.print(
        f"wrote {len(snapshot['policies'])} AWS managed policies to {out} (taken {snapshot['taken']})"
    )


@policies_app.command("check")
def managed_policies_check(
    policy: list[str] = typer.Argument(..., help="Managed policy ARNs or names (e.g. PowerUserAccess)."),
    snapshot: Path = typer.Option(None, "--snapshot", help="A snapshot file; default: the shipped one."),
) -> None:
    """Say whether the guard treats managed policies as privileged, and why."""
    from meshcore_aws import managed_policies, privilege

    data = managed_policies.load(str(snapshot) if snapshot else None)
    privileged = False
    for name in policy:
        arn = name if name.startswith("arn:") else f"arn:aws:iam::aws:policy/{name}"
        verdict = privilege.judge([arn], None, snapshot_file=str(snapshot) if snapshot else None)
        privileged = privileged or bool(verdict)
        console.print(
            f"{name}: "
            + (
                "[bold red]privileged[/] — " + "; ".join(verdict.reasons)
                if verdict
                else "[green]not privileged[/]"
            ),
            highlight=False,
        )
    console.print(f"(snapshot of {data.taken}, {len(data)} policies)", style="dim")
    if privileged:
        raise typer.Exit(1)
