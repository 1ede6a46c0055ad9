"""How asynchronous AWS requests are waited on: how late an ending is seen, and how many looks it costs.

Not timed: the sleeps go to a fake clock, so lateness and looks are exact.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshcore_aws import vending
from meshcore_aws.identity_center import IdentityCenter, poll_wait


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@given(
    interval=st.floats(min_value=0.01, max_value=300, allow_nan=False),
    waited=st.floats(min_value=0, max_value=10_000, allow_nan=False),
)
def test_identity_center_waits_are_a_quarter_of_the_wait_so_far_within_the_interval(interval, waited):
    wait = poll_wait(waited, interval)
    assert interval / 4 <= wait <= interval
    assert wait <= max(interval / 4, waited / 4) + 1e-9


def _center(interval: float, clock: Clock) -> IdentityCenter:
    cfg = SimpleNamespace(poll_interval_seconds=interval, identity_center=SimpleNamespace())
    return IdentityCenter(sessions=None, cfg=cfg, sleep=clock.sleep, limiter=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("interval", [0.5, 5.0])
@given(share=st.floats(min_value=0.0001, max_value=1, allow_nan=False))
def test_an_identity_center_request_is_seen_ended_soon_and_with_few_looks(interval, share):
    """Seen at most max(interval / 4, a quarter of its duration) late; looks grow with the log of the duration.
    (A request is waited on for about a hundred intervals before the run reports it still in progress.)"""
    takes = share * 100 * interval
    clock = Clock()
    looks = []

    def describe(request_id: str) -> dict[str, str]:
        looks.append(clock.now)
        return {"RequestId": request_id, "Status": "SUCCEEDED" if clock.now >= takes else "IN_PROGRESS"}

    _center(interval, clock).poll({"RequestId": "r-1", "Status": "IN_PROGRESS"}, describe, "an assignment")
    late = looks[-1] - takes
    assert 0 <= late <= max(interval / 4, takes / 4) + 1e-9, (late, looks)
    # a quarter of the interval until the interval has been waited, then growing by a quarter each look
    bound = 4 + math.ceil(math.log(max(takes, interval) / interval, 1.25)) + math.ceil(takes / interval)
    assert len(looks) <= bound, (len(looks), bound)


def test_a_failed_identity_center_request_raises_with_aws_reason():
    clock = Clock()
    with pytest.raises(Exception, match="FAILED: the permission set is not provisioned"):
        _center(1.0, clock).poll(
            {"RequestId": "r-1", "Status": "IN_PROGRESS"},
            lambda rid: {
                "RequestId": rid,
                "Status": "FAILED",
                "FailureReason": "the permission set is not provisioned",
            },
            "an assignment",
        )


@pytest.mark.parametrize(("look", "pause"), [(0.3, 0.7), (2.5, 0.25)])
def test_account_creation_is_looked_at_once_per_interval_however_long_a_look_takes(monkeypatch, look, pause):
    """A look that takes 0.3 s of a 1 s interval is followed by 0.7 s of sleep: one look per interval, so
    an account's end is seen at most one interval late (sleeping the whole interval after each look made it
    interval + look). A look slower than the interval (throttled) is still followed by a quarter of it."""
    clock = Clock()
    monkeypatch.setattr(vending.time, "monotonic", clock.monotonic)
    created_at = 4.2

    class Watch:
        def status(self, request_id: str, seen: int):
            clock.now += look  # the listing's round trips
            state = "SUCCEEDED" if clock.now >= created_at else "IN_PROGRESS"
            return {"Id": request_id, "State": state, "AccountId": "111122223333"}, seen + 1

    looked: list[float] = []
    run = SimpleNamespace(
        cfg=SimpleNamespace(poll_interval_seconds=1.0, create_wait_seconds=60),
        creations=Watch(),
        sleep=lambda s: (looked.append(clock.now), clock.sleep(s)),
    )
    monkeypatch.setattr(vending, "_created", lambda run, want, ctx, entry, aid, sent_here: ("created", aid))
    entry = SimpleNamespace(operation_id="car-1")
    result = vending._await_creation(run, None, None, None, entry, status=None)  # type: ignore[arg-type]
    assert result == ("created", "111122223333")
    assert clock.sleeps and all(s == pytest.approx(pause) for s in clock.sleeps), clock.sleeps
    assert clock.now - created_at <= max(1.0, look + pause) + 1e-9
