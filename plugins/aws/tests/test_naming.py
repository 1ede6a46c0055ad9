"""Names rendered from patterns are checked against AWS's own patterns before any call."""

from __future__ import annotations

import pytest

from meshcore import PlatformError
from meshcore_aws import naming

VALUES = {"workspace": "payments", "project": "checkout", "platform": "aws"}


@pytest.mark.parametrize(
    "pattern, problem",
    [
        ("{workspace}<{project}>", "printable ASCII"),
        ("{workspace}-{tag:team}", "printable ASCII"),  # a non-ASCII tag value
        ("x" * 51, "1-50 characters"),
    ],
)
def test_account_names_aws_would_refuse_are_refused(pattern, problem):
    with pytest.raises(PlatformError, match=problem):
        naming.account_name(pattern, VALUES, {"team": "Zahlungsverkehr-Über"})


@pytest.mark.parametrize(
    "pattern, problem",
    [
        ("a@b.c", "6-64 ASCII"),
        ("aws+{workspace}-{project}@exämple.com", "6-64 ASCII"),
        ("aws+" + "x" * 60 + "@example.com", "at most 64"),
        ("aws-{workspace}", "not an e-mail address"),
    ],
)
def test_account_emails_aws_would_refuse_are_refused(pattern, problem):
    with pytest.raises(PlatformError, match=problem):
        naming.account_email(pattern, VALUES, {})


def test_valid_names_pass_unchanged():
    assert naming.account_name("{workspace}-{project}", VALUES, {}) == "payments-checkout"
    assert naming.account_email("aws+{workspace}-{project}@Example.com", VALUES, {}) == (
        "aws+payments-checkout@example.com"
    )
    assert naming.account_alias("Acme {workspace}_{project}", VALUES, {}) == "acme-payments-checkout"
