"""AWS limits the account creations in progress at a time: a run vends past the limit, never fails on it.

The strict emulator refuses a ``CreateAccount`` beyond ``creations_in_progress`` with
``ConstraintViolationException`` ``ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED``, as AWS does.
"""

from __future__ import annotations

import copy
import threading

import boto3
import meshcore_aws_emulator
from hypothesis import given, settings
from hypothesis import strategies as st
from meshcore_aws_emulator import strict

from aws_testlib import by_key
from meshcore_aws.creation_slots import CreationSlots


def projects(config: dict, n: int, **platform: object) -> dict:
    """``config`` with ``n`` new projects in the dev landing zone, all in one run at concurrency ``n``."""
    config = copy.deepcopy(config)
    config["platforms"][0]["config"].update(platform)
    config["workspaces"] = [
        {
            "id": "ws",
            "projects": [
                {"id": f"p{i}", "tenants": [{"platform": "aws", "landing_zone": "dev"}]} for i in range(n)
            ],
        }
    ]
    config["settings"] = {"concurrency": n}
    return config


def member_emails() -> set[str]:
    org = boto3.client("organizations", region_name="us-east-1")
    return {a["Email"] for a in org.list_accounts()["Accounts"]} - {"master@example.com"}


def test_tenants_past_the_limit_wait_for_a_creation_to_end_and_are_created_in_the_same_run(world, config):
    meshcore_aws_emulator.PROFILE.creations_in_progress = 2
    world.slow.in_progress_polls = 2
    cfg = projects(config, 8, create_wait_seconds=600)

    report = world.reconciler(cfg).apply()

    assert not report.failed, [t.message for t in report.failed]
    statuses = {t.key: t.status for t in report.tenants}
    assert statuses == {f"ws/p{i}@aws": "changed" for i in range(8)}, [t.message for t in report.tenants]
    assert member_emails() >= {f"aws+ws-p{i}@example.com" for i in range(8)}
    # refusals only until the limit is learnt: the first wave of 8 sends, of which AWS takes 2
    refused = world.calls["CreateAccount"] - 8
    assert 0 < refused <= 6, dict(world.calls)
    assert not world.store.journal_entries("aws", status="open"), (
        "a refused CreateAccount left an open intent"
    )


def test_a_configured_limit_sends_no_creation_aws_would_refuse(world, config):
    meshcore_aws_emulator.PROFILE.creations_in_progress = 2
    world.slow.in_progress_polls = 2
    cfg = projects(config, 8, create_wait_seconds=600, max_account_creations_in_flight=2)

    report = world.reconciler(cfg).apply()

    assert not report.failed, [t.message for t in report.failed]
    assert {t.status for t in report.tenants} == {"changed"}
    assert world.calls["CreateAccount"] == 8, dict(world.calls)


def test_creations_in_progress_that_are_not_the_runs_delay_the_tenant_to_the_next_run(world, config):
    """All of AWS's slots held by someone else's creations: one refused CreateAccount, the tenant is
    reported in progress at once (not failed, not sent again and again), and created once they end."""
    meshcore_aws_emulator.PROFILE.creations_in_progress = 1
    world.slow.in_progress_polls = 1000
    org = boto3.client("organizations", region_name="us-east-1")
    org.create_account(Email="someone-else@example.com", AccountName="elsewhere")
    cfg = projects(config, 3, create_wait_seconds=600)

    first = by_key(world.reconciler(cfg).apply())

    assert {t.status for t in first.values()} == {"in_progress"}, [t.message for t in first.values()]
    assert all("held by others" in t.message for t in first.values()), [t.message for t in first.values()]
    assert world.calls["CreateAccount"] <= 3, dict(world.calls)  # at most one per tenant sent at once
    assert "aws+ws-p0@example.com" not in member_emails()
    assert not world.store.journal_entries("aws", status="open")

    strict.STATE.creating.clear()  # the other creation ended
    world.slow.in_progress_polls = 1
    world.calls.clear()
    second = by_key(world.reconciler(cfg).apply())
    assert {t.status for t in second.values()} == {"changed"}, [t.message for t in second.values()]
    assert member_emails() >= {f"aws+ws-p{i}@example.com" for i in range(3)}


def test_a_refusal_lowers_the_limit_to_the_creations_aws_accepted():
    slots = CreationSlots()
    for _ in range(4):
        assert slots.acquire(timeout=0)
    for _ in range(3):
        slots.sent()
    assert slots.refused(0) is True  # three of the run's creations are in progress: AWS allows three
    assert slots.limit == 3 and slots.running == 3
    assert slots.acquire(timeout=0) is False
    slots.release()
    assert slots.acquire(timeout=0) is True


def test_a_refusal_waits_for_the_answers_of_sends_in_flight_before_it_concludes():
    slots = CreationSlots()
    assert slots.acquire(timeout=0) and slots.acquire(timeout=0)
    outcome: list[bool] = []
    refusal = threading.Thread(target=lambda: outcome.append(slots.refused(0)))
    refusal.start()
    refusal.join(0.2)
    assert refusal.is_alive(), "concluded before the other send was answered"
    slots.sent()  # the other send was accepted: the run holds a slot
    refusal.join(5)
    assert outcome == [True] and slots.limit == 1 and not slots.closed


