"""How asynchronous AWS requests are waited on: how late an ending is seen, and how many looks it costs.

Not timed: the sleeps go to a fake clock, so lateness and looks are exact.
"""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshcore_aws import vending
from meshcore_aws import watch as watch_module
from meshcore_aws.identity_center import IdentityCenter, poll_wait
from meshcore_aws.watch import RequestWatch


def running(request_id: str) -> dict[str, str]:
    """The status a watch answers for a request its listing shows in progress."""
    return {"RequestId": request_id, "Status": "IN_PROGRESS"}


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


@settings(deadline=None)  # a paused example on a busy machine is not a failure
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
@settings(deadline=None)  # a paused example on a busy machine is not a failure
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


class FakeOrg:
    """ListCreateAccountStatus and DescribeCreateAccountStatus over requests that end at given times."""

    def __init__(self, clock: Clock, ends: dict[str, float], look: float):
        self.clock, self.ends, self.look = clock, ends, look
        self.listings: list[float] = []
        self.client = self

    def get_paginator(self, operation: str):
        assert operation == "list_create_account_status"
        return self

    def paginate(self, States, **_paging):
        assert States == ["IN_PROGRESS"]
        self.listings.append(self.clock.now)
        self.clock.now += self.look  # the listing's round trip
        running = [{"Id": r, "State": "IN_PROGRESS"} for r, end in self.ends.items() if self.clock.now < end]
        return [{"CreateAccountStatuses": running}]

    def describe_create_account_status(self, CreateAccountRequestId):
        assert self.clock.now >= self.ends[CreateAccountRequestId]
        return {
            "CreateAccountStatus": {"Id": CreateAccountRequestId, "State": "SUCCEEDED", "AccountId": "1" * 12}
        }


@pytest.mark.parametrize("look", [0.05, 0.6])
@settings(deadline=None)  # a paused example on a busy machine is not a failure
@given(phase=st.floats(min_value=0, max_value=0.99), ends=st.lists(st.floats(0, 20), min_size=2, max_size=2))
def test_account_creations_are_looked_at_together_once_per_interval(look, phase, ends):
    """Two tenants waiting out of phase (one started ``phase`` s after the other) look at the same instants:
    one listing per interval serves both, and each sees its account's end at most 1.25 intervals plus a
    look late (each on a schedule of its own, a tenant could reuse a listing almost an interval old and
    see the end two intervals late)."""
    interval = 1.0
    clock = Clock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(watch_module.time, "monotonic", clock.monotonic)
        _two_waiters(clock, interval, look, phase, ends)


def _two_waiters(clock: Clock, interval: float, look: float, phase: float, ends: list[float]) -> None:
    org = FakeOrg(clock, {"car-a": ends[0], "car-b": phase + ends[1]}, look)
    watch = vending.CreationWatch(org)
    seen = {"car-a": 0, "car-b": 0}
    next_look = {"car-a": watch.until_next_look(interval)}
    clock.now = phase  # the second tenant's request is sent now; it waits for the watch's next look
    next_look["car-b"] = phase + watch.until_next_look(interval)
    clock.now = 0.0
    ended: dict[str, float] = {}
    while len(ended) < 2:  # the waiter due first looks (a fake, single-threaded interleaving)
        rid = min((r for r in next_look if r not in ended), key=next_look.get)
        clock.now = max(clock.now, next_look[rid])
        status, seen[rid] = watch.status(rid, seen[rid], max_age=interval / 4)
        if status["State"] == "SUCCEEDED":
            ended[rid] = clock.now
        else:
            next_look[rid] = clock.now + watch.until_next_look(interval)
    for rid, end in org.ends.items():
        assert ended[rid] - end <= 1.25 * interval + 2 * look + 1e-9, (rid, ended, org.ends, org.listings)
    assert all(b - a >= interval / 4 - 1e-9 for a, b in itertools.pairwise(org.listings)), org.listings


