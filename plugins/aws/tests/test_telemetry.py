"""Every AWS request the plugin sends, and every retry, reaches meshcore's telemetry (``meshcore serve``'s metrics)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from meshcore import telemetry


class Recorder:
    """A telemetry sink that keeps what it is told."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.retries: Counter[tuple[str, str, bool]] = Counter()

    def cloud_call(self, platform: str, operation: str, outcome: str) -> None:
        self.calls[(platform, operation, outcome)] += 1

    def retry(self, platform: str, operation: str, throttled: bool) -> None:
        self.retries[(platform, operation, throttled)] += 1


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    sink = Recorder()
    previous = telemetry.install(sink)
    yield sink
    telemetry.install(previous)


def test_an_apply_reports_each_request_and_the_retry_of_a_throttled_one(world, recorder, config):
    config["workspaces"] = config["workspaces"][1:]  # one tenant: ws2/p3
    world.slow.throttle = {"list_accounts": ["TooManyRequestsException"]}
    report = world.reconciler(config).apply()
    assert not report.failed, report.as_dict()
    sent = Counter({op: n for op, n in world.calls.items()})
    reported: Counter[str] = Counter()
    for (platform, operation, _outcome), n in recorder.calls.items():
        assert platform == "aws"
        reported[operation.split(".", 1)[1]] += n
    assert reported == sent, "every request sent (retries included) is reported once"
    assert recorder.calls[("aws", "organizations.CreateAccount", "ok")] == 1
    assert recorder.calls[("aws", "organizations.ListAccounts", "throttled")] == 1
    assert recorder.retries[("aws", "organizations.ListAccounts", True)] == 1
    assert sum(n for (_p, _o, throttled), n in recorder.retries.items() if throttled) == 1


def test_a_refused_request_is_reported_as_an_error_and_not_retried(world, recorder, config, monkeypatch):
    from aws_testlib import refuse

    config["workspaces"] = config["workspaces"][1:]
    refuse(monkeypatch, world, {"CreateAccount"})
    report = world.reconciler(config).apply()
    assert [i.status for i in report.tenants] == ["failed"]
    assert recorder.calls[("aws", "organizations.CreateAccount", "error")] == 1
    assert not any(op == "organizations.CreateAccount" for _p, op, _t in recorder.retries)
