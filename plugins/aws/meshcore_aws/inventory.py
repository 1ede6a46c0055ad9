"""What ``meshcore aws init`` learns about an organization, with read calls only.

Organizations: ``DescribeOrganization``, ``ListRoots``, ``ListOrganizationalUnitsForParent``
and ``ListAccountsForParent`` (the OU tree and the accounts in each OU). IAM Identity
Center: ``sso-admin ListInstances``, region by region until the instance's home region
answers (the API has no other way to find it). Credentials come from boto3's default
chain; ``AWS_ENDPOINT_URL`` points it at the local sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

#: A region answers with one of these when it is not enabled for the account (an opt-in region).
REGION_NOT_ENABLED = {"UnrecognizedClientException", "InvalidClientTokenId", "AuthFailure"}
CALLS = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=30)
PROBE = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=15)


class InventoryError(Exception):
    """The organization cannot be read; the message is one line saying why and what to do."""


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    email: str
    state: str


@dataclass(frozen=True)
class Ou:
    """An OU, or the root (``path`` empty), with the accounts directly in it."""

    id: str
    path: tuple[str, ...]
    accounts: tuple[Account, ...]


@dataclass(frozen=True)
class IdentityCenter:
    region: str
    instance_arn: str
    identity_store_id: str


@dataclass(frozen=True)
class Inventory:
    organization_id: str
    partition: str
    management_account_id: str
    management_email: str
    region: str
    endpoint: str
    ous: tuple[Ou, ...]  # the root first, then depth first in name order
    identity_center: IdentityCenter | None
    regions_probed: int


def read(session: Any, identity_center_region: str | None = None) -> Inventory:
    """Read the organization behind ``session``'s credentials; raises :class:`InventoryError`."""
    region = session.region_name or "us-east-1"
    with _explained("organizations"):
        org = session.client("organizations", region_name=region, config=CALLS)
        described = org.describe_organization()["Organization"]
        root = org.list_roots()["Roots"][0]["Id"]
        ous = list(_walk(org, root, ()))
    partition = described["Arn"].split(":")[1]
    regions = [identity_center_region] if identity_center_region else _regions(session, region, partition)
    found = None
    probed = 0
    for probe in regions:
        probed += 1
        found = _identity_center(session, probe, described["MasterAccountId"])
        if found is not None:
            break
    return Inventory(
        organization_id=described["Id"],
        partition=partition,
        management_account_id=described["MasterAccountId"],
        management_email=described.get("MasterAccountEmail", ""),
        region=region,
        endpoint=org.meta.endpoint_url,
        ous=tuple(ous),
        identity_center=found,
        regions_probed=probed,
    )


def _walk(org: Any, ou_id: str, path: tuple[str, ...]) -> Iterator[Ou]:
    accounts = [
        Account(a["Id"], a.get("Name", ""), a.get("Email", ""), a.get("State", "UNKNOWN"))
        for a in _pages(org, "list_accounts_for_parent", "Accounts", ParentId=ou_id)
    ]
    yield Ou(ou_id, path, tuple(sorted(accounts, key=lambda a: (a.name, a.id))))
    children = _pages(org, "list_organizational_units_for_parent", "OrganizationalUnits", ParentId=ou_id)
    for child in sorted(children, key=lambda c: (c["Name"], c["Id"])):
        yield from _walk(org, child["Id"], (*path, child["Name"]))


def _pages(client: Any, op: str, key: str, **kwargs: Any) -> list[Any]:
    return [item for page in client.get_paginator(op).paginate(**kwargs) for item in page[key]]


def _regions(session: Any, first: str, partition: str) -> list[str]:
    """The session's region first, then every region of the partition that has Identity Center."""
    others = sorted(session.get_available_regions("sso-admin", partition_name=partition))
    return [first, *(r for r in others if r != first)]


def _identity_center(session: Any, region: str, management: str) -> IdentityCenter | None:
    """The organization's Identity Center instance if ``region`` is its home region.

    Several instances (account instances besides the organization's): the one the management
    account owns."""
    try:
        with _explained("sso"):
            sso = session.client("sso-admin", region_name=region, config=PROBE)
            instances = _pages(sso, "list_instances", "Instances")
    except InventoryError as exc:
        if isinstance(exc.__cause__, EndpointConnectionError) or _code(exc.__cause__) in REGION_NOT_ENABLED:
            return None  # no endpoint there, or a region the account has not enabled
        raise
    if not instances:
        return None
    chosen = next((i for i in instances if i.get("OwnerAccountId") == management), instances[0])
    return IdentityCenter(region, chosen["InstanceArn"], chosen["IdentityStoreId"])


def _code(exc: BaseException | None) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


@contextmanager
def _explained(service: str) -> Iterator[None]:
    """Turn what boto3 raises into one line that says what is wrong and what to do.

    ``service`` is the IAM prefix of the API called, to name a denied action as a policy does."""
    try:
        yield
    except NoCredentialsError as exc:
        raise InventoryError(
            "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) to "
            "credentials of the management account; for the local sandbox, the exports "
            "'meshcore aws sandbox' prints"
        ) from exc
    except ClientError as exc:
        raise InventoryError(_client_error(exc, service)) from exc
    except BotoCoreError as exc:
        raise InventoryError(f"cannot read from AWS: {exc}") from exc


def _client_error(exc: ClientError, service: str) -> str:
    code = _code(exc)
    message = exc.response.get("Error", {}).get("Message", "")
    action = f"{service}:{exc.operation_name}"
    if code == "AWSOrganizationsNotInUseException":
        return (
            "the account of these credentials is not in an AWS organization; run with credentials of "
            "an organization's management account"
        )
    if code.startswith("AccessDenied"):
        return (
            f"AWS denied {action} to these credentials ({message}); run with credentials of the "
            "management account allowed to read Organizations and IAM Identity Center"
        )
    if code in REGION_NOT_ENABLED:
        return f"AWS did not accept these credentials for {action} ({code}: {message})"
    return f"{action} failed: {code}: {message}"
