"""Service Control Policy documents: load, check the grammar AWS enforces, minify.

Checked before any write: valid JSON, ``Version``, statements with ``Effect``
and ``Action``/``NotAction``, no keys SCPs do not allow (e.g. ``Principal``),
action names of the form ``service:Action``, and the 5,120-character limit
(counted on the minified document, which is what meshcore uploads).
"""

from __future__ import annotations

import json
import re
from typing import Any

SCP_MAX_CHARS = 5120
SCP_MAX_PER_TARGET = 5
STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
ACTION = re.compile(r"^(\*|[a-z0-9-]+:[A-Za-z0-9*?]+)$")


def minify(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def problems(document: Any) -> list[str]:
    """Everything wrong with an SCP document (empty: valid)."""
    if not isinstance(document, dict):
        return ["the policy document must be a JSON object"]
    out = []
    if document.get("Version") != "2012-10-17":
        out.append("'Version' must be \"2012-10-17\"")
    unknown = set(document) - {"Version", "Id", "Statement"}
    if unknown:
        out.append(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        return [*out, "'Statement' must be a non-empty list of statements"]
    for i, st in enumerate(statements):
        where = f"Statement[{i}]"
        if not isinstance(st, dict):
            out.append(f"{where} must be an object")
            continue
        bad = set(st) - STATEMENT_KEYS
        if bad:
            out.append(f"{where}: key(s) not allowed in an SCP: {', '.join(sorted(bad))}")
        if st.get("Effect") not in ("Allow", "Deny"):
            out.append(f"{where}: 'Effect' must be Allow or Deny")
        if ("Action" in st) == ("NotAction" in st):
            out.append(f"{where}: give exactly one of 'Action' or 'NotAction'")
        actions = st.get("Action", st.get("NotAction", []))
        for action in (
            [actions] if isinstance(actions, str) else actions if isinstance(actions, list) else [None]
        ):
            if not isinstance(action, str) or not ACTION.fullmatch(action):
                out.append(f"{where}: {action!r} is not an action like 'service:Action'")
        if "Condition" in st and not isinstance(st["Condition"], dict):
            out.append(f"{where}: 'Condition' must be an object")
    size = len(minify(document))
    if size > SCP_MAX_CHARS:
        out.append(f"the document is {size} characters minified; AWS allows at most {SCP_MAX_CHARS}")
    return out