def test_the_next_look_is_at_the_watch_instants_and_never_right_after_one(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(watch_module.time, "monotonic", clock.monotonic)
    watch = vending.CreationWatch(org=None)
    for now, wait in [(0.3, 0.7), (1.0, 1.0), (2.8, 1.2), (5.74, 0.26)]:
        clock.now = now
        assert watch.until_next_look(1.0) == pytest.approx(wait)
    assert watch.until_next_look(0) == 0


@pytest.mark.parametrize("interval", [0.5, 5.0])
def test_an_identity_center_request_is_waited_on_for_118_intervals_before_the_run_reports_it(interval):
    clock = Clock()

    def never(request_id: str) -> dict[str, str]:
        return {"RequestId": request_id, "Status": "IN_PROGRESS"}

    with pytest.raises(Exception, match="did not finish in time; the next run checks it again"):
        _center(interval, clock).poll({"RequestId": "r-1", "Status": "IN_PROGRESS"}, never, "an assignment")
    assert 118 * interval <= clock.now <= 119 * interval


def test_a_shared_identity_center_listing_is_reused_only_while_fresh(monkeypatch):
    """Waiters at one look share a listing; a listing older than max_age is made again, not reused."""
    clock = Clock()
    monkeypatch.setattr(watch_module.time, "monotonic", clock.monotonic)
    listings: list[float] = []

    def in_progress() -> set[str]:
        listings.append(clock.now)
        return {"r-1", "r-2"} if clock.now < 1.0 else set()

    watch = RequestWatch(in_progress, lambda rid: {"RequestId": rid, "Status": "SUCCEEDED"}, running)
    first, second = watch.looker(max_age=0.1), watch.looker(max_age=0.1)
    assert first("r-1")["Status"] == "IN_PROGRESS" and second("r-2")["Status"] == "IN_PROGRESS"
    assert listings == [0.0]  # one listing for both
    clock.now = 0.95
    assert second("r-2")["Status"] == "IN_PROGRESS"  # too old to share: listed again
    clock.now = 1.2
    assert first("r-1")["Status"] == "SUCCEEDED"
    assert listings == [0.0, 0.95, 1.2]


def test_the_emulator_pages_assignment_listings_as_aws_and_counts_one_read_per_request_shown():
    """A listing of 5 requests in progress, 2 per page: 3 pages in creation order, none skipped or repeated,
    and each request's status reads (how long it stays in progress) used once, by the page that shows it."""
    import meshcore_aws_emulator
    from meshcore_aws_emulator import strict
    from moto.ssoadmin.responses import SSOAdminResponse

    meshcore_aws_emulator.patch()  # the emulator's additions to moto (once per process)
    requests = [SimpleNamespace(request_id=f"r-{i}", created_date=1.0 + i) for i in range(5)]
    for r in requests:
        strict.STATE.assignment_requests[r.request_id] = 2
    try:
        pages, token = [], None
        while True:
            params = {"MaxResults": 2, "Filter": {"Status": "IN_PROGRESS"}, "NextToken": token}
            fake = SimpleNamespace(
                _get_param=lambda k, p=params: p.get(k),
                ssoadmin_backend=SimpleNamespace(account_assignments=requests),
            )
            out = json.loads(SSOAdminResponse.list_account_assignment_creation_status(fake))
            pages.append([s["RequestId"] for s in out["AccountAssignmentsCreationStatus"]])
            token = out.get("NextToken")
            if token is None:
                break
        assert pages == [["r-0", "r-1"], ["r-2", "r-3"], ["r-4"]]
        assert all(strict.STATE.assignment_requests[r.request_id] == 1 for r in requests)
    finally:
        for r in requests:
            strict.STATE.assignment_requests.pop(r.request_id, None)


def test_a_listing_that_fails_is_not_asked_again_and_each_request_is_described():
    """A role without the List permission (or a listing throttled past its retries) must not fail requests
    that succeeded: the watch describes each request instead, and does not ask for the listing again."""
    from botocore.exceptions import ClientError

    tried = []

    def denied() -> set[str]:
        tried.append(1)
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListX")

    watch = RequestWatch(denied, lambda rid: {"RequestId": rid, "Status": "SUCCEEDED"}, running)
    looks = [watch.looker(max_age=1.0) for _ in range(8)]
    assert all(look(f"r-{i}")["Status"] == "SUCCEEDED" for i, look in enumerate(looks))
    assert len(tried) == 1

    class DeniedOrg:
        def get_paginator(self, operation):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, operation)

        def describe_create_account_status(self, CreateAccountRequestId):
            return {"CreateAccountStatus": {"Id": CreateAccountRequestId, "State": "SUCCEEDED"}}

    org = SimpleNamespace(client=DeniedOrg())
    creations = vending.CreationWatch(org)
    assert creations.status("car-1", 0)[0]["State"] == "SUCCEEDED"
    assert creations.status("car-2", 0)[0]["State"] == "SUCCEEDED"
