"""The starter config ``meshcore aws init`` writes for an organization it has read.

It validates as written and changes nothing when applied: one landing zone per OU (and
one for the root when member accounts sit there), the Identity Center instance, and the
existing accounts as ``import_id`` candidates in a commented-out ``workspaces`` block,
each in the landing zone of the OU it is in now, so importing one does not move it.
"""

from __future__ import annotations

import datetime as dt
import re

import yaml

from meshcore_aws.inventory import Account, Inventory, Ou

#: Platform and landing-zone ids (meshcore's identifier rule), project ids and workspace ids.
IDENTIFIER = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
PROJECT_ID_MAX = 30
IMPORT_WORKSPACE = "imported"
SIMPLE_EMAIL = re.compile(r"^([A-Za-z0-9._%+-]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,})$")


def render(inv: Inventory, platform_id: str, today: dt.date) -> str:
    """The config text; ``platform_id`` must match :data:`IDENTIFIER`."""
    by_path = not any("/" in name for ou in inv.ous for name in ou.path)
    zones = _landing_zones(inv)
    candidates = [(a, ou) for ou in inv.ous for a in ou.accounts if _candidate(inv, a)]
    lines = [
        f"# meshcore config for the AWS organization {inv.organization_id} (management account "
        f"{inv.management_account_id}),",
        f"# written by 'meshcore aws init' on {today.isoformat()} from what {inv.endpoint} showed; "
        "it only read.",
        "# Check it with 'meshcore validate -c FILE' and 'meshcore plan -c FILE': as written, it changes nothing.",
        "version: 1",
        "",
        "platforms:",
        f"  - id: {_q(platform_id)}",
        "    type: aws",
        f"    name: {_q(f'AWS organization {inv.organization_id}')}",
        "    config:",
        f"      region: {_q(inv.region)}",
        "      # Acts with the credentials 'meshcore aws init' used. Recommended instead: the MeshfedServiceRole",
        "      # that 'meshcore aws setup-templates' creates, assumed with its ExternalId:",
        "      #   management:",
        f"      #     role_arn: arn:{inv.partition}:iam::{inv.management_account_id}:role/MeshfedServiceRole",
        "      #     external_id: ${MESHCORE_MANAGEMENT_EXTERNAL_ID}",
        "      management: base",
        "      # Root e-mail of each new account, unique across AWS. Check that your mail server accepts it.",
        f"      account_email_pattern: {_q(_email_pattern(inv.management_email))}",
        "      deletion:",
        "        mode: close",
        "        # only accounts carrying this tag are ever closed; meshcore tags the accounts it creates",
        "        guard: {key: closable, value: 'true'}",
        *_identity_center(inv),
        "",
        *_landing_zone_lines(inv, zones, by_path, platform_id),
        *_import_lines(inv, candidates, zones, platform_id),
    ]
    return "\n".join(lines) + "\n"


def _q(value: str) -> str:
    """A YAML double-quoted scalar; ``${`` is written ``$${`` so that it is not read as a variable."""
    text = yaml.safe_dump(
        value.replace("${", "$${"), default_style='"', width=float("inf"), allow_unicode=True
    )
    return text.strip()


def _comment(value: str) -> str:
    """Text from AWS, safe in a comment (no line breaks or other control characters)."""
    return "".join(c if c.isprintable() else "?" for c in value)


def _path(ou: Ou) -> str:
    return "/" + "/".join(ou.path)


def _candidate(inv: Inventory, account: Account) -> bool:
    """Accounts meshcore may import: not the management account, and ACTIVE."""
    return account.id != inv.management_account_id and account.state == "ACTIVE"


def _email_pattern(management_email: str) -> str:
    """``local+{workspace}-{project}@domain`` from the management account's e-mail."""
    match = SIMPLE_EMAIL.fullmatch(management_email)
    if not match:
        return "aws+{workspace}-{project}@example.com"
    local, domain = match.groups()
    return f"{local}{'-' if '+' in local else '+'}{{workspace}}-{{project}}@{domain}"


def _slug(text: str, limit: int) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-")[:limit].strip("-")


def _unique(base: str, fallback: str, taken: set[str], limit: int) -> str:
    base = base or fallback
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base[: limit - len(str(n)) - 1].rstrip('-')}-{n}"
    taken.add(candidate)
    return candidate


