"""AWS managed policies by their documents: a snapshot shipped with the plugin, refreshable from IAM.

The privilege guard judges a permission set by what its policies allow, so it
needs the document of every AWS managed policy a permission set attaches. The
plugin ships a snapshot (``data/aws-managed-policies.json.gz``: the default
version of each AWS managed policy, as IAM's ``GetPolicyVersion`` returns it).
``meshcore aws managed-policies refresh --out FILE`` takes a new one from the
organization's own IAM; ``identity_center.managed_policies_file`` makes the
plugin use it. A policy missing from the snapshot in use is treated as
privileged until a refreshed snapshot shows its document.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import urllib.parse
from functools import lru_cache
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).parent / "data" / "aws-managed-policies.json.gz"
FORMAT = 1


class Snapshot:
    """Documents of AWS managed policies by ARN (partition-independent: looked up by path and name)."""

    def __init__(self, data: dict[str, Any], origin: str):
        if data.get("format") != FORMAT or not isinstance(data.get("policies"), dict):
            raise ValueError(f"{origin} is not a managed-policy snapshot of format {FORMAT}")
        self.taken: str = str(data.get("taken", ""))
        self.origin = origin
        self._docs = {_path_and_name(arn): entry["document"] for arn, entry in data["policies"].items()}

    def __len__(self) -> int:
        return len(self._docs)

    def document(self, arn: str) -> dict[str, Any] | None:
        """The AWS managed policy's document; ``None`` when unknown or not AWS managed (an account's own)."""
        if ":iam::aws:policy/" not in arn:
            return None
        return self._docs.get(_path_and_name(arn))


def _path_and_name(arn: str) -> str:
    """``arn:aws-cn:iam::aws:policy/job-function/ViewOnlyAccess`` -> ``job-function/ViewOnlyAccess``."""
    return arn.split(":policy/", 1)[-1]


@lru_cache(maxsize=4)
def load(path: str | None = None) -> Snapshot:
    """The snapshot at ``path`` (gzip or plain JSON), or the shipped one."""
    file = Path(path) if path else SHIPPED
    raw = file.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return Snapshot(json.loads(raw), str(file))


def take(iam: Any, today: dt.date | None = None) -> dict[str, Any]:
    """A new snapshot from IAM: every AWS managed policy's default version (ListPolicies, GetPolicyVersion)."""
    policies: dict[str, Any] = {}
    for page in iam.get_paginator("list_policies").paginate(Scope="AWS", OnlyAttached=False):
        for policy in page["Policies"]:
            version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
            document = version["PolicyVersion"]["Document"]
            if isinstance(document, str):  # IAM returns it URL-encoded; boto3 usually decodes it already
                document = json.loads(urllib.parse.unquote(document))
            policies[policy["Arn"]] = {"version": policy["DefaultVersionId"], "document": document}
    return {
        "format": FORMAT,
        "taken": (today or dt.datetime.now(dt.UTC).date()).isoformat(),
        "source": "AWS managed policies: the default version of each, as IAM's GetPolicyVersion returns it",
        "policies": dict(sorted(policies.items())),
    }


def write(snapshot: dict[str, Any], out: Path) -> None:
    """Write a snapshot gzip-compressed (what :func:`load` reads)."""
    raw = json.dumps(snapshot, separators=(",", ":")).encode()
    out.write_bytes(gzip.compress(raw, 9, mtime=0))
