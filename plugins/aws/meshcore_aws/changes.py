"""The change feed of an AWS organization: which accounts may have drifted since a point in time.

Read from CloudTrail's event history of the management account (``LookupEvents`` with
``ReadOnly=false``: write events only, one request per 50 events), in ``us-east-1``
(where Organizations and Account Management record their events) and in the Identity
Center region. An event names an account when its request parameters do (tags, moves,
closure, policies attached to the account, account assignments, the account's name);
events about the organization's own structure (OUs, policies, permission sets) are
not tenant drift, as the platform's shared resources are observed in every run; any
other write of these services (e.g. a group membership changed in the identity store)
may concern any tenant, and the run reads them all.

What this does not name: StackSet instances changed through CloudFormation (their
events are not read), events CloudTrail delivers later than
``change_feed_delay_minutes`` (less any amount meshcore's clock is ahead of AWS's),
anything recorded only in another account (a member account, or a delegated
administrator of Organizations or Identity Center). The full drift check every
``drift_check.full_every_hours`` reads every tenant again.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from botocore.exceptions import ClientError

from meshcore import ChangedTenants, PlatformError
from meshcore_aws import retries
from meshcore_aws.run import AwsRun

SOURCES = frozenset(
    {
        "organizations.amazonaws.com",
        "account.amazonaws.com",
        "sso.amazonaws.com",
        "identitystore.amazonaws.com",
        "sso-directory.amazonaws.com",  # the Identity Center console's user and group edits
        "identitystore-scim.amazonaws.com",  # users and groups provisioned from an external IdP
    }
)
#: Events about one account: event name -> the request parameter that names it.
ACCOUNT_PARAMETER = {
    "TagResource": "resourceId",
    "UntagResource": "resourceId",
    "MoveAccount": "accountId",
    "CloseAccount": "accountId",
    "RemoveAccountFromOrganization": "accountId",
    "AttachPolicy": "targetId",
    "DetachPolicy": "targetId",
    "PutAccountName": "accountId",
    "PutAlternateContact": "accountId",
    "DeleteAlternateContact": "accountId",
    "CreateAccountAssignment": "targetId",
    "DeleteAccountAssignment": "targetId",
}
#: The organization's own structure, observed in every run with the platform's shared resources.
SHARED = frozenset(
    {
        "CreateAccount",
        "CreateOrganizationalUnit",
        "UpdateOrganizationalUnit",
        "DeleteOrganizationalUnit",
        "CreatePolicy",
        "UpdatePolicy",
        "DeletePolicy",
        "CreatePermissionSet",
        "UpdatePermissionSet",
        "DeletePermissionSet",
        "AttachManagedPolicyToPermissionSet",
        "DetachManagedPolicyFromPermissionSet",
        "AttachCustomerManagedPolicyReferenceToPermissionSet",
        "DetachCustomerManagedPolicyReferenceFromPermissionSet",
        "PutInlinePolicyToPermissionSet",
        "DeleteInlinePolicyFromPermissionSet",
        "ProvisionPermissionSet",
    }
)
ACCOUNT_ID = re.compile(r"^\d{12}$")
#: Where a partition's global services (Organizations, Account Management) record their events.
HOME_REGION = {"aws": "us-east-1", "aws-us-gov": "us-gov-west-1", "aws-cn": "cn-northwest-1"}


def changed_accounts(run: AwsRun, since: dt.datetime) -> ChangedTenants:
    """The accounts CloudTrail's event history names since ``since`` (less the delivery delay)."""
    until = dt.datetime.now(dt.UTC)
    # events carry whole seconds: one more, so that an event in the second ``since`` falls in is not lost
    start = since - dt.timedelta(minutes=run.cfg.change_feed_delay_minutes, seconds=1)
    regions = {HOME_REGION.get(run.cfg.partition, run.cfg.region)}
    if run.cfg.identity_center is not None:
        regions.add(run.cfg.identity_center.region)
    accounts: set[str] = set()
    for region in sorted(regions):
        for event in _events(run, region, start, until):
            named = _account_of(event)
            if named is None:
                return ChangedTenants(everything=True, until=until)
            accounts |= named
    return ChangedTenants(platform_tenant_ids=frozenset(accounts), until=until)


def _events(run: AwsRun, region: str, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    client = run.sessions.client("management", "cloudtrail", region=region)
    try:
        return retries.listed(
            client,
            "lookup_events",
            "Events",
            LookupAttributes=[{"AttributeKey": "ReadOnly", "AttributeValue": "false"}],
            StartTime=start,
            EndTime=end,
        )
    except ClientError as exc:
        raise PlatformError(f"CloudTrail's event history in {region}: {retries.describe(exc)}") from None


def _account_of(event: dict[str, Any]) -> set[str] | None:
    """The accounts an event concerns (empty: none), or ``None`` if it may concern any."""
    if event.get("EventSource") not in SOURCES:
        return set()
    name = str(event.get("EventName", ""))
    if name in SHARED:
        return set()
    parameter = ACCOUNT_PARAMETER.get(name)
    if parameter is None:
        return None
    try:
        detail = json.loads(event.get("CloudTrailEvent") or "{}")
    except ValueError:
        return None
    value = str((detail.get("requestParameters") or {}).get(parameter) or "")
    if ACCOUNT_ID.match(value):
        return {value}
    if value.startswith(("ou-", "r-", "p-")):  # an OU, the root or a policy: the organization's structure
        return set()
    return None  # not said which (hidden, or missing): any account