def _landing_zones(inv: Inventory) -> dict[str, str]:
    """OU id -> landing zone id: every OU, and the root when it holds accounts meshcore could import."""
    taken: set[str] = set()
    zones: dict[str, str] = {}
    for ou in inv.ous:
        if not ou.path and not any(_candidate(inv, a) for a in ou.accounts):
            continue
        zones[ou.id] = _unique(_slug("-".join(ou.path) or "root", 64), f"ou-{ou.id[-8:]}", taken, 64)
    return zones


def _identity_center(inv: Inventory) -> list[str]:
    ic = inv.identity_center
    if ic is None:
        return [
            f"      # No IAM Identity Center instance answered in {inv.regions_probed} region(s). Once it is",
            "      # enabled, add identity_center (see the AWS docs, Access) to replicate project role bindings.",
        ]
    store = ic.identity_store_id
    return [
        "      # IAM Identity Center: project role bindings become groups and account assignments.",
        "      identity_center:",
        f"        region: {_q(ic.region)}  # the instance's home region",
        f"        instance_arn: {_q(ic.instance_arn)}",
        f"        identity_store_id: {_q(store)}",
        f"        # sign_in_url: https://{_comment(store)}.awsapps.com/start   (or your portal's alias)",
        "        # Permission sets meshcore manages, and which project role gets which:",
        "        # permission_sets:",
        "        #   - name: Developer",
        f"        #     managed_policies: [arn:{inv.partition}:iam::aws:policy/PowerUserAccess]",
        "        #   - name: ReadOnly",
        f"        #     managed_policies: [arn:{inv.partition}:iam::aws:policy/ReadOnlyAccess]",
        "        # role_mappings: {admin: [Developer], user: [Developer], reader: [ReadOnly]}",
    ]


def _landing_zone_lines(inv: Inventory, zones: dict[str, str], by_path: bool, platform_id: str) -> list[str]:
    if not zones:
        return [
            "# The organization has no OU yet. A landing zone names the OU its accounts go to:",
            "# landing_zones:",
            "#   - id: dev",
            f"#     platform: {_q(platform_id)}",
            "#     config: {ou: /Workloads/Dev, create_ou: true}",
            "landing_zones: []",
        ]
    lines = [
        "# One landing zone per OU (the description names the OU). Keep those new accounts may go to;",
        "# a landing zone an imported account uses keeps it where it is.",
        "landing_zones:",
    ]
    for ou in inv.ous:
        if ou.id not in zones:
            continue
        count = len(ou.accounts)
        lines += [
            f"  - id: {_q(zones[ou.id])}",
            f"    platform: {_q(platform_id)}",
            f"    name: {_q(_path(ou) if ou.path else 'Root')}",
            f"    description: {_q(f'OU {ou.id}, {count} account(s) when written')}",
            f"    config: {{ou: {_q(_path(ou) if by_path else ou.id)}}}",
        ]
    return lines


def _import_lines(
    inv: Inventory, candidates: list[tuple[Account, Ou]], zones: dict[str, str], platform_id: str
) -> list[str]:
    left_out = [a for ou in inv.ous for a in ou.accounts if not _candidate(inv, a)]
    lines = [
        "",
        f"# Existing accounts: {len(candidates)} candidate(s) for import. Left out: the management account"
        + (
            ", and accounts that are not ACTIVE: "
            + ", ".join(
                f"{a.id} ({_comment(a.state)})" for a in left_out if a.id != inv.management_account_id
            )
            if any(a.id != inv.management_account_id for a in left_out)
            else ""
        )
        + ".",
    ]
    if not candidates:
        return [*lines, "# workspaces: []   (see 'meshcore discover' once accounts exist)"]
    lines += [
        "# To have meshcore manage some of them, uncomment the block (keep the projects you want),",
        "# choose their workspace and project ids, and run 'meshcore plan': each shows 'import <account>'",
        "# and what meshcore would then change: the account's name (account_name_pattern), its owned",
        "# tags and its alias. It stays in its OU. 'meshcore discover' lists the unmanaged accounts again.",
        "# workspaces:",
        f"#   - id: {IMPORT_WORKSPACE}",
        "#     name: Imported accounts",
        "#     projects:",
    ]
    taken: set[str] = set()
    for account, ou in candidates:
        project = _unique(
            _slug(account.name, PROJECT_ID_MAX), f"account-{account.id[-8:]}", taken, PROJECT_ID_MAX
        )
        about = f"{_q(account.name)} <{account.email}> in {_path(ou)}"
        tenant = f"platform: {_q(platform_id)}, landing_zone: {_q(zones[ou.id])}, import_id: {_q(account.id)}"
        lines += [f"#       - id: {_q(project)}  # {_comment(about)}", f"#         tenants: [{{{tenant}}}]"]
    return lines
