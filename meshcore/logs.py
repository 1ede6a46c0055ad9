"""Logging: module loggers throughout, one handler on standard error configured by the CLI.

Every record carries the run id, the tenant and the step being worked on (set
with :func:`scope` by the reconciler, per worker thread), so that the lines of
32 tenants converging at once can be told apart. ``text`` is one line per record
for people; ``json`` one object per line for log pipelines. Records go to
standard error, so ``-o json`` on standard output stays machine-readable, and
every record is redacted (:mod:`meshcore.redaction`). Third-party warnings (an
emulator's notes on resource types it does not model, deprecations) are shown
only at ``debug``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from meshcore.redaction import redact

RUN_ID: ContextVar[int | None] = ContextVar("meshcore_run_id", default=None)
TENANT: ContextVar[str] = ContextVar("meshcore_tenant", default="")
STEP: ContextVar[str] = ContextVar("meshcore_step", default="")

LEVELS = ("debug", "info", "warning", "error")
#: Libraries that log a lot at their own debug and info levels: quiet unless meshcore logs at debug.
_CHATTY = ("botocore", "boto3", "urllib3", "moto", "werkzeug", "alembic", "stevedore", "s3transfer")


@contextmanager
def scope(*, run_id: int | None = None, tenant: str | None = None, step: str | None = None) -> Iterator[None]:
    """Attach a run id, tenant or step to every record logged inside (in this thread)."""
    tokens: list[tuple[ContextVar[Any], Token[Any]]] = []
    if run_id is not None:
        tokens.append((RUN_ID, RUN_ID.set(run_id)))
    if tenant is not None:
        tokens.append((TENANT, TENANT.set(tenant)))
    if step is not None:
        tokens.append((STEP, STEP.set(step)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class _Context(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        run_id, tenant, step = RUN_ID.get(), redact(TENANT.get()), redact(STEP.get())
        where = " ".join(part for part in (f"run {run_id}" if run_id else "", tenant, step) if part)
        record.__dict__.update(run_id=run_id, tenant=tenant, step=step, where=f" [{where}]" if where else "")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, run_id, tenant, step, message."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": getattr(record, "run_id", None),
            "tenant": getattr(record, "tenant", ""),
            "step": getattr(record, "step", ""),
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


_handler: logging.Handler | None = None


def configure(level: str = "warning", fmt: str = "text") -> None:
    """Send every record at ``level`` or above to standard error, as ``text`` or ``json``."""
    global _handler
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    from meshcore.redaction import install_log_redaction

    install_log_redaction()
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.addFilter(_Context())
    if fmt == "json":
        _handler.setFormatter(JsonFormatter())
    else:
        _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s%(where)s: %(message)s"))
    root.addHandler(_handler)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(
            numeric if numeric == logging.DEBUG else max(numeric, logging.WARNING)
        )
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if numeric == logging.DEBUG else logging.CRITICAL)