def test_refusals_while_none_of_the_runs_creations_run_learn_nothing_and_close_the_slots():
    """Someone else holds AWS's slots (or the day's creations are used up): nothing is sent again this run."""
    slots = CreationSlots()
    for _ in range(3):
        assert slots.acquire(timeout=0)
    results = []
    threads = [threading.Thread(target=lambda: results.append(slots.refused(0))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == [False, False, False]
    assert slots.closed and slots.limit is None
    assert slots.acquire(timeout=10) is False  # at once, not after the timeout


def test_a_learnt_limit_rises_after_a_round_without_refusal_and_a_configured_one_never_does():
    learnt = CreationSlots()
    for _ in range(2):
        assert learnt.acquire(timeout=0)
    learnt.sent()
    assert learnt.refused(0) and learnt.limit == 1  # learnt while someone else's creation held a slot
    learnt.release()
    assert learnt.acquire(timeout=0)
    learnt.sent()  # a round of one accepted send: try two
    assert learnt.limit == 2

    configured = CreationSlots(limit=2)
    for _ in range(10):
        assert configured.acquire(timeout=0)
        configured.sent()
        configured.release()
    assert configured.limit == 2


def test_a_refusal_after_one_of_the_runs_creations_ended_sends_again():
    """AWS's refusal may describe the moment before the run's last creation ended: not someone else's slots."""
    slots = CreationSlots()
    assert slots.acquire(timeout=0)
    slots.sent()
    assert slots.acquire(timeout=0)
    ended = slots.ended
    slots.release()  # the first creation ends while the second CreateAccount is refused
    assert slots.refused(ended) is True
    assert not slots.closed and slots.acquire(timeout=0)


def test_awaited_creations_of_earlier_runs_hold_slots():
    slots = CreationSlots(limit=1)
    slots.occupy()
    assert slots.acquire(timeout=0) is False
    slots.release()
    assert slots.acquire(timeout=0) is True


@settings(max_examples=25, deadline=None)
@given(limit=st.integers(min_value=1, max_value=4), tenants=st.integers(min_value=1, max_value=12))
def test_never_more_creations_in_flight_than_the_limit(limit, tenants):
    slots = CreationSlots(limit=limit)
    lock = threading.Lock()
    seen = {"now": 0, "max": 0, "done": 0}

    def tenant() -> None:
        assert slots.acquire(timeout=10)
        slots.sent()
        with lock:
            seen["now"] += 1
            seen["max"] = max(seen["max"], seen["now"])
        with lock:
            seen["now"] -= 1
            seen["done"] += 1
        slots.release()

    threads = [threading.Thread(target=tenant) for _ in range(tenants)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["done"] == tenants
    assert seen["max"] <= limit
    assert slots.running == 0


def test_a_stop_while_tenants_wait_for_a_slot_sends_nothing_more_and_the_next_run_goes_on(
    world, config, monkeypatch
):
    """SIGTERM with creations queued: the waiting tenants give up at once (nothing sent), the one in flight
    is left to the next run (its request id journaled), and the next run creates every account once."""
    from meshcore_aws import sessions as aws_sessions
    from meshcore_aws.run import reset_sessions

    meshcore_aws_emulator.PROFILE.creations_in_progress = 1
    world.slow.in_progress_polls = 10_000  # the first creation stays in progress until the test ends it
    cfg = projects(config, 3, create_wait_seconds=600, max_account_creations_in_flight=1)
    stop = threading.Event()
    asked = threading.Semaphore(0)  # one release per tenant that asked for a slot
    acquire = CreationSlots.acquire

    def counted_acquire(self, *args, **kwargs):
        asked.release()
        return acquire(self, *args, **kwargs)

    def stop_after_create(event_name="", **_kw):
        if event_name.endswith("CreateAccount") and not stop.is_set():  # the first run's only
            # The stop comes once the two other tenants wait for a slot, not before they have started.
            assert all(asked.acquire(timeout=30) for _ in range(3)), "the tenants did not ask for slots"
            stop.set()

    monkeypatch.setattr(CreationSlots, "acquire", counted_acquire)

    monkeypatch.setattr(
        aws_sessions, "EVENT_HOOKS", [*world.calls.hooks(), ("after-call", stop_after_create)]
    )
    reset_sessions()
    rec = world.reconciler(cfg)
    rec.stop = stop
    first = rec.apply()

    assert {t.status for t in first.tenants} == {"in_progress"}, [(t.key, t.message) for t in first.tenants]
    assert sum("meshcore is stopping" in t.message for t in first.tenants) == 2, [
        t.message for t in first.tenants
    ]
    assert world.calls["CreateAccount"] == 1, dict(world.calls)
    open_entries = world.store.journal_entries("aws", status="open")
    assert len(open_entries) == 1 and open_entries[0].operation_id, open_entries

    strict.STATE.creating.clear()
    world.slow.in_progress_polls = 1
    world.calls.clear()
    second = world.reconciler(cfg).apply()
    assert {t.status for t in second.tenants} == {"changed"}, [(t.key, t.message) for t in second.tenants]
    assert world.calls["CreateAccount"] == 2, dict(world.calls)
    assert member_emails() >= {f"aws+ws-p{i}@example.com" for i in range(3)}
