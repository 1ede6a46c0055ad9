"""Render account names, e-mails, aliases and tags from patterns, within AWS's limits.

Placeholders: ``{workspace}``, ``{project}``, ``{platform}``, ``{workspace_name}``,
``{project_name}`` and ``{tag:KEY}`` (a project tag, else a workspace tag).
Characters AWS does not accept are replaced; a result that is still invalid
(too long, too short) is an error naming the pattern and the value, raised
before any cloud call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from meshcore import PlatformError

PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([^{}]+))?\}")
KNOWN = {"workspace", "project", "platform", "workspace_name", "project_name", "tag"}

EMAIL_MAX = 64
NAME_MAX = 50
ALIAS_MIN, ALIAS_MAX = 3, 63
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256
_TAG_CHARS = re.compile(r"[^\w\s.:/=+\-@]", re.UNICODE)
_EMAIL_LOCAL = re.compile(r"[^a-z0-9.+_-]")
_ALIAS = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


def pattern_problems(pattern: str) -> list[str]:
    """Static problems of a pattern: unknown placeholders, unbalanced braces."""
    problems = []
    for m in PLACEHOLDER.finditer(pattern):
        name, arg = m.group(1), m.group(2)
        if name not in KNOWN:
            problems.append(
                f"unknown placeholder {{{name}}} (known: {', '.join(sorted(KNOWN - {'tag'}))}, tag:KEY)"
            )
        elif name == "tag" and not arg:
            problems.append("{tag:KEY} needs a tag key")
    rest = PLACEHOLDER.sub("", pattern)
    if "{" in rest or "}" in rest:
        problems.append("unbalanced '{' or '}'")
    return problems


def render(pattern: str, values: Mapping[str, str], tags: Mapping[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name, arg = m.group(1), m.group(2)
        if name == "tag":
            if arg not in tags:
                raise PlatformError(f"pattern {pattern!r} uses tag {arg!r}, which this project does not set")
            return tags[arg]
        return values[name]

    return PLACEHOLDER.sub(sub, pattern)


#: CreateAccount's AccountName is printable ASCII; PutAccountName also excludes < and >.
_ACCOUNT_NAME = re.compile(r"^[ -;=?-~]+$")
EMAIL_MIN = 6


def account_name(pattern: str, values: Mapping[str, str], tags: Mapping[str, str]) -> str:
    name = render(pattern, values, tags).strip()
    if not name or len(name) > NAME_MAX:
        raise PlatformError(f"account name {name!r} from pattern {pattern!r} must be 1-{NAME_MAX} characters")
    if not _ACCOUNT_NAME.fullmatch(name):
        raise PlatformError(
            f"account name {name!r} from pattern {pattern!r} may only hold printable ASCII characters "
            "other than < and > (AWS's CreateAccount and PutAccountName)"
        )
    return name


def account_email(pattern: str, values: Mapping[str, str], tags: Mapping[str, str]) -> str:
    raw = render(pattern, values, tags).strip()
    if raw.count("@") != 1:
        raise PlatformError(f"account e-mail {raw!r} from pattern {pattern!r} is not an e-mail address")
    local, domain = raw.split("@")
    local = _EMAIL_LOCAL.sub("-", local.lower()).strip(".")
    email = f"{local}@{domain.lower()}"
    if not email.isascii() or len(email) < EMAIL_MIN:
        raise PlatformError(
            f"account e-mail {email!r} from pattern {pattern!r} must be {EMAIL_MIN}-{EMAIL_MAX} ASCII characters"
        )
    if len(email) > EMAIL_MAX:
        raise PlatformError(
            f"account e-mail {email!r} from pattern {pattern!r} is {len(email)} characters; "
            f"AWS allows at most {EMAIL_MAX}: shorten the pattern"
        )
    if not local or "." not in domain:
        raise PlatformError(f"account e-mail {email!r} from pattern {pattern!r} is not an e-mail address")
    return email


def account_alias(pattern: str, values: Mapping[str, str], tags: Mapping[str, str]) -> str:
    alias = re.sub(r"[^a-z0-9-]+", "-", render(pattern, values, tags).lower())
    alias = re.sub(r"-{2,}", "-", alias).strip("-")
    if not (ALIAS_MIN <= len(alias) <= ALIAS_MAX) or not _ALIAS.fullmatch(alias):
        raise PlatformError(
            f"account alias {alias!r} from pattern {pattern!r} is invalid: AWS needs {ALIAS_MIN}-{ALIAS_MAX} "
            "lowercase letters, digits and hyphens, starting and ending with a letter or digit"
        )
    return alias


def tag_key(key: str) -> str:
    clean = _TAG_CHARS.sub("_", key)
    if not clean or len(clean) > TAG_KEY_MAX or clean.lower().startswith("aws:"):
        raise PlatformError(
            f"tag key {key!r} is invalid for AWS (1-{TAG_KEY_MAX} characters, not starting with 'aws:')"
        )
    return clean


def tag_value(value: str) -> str:
    return _TAG_CHARS.sub("_", value)[:TAG_VALUE_MAX]
