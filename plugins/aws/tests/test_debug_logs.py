"""At debug level botocore prints whole requests and answers; temporary credentials never reach a log record."""

from __future__ import annotations

import logging

from meshcore import logs
from meshcore_aws import sessions
from meshcore_aws.run import reset_sessions


def test_debug_logs_never_hold_the_assumed_roles_credentials(world, config):
    issued: list[dict] = []

    def keep(parsed=None, **_kw):
        if parsed and "Credentials" in parsed:
            issued.append(parsed["Credentials"])

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    sessions.EVENT_HOOKS.append(("after-call.sts.AssumeRole", keep))
    reset_sessions()
    logs.configure("debug")
    handler = Keep(level=logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        report = world.reconciler(config).apply()
    finally:
        logging.getLogger().removeHandler(handler)
        logs.configure("warning")
        sessions.EVENT_HOOKS.remove(("after-call.sts.AssumeRole", keep))
    assert not report.failed, [t.message for t in report.failed]
    text = "\n".join(records)
    assert issued and "AssumeRole" in text and "Response body" in text, "botocore's debug logging was on"
    for creds in issued:
        assert creds["SecretAccessKey"] not in text
        assert creds["SessionToken"] not in text
