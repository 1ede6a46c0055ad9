"""Keep secrets out of state, logs and output.

Every value that came from ``${ENV_VAR}`` interpolation or a pydantic
``SecretStr`` is registered here; every message the core stores, logs or prints
passes through :func:`redact`.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

_MIN_LEN = 4
_lock = threading.Lock()
_secrets: set[str] = set()
_compiled: re.Pattern[str] | None = None
_factory_installed = False
#: Credentials that libraries print at their debug level under well-known names (temporary cloud
#: credentials in an STS answer, a session token header, a password field): the value is masked in
#: every log record, registered or not. XML elements, then ``name: value`` / ``name=value`` forms.
_CREDENTIAL_NAMES = (
    r"SecretAccessKey|SessionToken|aws_secret_access_key|aws_session_token|X-Amz-Security-Token|password"
)
_CREDENTIAL_XML = re.compile(rf"<({_CREDENTIAL_NAMES})>[^<]*</\1>", re.IGNORECASE)
_CREDENTIAL_FIELD = re.compile(
    rf"""(["']?\b(?:{_CREDENTIAL_NAMES})\b["']?\s*[:=]\s*b?["']?)([^"'\s,;}}&]+)""", re.IGNORECASE
)


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that it never leaves the process in a message (or any log record)."""
    global _compiled
    if value and len(value) >= _MIN_LEN:
        with _lock:
            if value not in _secrets:
                _secrets.add(value)
                _compiled = None
        _install_log_redaction()


def _install_log_redaction() -> None:
    """Redact every log record when it is created, whichever logger (botocore's debug logs print
    request parameters, ExternalIds included) and whichever handler."""
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging call's problem, not ours
            return record
        cleaned = mask_credentials(redact(message))
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return record

    logging.setLogRecordFactory(factory)


def install_log_redaction() -> None:
    """Redact every log record from now on (called when logging is configured)."""
    _install_log_redaction()


def mask_credentials(text: str) -> str:
    """Mask the values of well-known credential fields (see ``_CREDENTIAL_NAMES``) in ``text``."""
    if not text:
        return text
    text = _CREDENTIAL_XML.sub(lambda m: f"<{m.group(1)}>***</{m.group(1)}>", text)
    return _CREDENTIAL_FIELD.sub(lambda m: f"{m.group(1)}***", text)


def _pattern() -> re.Pattern[str] | None:
    """One regex matching every registered secret, in any letter case (built once per change)."""
    global _compiled
    with _lock:
        if _compiled is None and _secrets:
            alternatives = sorted(_secrets, key=len, reverse=True)
            _compiled = re.compile("|".join(re.escape(s) for s in alternatives), re.IGNORECASE)
        return _compiled


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``, whatever its letter case.

    A plugin may lower-case a value (an e-mail address, an alias); the secret in
    it is still a secret.
    """
    if not text or not _secrets:
        return text
    pattern = _pattern()
    return pattern.sub("***", text) if pattern is not None else text


def is_secret(text: str) -> bool:
    """Whether ``text`` holds a registered secret (a value interpolated from the environment)."""
    return bool(text) and redact(text) != text


def clear_secrets() -> None:
    """Forget all registered secrets (tests)."""
    global _compiled
    with _lock:
        _secrets.clear()
        _compiled = None


def redact_data(value: Any) -> Any:
    """:func:`redact` every string inside nested dicts, lists and tuples."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_data(k) if isinstance(k, str) else k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_data(v) for v in value)
    return value
