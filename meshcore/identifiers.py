"""Identifier rules shared by the config models.

Each rule is an ``Annotated`` string type whose validator raises a message a
platform engineer can act on (pydantic's default "should match pattern" text
names a regular expression, not the rule).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$")
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")


def _slug(max_len: int, what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not (1 <= len(value) <= max_len) or not _SLUG.fullmatch(value):
            raise ValueError(
                f"{what} {value!r} is invalid: use 1-{max_len} lowercase letters, digits and "
                "hyphens, starting and ending with a letter or digit"
            )
        return value

    return check


def _name(value: str) -> str:
    if not (1 <= len(value) <= 64) or not _NAME.fullmatch(value):
        raise ValueError(
            f"identifier {value!r} is invalid: use 1-64 lowercase letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit"
        )
    return value


def _user(value: str) -> str:
    if not (1 <= len(value) <= 128) or not _USER.fullmatch(value):
        raise ValueError(
            f"user id {value!r} is invalid: use 1-128 letters, digits, '.', '_', '@', '+' or '-'"
        )
    return value


WorkspaceId = Annotated[str, AfterValidator(_slug(16, "workspace id"))]
ProjectId = Annotated[str, AfterValidator(_slug(30, "project id"))]
Identifier = Annotated[str, AfterValidator(_name)]
UserId = Annotated[str, AfterValidator(_user)]
